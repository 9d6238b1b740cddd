"""One inpainting job, from arrays in to arrays out.

:func:`run` validates the inputs, picks the method and its config, prepares
the work folder (checkpoints, resume), runs the method, pastes the known
pixels back exactly and measures the cost. The CLI, the Python API, the demo
and the benchmark all go through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
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

    ``result``: ``(..., T, H, W, 3)`` float; ``like``: ``(T, H, W, 3)``;
    ``mask``: bool ``(T, H, W)``, True where ``result`` is kept.
    """
    out = np.empty(result.shape, dtype=like.dtype)
    for idx in np.ndindex(*result.shape[:-3]):  # frame by frame: no full-clip float temporaries
        frame = np.clip(result[idx], 0.0, 1.0)
        out[idx] = np.rint(frame * 255.0) if like.dtype == np.uint8 else frame
        np.copyto(out[idx], like[idx[-1]], where=~mask[idx[-1], :, :, None])
    return out


def job_signature(video: np.ndarray, mask: np.ndarray, method: str, config, seed: int,
                  samples: int, device: str) -> dict:
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
        keep_work: bool = False, video_name: str = "video", mask_name: str = "mask") -> InpaintResult:
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
    prog.log(f"infusion: {method}{f' ({used_preset})' if used_preset else ''} on {video_name} "
             f"({t} frames, {w}x{h}), mask {mask_name} ({100 * mask.mean():.1f}% of pixels), seed {seed}")
    prog.log(f"settings: {cfg!r}")
    wd = Path(work_dir) if work_dir is not None else None
    if wd is not None:
        prepare_work_dir(wd, job_signature(video, mask, method, cfg, int(seed), samples, dev), resume, restart)
    ctx = RunContext(seed=int(seed), device=dev, samples=samples, progress=prog, work_dir=wd, resume=resume)

    import torch

    torch.manual_seed(int(seed))
    wall0, cpu0 = time.perf_counter(), _rusage_cpu()
    fill = m.load()
    visible = to_float(video)
    if np.shares_memory(visible, video):
        visible = visible.copy()
    visible[mask] = 0.0  # no method ever sees what it is asked to fill
    raw = np.asarray(fill(visible, mask, cfg, ctx), dtype=np.float32)
    del visible
    expected = (1 if not m.stochastic else samples,) + video.shape
    if raw.shape != expected:
        raise RuntimeError(f"method {method} returned shape {raw.shape}, expected {expected}")
    if not np.isfinite(raw).all():
        raise RuntimeError(f"method {method} returned NaN or infinite values")
    out = from_float(raw, video, mask)
    avg = from_float(raw.mean(axis=0), video, mask) if average else None
    stats = {
        "wall_s": round(time.perf_counter() - wall0, 3),
        "cpu_s": round(_rusage_cpu() - cpu0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        **ctx.stats,
    }
    if wd is not None and not keep_work:
        shutil.rmtree(wd, ignore_errors=True)
    return InpaintResult(out, avg, method, used_preset, cfg, int(seed), dev, stats)
