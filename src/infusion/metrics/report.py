"""All the quality metrics of one result at once, from arrays or files, and a text table.

Used by ``infusion eval`` and ``infusion bench``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import InputError
from ..masks import load_mask
from ..video_io import check_video_array, load_video
from ._inputs import as_mask, as_pair
from .image import psnr, psnr_hole, ssim
from .lpips import lpips, lpips_hole
from .video import band_motion_ratio, diversity, drift, motion_ratio, temporal_std

QUALITY_KEYS = ("psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "motion_ratio", "temporal_std",
                "temporal_std_truth", "drift", "drift_truth")
# (label, format, hint) per key, for format_table
_DISPLAY = {
    "psnr": ("PSNR", "{:.2f} dB", "whole frame, higher is better"),
    "ssim": ("SSIM", "{:.4f}", "whole frame, higher is better"),
    "psnr_hole": ("PSNR in hole", "{:.2f} dB", "masked pixels, higher is better"),
    "lpips": ("LPIPS", "{:.4f}", "whole frame, lower is better"),
    "lpips_hole": ("LPIPS around hole", "{:.4f}", "hole box + 8 px, lower is better"),
    "motion_ratio": ("motion ratio", "{:.3f}", "motion in hole / truth's, 1 is right"),
    "temporal_std": ("temporal std in hole", "{:.4f}", "drift/flicker of the fill, compare with truth's"),
    "temporal_std_truth": ("temporal std of truth", "{:.4f}", "the same for the ground truth"),
    "drift": ("drift in hole", "{:.4f}", "std of the 33-frame running mean: slow change only"),
    "drift_truth": ("drift of truth", "{:.4f}", "the same for the ground truth"),
    "diversity": ("diversity", "{:.3f}", "spread of samples / truth's, in hole"),
}


def evaluate_arrays(result, truth, mask, samples=None) -> dict:
    """Score a fill against the ground truth.

    Parameters
    ----------
    result : ndarray ``(T, H, W, 3)``
        The fill, ``uint8`` or float in [0, 1]; frames at least 31x31 (LPIPS).
    truth : ndarray ``(T, H, W, 3)`` or None
        The true content. None (a clip without ground truth, e.g. an object
        removal) scores only ``motion_ratio``, as the motion of the fill
        relative to the 8-px band around it
        (:func:`~infusion.metrics.video.band_motion_ratio`); the other keys
        are None.
    mask : ndarray ``(T, H, W)`` or ``(H, W)``
        bool or 0/1, True = the filled hole; not empty.
    samples : ndarray ``(S, T, H, W, 3)``, optional
        Several fills (S >= 2) of the same job: adds ``diversity``.

    Returns
    -------
    dict
        ``psnr, ssim, psnr_hole, lpips, lpips_hole, motion_ratio,
        temporal_std, temporal_std_truth, drift, drift_truth`` (floats, or
        None without truth; :func:`~infusion.metrics.video.temporal_std` and
        :func:`~infusion.metrics.video.drift` of the fill and of the truth
        in the hole; drift is NaN for clips shorter than 34 frames) and ``diversity`` when ``samples``
        is given.
        See :mod:`infusion.metrics` for the definitions.
    """
    if truth is None:
        r = check_video_array(result, "result")  # scored in blocks of frames: no float copy of a long clip
        scores = dict.fromkeys(QUALITY_KEYS)
        scores["motion_ratio"] = band_motion_ratio(r, as_mask(mask, r.shape, video_name="result"))
        if samples is not None:
            scores["diversity"] = None
        return scores
    r, t = as_pair(result, truth)
    m = as_mask(mask, t.shape, video_name="truth")
    scores = {
        "psnr": psnr(r, t), "ssim": ssim(r, t), "psnr_hole": psnr_hole(r, t, m),
        "lpips": lpips(r, t), "lpips_hole": lpips_hole(r, t, m), "motion_ratio": motion_ratio(r, t, m),
        "temporal_std": temporal_std(r, m), "temporal_std_truth": temporal_std(t, m),
        "drift": drift(r, m), "drift_truth": drift(t, m),
    }
    if samples is not None:
        scores["diversity"] = diversity(samples, t, m)
    return scores


def evaluate_files(result_path, truth_path, mask_path, dilate: int = 0) -> dict:
    """Read a result, its ground truth and the mask (any format infusion reads) and score them.

    ``dilate`` grows the mask by that many pixels first (as ``infusion
    inpaint --dilate`` does). Mismatched sizes or frame counts raise
    :class:`~infusion.errors.InputError` naming the files. Returns the dict of
    :func:`evaluate_arrays`.
    """
    result = load_video(result_path).frames
    truth = load_video(truth_path).frames
    if result.shape != truth.shape:
        raise InputError(f"{result_path} is {_describe(result)} but {truth_path} is {_describe(truth)}: "
                         "a result and its ground truth must have the same frames and size")
    mask = as_mask(load_mask(mask_path, dilate=dilate), truth.shape, str(mask_path), str(truth_path))
    if not mask.any():
        raise InputError(f"{mask_path}: is empty (255 = hole); nothing to score")
    return evaluate_arrays(result, truth, mask)


def _describe(frames: np.ndarray) -> str:
    t, h, w = frames.shape[:3]
    return f"{t} frames of {w}x{h}"


def format_value(key: str, value) -> str:
    """One score as text (``-`` for a missing or NaN value)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    fmt = _DISPLAY.get(key, (key, "{:.4g}", ""))[1]
    return fmt.format(value)


def json_ready(scores: dict) -> dict:
    """``scores`` with undefined values (NaN floats) replaced by None, for strict JSON (``null``)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in scores.items()}


def format_table(scores: dict, title: Optional[str] = None) -> str:
    """Scores as an aligned text table: label, value, what it means."""
    rows = [(_DISPLAY.get(k, (k, "", ""))[0], format_value(k, v), _DISPLAY.get(k, ("", "", ""))[2])
            for k, v in scores.items()]
    wl = max(len(r[0]) for r in rows) if rows else 0
    wv = max(len(r[1]) for r in rows) if rows else 0
    lines = [title] if title else []
    lines += [f"{label:<{wl}}  {value:>{wv}}  {hint}".rstrip() for label, value, hint in rows]
    return "\n".join(lines)
