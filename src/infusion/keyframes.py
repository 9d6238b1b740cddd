"""Keyframe-first sampling for occlusions longer than the network's reach.

The network sees at most ``temporal_reach`` consecutive frames, so a region
hidden for longer is filled by windows that never see each other: the fill
drifts (the paper's named failure). After the hierarchical schemes of
"Semantically Consistent Video Inpainting with Conditional Diffusion
Models" (arXiv 2405.00251), the clip is filled coarse to fine in time:

1. keyframes every ``f**k`` frames, few enough for the network to see all
   of them at once, are sampled first as one strided clip;
2. each next level samples the frames every ``f**(k-1)`` frames with the
   previous levels' frames given as known pixels, down to every frame.

The network is trained for this (see :class:`infusion.training.Trainer`):
on clips taken at every stride used, and with training masks that leave
every ``f``-th frame of the clip visible, as the keyframes are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def longest_occlusion(mask: np.ndarray) -> int:
    """Longest run of consecutive frames during which some pixel stays masked.

    ``mask``: bool ``(T, H, W)``.
    """
    run = np.zeros(mask.shape[1:], np.int32)
    longest = 0
    for frame in mask:
        run = np.where(frame, run + 1, 0)
        longest = max(longest, int(run.max()))
    return longest


def keyframe_strides(frames: int, reach: int, factor: int) -> list[int]:
    """Strides of the sampling levels, coarsest first: ``[f**k, ..., f, 1]``.

    ``k`` is the smallest power such that the keyframes of the top level
    (``ceil(frames / f**k)``) fit in the network's temporal ``reach``;
    ``[1]`` when the whole clip already does.
    """
    if factor < 2:
        raise ValueError("factor must be >= 2")
    k = 0
    while -(-frames // factor**k) > reach:
        k += 1
    return [factor**i for i in range(k, -1, -1)]


@dataclass(frozen=True)
class SamplingPass:
    """One level: the clip's frames every ``stride``-th from 0 are sampled;
    ``known`` (bool, one per such frame) marks those filled by coarser levels."""

    known: np.ndarray
    stride: int = 1

    @property
    def frames(self) -> np.ndarray:
        """Indices of the level's frames in the clip."""
        return np.arange(len(self.known)) * self.stride

    @property
    def index(self) -> slice:
        """``frames`` as a slice of the clip's frames (a view, not a copy)."""
        return slice(None, None, self.stride)


def sampling_passes(frames: int, strides: list[int]) -> list[SamplingPass]:
    """The levels of keyframe-first sampling for a clip of ``frames`` frames."""
    passes, done = [], np.zeros(frames, bool)
    for stride in strides:
        idx = np.arange(0, frames, stride)
        passes.append(SamplingPass(done[idx].copy(), stride))
        done[idx] = True
    return passes


def keyframe_training_mask(mask: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """Leave every ``factor``-th frame (random phase) of a training mask visible.

    ``mask``: bool ``(T, H, W)``; returns a copy. Teaches the network to fill
    the frames between known keyframes.
    """
    out = mask.copy()
    out[int(rng.integers(0, factor))::factor] = False
    return out


def footage_correlation(video: np.ndarray, known: np.ndarray, stride: int, block: int = 32) -> float:
    """How much of the footage's content carries over ``stride`` frames, in [0, 1].

    ``video``: ``(T, h, w, 3)`` float in [0, 1] (or uint8), ``known``: bool
    ``(T, h, w)``, the pixels that may be read. With ``g`` the grey level
    (channel mean), ``D`` the mean of ``(g[t] - g[t + stride])**2`` over
    pixels known in both frames and ``S`` the mean over frames of the
    spatial variance of the known pixels: ``1 - D / (2 S)``, clipped to
    [0, 1]. For content ``sqrt(r) A + sqrt(1 - r) B_t`` (a fixed image and
    one drawn afresh every frame, both of variance ``S``) it is ``r``:
    1 for a still scene, 0 for one whose content is new every ``stride``
    frames. NaN when no pixel is known in two frames ``stride`` apart or
    the known pixels are flat. Worked ``block`` frames at a time.
    """
    frames = len(video)
    d_sum = d_n = s_sum = s_n = 0.0
    for a in range(0, frames, block):
        b = min(frames, a + block + stride)
        g = np.asarray(video[a:b], np.float32).mean(axis=-1)
        if video.dtype == np.uint8:
            g /= 255.0
        k = known[a:b]
        for f in range(min(block, frames - a)):
            if k[f].sum() >= 2:
                s_sum += float(g[f][k[f]].var())
                s_n += 1
            if f + stride < len(g):
                both = k[f] & k[f + stride]
                d_sum += float(((g[f] - g[f + stride])[both] ** 2).sum(dtype=np.float64))
                d_n += int(both.sum())
    if d_n == 0 or s_n == 0 or s_sum <= 0.0:
        return float("nan")
    return float(np.clip(1.0 - (d_sum / d_n) / (2.0 * s_sum / s_n), 0.0, 1.0))
