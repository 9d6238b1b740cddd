"""Masks of the region to fill: reading, thresholding, dilation, validation.

A mask is a ``bool`` array of shape ``(T, H, W)``; ``True`` (stored as 255,
or 1 in 0/1 masks) marks the pixels to fill, ``False`` the known pixels.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .video_io import RawFrames, read_raw


def threshold_mask(raw: np.ndarray, *, indexed: bool = False) -> np.ndarray:
    """Binarise stored mask samples.

    Parameters
    ----------
    raw : ndarray ``(T, H, W, C)``
        Samples as read (uint8, uint16, bool or float in [0, 1]); C in 1..4.
        Colour channels are combined by their maximum, so any non-black
        colour marks the region; an alpha channel is ignored.
    indexed : bool
        Samples are palette indices (e.g. DAVIS annotations): any non-zero
        index is part of the region.

    Returns
    -------
    ndarray bool ``(T, H, W)``
        Masks whose values are only 0 and 1 are read as 0/1 masks;
        otherwise the threshold is half the range (128 for 8 bits, 32768 for
        16 bits, 0.5 for floats), which binarises anti-aliased and lossy
        masks.
    """
    raw = np.asarray(raw)
    if raw.ndim != 4:
        raise ValueError(f"mask samples must be (T, H, W, C); got {raw.shape}")
    colour = raw[..., :3] if raw.shape[-1] >= 3 else raw[..., :1]
    grey = colour.max(axis=-1)
    if indexed or grey.dtype == bool:
        return grey != 0
    if grey.dtype.kind == "f":
        return grey >= 0.5
    if grey.max() <= 1:
        return grey >= 1
    half = 32768 if grey.dtype == np.uint16 else 128
    return grey >= half


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow every frame of a ``bool (T, H, W)`` mask by the disk ``x^2 + y^2 <= pixels^2``."""
    if pixels < 0:
        raise InputError(f"dilation must be >= 0 pixels; got {pixels}")
    if pixels == 0:
        return mask
    import cv2

    yy, xx = np.mgrid[-pixels:pixels + 1, -pixels:pixels + 1]
    k = (yy**2 + xx**2 <= pixels**2).astype(np.uint8)
    out = np.empty_like(mask)
    for i, m in enumerate(mask):
        out[i] = cv2.dilate(m.astype(np.uint8), k) > 0
    return out


def load_mask(path, *, dilate: int = 0) -> np.ndarray:
    """Read a mask from a video, frame folder, ``.npy`` array or single image.

    Returns ``bool (T, H, W)``; a single image gives ``T == 1`` (a static
    mask, broadcast to every frame by :func:`match_mask`). See
    :func:`threshold_mask` for how values are read and :func:`dilate_mask`
    for ``dilate``.
    """
    raw: RawFrames = read_raw(path, for_mask=True)
    return dilate_mask(threshold_mask(raw.frames, indexed=raw.indexed), dilate)


def match_mask(mask: np.ndarray, video_shape: tuple, *, mask_name: str = "mask",
               video_name: str = "video") -> np.ndarray:
    """Check a mask against a video and broadcast a static (1-frame) mask.

    Parameters
    ----------
    mask : ndarray ``(T, H, W)`` or ``(H, W)``, bool or 0/1
    video_shape : tuple
        ``(T, H, W, ...)`` of the video.

    Returns
    -------
    ndarray bool ``(T, H, W)``, contiguous.

    Raises :class:`InputError` naming both inputs when the sizes or frame
    counts differ.
    """
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise InputError(f"{mask_name}: a mask must be (T, H, W) or (H, W); got shape {mask.shape}")
    if mask.dtype != bool:
        if mask.dtype.kind not in "uif" or not np.isin(np.unique(mask), (0, 1)).all():
            raise InputError(f"{mask_name}: an array mask must be bool or hold only 0 and 1")
        mask = mask.astype(bool)
    t, h, w = video_shape[:3]
    if mask.shape[1:] != (h, w):
        raise InputError(
            f"{mask_name} is {mask.shape[2]}x{mask.shape[1]} but {video_name} is {w}x{h}: "
            "mask and video must have the same frame size"
        )
    if mask.shape[0] == 1 and t > 1:
        mask = np.broadcast_to(mask, (t, h, w))
    elif mask.shape[0] != t:
        raise InputError(
            f"{mask_name} has {mask.shape[0]} frames but {video_name} has {t}: give one mask frame "
            "per video frame, or a single image for a static mask"
        )
    return np.ascontiguousarray(mask)


def check_fillable(mask: np.ndarray, *, mask_name: str = "mask") -> bool:
    """Return False for an empty mask (nothing to do); refuse a full one.

    A mask that covers every pixel of every frame leaves nothing to learn
    from, so it raises :class:`InputError`.
    """
    n = int(mask.sum())
    if n == 0:
        return False
    if n == mask.size:
        raise InputError(
            f"{mask_name}: covers every pixel of every frame; nothing is known to fill it from "
            "(255 = region to fill, 0 = keep)"
        )
    return True


def bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Smallest ``(t, y, x)`` slices holding every True of a ``(T, H, W)`` mask, or None."""
    if not mask.any():
        return None
    idx = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        idx.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return tuple(idx)
