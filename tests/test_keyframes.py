"""Keyframe-first sampling: occlusion length, levels, passes, and runs through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infusion.config import INFUSION_PRESETS, InfusionConfig
from infusion.diffusion import NoiseSchedule
from infusion.infusion_method import LevelSampler, choose_strides
from infusion.unet3d import size_multiple
from infusion.keyframes import (footage_correlation, keyframe_strides, keyframe_training_mask, longest_occlusion,
                                sampling_passes)
from infusion.pipeline import run
from infusion.roi import sample_clip


def test_longest_occlusion_counts_consecutive_masked_frames():
    mask = np.zeros((10, 3, 3), bool)
    mask[2:5, 0, 0] = True  # 3 frames
    mask[3:9, 1, 1] = True  # 6 frames
    mask[0:10:2, 2, 2] = True  # never more than 1 in a row
    assert longest_occlusion(mask) == 6
    assert longest_occlusion(np.zeros((4, 2, 2), bool)) == 0


@pytest.mark.parametrize("frames, reach, factor, expected", [
    (20, 33, 4, [1]), (48, 33, 4, [4, 1]), (200, 33, 4, [16, 4, 1]), (1000, 33, 8, [64, 8, 1]),
    (200, 33, 8, [8, 1]),
])
def test_levels_until_the_keyframes_fit_the_reach(frames, reach, factor, expected):
    strides = keyframe_strides(frames, reach, factor)
    assert strides == expected
    assert -(-frames // strides[0]) <= reach


def test_passes_cover_every_frame_once_and_know_the_coarser_ones():
    passes = sampling_passes(37, [16, 4, 1])
    assert passes[0].frames.tolist() == [0, 16, 32] and not passes[0].known.any()
    assert passes[1].frames.tolist() == list(range(0, 37, 4))
    assert passes[1].known.tolist() == [f % 16 == 0 for f in range(0, 37, 4)]
    new = np.concatenate([p.frames[~p.known] for p in passes])
    assert sorted(new.tolist()) == list(range(37))


def test_keyframe_training_mask_and_strided_clips():
    rng = np.random.default_rng(0)
    m = np.ones((9, 4, 4), bool)
    out = keyframe_training_mask(m, 4, rng)
    visible = [i for i in range(9) if not out[i].any()]
    assert len(visible) in (2, 3) and all((b - a) == 4 for a, b in zip(visible, visible[1:]))
    assert m.all()  # input untouched
    ts, ys, xs = sample_clip(rng, np.zeros((50, 8, 8), bool), 8, 0, 0.0, stride=4)
    assert ts.step == 4 and len(range(50)[ts]) == 8
    ts, _, _ = sample_clip(rng, np.zeros((10, 8, 8), bool), 8, 0, 0.0, stride=4)
    assert len(range(10)[ts]) == 3  # as many as the clip holds


def test_auto_turns_keyframes_on_only_for_long_occlusions():
    short = np.zeros((60, 8, 8), bool)
    short[10:30, 2:4, 2:4] = True
    long = np.zeros((60, 8, 8), bool)
    long[:, 2:4, 2:4] = True
    auto = InfusionConfig(keyframes="auto")
    assert choose_strides(auto, short) == [1]
    assert choose_strides(auto, long) == [4, 1]
    assert choose_strides(InfusionConfig(keyframes="off"), long) == [1]
    assert choose_strides(InfusionConfig(keyframes="on"), short) == [4, 1]


@pytest.mark.parametrize("name", sorted(INFUSION_PRESETS))
def test_presets_that_tie_keyframe_noise_sample_keyframes(name):
    """keyframe_noise_corr acts on keyframe levels only: a preset setting it must make them."""
    config = INFUSION_PRESETS[name]
    long = np.ones((200, 8, 8), bool)
    if config.keyframe_noise_corr != 0.0:
        assert len(choose_strides(config, long)) > 1


TINY = dict(width=8, levels=2, time_channels=8, num_timesteps=60, num_intervals=2, steps_per_interval=3,
            sample_steps_per_interval=2, clip_frames=4, crop_size=0, lr=1e-3, keyframes="on", keyframe_factor=3)


@pytest.mark.parametrize("samples,redraw_t,stop_after", [(1, -1, 2), (2, -1, 2), (1, 29, 3), (2, 29, 3)])
def test_keyframe_run_is_exact_outside_the_hole_and_resumable(tmp_path, samples, redraw_t, stop_after):
    """With one sample the levels are written into the run's own video (no
    copy of it); a resume rebuilds that video and puts them back, also
    after the finest level has taken the keyframes into its hole
    (keyframe_redraw_t=29: the first step of its least noisy interval)."""
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    mask = np.zeros((40, 16, 16), bool)
    mask[:, 4:10, 5:12] = True
    cfg = InfusionConfig(**TINY, keyframe_redraw_t=redraw_t)  # levels(2) -> reach 17 -> strides [3, 1]
    ref = run(video, mask, method="infusion", config=cfg, seed=1, samples=samples)
    assert ref.stats["sampling_levels"] == 2
    assert all(np.array_equal(s[~mask], video[~mask]) for s in ref.samples)

    count = [0]

    def stop_in_second_level(event):
        if event.get("event") == "progress":
            count[0] += 1
            if count[0] == 6 + 4 + stop_after:  # 6 training steps, the first level's 4 moves, some of the second's
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(video, mask, method="infusion", config=cfg, seed=1, samples=samples, work_dir=tmp_path / "w",
            progress=stop_in_second_level)
    resumed = run(video, mask, method="infusion", config=cfg, seed=1, samples=samples, work_dir=tmp_path / "w",
                  resume=True)
    assert np.array_equal(resumed.samples, ref.samples)


class _Const(torch.nn.Module):
    """A 'network' whose clean estimate is ``value`` everywhere."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, cond, x_t, mask, t):
        return torch.full_like(x_t, self.value)


