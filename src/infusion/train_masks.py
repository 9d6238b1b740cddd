"""Random training masks for internal learning: blobs and free-form strokes.

Each training step hides a fresh random region of the clip (on top of the
real hole) and asks the network to restore it. Following the authors'
reference code, shapes are large smooth blobs (closed curves through 6-8
jittered corners, bounding box between half and all of the frame); the
paper's free-form strokes (Kim et al. 2019) are also available. Half of the
masks are static, half move with a slowly varying velocity of about 1-2
pixels per frame. Shapes are drawn once and translated per frame with
OpenCV, so a mask costs well under a millisecond per frame.
"""

from __future__ import annotations

import numpy as np

KINDS = ("blobs", "strokes", "mixed")


def _smooth_closed_curve(points: np.ndarray, samples_per_segment: int = 8) -> np.ndarray:
    """Closed Catmull-Rom spline through ``points`` ``(n, 2)`` -> dense polygon ``(n*k, 2)``."""
    p0, p1 = np.roll(points, 1, axis=0), points
    p2, p3 = np.roll(points, -1, axis=0), np.roll(points, -2, axis=0)
    s = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None, None]
    curve = 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                   + (-p0 + 3 * p1 - 3 * p2 + p3) * s**3)
    return curve.transpose(1, 0, 2).reshape(-1, 2)


def blob_polygon(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random blob, polygon ``(n, 2)`` of (x, y) around the origin.

    6-8 corners at jittered angles with radii scaled by U(0.6, 0.8) of a
    base size chosen so the blob's box spans between half and all of the
    frame.
    """
    corners = int(rng.integers(6, 9))
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * (np.arange(corners) + rng.uniform(-0.3, 0.3, corners)) / corners
    span = rng.uniform(0.5, 1.0, size=2) * np.array([width, height])
    radii = rng.uniform(0.6, 0.8, corners)[:, None] * span[None] / 2 / 0.8
    pts = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii
    return _smooth_closed_curve(pts)


def stroke_polylines(rng: np.random.Generator, height: int, width: int) -> list[tuple[np.ndarray, int]]:
    """1-4 free-form strokes (random walks of 4-10 segments) as ``(points, thickness)`` around the origin."""
    side = min(height, width)
    strokes = []
    for _ in range(int(rng.integers(1, 5))):
        n = int(rng.integers(4, 11))
        angle = rng.uniform(0, 2 * np.pi)
        pts = [np.zeros(2)]
        for _ in range(n):
            angle += rng.uniform(-1.2, 1.2)
            length = rng.uniform(0.1, 0.3) * side
            pts.append(pts[-1] + length * np.array([np.cos(angle), np.sin(angle)]))
        pts = np.array(pts)
        pts -= pts.mean(axis=0) - rng.uniform(-0.25, 0.25, 2) * np.array([width, height])
        thickness = max(2, int(rng.uniform(0.04, 0.12) * side))
        strokes.append((pts, thickness))
    return strokes


def trajectory(rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """Per-frame centre ``(frames, 2)`` (x, y): static or moving at ~1-2 px/frame.

    Half of the draws are static; the others start anywhere in the frame and
    move with a velocity whose direction and speed drift slowly.
    """
    start = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
    if frames == 1 or rng.uniform() < 0.5:
        return np.repeat(start[None], frames, axis=0)
    speed = rng.uniform(1.0, 2.0)
    angle = rng.uniform(0, 2 * np.pi)
    angles = angle + np.cumsum(rng.normal(0, 0.15, frames - 1))
    speeds = np.clip(speed + np.cumsum(rng.normal(0, 0.1, frames - 1)), 0.5, 2.5)
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * speeds[:, None]
    return np.concatenate([start[None], start[None] + np.cumsum(steps, axis=0)], axis=0)


def random_masks(rng: np.random.Generator, frames: int, height: int, width: int, kind: str = "blobs") -> np.ndarray:
    """A random moving or static training mask, bool ``(frames, height, width)``.

    ``kind``: "blobs", "strokes" or "mixed" (either, with equal odds).
    """
    import cv2

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if kind == "mixed":
        kind = "blobs" if rng.uniform() < 0.5 else "strokes"
    shift = 4  # sub-pixel precision of cv2 drawing (coordinates * 16)
    centres = trajectory(rng, frames, height, width)
    out = np.zeros((frames, height, width), np.uint8)
    if kind == "blobs":
        poly = blob_polygon(rng, height, width)
        for i in range(frames):
            pts = np.round((poly + centres[i]) * (1 << shift)).astype(np.int32)
            cv2.fillPoly(out[i], [pts], 1, lineType=cv2.LINE_8, shift=shift)
    else:
        strokes = stroke_polylines(rng, height, width)
        for i in range(frames):
            for pts, thick in strokes:
                p = np.round((pts + centres[i]) * (1 << shift)).astype(np.int32)
                cv2.polylines(out[i], [p], False, 1, thickness=thick, lineType=cv2.LINE_8, shift=shift)
    return out.astype(bool)
