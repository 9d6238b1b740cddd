"""Schedule and step maths against closed forms; the network's shape; masks and windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infusion.config import InfusionConfig
from infusion.errors import InputError
from infusion.diffusion import (NoiseSchedule, ddim_step, ddpm_step, edm_coefficients, interval_bounds,
                                interval_timesteps, resample_moves,
                                posterior_coefficients, q_sample, renoise, sampling_plan, time_correlated_noise)
from infusion.roi import (Window, coarse_side, grow_box, hole_extent, plan_windows, temporal_windows,
                          training_crop_side, window_weights)
from infusion import sampling
from infusion.sampling import NoiseStream, Sampler, by_channel_frames, by_frames, erased, to_unit_frames
from infusion.train_masks import random_masks, trajectory
from infusion.infusion_method import plan_stages
from infusion.unet3d import Conv3x3x3, UNet3D, autocast, count_parameters, forward_flops, timestep_embedding

S = NoiseSchedule.linear(1000, 1e-4, 0.02)


def test_linear_schedule_closed_form():
    assert S.betas[0] == pytest.approx(1e-4) and S.betas[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(S.betas), (0.02 - 1e-4) / 999)
    t = 123
    assert S.alphas_cumprod[t] == pytest.approx(np.prod(1 - S.betas[: t + 1]), rel=1e-12)
    assert S.abar(-1) == 1.0
    # known value of the standard DDPM schedule: abar_999 ~ 4.04e-5
    assert S.alphas_cumprod[-1] == pytest.approx(4.0358e-5, rel=1e-3)


def test_q_sample_is_the_closed_form():
    x0 = torch.randn(2, 3, 4, 5, 5, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = np.array([0, 700])
    out = q_sample(S, x0, t, eps)
    for i, ti in enumerate(t):
        ab = S.alphas_cumprod[ti]
        assert torch.allclose(out[i], np.sqrt(ab) * x0[i] + np.sqrt(1 - ab) * eps[i])


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_posterior_of_one_step_is_ddpm(t):
    c0, ct, var = posterior_coefficients(S, t, t - 1)
    b, a, ab, ab_prev = S.betas[t], 1 - S.betas[t], S.alphas_cumprod[t], S.alphas_cumprod[t - 1]
    assert c0 == pytest.approx(b * np.sqrt(ab_prev) / (1 - ab))
    assert ct == pytest.approx(np.sqrt(a) * (1 - ab_prev) / (1 - ab))
    assert var == pytest.approx(b * (1 - ab_prev) / (1 - ab))


@pytest.mark.parametrize("t, s", [(999, 950), (500, 100), (40, 0), (10, 9)])
def test_posterior_of_a_jump_is_gaussian_conditioning(t, s):
    """x_s = sqrt(ab_s) x0 + sqrt(1-ab_s) e1, x_t = sqrt(ab_t/ab_s) x_s + sqrt(1-ab_t/ab_s) e2:
    condition the joint Gaussian of (x_s, x_t) given x0 and compare."""
    ab_t, ab_s = S.alphas_cumprod[t], S.alphas_cumprod[s]
    a = ab_t / ab_s
    var_s, var_t, cov = 1 - ab_s, 1 - ab_t, np.sqrt(a) * (1 - ab_s)
    # E[x_s | x_t, x0] = sqrt(ab_s) x0 + cov/var_t (x_t - sqrt(ab_t) x0)
    ct_expected = cov / var_t
    c0_expected = np.sqrt(ab_s) - ct_expected * np.sqrt(ab_t)
    var_expected = var_s - cov**2 / var_t
    c0, ct, var = posterior_coefficients(S, t, s)
    assert (c0, ct, var) == pytest.approx((c0_expected, ct_expected, var_expected), rel=1e-9)


def test_last_step_returns_the_clean_estimate():
    assert posterior_coefficients(S, 0, -1) == pytest.approx((1.0, 0.0, 0.0))
    x0, xt = torch.randn(4), torch.randn(4)
    assert torch.equal(ddpm_step(S, x0, xt, 0, -1, None), x0)
    with pytest.raises(ValueError):
        posterior_coefficients(S, 5, 5)


@pytest.mark.parametrize("t, s", [(999, 949), (300, 299), (60, 10)])
def test_ddim_with_eta_one_has_the_law_of_the_ancestral_step(t, s):
    x0 = torch.randn(1000, dtype=torch.float64)
    xt = torch.randn(1000, dtype=torch.float64)
    zero = torch.zeros_like(xt)
    c0, ct, var = posterior_coefficients(S, t, s)
    mean_ddim = ddim_step(S, x0, xt, t, s, zero, eta=1.0)
    assert torch.allclose(mean_ddim, c0 * x0 + ct * xt, atol=1e-10)
    unit = torch.ones_like(xt)
    spread = ddim_step(S, x0, xt, t, s, unit, eta=1.0) - mean_ddim
    assert torch.allclose(spread, torch.full_like(xt, np.sqrt(var)), atol=1e-10)
    # eta = 0 is deterministic and keeps the implied noise: x_s = sqrt(ab_s) x0 + sqrt(1-ab_s) eps
    eps = (xt - np.sqrt(S.alphas_cumprod[t]) * x0) / np.sqrt(1 - S.alphas_cumprod[t])
    det = ddim_step(S, x0, xt, t, s, None, eta=0.0)
    assert torch.allclose(det, np.sqrt(S.alphas_cumprod[s]) * x0 + np.sqrt(1 - S.alphas_cumprod[s]) * eps)


def test_renoise_moments():
    torch.manual_seed(0)
    xs = torch.full((200_000,), 0.5, dtype=torch.float64)
    out = renoise(S, xs, 100, 200, torch.randn_like(xs))
    a = S.alphas_cumprod[200] / S.alphas_cumprod[100]
    assert float(out.mean()) == pytest.approx(np.sqrt(a) * 0.5, abs=3e-3)
    assert float(out.var()) == pytest.approx(1 - a, rel=2e-2)


def test_interval_schedule_of_the_paper():
    bounds = interval_bounds(1000, 20)
    assert bounds[0] == (950, 999) and bounds[-1] == (0, 49) and len(bounds) == 20
    plan = sampling_plan(1000, 20, 50)
    steps = [st for interval in plan for st in interval]
    assert steps == [(t, t - 1) for t in range(999, -1, -1)]


def test_interval_budget_keeps_the_total_and_grows_geometrically():
    assert InfusionConfig(num_intervals=4, steps_per_interval=10).interval_steps == (10, 10, 10, 10)
    steps = InfusionConfig(num_intervals=10, steps_per_interval=50, budget_ratio=3.0).interval_steps
    assert sum(steps) == 500 and list(steps) == sorted(steps)
    # geometric: w_k = 3 ** (k / 9), so the last interval gets 3x the first's share (up to rounding)
    w = 3.0 ** (np.arange(10) / 9)
    assert np.allclose(steps, 500 * w / w.sum(), atol=1.0)
    cfg = InfusionConfig(num_intervals=10, steps_per_interval=50, budget_ratio=3.0)
    stages = plan_stages(cfg, sampling_plan(1000, 10, 2), 1)
    assert [s.length for s in stages if s.kind == "train"] == list(steps)  # what the run trains


def test_training_budget_grows_with_the_sampling_region_up_to_a_cap():
    cfg = InfusionConfig(steps_per_interval=50, budget_voxels=200_000, budget_max_scale=4.0)
    assert cfg.scaled_budget(100_000).steps_per_interval == 50  # never below the preset's budget
    assert cfg.scaled_budget(300_000).steps_per_interval == 75
    assert cfg.scaled_budget(10**8).steps_per_interval == 200
    assert InfusionConfig(steps_per_interval=50).scaled_budget(10**8).steps_per_interval == 50  # off


def test_respaced_plan_chains_through_every_interval():
    plan = sampling_plan(1000, 10, 3)
    steps = [st for interval in plan for st in interval]
    assert steps[0][0] == 999 and steps[-1][1] == -1 and len(steps) == 30
    for (t, s), (t2, _) in zip(steps, steps[1:]):
        assert s == t2 and s < t
    assert interval_timesteps(0, 49, 1) == [49]
    assert interval_timesteps(900, 949, 100) == list(range(949, 899, -1))


def test_last_interval_can_take_more_steps():
    plan = sampling_plan(1000, 10, 2, last_steps=5)
    assert plan[:-1] == sampling_plan(1000, 10, 2)[:-1]
    assert plan[-1] == [(99, 74), (74, 50), (50, 25), (25, 0), (0, -1)]
    assert sampling_plan(1000, 10, 2, last_steps=2) == sampling_plan(1000, 10, 2)


def test_timestep_embedding_closed_form():
    e = timestep_embedding(torch.tensor([0, 10]), 16)
    assert e.shape == (2, 16)
    assert torch.allclose(e[0], torch.cat([torch.zeros(8), torch.ones(8)]))
    w = torch.exp(-np.log(10000.0) * torch.arange(8) / 7)
    assert torch.allclose(e[1, :8], torch.sin(10 * w)) and torch.allclose(e[1, 8:], torch.cos(10 * w))


def test_default_network_has_the_papers_size_and_any_frame_size():
    net = UNet3D()
    assert count_parameters(net) == 492_963
    assert sum(isinstance(m, torch.nn.Conv3d) for m in net.modules()) == 16
    assert net.stem.in_channels == 23
    x = torch.randn(1, 3, 3, 13, 21)
    with torch.no_grad():
        y = net(x, x, torch.ones(1, 1, 3, 13, 21), torch.tensor([3]))
    assert y.shape == (1, 3, 3, 13, 21)
    small = UNet3D(width=8, levels=2)
    assert count_parameters(small) < 20_000 and small.multiple == 2
    assert forward_flops(net, 1, 8, 8) > 0


def _counted_conv_flops(net, frames, height, width):
    """2 x multiply-adds of every convolution run in one forward pass, counted at the dispatcher."""
    from torch.utils._python_dispatch import TorchDispatchMode
    convs = (torch.ops.aten.convolution, torch.ops.aten.mkldnn_convolution)

    class Counter(TorchDispatchMode):
        flops = 0.0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket in convs:
                Counter.flops += 2.0 * out.numel() * args[1][0].numel()  # cin * kernel volume per output
            return out
    x = torch.zeros(1, 3, frames, height, width)
    with torch.no_grad(), Counter():
        net(x, x, torch.zeros(1, 1, frames, height, width), torch.tensor([1]))
    return Counter.flops


@pytest.mark.parametrize("residual", [False, True])
def test_forward_flops_matches_the_convolutions_run(residual):
    net = UNet3D(width=8, levels=3, residual=residual)
    assert forward_flops(net, 5, 16, 24) == pytest.approx(_counted_conv_flops(net, 5, 16, 24), rel=1e-3)


@pytest.mark.parametrize("batch", [1, 2])
def test_direct_onednn_convolution_equals_conv3d_with_its_gradients(batch):
    """Conv3x3x3 (oneDNN called directly on the CPU) computes F.conv3d(padding=1), values and gradients."""
    torch.manual_seed(0)
    conv = Conv3x3x3(5, 4)
    x = torch.randn(batch, 5, 6, 9, 7).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    x_ref = x.detach().contiguous().requires_grad_()
    y, y_ref = conv(x), torch.nn.functional.conv3d(x_ref, conv.weight, conv.bias, padding=1)
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn_like(y_ref)
    dx, dw = torch.autograd.grad(y, (x, conv.weight), g)
    dx_ref, dw_ref = torch.autograd.grad(y_ref, (x_ref, conv.weight), g)
    assert torch.allclose(dx, dx_ref, atol=1e-5) and torch.allclose(dw, dw_ref, atol=1e-4)


@pytest.mark.parametrize("frames", [1, 2, 6])
def test_replicate_time_padding_convolves_the_clip_with_its_ends_repeated(frames):
    """Conv3x3x3(time_padding="replicate") computes F.conv3d of the input with
    its first and last frames repeated once (space zero-padded), values and gradients."""
    torch.manual_seed(0)
    conv = Conv3x3x3(5, 4, time_padding="replicate")
    x = torch.randn(2, 5, frames, 9, 7).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    padded = torch.cat([x_ref[:, :, :1], x_ref, x_ref[:, :, -1:]], dim=2)
    y, y_ref = conv(x), torch.nn.functional.conv3d(padded, conv.weight, conv.bias, padding=(0, 1, 1))
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn_like(y_ref)
    dx, dw = torch.autograd.grad(y, (x, conv.weight), g)
    dx_ref, dw_ref = torch.autograd.grad(y_ref, (x_ref, conv.weight), g)
    assert torch.allclose(dx, dx_ref, atol=1e-5) and torch.allclose(dw, dw_ref, atol=1e-4)


def test_residual_network_adds_only_skip_projections_and_keeps_the_reach():
    plain, res = UNet3D(width=8, levels=4), UNet3D(width=8, levels=4, residual=True)
    # one 1x1 projection (2w -> w, with bias) per decoder level, nothing else
    assert count_parameters(res) - count_parameters(plain) == 3 * (2 * 8 * 8 + 8)
    assert set(plain.state_dict()) < set(res.state_dict())
    torch.manual_seed(0)
    for module in res.modules():  # away from the near-identity start, so every path carries gradient
        if isinstance(module, torch.nn.Conv3d):
            torch.nn.init.normal_(module.weight, std=0.3)
    x = torch.zeros(1, 3, 41, 8, 8, requires_grad=True)
    y = res(x, torch.zeros_like(x), torch.zeros(1, 1, 41, 8, 8), torch.tensor([0]))
    y[0, :, 20].sum().backward()
    touched = (x.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).nonzero().flatten()
    assert touched.min() == 20 - 16 and touched.max() == 20 + 16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_replicate_time_padding_keeps_a_still_clip_still(precision):
    """``time_padding="replicate"``: the convolutions see the first and last
    frames repeated beyond the clip, so an input that is the same in every
    frame gives an output that is the same in every frame (up to rounding);
    with zero padding the frames near the ends differ (same weights)."""
    torch.manual_seed(0)
    zeros, rep = UNet3D(width=8, levels=3), UNet3D(width=8, levels=3, time_padding="replicate")
    rep.load_state_dict(zeros.state_dict())
    torch.nn.init.normal_(zeros.head.weight, std=0.1)
    torch.nn.init.normal_(rep.head.weight, std=0.1)
    still = torch.rand(1, 3, 1, 12, 12).expand(1, 3, 9, 12, 12)
    args = (still, still, torch.ones(1, 1, 9, 12, 12), torch.tensor([5]))
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        out_rep, out_zero = rep(*args).float(), zeros(*args).float()
    # the same up to rounding (the ends are summed in another order)
    tol = 1e-5 if precision == "fp32" else 0.1  # bf16: 8 bits of mantissa; zero padding: ~3
    spread_rep = float((out_rep - out_rep[:, :, 4:5]).abs().max())
    spread_zero = float((out_zero - out_zero[:, :, 4:5]).abs().max())
    assert spread_rep < tol < spread_zero
    with pytest.raises(ValueError, match="time_padding"):
        UNet3D(width=8, levels=3, time_padding="reflect")


def test_network_sees_33_frames_of_context():
    """Space-only pooling: 16 convs of 3 taps in time give a temporal reach of +-16 frames."""
    torch.manual_seed(0)
    net = UNet3D(width=4, levels=4)
    x = torch.zeros(1, 3, 41, 8, 8, requires_grad=True)
    y = net(x, torch.zeros_like(x), torch.zeros(1, 1, 41, 8, 8), torch.tensor([0]))
    y[0, :, 20].sum().backward()
    touched = (x.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).nonzero().flatten()
    assert touched.min() >= 20 - 16 and touched.max() <= 20 + 16


def test_training_masks_are_fast_varied_and_reproducible():
    rng = np.random.default_rng(1)
    fractions = [random_masks(rng, 4, 48, 48, "blobs").mean() for _ in range(100)]
    assert 0.05 < np.mean(fractions) < 0.6 and min(fractions) > 0
    strokes = random_masks(rng, 6, 48, 48, "strokes")
    assert strokes.shape == (6, 48, 48) and strokes.any()
    a = random_masks(np.random.default_rng(7), 5, 32, 32, "mixed")
    b = random_masks(np.random.default_rng(7), 5, 32, 32, "mixed")
    assert np.array_equal(a, b)
    moves = [np.abs(np.diff(trajectory(np.random.default_rng(i), 20, 64, 64), axis=0)).sum(1) for i in range(40)]
    static = [m.max() == 0 for m in moves]
    assert 5 < sum(static) < 35  # about half static
    speeds = np.concatenate([np.linalg.norm(np.diff(trajectory(np.random.default_rng(i), 20, 64, 64), axis=0), axis=1)
                             for i in range(40)])
    moving = speeds[speeds > 0]
    assert 0.5 - 1e-9 <= moving.min() and moving.max() <= 2.5 + 1e-9


def test_windows_cover_and_weights_sum_to_one():
    for frames, window, overlap in [(300, 24, 8), (25, 24, 8), (10, 24, 8), (49, 16, 4)]:
        wins = temporal_windows(frames, window, overlap)
        assert wins[0][0] == 0 and wins[-1][1] == frames
        for (a, b), (c, d) in zip(wins, wins[1:]):
            assert c < b and b - c >= min(overlap, window - 1) and d > b
        total = np.zeros(frames)
        for (a, b), w in zip(wins, window_weights(wins, frames)):
            total[a:b] += w
            assert np.all(w > 0)
        assert np.allclose(total, 1.0)


def test_training_crops_grow_with_the_hole():
    mask = np.zeros((3, 100, 120), bool)
    assert hole_extent(mask) == 0
    for t in range(3):  # a 10x26 box moving right by 30 px a frame: the extent is per frame
        mask[t, 5:15, 30 * t:30 * t + 26] = True
    assert hole_extent(mask) == 26
    mask[1, 40:80, 50] = True  # a 40-px vertical line beside the box in frame 1: 75 rows
    assert hole_extent(mask) == 75
    tall = np.zeros((2, 64, 64), bool)
    tall[0, 10:50, 20:30] = True
    assert hole_extent(tall) == 40
    hole = hole_extent(tall)
    assert training_crop_side(hole, 0, 1.2, 96) == 0  # whole frames stay whole frames
    assert training_crop_side(hole, 32, 0.0, 96) == 32  # growth off
    assert training_crop_side(hole, 32, 1.2, 96) == 48  # 1.2 * 40 = 48
    assert training_crop_side(hole, 32, 1.25, 96) == 56  # 50 rounded up to a multiple of 8
    assert training_crop_side(hole, 32, 3.0, 96) == 96  # bounded by crop_max
    assert training_crop_side(hole, 32, 3.0, 0) == 120
    assert training_crop_side(hole, 64, 1.2, 96) == 64  # never below crop_size


def test_coarse_fill_only_for_holes_wider_than_the_training_crops():
    assert coarse_side(128, 40, 32, 0.5) == 64  # a 40-px hole, 32-px crops: half-size frames
    assert coarse_side(128, 32, 32, 0.5) == 0  # the crops' masks already cover the hole
    assert coarse_side(128, 40, 0, 0.5) == 0  # whole frames: the training masks span them
    assert coarse_side(128, 64, 32, 0.5) == 64  # 32 px at half size: within the crops
    assert coarse_side(128, 65, 32, 0.5) == 0  # still wider than the crops at half size
    assert coarse_side(432, 100, 32, 0.3) == 130  # round(0.3 * 432), hole 30 px there
    assert coarse_side(24, 20, 16, 0.5) == 0  # 12-px frames are too small
    assert coarse_side(40, 20, 16, 0.99) == 0  # no smaller after rounding


def test_region_of_interest_covers_the_hole():
    mask = np.zeros((30, 64, 80), bool)
    mask[:10, 10:20, 10:20] = True
    mask[20:, 40:50, 50:70] = True
    roi, wins = plan_windows(mask, 12, 4, 10**9, 8, 8, use_roi=True)
    y0, y1, x0, x1 = roi
    assert (y1 - y0) % 8 == 0 and (x1 - x0) % 8 == 0
    sub = mask[:, y0:y1, x0:x1]
    assert sub.sum() == mask.sum()
    covered = np.zeros_like(sub)
    for w in wins:
        by0, by1, bx0, bx1 = w.box
        covered[w.t0:w.t1, by0:by1, bx0:bx1] = True
    assert covered[sub].all()
    assert grow_box((5, 10, 5, 10), 1, 64, 64, 8) == (4, 12, 4, 12)
    assert grow_box((5, 10, 5, 10), 2, 64, 64, 8) == (0, 16, 0, 16)
    assert grow_box((50, 60, 0, 5), 4, 64, 64, 8) == (40, 64, 0, 16)


def test_repaint_resampling_moves():
    seq = [49, 39, 29, 19, 9, -1]
    assert resample_moves(seq) == list(zip(seq, seq[1:]))
    moves = resample_moves(seq, jump=2, count=3)
    # down 2, (up 2, down 2) x 2, down 2, (up 2, down 2) x 2, down 1 to the clean end
    down = [(49, 39), (39, 29)]
    up = [(29, 39), (39, 49)]
    mid_down = [(29, 19), (19, 9)]
    mid_up = [(9, 19), (19, 29)]
    assert moves == down + up + down + up + down + mid_down + mid_up + mid_down + mid_up + mid_down + [(9, -1)]
    position = 0
    for t, s in moves:  # every move starts where the previous one ended
        assert t == seq[position]
        position = seq.index(s)
    assert position == len(seq) - 1
    plan = sampling_plan(100, 2, 5, resample_jump=2, resample_count=2)
    assert plan[0][0] == (99, 87) and plan[-1][-1] == (0, -1)


@pytest.mark.parametrize("t", [0, 10, 250, 999])
@pytest.mark.parametrize("sd,sk", [(0.5, None), (1.0, 0.05), (0.5, 0.2)])
def test_edm_preconditioning_gives_a_unit_variance_target(t, sd, sk):
    """With x0 ~ N(0, s_d^2): Var[(x0 - a x_t) / c_out] = 1 (Karras et al. 2022, eq. 8-10)."""
    a, c_out = edm_coefficients(S, t, sd, sk)
    ab = S.alphas_cumprod[t]
    var = ((1 - a * np.sqrt(ab)) ** 2 * sd**2 + a**2 * (1 - ab)) / c_out**2
    assert var == pytest.approx(1.0, rel=1e-9)
    sigma2 = (1 - ab) / ab
    k = sd if sk is None else sk
    assert a * np.sqrt(ab) == pytest.approx(k**2 / (sigma2 + k**2))
    if sk is None:  # Karras et al.'s closed form of c_out
        assert c_out == pytest.approx(np.sqrt(sigma2) * sd / np.sqrt(sigma2 + sd**2), rel=1e-12)


def test_a_small_skip_level_keeps_the_skip_to_the_least_noisy_steps():
    """skip_sigma 0.05, sigma_data 1: the clean-signal prediction (a = 0, c_out = 1) above
    moderate noise, the noisy input passed through with a small correction at the clean end."""
    a, c_out = edm_coefficients(S, np.array([0, 49, 500, 999]), 1.0, 0.05)
    ab = S.alphas_cumprod[[0, 49, 500, 999]]
    c_skip = a * np.sqrt(ab)
    assert c_skip[0] > 0.95 and c_out[0] < 0.05
    assert c_skip[1] < 0.1 and c_skip[2] < 1e-3 and c_skip[3] < 1e-6
    assert c_out[2] == pytest.approx(1.0, abs=1e-3) and c_out[3] == pytest.approx(1.0, abs=1e-6)


def test_denoiser_parametrizations_and_loss_region():
    from infusion.denoiser import Denoiser
    from infusion.training import leakage_safe_batch

    class Zero(torch.nn.Module):
        def forward(self, cond, x_t, mask, t):
            return torch.zeros_like(x_t)

    x_t = torch.randn(2, 3, 2, 4, 4)
    t = torch.tensor([5, 900])
    assert torch.equal(Denoiser(Zero(), S, "x0")(x_t, x_t, x_t[:, :1], t), torch.zeros_like(x_t))
    out = Denoiser(Zero(), S, "edm")(x_t, x_t, x_t[:, :1], t)
    a, c_out = edm_coefficients(S, t.numpy())
    assert torch.allclose(out[1], float(a[1]) * x_t[1]) and torch.allclose(out[0], float(a[0]) * x_t[0])
    weights = Denoiser(Zero(), S, "edm").loss_weights(t, x_t)
    assert torch.allclose(weights.flatten(), torch.tensor(1 / c_out**2, dtype=torch.float32))
    assert torch.equal(Denoiser(Zero(), S, "edm", loss_space="x0").loss_weights(t, x_t), torch.ones(()))
    with pytest.raises(ValueError, match="loss_space"):
        Denoiser(Zero(), S, "edm", loss_space="eps")
    video = torch.rand(1, 3, 2, 4, 4) * 2 - 1
    test = torch.zeros(1, 1, 2, 4, 4)
    test[..., :2, :] = 1
    train = torch.zeros(1, 1, 2, 4, 4)
    train[..., :, :1] = 1
    known = leakage_safe_batch(video, test, train, "known")
    masked = leakage_safe_batch(video, test, train, "masked")
    assert torch.equal(known.weight, 1 - test)
    assert torch.equal(masked.weight, (1 - test) * train)


def test_time_correlated_noise_closed_form():
    """``sqrt(c) shared + sqrt(1 - c) independent``: unit variance, frames correlated ``c``."""
    gen = torch.Generator().manual_seed(0)
    indep = torch.randn((2, 3, 4, 64, 64), generator=gen)
    shared = torch.randn((2, 3, 1, 64, 64), generator=gen)
    assert time_correlated_noise(indep, shared, 0.0) is indep
    same = time_correlated_noise(indep, shared, 1.0)
    assert torch.equal(same, shared.expand_as(indep))
    mixed = time_correlated_noise(indep, shared, 0.81)
    assert torch.allclose(mixed, 0.9 * shared + np.sqrt(0.19) * indep)
    big = time_correlated_noise(torch.randn((1, 1, 2, 400, 400), generator=gen),
                                torch.randn((1, 1, 1, 400, 400), generator=gen), 0.6)
    assert abs(float(big.var()) - 1.0) < 0.01
    corr = float((big[0, 0, 0] * big[0, 0, 1]).mean() / big.var())
    assert abs(corr - 0.6) < 0.01  # 160 000 pairs: standard error ~0.002
    with pytest.raises(ValueError, match="corr"):
        time_correlated_noise(indep, shared, 1.5)
    with pytest.raises(InputError, match="final_noise_corr must be in"):
        InfusionConfig(final_noise_corr=-0.1)


class _Zero(torch.nn.Module):
    """A network whose clean estimate is 0 everywhere."""

    def forward(self, cond, x_t, mask, t):
        return torch.zeros_like(x_t)


@pytest.mark.parametrize("corr", [0.0, 1.0])
def test_sampler_correlates_the_noise_of_the_least_noisy_steps_only(corr):
    """With a zero clean estimate a DDIM step is ``c x_t + sigma z``: the fresh
    noise ``z`` is the same in every frame for the steps below ``corr_below``
    when ``noise_corr`` is 1, and independent above it (or with 0)."""
    sched = NoiseSchedule.linear(100)
    t, h, w = 5, 8, 8
    video = torch.zeros((1, 3, t, h, w))
    mask = torch.ones((1, 1, t, h, w))
    win = [Window(0, t, (0, h, 0, w), np.ones(t, np.float32))]
    plain = Sampler(video, mask, win, sched, samples=1, seed=3, method="ddim", eta=1.0)
    samp = Sampler(video, mask, win, sched, samples=1, seed=3, method="ddim", eta=1.0,
                   noise_corr=corr, corr_below=20)
    assert torch.equal(samp.x, plain.x)  # the starting noise is independent per frame
    for step_from, step_to in ((60, 30), (30, 10)):
        before = samp.x.clone()
        samp.step(_Zero(), step_from, step_to)
        plain.step(_Zero(), step_from, step_to)
        zero = torch.zeros_like(before)
        z = samp.x - ddim_step(sched, zero, before, step_from, step_to, zero, eta=1.0)
        frames_differ = float((z[:, :, 1:] - z[:, :, :-1]).abs().max())
        if step_to < 20 and corr == 1.0:
            assert frames_differ < 1e-5
        else:
            assert frames_differ > 0.1
            if corr == 0.0:
                assert torch.equal(samp.x, plain.x)  # no correlation: the same draws as before


def test_sampler_correlates_the_starting_noise_over_time_when_asked():
    """``init_corr``: the starting noise is ``time_correlated_noise`` of the
    independent draw: the same in every frame at 1, frames correlated ``c``
    with unit variance at ``c``, and at 0 the draw of a plain sampler."""
    sched = NoiseSchedule.linear(100)
    t, h, w = 2, 200, 200
    video = torch.zeros((1, 3, t, h, w))
    mask = torch.ones((1, 1, t, h, w))
    win = [Window(0, t, (0, h, 0, w), np.ones(t, np.float32))]

    def start(c):
        return Sampler(video, mask, win, sched, samples=1, seed=5, init_corr=c).x

    assert torch.equal(start(0.0), Sampler(video, mask, win, sched, samples=1, seed=5).x)
    same = start(1.0)
    assert torch.equal(same[:, :, 0], same[:, :, 1])
    mixed = start(0.6)
    assert abs(float(mixed.var()) - 1.0) < 0.01
    corr = float((mixed[:, :, 0] * mixed[:, :, 1]).mean() / mixed.var())
    assert abs(corr - 0.6) < 0.01  # 120 000 pairs


def test_keyframe_noise_corr_ties_the_noise_of_the_levels_above_the_finest():
    """With keyframe-first sampling and ``keyframe_noise_corr`` 1 the
    keyframe level starts from the same noise in every keyframe and its
    steps draw the same fresh noise in every keyframe; the finest level
    does not."""
    from infusion.infusion_method import LevelSampler
    from infusion.keyframes import sampling_passes

    sched = NoiseSchedule.linear(100)
    t, h, w = 16, 8, 8
    video = torch.zeros((1, 3, t, h, w))
    mask = torch.ones((1, 1, t, h, w), dtype=torch.bool)
    config = InfusionConfig(num_timesteps=100, keyframe_noise_corr=1.0, sampler="ddim", window_frames=16,
                            window_overlap=4, levels=1, roi_margin=0)
    levels = LevelSampler(video, mask, sampling_passes(t, [4, 1]), config, sched, samples=1, seed=0,
                          precision="fp32", multiple=1)
    for level, tied in ((0, True), (1, False)):
        samp = levels.enter(level)
        x = samp.x[:, :, ~torch.from_numpy(levels.passes[level].known)]
        assert (float((x[:, :, 1:] - x[:, :, :-1]).abs().max()) < 1e-6) == tied
        before = samp.x.clone()
        samp.step(_Zero(), 60, 30)
        zero = torch.zeros_like(before)
        z = samp.x - ddim_step(sched, zero, before, 60, 30, zero, eta=1.0)
        z = z[:, :, ~torch.from_numpy(levels.passes[level].known)]
        assert (float((z[:, :, 1:] - z[:, :, :-1]).abs().max()) < 1e-5) == tied
    for bad in (1.5, -0.5):
        with pytest.raises(InputError, match="keyframe_noise_corr must be in"):
            InfusionConfig(keyframe_noise_corr=bad)
    InfusionConfig(keyframe_noise_corr=-1)  # from the footage


def test_sampler_holds_the_given_pixels_at_the_initial_fill_down_to_a_timestep():
    """``hold``: with a zero network the clean estimate is the initial fill at
    the held pixels while the step starts at ``hold_to`` or above, 0
    elsewhere in the hole, the known pixels outside; below ``hold_to`` it is
    0."""
    sched = NoiseSchedule.linear(100)
    t, h, w = 4, 6, 6
    gen = torch.Generator().manual_seed(0)
    video = torch.rand((1, 3, t, h, w), generator=gen) * 2 - 1
    init = torch.rand((1, 3, t, h, w), generator=gen) * 2 - 1
    mask = torch.zeros((1, 1, t, h, w))
    mask[..., 1:5, 1:5] = 1.0
    hold = torch.zeros((1, 1, t, h, w), dtype=torch.bool)
    hold[..., 1:3, 1:5] = True
    win = [Window(0, t, (0, h, 0, w), np.ones(t, np.float32))]
    samp = Sampler(video, mask, win, sched, samples=2, seed=0, method="ddpm", init=init, start=60,
                   hold=hold, hold_to=30)
    free = mask.bool() & ~hold
    samp.step(_Zero(), 60, 30)
    x0 = samp.x0_hat
    assert x0.shape == (2, 3, t, h, w)
    assert torch.equal(x0[hold.expand_as(x0)], init.expand_as(x0)[hold.expand_as(x0)])
    assert (x0[free.expand_as(x0)] == 0).all()
    assert torch.equal(x0[~mask.bool().expand_as(x0)], video.expand_as(x0)[~mask.bool().expand_as(x0)])
    samp.step(_Zero(), 29, 10)  # below hold_to: the network's estimate
    assert (samp.x0_hat[mask.bool().expand_as(x0)] == 0).all()
    with pytest.raises(ValueError, match="hold needs an init"):
        Sampler(video, mask, win, sched, samples=1, seed=0, hold=hold)

    class Counting(_Zero):
        calls = 0

        def forward(self, cond, x_t, mask, t):
            Counting.calls += 1
            return super().forward(cond, x_t, mask, t)

    # a hold over the whole hole: the network is not even run above hold_to, with the same result
    whole = Sampler(video, mask, win, sched, samples=2, seed=0, method="ddpm", init=init, start=60,
                    hold=mask.bool(), hold_to=30)
    partial_net = Sampler(video, mask, win, sched, samples=2, seed=0, method="ddpm", init=init, start=60,
                          hold=mask.bool() & ~hold.roll(1, dims=2), hold_to=30)
    whole.step(Counting(), 60, 30)
    assert Counting.calls == 0
    assert torch.equal(whole.x0_hat, torch.where(mask.bool(), init, video).expand(2, -1, -1, -1, -1))
    partial_net.step(Counting(), 60, 30)
    assert Counting.calls == 2  # one call per sample and window
    whole.step(Counting(), 29, 10)
    assert Counting.calls == 4 and (whole.x0_hat[mask.bool().expand_as(x0)] == 0).all()


def test_frame_chunks_give_the_whole_clip_operation_bit_for_bit(monkeypatch):
    """``by_frames`` (a DDIM step, a ``where`` with broadcast operands, a
    one-frame operand passed whole) and ``to_unit_frames`` equal the
    whole-tensor operations exactly, in chunks of 2 frames, and may write
    into an operand."""
    monkeypatch.setattr(sampling, "CHUNK_VALUES", 2 * (2 * 3 * 5 * 7))  # 2 frames of (2, 3, T, 5, 7) per chunk
    sched = NoiseSchedule.linear(100)
    gen = torch.Generator().manual_seed(0)
    x0, x, noise = (torch.randn((2, 3, 9, 5, 7), generator=gen) for _ in range(3))
    shared = torch.randn((2, 3, 1, 5, 7), generator=gen)
    whole = ddim_step(sched, x0, x, 50, 20, time_correlated_noise(noise, shared, 0.5), eta=1.0)
    out = x.clone()
    by_frames(lambda a, b, n, sh: ddim_step(sched, a, b, 50, 20, time_correlated_noise(n, sh, 0.5), eta=1.0),
              out, x0, out, noise, shared)
    assert torch.equal(out, whole)
    hold = torch.rand((1, 1, 9, 5, 7), generator=gen) < 0.5
    init = torch.randn((1, 3, 9, 5, 7), generator=gen)
    expected = torch.where(hold, init, x0)
    by_frames(torch.where, x0, hold, init, x0)
    assert torch.equal(x0, expected)
    frames = to_unit_frames(x0)
    assert frames.shape == (2, 9, 5, 7, 3) and frames.dtype == np.float32
    assert np.array_equal(frames, ((x0.permute(0, 2, 3, 4, 1).numpy() + 1.0) * 0.5).clip(0.0, 1.0))


@pytest.mark.parametrize("total, piece", [(9, 16), (16, 16), (1890, 16), (1890, 64), (15873, 1000), (576000, 4096)])
def test_noise_stream_gives_one_randn_call_bit_for_bit(total, piece):
    """Values taken in uneven pieces equal one ``torch.randn(total)`` call
    (blocks of 16, a ragged tail, a call shorter than 16), and the generator
    ends where that call leaves it, whether the values are taken or skipped."""
    gen = torch.Generator().manual_seed(5)
    whole = torch.randn(total, generator=gen)
    state = gen.get_state()
    gen = torch.Generator().manual_seed(5)
    stream, got, rng = NoiseStream(gen, total, piece), [], np.random.default_rng(1)
    while sum(map(len, got)) < total:
        got.append(stream.take(int(min(total - sum(map(len, got)), rng.integers(1, 3 * piece)))))
    assert torch.equal(torch.cat(got), whole) and torch.equal(gen.get_state(), state)
    with pytest.raises(ValueError):
        stream.take(1)
    gen = torch.Generator().manual_seed(5)
    stream = NoiseStream(gen, total, piece)
    stream.take(min(total, 7))
    stream.skip()
    assert torch.equal(gen.get_state(), state)
    with pytest.raises(RuntimeError):
        stream.then((2, 3))
    # a second call after the whole stream, drawn before the stream is taken
    gen = torch.Generator().manual_seed(5)
    torch.randn(total, generator=gen)
    second = torch.randn((2, 3), generator=gen)
    end = gen.get_state()
    gen = torch.Generator().manual_seed(5)
    stream = NoiseStream(gen, total, piece)
    assert torch.equal(stream.then((2, 3)), second)
    assert torch.equal(torch.cat([stream.take(total - total // 2), stream.take(total // 2)]), whole)
    assert torch.equal(gen.get_state(), end)


def test_channel_frame_pieces_give_the_whole_step_bit_for_bit(monkeypatch):
    """``by_channel_frames`` with noise from a stream equals the step on
    whole tensors with the noise drawn in one call, with operands that
    broadcast in samples, channels and frames."""
    monkeypatch.setattr(sampling, "CHUNK_VALUES", 2 * 5 * 7)  # 2 frames per piece
    sched = NoiseSchedule.linear(100)
    gen = torch.Generator().manual_seed(0)
    x0, x = torch.randn((1, 3, 9, 5, 7), generator=gen), torch.randn((2, 3, 9, 5, 7), generator=gen)
    shared = torch.randn((2, 3, 1, 5, 7), generator=gen)
    scale = torch.rand((1, 1, 9, 5, 7), generator=gen)

    def fn(a, b, sh, sc, n):
        return ddim_step(sched, a * sc, b, 50, 20, time_correlated_noise(n, sh, 0.5), eta=1.0)

    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    whole = fn(x0, x, shared, scale, noise)
    out = x.clone()
    by_channel_frames(fn, out, NoiseStream(torch.Generator().manual_seed(3), out.numel()), x0, out, shared, scale)
    assert torch.equal(out, whole)


def test_sampler_steps_do_not_depend_on_the_noise_pieces(monkeypatch):
    """DDPM and DDIM steps with time-correlated noise, and RePaint jumps,
    give the same states whether the noise comes in pieces of one frame or
    in one call."""
    t, h, w = 5, 6, 6
    gen = torch.Generator().manual_seed(0)
    video = torch.rand((1, 3, t, h, w), generator=gen) * 2 - 1
    mask = torch.zeros((1, 1, t, h, w), dtype=torch.bool)
    mask[..., 1:5, 2:5] = True
    win = [Window(0, t, (0, h, 0, w), np.ones(t, np.float32))]

    class Half(torch.nn.Module):  # an estimate that depends on the state
        def forward(self, cond, x_t, mask, t):
            return 0.5 * x_t + cond

    def run(chunk):
        monkeypatch.setattr(sampling, "CHUNK_VALUES", chunk)
        out = []
        for method in ("ddpm", "ddim"):
            smp = Sampler(video, mask, win, NoiseSchedule.linear(100), samples=2, seed=4, method=method,
                          noise_corr=0.8, corr_below=30)
            for t, s in ((99, 60), (60, 80), (80, 40), (40, 20), (20, -1)):
                x_t, ref = smp.x.clone(), torch.Generator()
                ref.set_state(smp.gen.get_state())
                smp.move(Half(), t, s)
                out.append(smp.x.clone())
                if (t, s) == (40, 20):  # below corr_below: the noise, then its shared part, in one call each
                    noise = torch.randn(x_t.shape, generator=ref)
                    shared = torch.randn(x_t.shape[:2] + (1,) + x_t.shape[3:], generator=ref)
                    z = time_correlated_noise(noise, shared, 0.8)
                    step = ddim_step if method == "ddim" else ddpm_step
                    args = (1.0,) if method == "ddim" else ()
                    assert torch.equal(smp.x, step(smp.schedule, smp.x0_hat, x_t, t, s, z, *args))
                    assert torch.equal(smp.gen.get_state(), ref.get_state())
        return out

    small, large = run(video.shape[-1] * video.shape[-2]), run(1 << 30)
    assert all(torch.equal(a, b) for a, b in zip(small, large))


def test_erased_reuses_a_video_whose_hidden_pixels_are_zero():
    video = torch.rand((1, 3, 6, 4, 4)) * 2 - 1
    mask = torch.zeros((1, 1, 6, 4, 4))
    mask[:, :, 2:5, 1:3, 1:3] = 1.0
    known = erased(video, mask)
    assert known is not video and torch.equal(known, video * (1.0 - mask))
    assert (known[mask.bool().expand_as(known)] == 0).all()
    assert erased(known, mask) is known