def test_levels_view_the_canvas_and_the_start_fill_instead_of_copying():
    """With one sample, every level's known pixels and start fill are views
    of the run's video and start fill (no clip-sized copies), and a
    finished level's fill is written into that video, where the next level
    reads it as known; with two samples the canvas is a copy per sample."""
    cfg = InfusionConfig(**TINY)
    frames, h, w = 40, 16, 16
    mask = torch.zeros((1, 1, frames, h, w))
    mask[..., 4:10, 5:12] = 1.0
    video = (torch.rand((1, 3, frames, h, w)) * 2 - 1) * (1.0 - mask)
    init = torch.rand((1, 3, frames, h, w)) * 2 - 1
    passes = sampling_passes(frames, [3, 1])
    sched = NoiseSchedule.linear(cfg.num_timesteps)
    args = (video, mask, passes, cfg, sched)
    kw = dict(seed=0, precision="fp32", multiple=size_multiple(cfg.levels), init=init)
    levels = LevelSampler(*args, samples=1, **kw)
    assert levels.canvas is video
    storage = video.untyped_storage().data_ptr()
    first = levels.enter(0)
    assert first.known.untyped_storage().data_ptr() == storage
    assert first.init.untyped_storage().data_ptr() == init.untyped_storage().data_ptr()
    first.step(_Const(0.5), 50, -1)
    second = levels.enter(1)  # writes the first level's fill into the video
    hole = mask.bool()
    assert (video[:, :, ::3][hole[:, :, ::3].expand(1, 3, -1, -1, -1)] == 0.5).all()
    assert (video[:, :, 1::3][hole[:, :, 1::3].expand(1, 3, -1, -1, -1)] == 0.0).all()
    assert second.known.untyped_storage().data_ptr() == storage
    assert torch.equal(second.mask[:, :, ::3], torch.zeros_like(second.mask[:, :, ::3]))
    two = LevelSampler(*args, samples=2, **kw)
    assert two.canvas.shape[0] == 2 and two.canvas.untyped_storage().data_ptr() != storage


