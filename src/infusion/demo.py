"""``infusion demo``: a generated dynamic texture, a hole, a fill, a comparison.

Nothing is downloaded: the clip is a procedural "water" texture (travelling
waves with a drifting caustic pattern), the mask a disk that moves across it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from . import metrics
from .api import sidecar_path
from .pipeline import run
from .progress import Progress
from .video_io import save_video
from .visualize import overlay_mask, side_by_side


def make_texture(frames: int = 24, size: int = 64, seed: int = 0) -> np.ndarray:
    """A water-like dynamic texture, ``uint8 (frames, size, size, 3)``.

    Sum of travelling plane waves with random directions, wavelengths and
    speeds; the result is different in every frame and statistically the
    same everywhere, as dynamic textures are.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((frames, size, size), np.float32)
    for _ in range(7):
        ang = rng.uniform(0, 2 * np.pi)
        wavelength = rng.uniform(6, 18)
        speed = rng.uniform(0.4, 1.2)
        phase = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / wavelength
        field += np.sin(k * (np.cos(ang) * x + np.sin(ang) * y) - speed * k * t * 2.0 + phase)
    field /= np.abs(field).max()
    caustic = np.clip(1.0 - np.abs(field) * 3.0, 0, 1) ** 2
    base = np.array([20, 90, 140], np.float32)
    light = np.array([120, 200, 230], np.float32)
    img = base + (light - base) * (0.5 + 0.35 * field[..., None]) + 60 * caustic[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_mask(frames: int = 24, size: int = 64, radius: Optional[float] = None) -> np.ndarray:
    """A disk moving left to right across the frame, bool ``(frames, size, size)``."""
    radius = radius or size * 0.18
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = np.linspace(size * 0.3, size * 0.7, frames)
    cy = size * 0.5 + size * 0.08 * np.sin(np.linspace(0, np.pi, frames))
    return (x[None] - cx[:, None, None]) ** 2 + (y[None] - cy[:, None, None]) ** 2 <= radius**2


def run_demo(folder: Path, *, method: Optional[str] = None, size: int = 64, frames: int = 24, seed: int = 0,
             overrides: Optional[dict] = None, progress: Progress = Progress()) -> dict:
    """Generate the demo clip, inpaint it and write everything into ``folder``.

    Writes ``input.mp4`` (mask tinted red), ``mask.png`` frames folder,
    ``result.mp4``, ``ground_truth.mp4`` and ``comparison.mp4`` (input |
    result | ground truth), plus ``result.mp4.json`` with settings and
    scores. Returns that summary.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fps = 12.0
    truth = make_texture(frames, size, seed)
    mask = make_mask(frames, size)
    method = method or "infusion"
    progress.log(f"demo: {frames} frames of {size}x{size}, method {method}, writing to {folder}/")
    result = run(truth, mask, method=method, seed=seed, overrides=overrides, progress=progress)
    filled = result.video
    psnr_hole = metrics.psnr_hole(filled, truth, mask)
    save_video(folder / "input.mp4", overlay_mask(truth, mask), fps)
    save_video(folder / "mask", (mask[..., None].repeat(3, -1) * 255).astype(np.uint8), fps)
    save_video(folder / "result.mp4", filled, fps)
    save_video(folder / "ground_truth.mp4", truth, fps)
    comparison = side_by_side([overlay_mask(truth, mask), filled, truth], ["input + mask", method, "truth"])
    save_video(folder / "comparison.mp4", comparison, fps)
    summary = {**result.summary(), "psnr_hole": round(psnr_hole, 2), "folder": str(folder)}
    sidecar_path(folder / "result.mp4").write_text(json.dumps(summary, indent=2, default=str))
    progress.log(f"demo: done in {result.stats['wall_s']:.1f} s, PSNR in the hole {psnr_hole:.2f} dB; "
                 f"open {folder / 'comparison.mp4'}")
    return summary
