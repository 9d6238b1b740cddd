"""OpenCV's image inpainting applied frame by frame (``telea`` and ``ns``)."""

from __future__ import annotations

import numpy as np

from ..config import OpenCVConfig
from ..methods import RunContext


def _per_frame(video: np.ndarray, mask: np.ndarray, radius: int, flag: int, ctx: RunContext,
               name: str) -> np.ndarray:
    import cv2

    frames = np.clip(np.rint(video * 255.0), 0, 255).astype(np.uint8)
    out = np.empty_like(video)
    with ctx.progress.bar(name, total=len(frames), unit="frame") as bar:
        for i, (f, m) in enumerate(zip(frames, mask)):
            if m.any():
                filled = cv2.inpaint(np.ascontiguousarray(f[..., ::-1]), m.astype(np.uint8), radius, flag)
                out[i] = filled[..., ::-1].astype(np.float32) / 255.0
            else:
                out[i] = video[i]
            bar.update()
    return out[None]


def fill_telea(video: np.ndarray, mask: np.ndarray, config: OpenCVConfig, ctx: RunContext) -> np.ndarray:
    """Fast-marching inpainting (Telea 2004) of each frame; returns ``(1, T, H, W, 3)``."""
    import cv2

    return _per_frame(video, mask, config.radius, cv2.INPAINT_TELEA, ctx, "telea")


def fill_ns(video: np.ndarray, mask: np.ndarray, config: OpenCVConfig, ctx: RunContext) -> np.ndarray:
    """Navier-Stokes inpainting (Bertalmio et al. 2001) of each frame; returns ``(1, T, H, W, 3)``."""
    import cv2

    return _per_frame(video, mask, config.radius, cv2.INPAINT_NS, ctx, "ns")
