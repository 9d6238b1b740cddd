"""Quality metrics of inpainted videos, offline, in numpy and torch.

All take RGB frames ``(T, H, W, 3)`` as ``uint8`` or float in [0, 1] and
masks ``(T, H, W)`` (True = hole); values are computed in [0, 1] RGB.

Definitions (``shared/bench/README.md``; where it leaves a detail open, the
choice reproduces the independent scorer of ``bench/reference.md``):

- ``psnr``, ``ssim``: whole frame, per frame then averaged over frames.
  PSNR of identical frames is capped at 100 dB. SSIM: Wang et al., Gaussian
  11x11, sigma 1.5, K1 0.01, K2 0.03, 'valid' windows, mean over channels.
- ``psnr_hole``: one PSNR of the squared error pooled over all masked
  pixels of all frames.
- ``lpips``: LPIPS v0.1 AlexNet, whole frame, per frame then averaged.
- ``lpips_hole``: LPIPS on one box for the clip: the bounding box of the
  mask's union over frames, grown by 8 px (at least 32x32, clipped to the
  frame).
- ``motion_ratio``: mean |frame(t+1) - frame(t)| (RGB) over pixels in the
  hole at t and t+1, pooled over frames, result over truth. Without ground
  truth: the fill's motion over the motion in the 8-px band around the hole.
- ``temporal_std``: per-pixel std over time of grey levels in the hole,
  averaged over the hole (drift and flicker: compare a fill's with the
  truth's).
- ``drift``: the same on the 33-frame running mean of the grey levels
  (pixels masked throughout the window): only change slower than the
  network's reach is left (compare with the truth's).
- ``diversity``: per-pixel std over samples of grey levels, averaged over
  the hole, over the std of the truth's grey levels in the hole.
"""

from .image import psnr, psnr_hole, ssim
from .lpips import lpips, lpips_hole
from .report import evaluate_arrays, evaluate_files, format_table
from .video import band_motion_ratio, diversity, drift, motion, motion_ratio, temporal_std

__all__ = [
    "psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "motion", "motion_ratio",
    "band_motion_ratio", "temporal_std", "drift", "diversity", "evaluate_arrays", "evaluate_files", "format_table",
]
