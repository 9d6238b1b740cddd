"""What ``import infusion`` offers: inpaint arrays, or files to files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from .masks import load_mask, match_mask
from .methods import get_method
from .pipeline import InpaintResult, run
from .progress import as_progress
from .video_io import atomic_path, check_output_path, load_video, save_video


def inpaint(video, mask, *, method: str = "infusion", preset: Optional[str] = None, seed: int = 0,
            device: str = "auto", progress=False, **options) -> np.ndarray:
    """Fill ``video`` where ``mask`` is True and return the result.

    Parameters
    ----------
    video : ndarray
        ``uint8 (T, H, W, 3)`` RGB, or float in [0, 1].
    mask : ndarray
        bool ``(T, H, W)`` (True = fill), or one ``(H, W)`` mask for all frames.
    method : str
        ``"infusion"`` (default) or a baseline (``infusion.available_methods()``).
    preset : str, optional
        Named settings of the method (infusion: "fast", "reference", "paper").
    seed : int
        Same seed, same device, same settings: same output.
    device : "auto", "cpu" or "cuda"
    progress : bool or callable
        True draws progress bars on stderr; a callable receives event dicts.
    **options
        Passed to :func:`infusion.run` (``config``, ``overrides``,
        ``threads``, ``work_dir``, ``resume``...).

    Returns
    -------
    ndarray
        Same shape and dtype as ``video``; pixels outside the mask are
        exactly the input's.
    """
    single = np.asarray(video).ndim == 3
    result = run(video, mask, method=method, preset=preset, seed=seed, device=device,
                 progress=progress, **options)
    return result.video[0] if single else result.video


def sidecar_path(out: Path) -> Path:
    """Where the settings of a result written at ``out`` are saved: ``<out>.json``."""
    return out.with_name(out.name + ".json")


def sample_path(out: Path, label: str) -> Path:
    """Path of an extra output beside ``out``: ``clip.mp4`` -> ``clip_<label>.mp4``."""
    return out.with_name(f"{out.stem}_{label}{out.suffix}") if out.suffix else out.with_name(f"{out.name}_{label}")


def inpaint_file(video_path, mask_path, out_path, *, method: str = "infusion", preset: Optional[str] = None,
                 config=None, overrides: Optional[dict] = None, seed: int = 0, device: str = "auto",
                 threads: Optional[int] = None, samples: int = 1, average: bool = False, dilate: int = 0,
                 work_dir=None, resume: bool = False, restart: bool = False, keep_work: bool = False,
                 crf: int = 12, fps: Optional[float] = None, segment_frames: Optional[int] = None,
                 progress=True) -> dict:
    """Inpaint a video file with a mask file and write the result; return the summary.

    The first sample is written to ``out_path`` (format from its extension,
    see :func:`infusion.save_video`); further samples to ``<stem>_sample2``...,
    the mean to ``<stem>_average`` with ``average``. The settings, seed, cost
    and written paths are saved to ``<out_path>.json`` and returned.

    Methods that train keep checkpoints in ``work_dir`` (default
    ``<out_path>.work``), removed after success unless ``keep_work``;
    ``resume`` continues an interrupted run from there. ``segment_frames``:
    see :func:`infusion.run` (long clips are filled in segments).
    """
    prog = as_progress(progress)
    out = check_output_path(out_path, [video_path, mask_path])
    video, video_fps = load_video(video_path)
    mask = match_mask(load_mask(mask_path, dilate=dilate), video.shape, mask_name=str(mask_path),
                      video_name=str(video_path))
    m = get_method(method)
    if work_dir is None and m.stochastic:
        work_dir = out.with_name(out.name + ".work")
    cfg = m.resolve_config(preset, config, overrides)
    result: InpaintResult = run(
        video, mask, method=method, config=cfg, seed=seed, device=device, threads=threads,
        samples=samples, average=average, progress=prog, work_dir=work_dir, resume=resume,
        restart=restart, keep_work=keep_work, segment_frames=segment_frames,
        video_name=str(video_path), mask_name=str(mask_path))
    result.preset = preset or m.default_preset
    rate = fps or video_fps
    written = {"result": str(save_video(out, result.samples[0], rate, crf=crf, inputs=[video_path, mask_path]))}
    for i in range(1, result.samples.shape[0]):
        p = save_video(sample_path(out, f"sample{i + 1}"), result.samples[i], rate, crf=crf,
                       inputs=[video_path, mask_path])
        written[f"sample{i + 1}"] = str(p)
    if result.average is not None:
        written["average"] = str(save_video(sample_path(out, "average"), result.average, rate, crf=crf,
                                            inputs=[video_path, mask_path]))
    summary = {
        **result.summary(),
        "inputs": {"video": str(video_path), "mask": str(mask_path), "dilate": dilate,
                   "frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                   "fps": rate, "mask_fraction": round(float(mask.mean()), 6)},
        "outputs": written,
    }
    side = sidecar_path(out)
    with atomic_path(side, is_dir=False) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
    prog.log(f"wrote {written['result']} ({result.stats.get('wall_s', 0):.1f} s); settings in {side}")
    return summary


__all__ = ["inpaint", "inpaint_file", "sidecar_path", "sample_path"]
