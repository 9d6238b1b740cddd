"""Validation and conversion of the arrays every metric takes.

Frames: ``(T, H, W, 3)`` (or one ``(H, W, 3)`` frame), ``uint8`` or float
in [0, 1]; returned as float32 in [0, 1]. Masks: bool or 0/1 ``(T, H, W)``
(or one ``(H, W)`` mask for every frame); returned as contiguous bool
``(T, H, W)``. Every problem raises :class:`~infusion.errors.InputError`
naming the argument.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..masks import match_mask
from ..video_io import check_video_array, to_float


def as_frames(frames, name: str) -> np.ndarray:
    """``uint8`` or float [0, 1] frames -> float32 ``(T, H, W, 3)`` in [0, 1]."""
    return to_float(check_video_array(frames, name))


def as_pair(a, b, names: tuple[str, str] = ("result", "truth")) -> tuple[np.ndarray, np.ndarray]:
    """Two videos of the same shape, as float32 ``(T, H, W, 3)``."""
    a, b = as_frames(a, names[0]), as_frames(b, names[1])
    if a.shape != b.shape:
        raise InputError(f"{names[0]} has shape {a.shape} but {names[1]} has {b.shape}: "
                         "they must have the same frames and size")
    return a, b


def as_mask(mask, video_shape: tuple, name: str = "mask", video_name: str = "video") -> np.ndarray:
    """Check a mask against ``video_shape`` and broadcast a static one: bool ``(T, H, W)``."""
    return match_mask(mask, video_shape, mask_name=name, video_name=video_name)


def grey(frames: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of float ``(..., 3)`` RGB frames: ``0.299 R + 0.587 G + 0.114 B``."""
    return frames @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def require_hole(mask: np.ndarray, name: str = "mask") -> None:
    """Refuse an empty mask for metrics that only look inside the hole."""
    if not mask.any():
        raise InputError(f"{name}: is empty; hole metrics need at least one masked pixel")