def test_finest_level_redraws_the_keyframes_from_keyframe_redraw_t():
    """keyframe_redraw_t: the finest level keeps the keyframes as known
    pixels in its noisier steps, then takes them into its hole noised to
    the step's timestep (``sqrt(abar) k + sqrt(1 - abar) n``) and draws
    them with the rest; off (-1), they stay the first level's fill. A hold
    reaches the keyframes once they are redrawn."""
    frames, h, w = 40, 16, 16
    mask = torch.zeros((1, 1, frames, h, w), dtype=torch.bool)
    mask[..., 2:14, 2:14] = True
    video = torch.zeros((1, 3, frames, h, w))
    passes = sampling_passes(frames, [3, 1])
    sched = NoiseSchedule.linear(60)
    hole = mask.expand(1, 3, -1, -1, -1)
    keys = torch.zeros_like(hole)
    keys[:, :, ::3] = hole[:, :, ::3]
    for redraw_t, expected in ((-1, 0.5), (20, -0.25)):
        cfg = InfusionConfig(**{**TINY, "num_timesteps": 60}, keyframe_redraw_t=redraw_t)
        levels = LevelSampler(video.clone(), mask, passes, cfg, sched, samples=1, seed=0, precision="fp32",
                              multiple=size_multiple(cfg.levels))
        levels.enter(0).step(_Const(0.5), 50, -1)
        fine = levels.enter(1)
        fine.step(_Const(-0.25), 40, 30)  # above keyframe_redraw_t: the keyframes are known
        assert (fine.x0_hat[keys] == 0.5).all()
        if redraw_t >= 0:
            fine._release(20)
            ab = float(sched.abar(20))
            x = fine.x[keys]
            assert abs(float(x.mean()) - np.sqrt(ab) * 0.5) < 0.03
            assert abs(float(x.std()) - np.sqrt(1.0 - ab)) < 0.03
            assert bool(fine.mask[:, :, ::3][mask[:, :, ::3]].all()) and not fine.known[keys].any()
        fine.step(_Const(-0.25), 20, -1)
        assert (levels.result()[0][keys[0].permute(1, 2, 3, 0)] == (expected + 1) / 2).all()
        assert (levels.result()[0][~hole[0].permute(1, 2, 3, 0)] == 0.5).all()  # known pixels (0 in [-1, 1])

    # a start fill held down to t = 10 over the whole hole: the keyframes are held too once redrawn
    init = torch.full((1, 3, frames, h, w), 0.75)
    cfg = InfusionConfig(**{**TINY, "num_timesteps": 60}, init_fill="patch", init_hold_t=10, keyframe_redraw_t=20)
    levels = LevelSampler(video.clone(), mask, passes, cfg, sched, samples=1, seed=0, precision="fp32",
                          multiple=size_multiple(cfg.levels), init=init, hold=mask)
    levels.enter(0).step(_Const(0.5), 5, -1)  # below the hold: the network's 0.5
    fine = levels.enter(1)
    fine.step(_Const(-0.25), 40, 30)
    assert (fine.x0_hat[keys] == 0.5).all() and (fine.x0_hat[hole & ~keys] == 0.75).all()
    fine._release(20)  # where held, the keyframes start from the held start fill, noised
    ab = float(sched.abar(20))
    assert abs(float(fine.x[keys].mean()) - np.sqrt(ab) * 0.75) < 0.03
    fine.step(_Const(-0.25), 20, 12)  # released and held
    assert fine.hold_covers and (fine.x0_hat[hole] == 0.75).all()
    fine.step(_Const(-0.25), 8, -1)
    assert (fine.x0_hat[hole] == -0.25).all()


def test_footage_correlation_against_closed_forms():
    """``1 - D / (2 S)``: 1 for a still clip, ``r`` for ``sqrt(r) A + sqrt(1 - r) B_t``
    (fixed and fresh images of equal variance), whatever the hidden pixels
    hold; NaN when no pixel is known ``stride`` frames apart."""
    rng = np.random.default_rng(0)
    fixed = rng.normal(0.5, 0.1, (1, 96, 96, 1))
    known = np.ones((40, 96, 96), bool)
    known[:, 30:60, 30:60] = False
    still = np.repeat(np.repeat(fixed, 40, axis=0), 3, axis=-1).astype(np.float32)
    assert footage_correlation(still, known, 16) == 1.0
    for r in (0.2, 0.7):
        fresh = rng.normal(0.0, 0.1, (40, 96, 96, 1))
        clip = np.repeat(0.5 + np.sqrt(r) * (fixed - 0.5) + np.sqrt(1 - r) * fresh, 3, axis=-1).astype(np.float32)
        assert abs(footage_correlation(clip, known, 4) - r) < 0.02
        clip[~known] = rng.uniform(0, 1, (int((~known).sum()), 3))  # hidden pixels are never read
        assert abs(footage_correlation(clip, known, 4) - r) < 0.02
    as_uint8 = (still * 255).round().astype(np.uint8)
    assert footage_correlation(as_uint8, known, 1) == 1.0
    assert np.isnan(footage_correlation(still[:4], known[:4], 4))
