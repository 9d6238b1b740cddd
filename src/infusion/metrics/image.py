"""Pixel metrics: PSNR, SSIM and PSNR inside the hole.

Inputs are RGB frames ``(T, H, W, 3)`` (or one ``(H, W, 3)`` frame),
``uint8`` (read as ``v / 255``) or float in [0, 1]; the peak value is 1.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._inputs import as_mask, as_pair, require_hole

PSNR_CAP = 100.0  # dB, the PSNR of frames that are identical (MSE 0)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr_from_mse(mse) -> np.ndarray:
    """``10 log10(1 / mse)`` for peak 1, capped at :data:`PSNR_CAP` (so MSE 0 gives 100 dB, not inf)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(1.0 / mse), PSNR_CAP)


def psnr_frames(result, truth) -> np.ndarray:
    """PSNR (dB) of each frame over all its pixels and channels: float64 ``(T,)``, at most 100."""
    a, b = as_pair(result, truth)
    mse = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2, 3))
    return psnr_from_mse(mse)


def psnr(result, truth) -> float:
    """Whole-frame PSNR in dB, computed per frame then averaged over frames.

    Identical frames score :data:`PSNR_CAP` (100 dB) rather than infinity,
    so that averages, CSV and JSON stay finite.
    """
    return float(psnr_frames(result, truth).mean())


def psnr_hole(result, truth, mask) -> float:
    """PSNR (dB) over the masked pixels only.

    The mean squared error is pooled over every masked pixel (and channel)
    of every frame, then turned into a PSNR (capped at 100 dB). Pooling
    rather than averaging per-frame PSNRs is what the independent scorer of
    ``bench/reference.md`` does (it matches its Telea rows to 0.01 dB).

    ``mask``: bool or 0/1 ``(T, H, W)`` or one ``(H, W)``, True = hole, not empty.
    """
    a, b = as_pair(result, truth)
    m = as_mask(mask, a.shape)
    require_hole(m)
    diff = a[m].astype(np.float64) - b[m]
    return float(psnr_from_mse((diff ** 2).mean()))


def _gaussian_window() -> np.ndarray:
    x = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    g = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


def _local_mean(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean over 11x11 windows of ``(N, H, W)``, 'valid' region only."""
    from scipy.ndimage import correlate1d

    r = SSIM_WINDOW // 2
    x = correlate1d(x, g, axis=1, mode="constant")
    x = correlate1d(x, g, axis=2, mode="constant")
    return x[:, r:-r, r:-r]


def ssim_frames(result, truth) -> np.ndarray:
    """SSIM (Wang et al. 2004) of each frame: float64 ``(T,)`` in [-1, 1].

    Standard settings: Gaussian window 11x11 with sigma 1.5, K1 = 0.01,
    K2 = 0.03, data range 1, population (co)variances; the SSIM map is
    averaged over the 'valid' window positions (no padding, as in Wang's
    ``ssim.m`` and scikit-image with ``gaussian_weights=True``), then over
    the three RGB channels. Frames must be at least 11x11.
    """
    a, b = as_pair(result, truth)
    t, h, w, c = a.shape
    if min(h, w) < SSIM_WINDOW:
        raise InputError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels; got {w}x{h}")
    # channels become separate images: (T*3, H, W)
    x = a.astype(np.float64).transpose(0, 3, 1, 2).reshape(t * c, h, w)
    y = b.astype(np.float64).transpose(0, 3, 1, 2).reshape(t * c, h, w)
    g = _gaussian_window()
    mx, my = _local_mean(x, g), _local_mean(y, g)
    vx = _local_mean(x * x, g) - mx * mx
    vy = _local_mean(y * y, g) - my * my
    cxy = _local_mean(x * y, g) - mx * my
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return smap.mean(axis=(1, 2)).reshape(t, c).mean(axis=1)


def ssim(result, truth) -> float:
    """Whole-frame SSIM, per frame (mean over RGB channels) then averaged over frames; see :func:`ssim_frames`."""
    return float(ssim_frames(result, truth).mean())
