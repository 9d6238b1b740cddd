"""Where the diffusion method computes: regions of interest, windows and crops.

The network's output only matters inside the hole, and it only looks a few
dozen pixels around it, so sampling runs on the hole's bounding box grown
by a margin (a "region of interest"), over temporal windows when the clip
is too long to process at once. Training draws clips and crops of the
video, preferably around the hole.

Boxes are ``(y0, y1, x0, x1)`` half-open pixel ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of the True pixels of a ``(T, H, W)`` or ``(H, W)`` mask, or None."""
    m = mask.any(axis=0) if mask.ndim == 3 else mask
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def grow_box(box: Box, margin: int, height: int, width: int, multiple: int = 1) -> Box:
    """Grow ``box`` by ``margin`` on every side, clip to the frame, and enlarge
    it (still inside the frame when possible) so that each side is a
    multiple of ``multiple``."""
    y0, y1, x0, x1 = box
    y0, y1 = max(0, y0 - margin), min(height, y1 + margin)
    x0, x1 = max(0, x0 - margin), min(width, x1 + margin)

    def fit(a: int, b: int, size: int) -> tuple[int, int]:
        want = min(size, -(-(b - a) // multiple) * multiple)
        extra = want - (b - a)
        a = max(0, a - extra // 2)
        b = a + want
        if b > size:
            a, b = size - want, size
        return a, b

    y0, y1 = fit(y0, y1, height)
    x0, x1 = fit(x0, x1, width)
    return y0, y1, x0, x1


def temporal_windows(frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Cover ``0 .. frames-1`` with windows of ``window`` frames overlapping by ``overlap``.

    Windows are spread evenly, so the overlaps are at least ``overlap``
    frames; one window when ``window >= frames``.
    """
    if window >= frames:
        return [(0, frames)]
    if overlap >= window:
        raise ValueError("overlap must be smaller than the window")
    count = -(-(frames - overlap) // (window - overlap))
    starts = np.round(np.linspace(0, frames - window, count)).astype(int)
    return [(int(s), int(s) + window) for s in starts]


def window_weights(windows: list[tuple[int, int]], frames: int) -> list[np.ndarray]:
    """Blending weights per window, ``(stop - start,)`` each, summing to 1 at every frame.

    Each window's weight ramps linearly up over its overlap with the
    previous window and down over its overlap with the next one.
    """
    raw = []
    for k, (a, b) in enumerate(windows):
        w = np.ones(b - a)
        if k > 0:
            prev_end = windows[k - 1][1]
            n = max(0, prev_end - a)
            if n:
                w[:n] = np.minimum(w[:n], (np.arange(n) + 1) / (n + 1))
        if k + 1 < len(windows):
            nxt = windows[k + 1][0]
            n = max(0, b - nxt)
            if n:
                w[b - a - n:] = np.minimum(w[b - a - n:], (n - np.arange(n)) / (n + 1))
        raw.append(w)
    total = np.zeros(frames)
    for (a, b), w in zip(windows, raw):
        total[a:b] += w
    return [w / total[a:b] for (a, b), w in zip(windows, raw)]


@dataclass(frozen=True)
class Window:
    """One piece of the sampling domain: frames ``[t0, t1)`` and a box, both
    relative to the region of interest, with per-frame blending weights."""

    t0: int
    t1: int
    box: Box
    weights: np.ndarray


def plan_windows(mask: np.ndarray, window_frames: int, overlap: int, max_voxels: int, margin: int,
                 multiple: int, use_roi: bool) -> tuple[Box, list[Window]]:
    """Plan sampling over a ``(T, H, W)`` mask.

    Returns the region of interest (the hole's bounding box over all frames
    grown by ``margin`` when ``use_roi``, else the whole frame) and the
    windows covering it. Each window covers ``window_frames`` frames (0: as
    many as fit in ``max_voxels`` with the ROI's area) and, with ``use_roi``,
    only the box around the hole in its own frames.
    """
    t, h, w = mask.shape
    full = (0, h, 0, w)
    box = mask_box(mask)
    roi = grow_box(box, margin, h, w, multiple) if (use_roi and box) else full
    ry0, ry1, rx0, rx1 = roi
    area = (ry1 - ry0) * (rx1 - rx0)
    if window_frames:
        span = window_frames
    else:
        span = max(2, max_voxels // max(area, 1))
    span = min(span, t)
    ov = min(overlap, span - 1) if span < t else 0
    wins = temporal_windows(t, span, ov)
    weights = window_weights(wins, t)
    out = []
    for (a, b), wt in zip(wins, weights):
        sub = mask[a:b, ry0:ry1, rx0:rx1]
        sbox = mask_box(sub) if use_roi else None
        wbox = grow_box(sbox, margin, ry1 - ry0, rx1 - rx0, multiple) if sbox else (0, ry1 - ry0, 0, rx1 - rx0)
        out.append(Window(a, b, wbox, wt))
    return roi, out


def hole_extent(mask: np.ndarray) -> int:
    """Largest side of the hole's bounding box in any one frame (pixels; 0 for an empty mask).

    ``mask``: bool ``(T, H, W)``. A moving hole counts frame by frame, not by
    the union of its positions.
    """
    rows, cols = mask.any(axis=2), mask.any(axis=1)  # (T, H), (T, W)

    def span(a: np.ndarray) -> np.ndarray:
        idx = np.arange(a.shape[1])
        first = np.where(a, idx, a.shape[1]).min(axis=1)
        last = np.where(a, idx, -1).max(axis=1)
        return np.maximum(last - first + 1, 0)

    return int(max(span(rows).max(initial=0), span(cols).max(initial=0)))


def training_crop_side(hole: int, crop_size: int, hole_ratio: float, crop_max: int, multiple: int = 8) -> int:
    """Side of the square training crops for a hole ``hole`` pixels across (see :func:`hole_extent`).

    ``crop_size`` 0 means whole frames (returned unchanged), as does
    ``hole_ratio`` 0. Otherwise the crop grows to ``hole_ratio * hole``,
    rounded up to ``multiple``, at most ``crop_max`` (0: no bound) and never
    below ``crop_size``. The training masks span half to all of a crop, so
    a crop about 1.2 times the hole gives training masks as large as the
    hole (whether that pays depends on the training budget: see the
    ``fast`` preset).
    """
    if crop_size <= 0 or hole_ratio <= 0:
        return crop_size
    side = int(np.ceil(hole_ratio * hole / multiple)) * multiple
    if crop_max > 0:
        side = min(side, crop_max)
    return max(crop_size, side)


def coarse_side(frame_side: int, hole: int, crop: int, scale: float, min_side: int = 16) -> int:
    """Longer side of the frames of a coarse fill, or 0 when it would not help.

    ``frame_side``: the frames' longer side; ``hole``: the hole's extent
    (:func:`hole_extent`); ``crop``: the training crops' side (0: whole
    frames). The training masks are never larger than a crop, so a hole
    wider than the crops is beyond what the network learnt; at ``scale``
    times the size it is within it if ``hole * scale <= crop``. A coarse
    fill is made exactly then, with frames of at least ``min_side`` pixels
    (else 0). A hole wider still gains nothing from it (measured: the
    coarse fill is as blind as the full-size one).
    """
    if crop <= 0 or not crop < hole <= crop / scale:
        return 0
    side = int(round(frame_side * scale))
    return side if min_side <= side < frame_side else 0


def sample_clip(rng: np.random.Generator, mask: np.ndarray, clip_frames: int, crop: int,
                near_hole: float, stride: int = 1) -> tuple[slice, slice, slice]:
    """Pick a training clip: ``(frames, rows, cols)`` slices of a ``(T, H, W)`` video.

    ``clip_frames`` frames ``stride`` apart (as many as the video holds);
    ``crop`` > 0 takes a square crop of that side (clipped to the frame),
    centred with probability ``near_hole`` on a random hole pixel of the
    clip (so that the context of the hole is learnt first), else uniform.
    """
    t, h, w = mask.shape
    n = min(clip_frames, (t - 1) // stride + 1)
    span = (n - 1) * stride + 1
    t0 = int(rng.integers(0, t - span + 1))
    frames = slice(t0, t0 + span, stride)
    if crop <= 0:
        return frames, slice(0, h), slice(0, w)
    ch, cw = min(crop, h), min(crop, w)
    sub = mask[frames]
    if rng.uniform() < near_hole and sub.any():
        ys, xs = np.nonzero(sub.any(axis=0))
        i = int(rng.integers(0, len(ys)))
        cy = ys[i] + int(rng.integers(-ch // 4, ch // 4 + 1))
        cx = xs[i] + int(rng.integers(-cw // 4, cw // 4 + 1))
        y0 = int(np.clip(cy - ch // 2, 0, h - ch))
        x0 = int(np.clip(cx - cw // 2, 0, w - cw))
    else:
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
    return frames, slice(y0, y0 + ch), slice(x0, x0 + cw)
