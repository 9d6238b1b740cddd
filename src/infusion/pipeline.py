"""One inpainting job, from arrays in to arrays out.

:func:`run` validates the inputs, picks the method and its config, prepares
the work folder (checkpoints, resume), runs the method (over the whole
clip, or segment by segment for a long one: :mod:`infusion.segments`),
pastes the known pixels back exactly and measures the cost. The CLI, the
Python API, the demo and the benchmark all go through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._version import __version__
from .checkpoint import CHECKPOINT_FORMAT
from .config import config_to_dict
from .errors import InputError, ResumeError
from .masks import check_fillable, match_mask
from .methods import RunContext, get_method
from .progress import Progress, as_progress
from .resolution import enlarge_frame, shrink_frame, working_size
from .segments import SEGMENT_OVERLAP, plan_segments, segment_length
from .video_io import check_video_array, to_float

JOB_FILE = "job.json"


@dataclass
class InpaintResult:
    """What a job produced.

    ``samples``: ``(S, T, H, W, 3)`` with the input's dtype; known pixels are
    exactly the input's. ``average``: mean of the samples (same shape as one
    sample) when requested. ``config``: the method's config dataclass.
    ``stats``: cost figures (``wall_s``, ``cpu_s``, ``peak_rss_mb``) and
    whatever the method reported.
    """

    samples: np.ndarray
    average: Optional[np.ndarray]
    method: str
    preset: Optional[str]
    config: Any
    seed: int
    device: str
    stats: dict = field(default_factory=dict)
    nothing_to_do: bool = False

    @property
    def video(self) -> np.ndarray:
        """The first sample, ``(T, H, W, 3)``."""
        return self.samples[0]

    def summary(self) -> dict:
        """JSON-ready description: method, preset, config, seed, device, stats, version."""
        return {
            "infusion_version": __version__,
            "method": self.method,
            "preset": self.preset,
            "config": config_to_dict(self.config),
            "seed": self.seed,
            "device": self.device,
            "samples": int(self.samples.shape[0]),
            "nothing_to_do": self.nothing_to_do,
            "stats": self.stats,
        }


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; refuse 'cuda' without a GPU."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"device must be auto, cpu or cuda; got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return device


def set_threads(threads: Optional[int]) -> None:
    """Set the number of CPU threads of torch and OpenCV (None: leave as is)."""
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"threads must be >= 1; got {threads}")
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def from_float(result: np.ndarray, like: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Convert a float fill to ``like``'s dtype and paste ``like``'s known pixels back exactly.

    ``result``: ``(..., T, h, w, 3)`` float, its frames enlarged to ``like``'s
    size when smaller (:func:`~infusion.resolution.enlarge_frame`);
    ``like``: ``(T, H, W, 3)``; ``mask``: bool ``(T, H, W)``, True where
    ``result`` is kept.
    """
    out = np.empty(result.shape[:-3] + like.shape[1:], dtype=like.dtype)
    height, width = like.shape[1:3]
    for idx in np.ndindex(*result.shape[:-3]):  # frame by frame: no full-clip float temporaries
        frame = np.clip(enlarge_frame(result[idx], height, width), 0.0, 1.0)
        out[idx] = np.rint(frame * 255.0) if like.dtype == np.uint8 else frame
        np.copyto(out[idx], like[idx[-1]], where=~mask[idx[-1], :, :, None])
    return out


def _work_size(m, cfg, mask: np.ndarray) -> tuple[int, int]:
    """The frame size ``(h, w)`` method ``m`` works at on this clip (:func:`~infusion.resolution.working_size`).

    Only methods whose config has ``max_side`` and ``max_region_pixels``
    (``m.resizes``) work below the clip's own size.
    """
    if not m.resizes:
        return mask.shape[1:]
    return working_size(mask, cfg.max_side, cfg.max_region_pixels)


