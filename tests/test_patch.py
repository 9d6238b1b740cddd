"""Tests of the patch-based method (``--method patch``, Newson et al. 2014).

Synthetic videos whose hidden content can be found elsewhere in the video
must be recovered almost exactly; the first call compiles the Numba kernels
(cached on disk afterwards).
"""

from __future__ import annotations

import numpy as np
import pytest

from infusion import pipeline
from infusion.config import PatchConfig, apply_overrides
from infusion.errors import InputError
from infusion.methods import RunContext, get_method


def _texture(shape, seed=0, blur=0.8):
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.random(shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), blur), 0, 1)


def _translation(t=12, h=32, w=32, seed=0):
    """A textured image shifted by one pixel per frame."""
    base = _texture((h, w + t, 3), seed)
    return np.stack([base[:, i:i + w] for i in range(t)])


def _periodic(t=1, h=36, w=36, period=(6, 7), seed=1):
    """A random tile repeated in space, the same in every frame."""
    tile = np.random.default_rng(seed).random(period + (3,)).astype(np.float32)
    reps = (h // period[0] + 1, w // period[1] + 1, 1)
    frame = np.tile(tile, reps)[:h, :w]
    return np.repeat(frame[None], t, axis=0)


def _psnr_hole(result, truth, mask):
    mse = float(((result.astype(np.float64) - truth) ** 2)[mask].mean())
    return 100.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def _fill(video, mask, seed=0, **overrides):
    from infusion.baselines.patch import fill_patch

    cfg = apply_overrides(PatchConfig(), overrides)
    ctx = RunContext(seed=seed)
    out = fill_patch(video, mask, cfg, ctx)
    assert out.shape == (1,) + video.shape and out.dtype == np.float32
    return out[0], ctx


def test_translation_recovered():
    video = _translation()
    mask = np.zeros(video.shape[:3], bool)
    mask[:, 12:20, 12:20] = True
    out, ctx = _fill(video, mask)
    assert _psnr_hole(out, video, mask) > 35
    assert ctx.stats["patch_levels"] >= 1 and ctx.stats["patch_history"]
    assert np.array_equal(ctx.observed, mask)  # every hole pixel rebuilt from known patches


def test_periodic_texture_recovered():
    video = _periodic(t=3)
    mask = np.zeros(video.shape[:3], bool)
    mask[:, 12:23, 13:24] = True
    out, _ = _fill(video, mask)
    assert _psnr_hole(out, video, mask) > 35


def test_single_frame():
    video = _periodic(t=1)
    mask = np.zeros(video.shape[:3], bool)
    mask[0, 10:20, 14:22] = True
    out, _ = _fill(video, mask)
    assert _psnr_hole(out, video, mask) > 35


def test_mask_touching_border():
    video = _translation(t=10)
    mask = np.zeros(video.shape[:3], bool)
    # the content moves left: what is hidden is visible a few frames away
    mask[:, :6, 14:18] = True  # on the top edge, in every frame
    mask[:4, 26:, 27:] = True  # bottom-right corner, first frames only
    out, _ = _fill(video, mask)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert _psnr_hole(out, video, mask) > 25


def test_pipeline_keeps_known_pixels_and_is_deterministic():
    video = np.rint(_translation(t=8, h=24, w=28, seed=3) * 255).astype(np.uint8)
    mask = np.zeros(video.shape[:3], bool)
    mask[2:7, 8:15, 10:18] = True  # a hole in some frames only
    a = pipeline.run(video, mask, method="patch", seed=5)
    b = pipeline.run(video, mask, method="patch", seed=5)
    assert a.samples.shape == (1,) + video.shape and a.samples.dtype == np.uint8
    assert np.array_equal(a.video[~mask], video[~mask])
    assert np.array_equal(a.samples, b.samples)
    assert "patch_levels" in a.stats
    err = np.abs(a.video.astype(int) - video.astype(int))[mask].mean()
    assert err < 8  # grey levels


def test_without_texture_features_and_best_patch_vote():
    video = _translation(t=10)
    mask = np.zeros(video.shape[:3], bool)
    mask[:, 10:18, 14:18] = True
    out, _ = _fill(video, mask, texture_weight=0, final_vote="best", levels=1, iterations=5)
    assert _psnr_hole(out, video, mask) > 30


def test_nothing_to_copy_from_is_refused():
    video = _translation(t=4, h=16, w=16)
    mask = np.ones(video.shape[:3], bool)
    mask[:, :2, :] = False  # a 2-pixel strip: no 5x5 patch fits in it
    with pytest.raises(InputError):
        _fill(video, mask)


def test_config_validation_and_registry():
    with pytest.raises(InputError):
        PatchConfig(patch_size=4)
    with pytest.raises(InputError):
        PatchConfig(final_vote="median")
    with pytest.raises(InputError):
        PatchConfig(patch_frames=0)
    m = get_method("patch")
    assert isinstance(m.resolve_config(overrides={"texture_weight": "0"}), PatchConfig)
