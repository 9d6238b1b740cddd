"""Temporal metrics: motion in the hole and diversity of samples.

Frames are RGB ``(T, H, W, 3)``, ``uint8`` or float in [0, 1]; masks bool
or 0/1 ``(T, H, W)`` (or one ``(H, W)`` for every frame), True = hole.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..masks import dilate_mask
from ..video_io import check_video_array, to_float
from ._inputs import as_frames, as_mask, as_pair, grey, require_hole

BAND = 8  # px: width of the ring around the hole used when there is no ground truth


MOTION_BLOCK = 32  # frames converted to float at a time: memory does not grow with the clip's length


def motion(frames, region) -> float:
    """Mean absolute temporal difference inside ``region``.

    ``mean |frame(t+1) - frame(t)|`` over the RGB channels of the pixels
    that are in the region in both frame t and frame t+1, pooled over all
    frame pairs. Returns NaN when no pixel qualifies (one frame, or a region
    that never stays in place for two frames). Worked ``MOTION_BLOCK``
    frames at a time, so a long clip needs no float copy of itself.
    """
    f = check_video_array(frames, "frames")
    r = as_mask(region, f.shape, "region", "frames")
    both = r[:-1] & r[1:]
    count = int(both.sum())
    if count == 0:
        return float("nan")
    total = 0.0
    for a in range(0, len(f) - 1, MOTION_BLOCK):
        b = min(a + MOTION_BLOCK, len(f) - 1)
        block = to_float(f[a:b + 1])
        diff = np.abs(block[1:] - block[:-1]).mean(axis=-1)  # (b - a, H, W), mean over channels
        total += float(diff[both[a:b]].sum(dtype=np.float64))
    return total / count


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def motion_ratio(result, truth, mask) -> float:
    """Motion inside the hole of ``result`` over the same on ``truth``.

    Both are :func:`motion` over the hole (pixels masked in frames t and
    t+1, RGB mean, pooled over frames; the definition that reproduces the
    Telea rows of ``bench/reference.md`` to 0.001). 1 is right, near 0 a
    frozen fill, far above 1 flicker. NaN when the truth does not move in
    the hole (or the clip has one frame).
    """
    a, b = as_pair(result, truth)
    m = as_mask(mask, a.shape)
    require_hole(m)
    return _ratio(motion(a, m), motion(b, m))


def band(mask, width: int = BAND) -> np.ndarray:
    """Ring of ``width`` px around the hole: the mask dilated by a disk of radius ``width``, minus the mask.

    ``mask``: bool ``(T, H, W)``; returns bool ``(T, H, W)``.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise InputError(f"mask: expected (T, H, W); got shape {m.shape}")
    return dilate_mask(m, width) & ~m


def band_motion_ratio(result, mask, width: int = BAND) -> float:
    """Motion of the fill relative to its surroundings, for clips without ground truth.

    :func:`motion` of ``result`` inside the hole divided by :func:`motion`
    of ``result`` in the :func:`band` around it (``width`` = 8 px). Near 0
    means the fill is frozen while its surroundings move; far above 1 means
    it flickers. NaN when the band does not move.
    """
    f = check_video_array(result, "result")
    m = as_mask(mask, f.shape, video_name="result")
    require_hole(m)
    return _ratio(motion(f, m), motion(f, band(m, width)))


def temporal_std(frames, mask) -> float:
    """How much the content of the hole changes over time (drift and flicker).

    For every pixel masked in at least two frames: the standard deviation
    (population, ddof 0) of its grey level (BT.601 luma, [0, 1]) over the
    frames where it is masked; averaged over those pixels. 0 for content
    that stays put; compare a fill's value with the ground truth's. NaN when
    no pixel is masked twice.

    ``frames``: ``(T, H, W, 3)`` uint8 or float [0, 1]; ``mask``:
    ``(T, H, W)`` or ``(H, W)``, True = hole.
    """
    f = as_frames(frames, "frames")
    m = as_mask(mask, f.shape, video_name="frames")
    return _masked_temporal_std(grey(f).astype(np.float64), m)


