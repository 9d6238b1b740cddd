"""Pictures of results: mask overlays and labelled side-by-side videos."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def overlay_mask(frames: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.5) -> np.ndarray:
    """Tint the masked pixels of ``uint8 (T, H, W, 3)`` frames; ``mask`` bool ``(T, H, W)`` or ``(H, W)``.

    A masked pixel becomes ``round((1 - alpha) * pixel + alpha * colour)``;
    the others are unchanged. Worked frame by frame (no float copy of a
    long clip).
    """
    tint = np.asarray(colour, np.float32)
    m = np.broadcast_to(mask, frames.shape[:3])
    out = np.empty(frames.shape, np.uint8)
    for i, frame in enumerate(frames):
        f = frame.astype(np.float32)
        f = np.where(m[i, ..., None], (1 - alpha) * f + alpha * tint, f)
        out[i] = np.clip(np.rint(f), 0, 255)
    return out


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str] = (), gap: int = 4,
                 min_height: int = 128) -> np.ndarray:
    """Place ``uint8 (T, H, W, 3)`` videos side by side with a label strip above each.

    Small videos are enlarged (nearest neighbour, integer factor) to at least
    ``min_height`` rows so that the labels stay readable.
    """
    import cv2

    t, h, w, _ = panels[0].shape
    for p in panels:
        if p.shape != panels[0].shape:
            raise ValueError(f"panels differ in shape: {p.shape} vs {panels[0].shape}")
    k = max(1, -(-min_height // h))
    if k > 1:
        panels = [np.repeat(np.repeat(p, k, axis=1), k, axis=2) for p in panels]
        h, w = h * k, w * k
    strip = 20 if labels else 0
    n = len(panels)
    canvas = np.full((t, h + strip, n * w + (n - 1) * gap, 3), 24, np.uint8)
    for i, p in enumerate(panels):
        x = i * (w + gap)
        canvas[:, strip:, x:x + w] = p
        if labels and i < len(labels):
            label = np.full((strip, w, 3), 24, np.uint8)
            cv2.putText(label, labels[i], (4, strip - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1,
                        cv2.LINE_AA)
            canvas[:, :strip, x:x + w] = label
    # H.264 4:2:0 prefers even sizes
    return canvas[:, : canvas.shape[1] // 2 * 2, : canvas.shape[2] // 2 * 2]