def _visible(video: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A float32 copy of ``video`` (frames, or one frame) with the pixels under ``mask`` zeroed."""
    visible = to_float(video)
    if np.shares_memory(visible, video):
        visible = visible.copy()
    visible[mask] = 0.0
    return visible


def _method_fill(m, video: np.ndarray, mask: np.ndarray, cfg, ctx: RunContext,
                 size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Method ``m``'s float fill ``(S, T, h, w, 3)`` of ``video`` where ``mask``, checked.

    The method never sees the pixels it is asked to fill: they are zeroed
    in the float copy it gets. ``size`` ``(h, w)`` smaller than the frames:
    the method gets them shrunk to it, one at a time, and its fill is at
    that size (:func:`from_float` enlarges it).
    """
    size = tuple(size or video.shape[1:3])
    if size == video.shape[1:3]:
        visible, hole = _visible(video, mask), mask
    else:  # frame by frame: the clip is never held as floats at full size
        visible = np.empty((len(video),) + size + (3,), np.float32)
        hole = np.empty((len(video),) + size, bool)
        for i in range(len(video)):
            visible[i], hole[i] = shrink_frame(_visible(video[i], mask[i]), mask[i], size)
        cfg = replace(cfg, max_side=0, max_region_pixels=0)  # done here
    raw = np.asarray(m.load()(visible, hole, cfg, ctx), dtype=np.float32)
    del visible
    expected = (1 if not m.stochastic else ctx.samples, len(video)) + size + (3,)
    if raw.shape != expected:
        raise RuntimeError(f"method {m.name} returned shape {raw.shape}, expected {expected}")
    if not all(np.isfinite(frame).all() for frame in raw.reshape((-1,) + raw.shape[-3:])):  # no clip-sized mask
        raise RuntimeError(f"method {m.name} returned NaN or infinite values")
    return raw


def _fill_in_segments(m, video: np.ndarray, mask: np.ndarray, cfg, ctx: RunContext,
                      spans: list[tuple[int, int]], size: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """Fill ``video`` segment by segment (see :mod:`infusion.segments`).

    Segment ``k`` of sample ``i`` is filled with seed ``ctx.seed + i`` (its
    own stream of draws: ``+ 1_000_033 * k``), one sample at a time, its
    frames shared with segment ``k - 1`` taken from that one's result as
    known pixels. With a work folder, each finished segment's frames and
    stats are saved there (``sample<i>-segment<k>.npy`` and ``.json``) and
    the method's checkpoints kept in ``sample<i>-segment<k>/``, so that a
    resumed run skips what is done and continues the segment it was in.
    Every segment is worked at the same frame ``size`` (the clip's, see
    :func:`_work_size`). Returns ``(samples, stats)``: ``(S, T, H, W, 3)``
    with ``video``'s dtype, and the segments with each one's method stats.
    """
    samples = ctx.samples  # 1 for a deterministic method (see run)
    out = np.empty((samples,) + video.shape, video.dtype)
    stats: dict = {"segments": [list(span) for span in spans], "segment_stats": []}
    for i in range(samples):
        for k, (a, b) in enumerate(spans):
            name = f"sample{i + 1}-segment{k + 1}"
            done = ctx.work_dir / f"{name}.npy" if ctx.work_dir is not None else None
            if done is not None and ctx.resume and done.exists():
                out[i, a:b] = np.load(done)
                stats["segment_stats"].append(json.loads(done.with_suffix(".json").read_text()))
                continue
            seg, hole = video[a:b].copy(), mask[a:b].copy()
            if k > 0:  # the frames shared with the previous segment: its result, known
                shared = spans[k - 1][1] - a
                seg[:shared], hole[:shared] = out[i, a:a + shared], False
            ctx.progress.log(f"segment {k + 1}/{len(spans)} (frames {a}-{b - 1})"
                             + (f" of sample {i + 1}/{samples}" if samples > 1 else ""))
            seg_stats: dict = {"frames": [a, b]}
            if hole.any():
                sub = RunContext(seed=ctx.seed + i + 1_000_033 * k, device=ctx.device, samples=1,
                                 progress=ctx.progress, resume=ctx.resume,
                                 work_dir=None if ctx.work_dir is None else ctx.work_dir / name)
                if sub.work_dir is not None:
                    sub.work_dir.mkdir(parents=True, exist_ok=True)
                seg = from_float(_method_fill(m, seg, hole, cfg, sub, size), seg, hole)[0]
                seg_stats.update(sub.stats)
            out[i, a:b] = seg
            stats["segment_stats"].append(seg_stats)
            if done is not None:  # the stats first: a segment counts as done once its frames are saved
                done.with_suffix(".json").write_text(json.dumps(seg_stats, default=float))
                tmp = done.with_suffix(".tmp.npy")
                np.save(tmp, seg)
                os.replace(tmp, done)
                shutil.rmtree(ctx.work_dir / name, ignore_errors=True)
    for key in ("train_s", "sample_s"):
        figures = [s[key] for s in stats["segment_stats"] if key in s]
        if figures:
            stats[key] = round(sum(figures), 2)
    return out, stats


def _mean_of_samples(samples: np.ndarray, like: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of ``samples`` ``(S, T, h, w, 3)`` (uint8, or float in [0, 1]), frame by frame, in ``like``'s
    dtype (known pixels exact); smaller frames are enlarged to ``like``'s size before they are averaged."""
    out = np.empty(like.shape, like.dtype)
    height, width = like.shape[1:3]
    for f in range(like.shape[0]):
        frames = np.stack([enlarge_frame(s, height, width) for s in to_float(samples[:, f])])
        out[f] = from_float(frames.mean(axis=0)[None], like[f:f + 1], mask[f:f + 1])[0]
    return out


def job_signature(video: np.ndarray, mask: np.ndarray, method: str, config, seed: int,
                  samples: int, device: str, segments: Optional[list] = None) -> dict:
    """What identifies a job for resuming: a hash of the data, the settings and the checkpoint format.

    ``CHECKPOINT_FORMAT`` changes whenever a saved network would mean
    something else to this code (e.g. a new kernel layout), so a work folder
    of an older version is refused instead of resumed into a wrong fill.
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(video).tobytes())
    h.update(np.packbits(mask).tobytes())
    return {
        "data_sha256": h.hexdigest(), "shape": list(video.shape), "method": method,
        "config": config_to_dict(config), "seed": seed, "samples": samples, "device": device,
        "segments": [list(map(int, span)) for span in segments or [(0, len(video))]],
        "checkpoint_format": CHECKPOINT_FORMAT,
    }


def prepare_work_dir(work_dir: Path, signature: dict, resume: bool, restart: bool) -> None:
    """Create or check a job's work folder.

    A folder left by an interrupted run of the same job is continued with
    ``resume``, wiped with ``restart``, and otherwise refused (so that a
    forgotten ``--resume`` never throws hours of training away). A folder of
    another job is refused on ``resume``.
    """
    job_file = work_dir / JOB_FILE
    if job_file.exists():
        try:
            previous = json.loads(job_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if restart:
            shutil.rmtree(work_dir)
        elif resume:
            if previous != signature:
                diff = _signature_diff(previous, signature)
                raise ResumeError(f"{work_dir}: holds a run of another job ({diff}); cannot resume it. "
                                  "Use --restart to discard it, or another --work-dir")
            return
        else:
            raise ResumeError(f"{work_dir}: holds an interrupted run; add --resume to continue it "
                              "or --restart to discard it")
    elif resume and work_dir.exists() and any(work_dir.iterdir()):
        raise ResumeError(f"{work_dir}: is not an infusion work folder; cannot resume from it")
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = job_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(signature, indent=1))
    os.replace(tmp, job_file)


def _signature_diff(old: Optional[dict], new: dict) -> str:
    if not old:
        return "unreadable job.json"
    keys = [k for k in new if old.get(k) != new[k]]
    if "config" in keys:
        ck = [k for k in new["config"] if old.get("config", {}).get(k) != new["config"][k]]
        keys = [k for k in keys if k != "config"] + [f"config.{k}" for k in ck]
    return "differs in " + ", ".join(keys) if keys else "same settings"


def _rusage_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    try:
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += ch.ru_utime + ch.ru_stime
    except (ValueError, OSError):  # pragma: no cover
        pass
    return cpu


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(video, mask, *, method: str = "infusion", preset: Optional[str] = None, config=None,
        overrides: Optional[dict] = None, seed: int = 0, device: str = "auto",
        threads: Optional[int] = None, samples: int = 1, average: bool = False,
        progress=None, work_dir=None, resume: bool = False, restart: bool = False,
        keep_work: bool = False, segment_frames: Optional[int] = None,
        video_name: str = "video", mask_name: str = "mask") -> InpaintResult:
    """Inpaint ``video`` where ``mask`` is True.

    Parameters
    ----------
    video : ndarray
        ``uint8`` or float in [0, 1], ``(T, H, W, 3)`` (or one ``(H, W, 3)`` frame).
    mask : ndarray
        bool or 0/1, ``(T, H, W)``, or ``(H, W)`` / ``(1, H, W)`` for a static mask.
    method, preset, config, overrides
        Method name (see ``infusion.methods.available()``), a named preset or
        an explicit config dataclass, and field overrides.
    seed : int
        Seed of every random draw: same seed, device and settings give the
        same output.
    device : "auto", "cpu" or "cuda"
    threads : int, optional
        CPU threads for torch and OpenCV.
    samples : int
        Independent fills to draw (stochastic methods); ``average`` also
        returns their mean.
    progress : bool, callable or Progress
    work_dir : path, optional
        Folder for checkpoints (methods that train). ``resume`` continues an
        interrupted run found there, ``restart`` discards it. It is removed
        after success unless ``keep_work``.
    segment_frames : int, optional
        Fill the clip in overlapping segments of at most this many frames
        (:mod:`infusion.segments`), each after the first continuing from the
        one before; bounds the memory of long clips. 0: never split;
        default: segments of about ``SEGMENT_VOXELS`` voxels. A split clip's
        samples are drawn one after another (sample ``i`` with ``seed + i``)
        and their average is that of the written samples.

    Returns
    -------
    InpaintResult
        Known pixels are exactly the input's; dtype follows the input.
    """
    prog: Progress = as_progress(progress)
    video = check_video_array(video, video_name)
    mask = match_mask(mask, video.shape, mask_name=mask_name, video_name=video_name)
    m = get_method(method)
    cfg = m.resolve_config(preset, config, overrides)
    used_preset = None if config is not None else (preset or m.default_preset)
    if samples < 1:
        raise InputError(f"samples must be >= 1; got {samples}")
    if not m.stochastic and samples > 1:
        prog.log(f"method {method} is deterministic: drawing 1 sample, not {samples}")
        samples = 1
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}")
    dev = resolve_device(device)
    set_threads(threads)

    if not check_fillable(mask, mask_name=mask_name):
        prog.log(f"{mask_name}: is empty, nothing to fill: the video is returned unchanged")
        return InpaintResult(video[None].copy(), video.copy() if average else None, method, used_preset,
                             cfg, int(seed), dev, {"wall_s": 0.0, "cpu_s": 0.0}, nothing_to_do=True)

    t, h, w = mask.shape
    size = _work_size(m, cfg, mask)
    spans = plan_segments(t, segment_length(t, h, w, segment_frames, size))
    if len(spans) > 1 and mask[:spans[0][1]].all():  # later segments start with known frames
        prog.log(f"{mask_name}: the first {spans[0][1]} frames are masked throughout: filling the clip in one piece")
        spans = [(0, t)]
    prog.log(f"infusion: {method}{f' ({used_preset})' if used_preset else ''} on {video_name} "
             f"({t} frames, {w}x{h}), mask {mask_name} ({100 * mask.mean():.1f}% of pixels), seed {seed}")
    prog.log(f"settings: {cfg!r}")
    wd = Path(work_dir) if work_dir is not None else None
    if wd is not None:
        prepare_work_dir(wd, job_signature(video, mask, method, cfg, int(seed), samples, dev, spans), resume, restart)
    ctx = RunContext(seed=int(seed), device=dev, samples=samples, progress=prog, work_dir=wd, resume=resume)

    import torch

    torch.manual_seed(int(seed))
    wall0, cpu0 = time.perf_counter(), _rusage_cpu()
    if size != (h, w):
        prog.log(f"infusion: working at {size[1]}x{size[0]}, the fill enlarged to {w}x{h} "
                 f"(max_side={cfg.max_side}, max_region_pixels={cfg.max_region_pixels:,})")
    if len(spans) == 1:
        raw = _method_fill(m, video, mask, cfg, ctx, size)
        out = from_float(raw, video, mask)
        avg = _mean_of_samples(raw, video, mask) if average else None
        del raw
        method_stats = ctx.stats
    else:
        prog.log(f"infusion: {t} frames in {len(spans)} segments of at most {spans[0][1]} frames, each after the "
                 f"first starting from the last {SEGMENT_OVERLAP} frames of the one before")
        out, method_stats = _fill_in_segments(m, video, mask, cfg, ctx, spans, size)
        avg = _mean_of_samples(out, video, mask) if average else None
    stats = {
        "wall_s": round(time.perf_counter() - wall0, 3),
        "cpu_s": round(_rusage_cpu() - cpu0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        "work_size": [size[1], size[0]],
        **method_stats,
    }
    if wd is not None and not keep_work:
        shutil.rmtree(wd, ignore_errors=True)
    return InpaintResult(out, avg, method, used_preset, cfg, int(seed), dev, stats)