def _masked_temporal_std(g: np.ndarray, m: np.ndarray) -> float:
    """Mean over pixels masked at least twice of the std of ``g`` over their masked frames.

    ``g``: float64 ``(T, H, W)``; ``m``: bool ``(T, H, W)``.
    """
    n = m.sum(axis=0)
    s1 = np.where(m, g, 0.0).sum(axis=0)
    s2 = np.where(m, g * g, 0.0).sum(axis=0)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    mean = s1[keep] / n[keep]
    var = np.maximum(s2[keep] / n[keep] - mean * mean, 0.0)
    return float(np.sqrt(var).mean())


DRIFT_WINDOW = 33  # frames: the paper network's temporal reach


def drift(frames, mask, window: int = DRIFT_WINDOW) -> float:
    """Slow change of the hole's content: :func:`temporal_std` of its running mean.

    The grey levels (BT.601 luma, [0, 1]) are averaged over every run of
    ``window`` consecutive frames (a box filter in time, 'valid' part only),
    which removes flicker and live texture faster than the window; a pixel
    counts in a window's mean only when it is masked in all of its frames.
    The result is the mean over pixels of the population std of those
    means: what is left is change slower than the window (33 frames, the
    network's reach by default), the paper's "grass turns to water" drift.
    0 for content that stays put or only flickers (with an even period
    dividing ``window``); for a linear ramp ``a t`` over ``T`` frames it
    is ``|a| sqrt((n^2 - 1) / 12)`` with ``n = T - window + 1``. Compare a
    fill's value with the ground truth's. NaN when no pixel is masked in
    ``window + 1`` consecutive frames.

    ``frames``: ``(T, H, W, 3)`` uint8 or float [0, 1]; ``mask``:
    ``(T, H, W)`` or ``(H, W)``, True = hole; ``window`` >= 1.
    """
    if int(window) < 1:
        raise InputError(f"drift: window must be >= 1, got {window}")
    f = as_frames(frames, "frames")
    m = as_mask(mask, f.shape, video_name="frames")
    if f.shape[0] < window + 1:
        return float("nan")
    g = grey(f).astype(np.float64)
    csum = np.concatenate([np.zeros((1,) + g.shape[1:]), np.cumsum(g, axis=0)])
    means = (csum[window:] - csum[:-window]) / window  # (T - window + 1, H, W)
    ccount = np.concatenate([np.zeros((1,) + m.shape[1:]), np.cumsum(m, axis=0)])
    full = (ccount[window:] - ccount[:-window]) == window  # masked throughout the window
    return _masked_temporal_std(means, full)


def diversity(samples, truth, mask) -> float:
    """Spread of several fills relative to the spread of the true content.

    The per-pixel standard deviation (population, ddof 0) over the samples
    of the grey levels (BT.601 luma), averaged over every hole pixel of
    every frame, divided by the standard deviation of the ground truth's
    grey levels over the same pixels. 0 for identical samples; NaN when the
    truth is uniform in the hole.

    ``samples``: ``(S, T, H, W, 3)`` with S >= 2, uint8 or float [0, 1];
    ``truth``: ``(T, H, W, 3)``; ``mask``: ``(T, H, W)`` or ``(H, W)``.
    """
    s = np.asarray(samples)
    if s.ndim != 5 or s.shape[0] < 2:
        raise InputError(f"samples: expected (S, T, H, W, 3) with S >= 2 samples; got shape {s.shape}")
    gt = as_frames(truth, "truth")
    frames = [as_pair(x, gt, (f"sample {i + 1}", "truth"))[0] for i, x in enumerate(s)]
    m = as_mask(mask, gt.shape, video_name="truth")
    require_hole(m)
    spread = np.stack([grey(f)[m] for f in frames]).astype(np.float64).std(axis=0).mean()
    return _ratio(spread, float(grey(gt)[m].astype(np.float64).std()))
