"""The frame size a method works at, and the resizing to and from it.

The cost of a diffusion fill follows the region around the hole, so large
frames (HD, 4K) are scaled down until that region fits a pixel budget
(:func:`working_size`); the fill is made at that size and enlarged back
(:func:`enlarge_frame`) before the known pixels are pasted over it at full
size. Frames are resized one at a time, so a long clip is never held as
floats at its full size.
"""

from __future__ import annotations

import math

import numpy as np


def working_size(mask: np.ndarray, max_side: int, max_region_pixels: int) -> tuple[int, int]:
    """Frame size ``(h, w)`` a method works at: the clip's own, or smaller.

    ``mask``: bool ``(T, H, W)``. The frames are scaled by the smallest of
    ``max_side / max(H, W)`` (when ``max_side`` > 0 and the frames are
    larger) and ``sqrt(max_region_pixels / area)``, where ``area`` is that
    of the hole's bounding box over the whole clip (when
    ``max_region_pixels`` > 0 and the box is larger): the cost of a run
    follows the region around the hole, not the frame. Never enlarges;
    each side is at least 8 px.
    """
    t, h, w = mask.shape
    scale = 1.0
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
    if max_region_pixels:
        rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
        area = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) if rows.size else 0
        if area > max_region_pixels:
            scale = min(scale, math.sqrt(max_region_pixels / area))
    if scale >= 1.0:
        return h, w
    return max(8, round(h * scale)), max(8, round(w * scale))


def resize_clip(video: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``video`` and ``mask`` at frame size ``size`` = ``(h, w)`` (returned as they are when it is theirs).

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool
    ``(T, H, W)``. Frames use area averaging; the mask is marked wherever a
    downsized pixel touches the hole, so the fill covers the whole hole once
    enlarged back.
    """
    if tuple(size) == video.shape[1:3]:
        return video, mask
    small = np.empty((len(video),) + tuple(size) + (3,), np.float32)
    hole = np.empty((len(video),) + tuple(size), bool)
    for i in range(len(video)):
        small[i], hole[i] = shrink_frame(video[i], mask[i], size)
    return small, hole


def shrink_frame(frame: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One float32 ``(H, W, 3)`` frame and its bool ``(H, W)`` mask at ``size`` = ``(h, w)`` (see :func:`resize_clip`)."""
    import cv2

    h, w = size
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
    return small, hole


def enlarge_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 ``(h, w, 3)`` frame in [0, 1] at ``(height, width)``: bicubic, clipped to [0, 1]."""
    import cv2

    if frame.shape[:2] == (height, width):
        return frame
    out = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0, out=out)
