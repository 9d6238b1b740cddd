"""Masks (thresholds, broadcast, dilation, validation) and the pipeline's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import infusion
from infusion.checkpoint import CHECKPOINT_FORMAT
from infusion.config import InfusionConfig
from infusion.errors import InputError, ResumeError
from infusion.masks import check_fillable, dilate_mask, load_mask, match_mask, threshold_mask
from infusion.pipeline import from_float, job_signature, prepare_work_dir, run


def test_threshold_at_half_range_for_antialiased_and_lossy_masks():
    raw = np.array([0, 1, 100, 127, 128, 200, 255], np.uint8).reshape(1, 1, 7, 1)
    assert threshold_mask(raw)[0, 0].tolist() == [False, False, False, False, True, True, True]


def test_zero_one_masks_and_palette_indices():
    assert threshold_mask(np.array([0, 1, 1, 0], np.uint8).reshape(1, 1, 4, 1))[0, 0].tolist() == [0, 1, 1, 0]
    idx = np.array([0, 1, 2, 3], np.uint8).reshape(1, 1, 4, 1)
    assert threshold_mask(idx, indexed=True)[0, 0].tolist() == [0, 1, 1, 1]
    assert threshold_mask(np.array([0.2, 0.5, 0.9]).reshape(1, 1, 3, 1))[0, 0].tolist() == [0, 1, 1]
    red = np.zeros((1, 1, 2, 3), np.uint8)
    red[0, 0, 1, 0] = 255  # any non-black colour marks the region
    assert threshold_mask(red)[0, 0].tolist() == [False, True]


def test_palette_png_mask_uses_indices(tmp_path):
    img = Image.fromarray(np.array([[0, 1], [2, 0]], np.uint8), "P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    img.save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png")[0].tolist() == [[False, True], [True, False]]


def test_single_image_mask_is_broadcast_to_every_frame(tmp_path):
    m = np.zeros((6, 8), np.uint8)
    m[2:4, 3:5] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask.shape == (1, 6, 8)
    full = match_mask(mask, (5, 6, 8, 3))
    assert full.shape == (5, 6, 8) and all(np.array_equal(f, m > 0) for f in full)


def test_dilation_grows_by_a_disk():
    mask = np.zeros((1, 11, 11), bool)
    mask[0, 5, 5] = True
    d = dilate_mask(mask, 2)
    yy, xx = np.mgrid[0:11, 0:11]
    assert np.array_equal(d[0], (yy - 5) ** 2 + (xx - 5) ** 2 <= 4)
    assert dilate_mask(mask, 0) is mask
    with pytest.raises(InputError):
        dilate_mask(mask, -1)


def test_mismatched_sizes_and_frame_counts_name_both_inputs():
    with pytest.raises(InputError, match=r"m.png is 8x6 but v.mp4 is 9x6"):
        match_mask(np.zeros((1, 6, 8), bool), (3, 6, 9, 3), mask_name="m.png", video_name="v.mp4")
    with pytest.raises(InputError, match=r"masks/ has 2 frames but v.mp4 has 3"):
        match_mask(np.zeros((2, 6, 8), bool), (3, 6, 8, 3), mask_name="masks/", video_name="v.mp4")


def test_empty_and_full_masks():
    assert check_fillable(np.zeros((2, 3, 3), bool)) is False
    with pytest.raises(InputError, match="covers every pixel"):
        check_fillable(np.ones((2, 3, 3), bool), mask_name="all.png")


def small_case(t=4, h=24, w=24, seed=0):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    mask = np.zeros((t, h, w), bool)
    mask[:, 8:14, 6:15] = True
    return video, mask


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_known_pixels_are_exactly_the_input(method, dtype):
    video, mask = small_case()
    if dtype == np.float32:
        video = video.astype(np.float32) / 255.0 + np.float32(1e-4)  # not on the 8-bit grid
        video = np.clip(video, 0, 1)
    out = infusion.inpaint(video, mask, method=method)
    assert out.dtype == video.dtype and out.shape == video.shape
    assert np.array_equal(out[~mask], video[~mask])
    assert not np.array_equal(out[mask], video[mask])


def test_empty_mask_returns_the_input_unchanged_and_says_so():
    video, _ = small_case()
    messages = []
    result = run(video, np.zeros(video.shape[:3], bool), method="telea",
                 progress=lambda e: messages.append(e.get("message", "")))
    assert result.nothing_to_do and np.array_equal(result.video, video)
    assert any("nothing to fill" in m for m in messages)


def test_bad_arrays_are_refused_with_clear_errors():
    video, mask = small_case()
    with pytest.raises(InputError, match="expected frames of shape"):
        run(video[..., :2], mask, method="telea")
    with pytest.raises(InputError, match=r"lie in \[0, 1\]"):
        run(video.astype(np.float32), mask, method="telea")
    with pytest.raises(InputError, match="unknown method 'nope'"):
        run(video, mask, method="nope")
    with pytest.raises(InputError, match="no preset 'turbo'"):
        run(video, mask, method="infusion", preset="turbo")
    with pytest.raises(InputError, match="unknown setting 'colour'"):
        run(video, mask, method="telea", overrides={"colour": 1})
    with pytest.raises(InputError, match="expected an integer"):
        run(video, mask, method="telea", overrides={"radius": "wide"})


def test_work_dir_guards_against_losing_or_mixing_runs(tmp_path):
    sig = {"data_sha256": "a", "config": {"x": 1}}
    wd = tmp_path / "w"
    prepare_work_dir(wd, sig, resume=False, restart=False)
    with pytest.raises(ResumeError, match="add --resume"):
        prepare_work_dir(wd, sig, resume=False, restart=False)
    prepare_work_dir(wd, sig, resume=True, restart=False)
    with pytest.raises(ResumeError, match="config.x"):
        prepare_work_dir(wd, {"data_sha256": "a", "config": {"x": 2}}, resume=True, restart=False)
    prepare_work_dir(wd, {"data_sha256": "b", "config": {}}, resume=False, restart=True)


def test_a_work_folder_of_an_older_checkpoint_format_is_not_resumed(tmp_path):
    video, mask = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8), bool)
    sig = job_signature(video, mask, "infusion", InfusionConfig(), 0, 1, "cpu")
    assert sig["checkpoint_format"] == CHECKPOINT_FORMAT
    older = {k: v for k, v in sig.items() if k != "checkpoint_format"}  # as written before the format existed
    prepare_work_dir(tmp_path / "w", older, resume=False, restart=False)
    with pytest.raises(ResumeError, match="checkpoint_format"):
        prepare_work_dir(tmp_path / "w", sig, resume=True, restart=False)


def test_no_method_ever_sees_the_content_it_fills(monkeypatch):
    from infusion import methods

    seen = []

    def spy(video, mask, config, ctx):
        seen.append(video.copy())
        return video[None]

    monkeypatch.setattr(methods.Method, "load", lambda self: spy)
    video, mask = small_case()
    run(video, mask, method="telea")
    assert seen and np.all(seen[0][mask] == 0)
    assert np.array_equal(seen[0][~mask], video[~mask].astype(np.float32) / 255)


def test_from_float_rounds_clips_and_pastes_the_known_pixels():
    rng = np.random.default_rng(0)
    like = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    mask = rng.uniform(size=(3, 4, 5)) < 0.5
    fill = rng.uniform(-0.2, 1.2, (2, 3, 4, 5, 3)).astype(np.float32)  # two samples, out of range on purpose
    out = from_float(fill, like, mask)
    expected = np.rint(np.clip(fill, 0, 1) * 255.0).astype(np.uint8)
    expected[:, ~mask] = like[~mask]
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    floats = like.astype(np.float64) / 255.0
    out = from_float(fill[0], floats, mask)
    assert out.dtype == np.float64 and np.array_equal(out[~mask], floats[~mask])
    assert np.array_equal(out[mask], np.clip(fill[0], 0, 1)[mask].astype(np.float64))
