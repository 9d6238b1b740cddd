"""The diffusion method end to end: leakage, exactness, resume, windows, learning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from infusion import unet3d
from infusion.config import InfusionConfig
from infusion.diffusion import NoiseSchedule
from infusion.errors import InputError
from infusion.pipeline import run
from infusion.training import Trainer

TINY = dict(width=8, levels=2, time_channels=8, num_timesteps=100, num_intervals=3, steps_per_interval=4,
            sample_steps_per_interval=2, clip_frames=4, crop_size=0, lr=1e-3)
CASES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "cases"


def texture(t=6, h=16, w=16, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([np.sin(xx * 0.7 + i * 0.5), np.cos(yy * 0.5 - i * 0.3), np.sin((xx + yy) * 0.3)], -1)
              for i in range(t)]
    video = (np.array(frames) * 0.4 + 0.5 + rng.normal(0, 0.02, (t, h, w, 3))).clip(0, 1)
    mask = np.zeros((t, h, w), bool)
    mask[:, 5:11, 4:10] = True
    return (video * 255).round().astype(np.uint8), mask


def fill(video, mask, seed=0, **kw):
    opts = {k: kw.pop(k) for k in list(kw)
            if k in ("work_dir", "resume", "progress", "samples", "keep_work", "segment_frames", "average")}
    return run(video, mask, method="infusion", config=InfusionConfig(**{**TINY, **kw}), seed=seed, **opts)


def test_hidden_content_leaks_into_nothing():
    """Changing the video under the mask changes no loss, no gradient and no output pixel."""
    video, mask = texture()
    other = video.copy()
    other[mask] = np.random.default_rng(5).integers(0, 256, other[mask].shape, dtype=np.uint8)
    cfg = InfusionConfig(**{**TINY, "crop_size": 8, "crop_near_hole": 1.0})
    sched = NoiseSchedule.linear(cfg.num_timesteps)
    runs = []
    for v in (video, other):
        torch.manual_seed(0)
        net = unet3d.UNet3D(cfg.width, cfg.levels, cfg.time_channels)
        vt = torch.from_numpy(v.transpose(3, 0, 1, 2).astype(np.float32) / 127.5 - 1)[None]
        mt = torch.from_numpy(mask)[None, None].float()
        trainer = Trainer(net, vt, mt, sched, cfg, seed=3)
        losses, grads = [], []
        for _ in range(3):
            losses.append(trainer.train_step(0, 99))
            grads.append([p.grad.clone() for p in net.parameters()])
        runs.append((losses, grads))
    assert runs[0][0] == runs[1][0]
    for ga, gb in zip(runs[0][1], runs[1][1]):
        assert all(torch.equal(a, b) for a, b in zip(ga, gb))
    out_a, out_b = fill(video, mask).video, fill(other, mask).video
    assert np.array_equal(out_a[mask], out_b[mask])


def test_known_pixels_exact_and_same_seed_same_output():
    video, mask = texture()
    a = fill(video, mask, seed=4, samples=2)
    b = fill(video, mask, seed=4, samples=2)
    assert a.samples.shape == (2,) + video.shape
    assert np.array_equal(a.samples, b.samples)
    assert all(np.array_equal(s[~mask], video[~mask]) for s in a.samples)
    assert not np.array_equal(a.samples[0][mask], a.samples[1][mask])  # independent samples
    c = fill(video, mask, seed=5)
    assert not np.array_equal(a.samples[0], c.video)


def test_both_orders_and_the_no_interval_ablation_run():
    video, mask = texture()
    for kw in ({"interleaved": False}, {"interval_training": False}, {"sampler": "ddim", "ddim_eta": 0.0}):
        out = fill(video, mask, **kw).video
        assert out.shape == video.shape and np.array_equal(out[~mask], video[~mask])


def test_sdedit_start_from_another_fill(monkeypatch):
    """With a network that returns its noisy input as the clean estimate, a chain
    started from a fill noised to a low timestep ends near that fill; one started
    from pure noise at the top does not."""
    monkeypatch.setattr(unet3d.UNet3D, "forward",
                        lambda self, cond, x_t, mask, t: x_t + 0.0 * self.head.weight.sum())
    video, mask = texture()
    telea = run(video, mask, method="telea").video[mask].astype(np.float64)
    near = fill(video, mask, init_fill="telea", start_timestep=2, num_intervals=1).video[mask]
    far = fill(video, mask, num_intervals=1).video[mask]
    assert np.abs(near - telea).mean() < 6.0  # noise std at t=2 is ~0.02 of the [-1, 1] range
    assert np.abs(far - telea).mean() > 20.0
    with pytest.raises(Exception, match="start_timestep below the top needs an init_fill"):
        fill(video, mask, start_timestep=10)


def test_coarse_fill_starts_the_full_size_chain(monkeypatch):
    """``init_fill="coarse"``: when the hole is wider than the training crops, a
    run on half-size frames comes first and the full-size chain starts from its
    fill; with a network that passes its noisy input through, a start at t = 2
    ends near that coarse fill (or its moving average over time, with
    ``coarse_smooth``). A hole that fits the crops runs as usual."""
    from infusion.infusion_method import moving_average

    monkeypatch.setattr(unet3d.UNet3D, "forward",
                        lambda self, cond, x_t, mask, t: x_t + 0.0 * self.head.weight.sum())
    video, mask = texture(t=4, h=32, w=32)
    mask[:] = False
    mask[:, 6:26, 8:24] = True  # 20 px across, crops of 16
    opts = dict(crop_size=16, num_intervals=1)
    coarse = fill(video, mask, seed=3, max_side=16, **opts)  # what the coarse level computes
    started = fill(video, mask, seed=3, init_fill="coarse", start_timestep=2, **opts)
    assert started.stats["coarse_side"] == 16
    assert started.stats["coarse"]["train_steps"] == 4
    assert np.array_equal(started.video[~mask], video[~mask])
    near = started.video[mask].astype(np.float64)
    assert np.abs(near - coarse.video[mask]).mean() < 6.0  # noise std at t=2 is ~0.02 of the range
    assert np.abs(near - fill(video, mask, seed=3, **opts).video[mask]).mean() > 20.0
    smooth = fill(video, mask, seed=3, init_fill="coarse", start_timestep=2, coarse_smooth=3, **opts)
    averaged = moving_average(coarse.video[None].astype(np.float32), 3)[0]  # the mask is static
    assert np.abs(smooth.video[mask] - averaged[mask]).mean() < 6.0
    assert np.abs(averaged[mask] - coarse.video[mask]).mean() > 10.0  # the average is another start
    small = np.zeros_like(mask)
    small[:, 8:20, 8:20] = True  # 12 px across: fits the crops, no coarse level
    plain = fill(video, small, seed=3, **opts)
    fitted = fill(video, small, seed=3, init_fill="coarse", start_timestep=2, **opts)
    assert fitted.stats["coarse_side"] == 0 and "coarse" not in fitted.stats
    assert np.array_equal(fitted.video, plain.video)  # started from noise at the top, as usual
    with pytest.raises(InputError, match="coarse_scale must be in"):
        InfusionConfig(coarse_scale=1.0)


def test_moving_average_of_the_coarse_fill():
    from infusion.infusion_method import moving_average

    frames = np.arange(5, dtype=np.float32).reshape(1, 5, 1, 1, 1) * np.ones((1, 5, 2, 2, 3), np.float32)
    out = moving_average(frames, 3)
    assert out.shape == frames.shape and out.dtype == np.float32
    assert np.allclose(out[0, :, 0, 0, 0], [1 / 3, 1, 2, 3, 11 / 3])  # (0+0+1)/3, ..., (3+4+4)/3
    assert moving_average(frames, 1) is frames
    with pytest.raises(InputError, match="coarse_smooth must be"):
        InfusionConfig(coarse_smooth=0)


class Interrupt:
    """Progress callback that stops the run at the n-th training/sampling step."""

    def __init__(self, at: int, how: str):
        self.at, self.how, self.count = at, how, 0

    def __call__(self, event):
        if event.get("event") != "progress":
            return
        self.count += 1
        if self.count == self.at:
            if self.how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)  # graceful: saved at the next step boundary
            else:
                raise KeyboardInterrupt  # abrupt: the last stage-end checkpoint is used


COARSE = dict(init_fill="coarse", start_timestep=40, crop_size=8)


@pytest.mark.parametrize("how, at, kw", [("raise", 9, {}), ("sigint", 5, {}), ("sigint", 11, {}),
                                         ("sigint", 5, COARSE), ("raise", 22, COARSE)])
def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, how, at, kw):
    """Also with a coarse fill first: interrupted inside it (step 5), or in the
    full-size run after it (step 22 of 18 + 18), whose resume reads it back."""
    video, mask = texture(**({"h": 32, "w": 32} if kw else {}))
    if kw:
        mask[:] = False
        mask[:, 10:22, 10:22] = True  # 12 px across: wider than the crops, within them at half size
    reference = fill(video, mask, seed=2, samples=2, **kw).samples
    wd = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        fill(video, mask, seed=2, samples=2, work_dir=wd, progress=Interrupt(at, how), **kw)
    if kw and at > 18:  # before the full-size run's first checkpoint: only the coarse fill is kept
        assert (wd / "coarse.npy").exists() and not (wd / "coarse").exists()
    else:
        assert (wd / ("coarse" if kw else "") / "checkpoint.pt").exists()
    resumed = fill(video, mask, seed=2, samples=2, work_dir=wd, resume=True, **kw).samples
    assert np.array_equal(resumed, reference)
    assert not wd.exists()  # removed after success


def test_resume_after_kill_9(tmp_path):
    video, mask = texture()
    np.save(tmp_path / "v.npy", video)
    np.save(tmp_path / "m.npy", mask)
    reference = fill(video, mask, seed=1).video
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from infusion.config import InfusionConfig
        from infusion.pipeline import run
        count = [0]
        def progress(e):
            if e.get("event") == "progress":
                count[0] += 1
                if count[0] == 10:
                    os.kill(os.getpid(), signal.SIGKILL)
        run(np.load("{tmp_path}/v.npy"), np.load("{tmp_path}/m.npy"), method="infusion",
            config=InfusionConfig(**{TINY!r}), seed=1, work_dir="{tmp_path}/work", progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    resumed = fill(video, mask, seed=1, work_dir=tmp_path / "work", resume=True).video
    assert np.array_equal(resumed, reference)


def test_skip_parametrization_with_more_steps_at_the_clean_end(monkeypatch):
    """The fast preset's objective and sampling end to end: the least noisy interval
    takes its own number of reverse steps, known pixels stay exact, the seed reproduces."""
    from infusion import sampling

    calls = []
    original = sampling.Sampler.step

    def spy(self, model, t, s):
        calls.append((t, s))
        return original(self, model, t, s)

    monkeypatch.setattr(sampling.Sampler, "step", spy)
    video, mask = texture()
    kw = dict(parametrization="edm", sigma_data=1.0, skip_sigma=0.05, loss_space="x0",
              sample_steps_last_interval=5)
    out = fill(video, mask, **kw)
    assert calls[-5:] == [(32, 24), (24, 16), (16, 8), (8, 0), (0, -1)]  # 100 steps in 3 intervals
    assert len(calls) == 2 + 2 + 5
    assert np.array_equal(out.video[~mask], video[~mask])
    assert np.array_equal(fill(video, mask, **kw).video, out.video)
    with pytest.raises(InputError, match="skip_sigma"):
        InfusionConfig(skip_sigma=-0.1)
    with pytest.raises(InputError, match="loss_space"):
        InfusionConfig(loss_space="eps")
    with pytest.raises(InputError, match="sample_steps_last_interval"):
        InfusionConfig(sample_steps_last_interval=-1)


def test_long_clip_is_processed_in_bounded_windows(monkeypatch):
    video, mask = texture(t=300, h=16, w=16)
    seen = []
    original = unet3d.UNet3D.forward

    def spy(self, cond, x_t, m, t):
        seen.append(int(np.prod(x_t.shape[2:])) * x_t.shape[0])
        return original(self, cond, x_t, m, t)

    monkeypatch.setattr(unet3d.UNet3D, "forward", spy)
    limit = 24 * 16 * 16
    out = fill(video, mask, max_window_voxels=limit, num_intervals=1, steps_per_interval=1,
               sample_steps_per_interval=1).video
    assert out.shape == video.shape and np.array_equal(out[~mask], video[~mask])
    assert max(seen) <= limit
    assert len(seen) >= 300 // 24  # the whole clip went through, window by window


@pytest.mark.skipif(not (CASES / "tiny-waterfall1").exists(), reason=f"benchmark cases not found at {CASES}")
def test_fast_fill_beats_a_flat_fill_on_a_real_clip():
    from infusion.masks import load_mask
    from infusion.metrics import psnr_hole
    from infusion.video_io import load_video

    case = CASES / "tiny-waterfall1"
    video, _ = load_video(case / "frames")
    mask = load_mask(case / "masks" / "box")
    video, mask = video[:16], mask[:16]
    # The preset's own budget (about 13 s here): a cut-down budget (4 x 40 steps) missed the
    # margin at seed 0 on 2 threads (+0.8 dB) and passed on 1 (+3.5 dB).
    result = run(video, mask, method="infusion", preset="fast", seed=0).video
    known = video[~mask].reshape(-1, 3).mean(axis=0)
    flat = np.where(mask[..., None], np.round(known).astype(np.uint8), video)
    assert psnr_hole(result, video, mask) > psnr_hole(flat, video, mask) + 1.0


def test_learning_rate_schedule_closed_form():
    from infusion.training import lr_at

    cfg = InfusionConfig(lr=1e-3, lr_schedule="cosine", lr_min_ratio=0.1, num_intervals=2, steps_per_interval=51,
                         warmup_steps=10)
    assert lr_at(cfg, 0) == pytest.approx(1e-4 * (0.1 + 0.9 * 0.5 * (1 + np.cos(0))))  # 1/10 of the warm-up
    assert lr_at(cfg, 50) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 50 / 101))))
    assert lr_at(cfg, 101) == pytest.approx(1e-4)  # the floor at the end
    const = InfusionConfig(lr=2e-3, warmup_steps=4)
    assert [lr_at(const, s) for s in range(5)] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3])


def test_training_budget_follows_the_sampling_region_and_the_interval_split():
    """A region larger than ``budget_voxels`` trains longer (capped); ``budget_ratio`` keeps the total."""
    video, mask = texture()  # 6 x 16 x 16 frames, no region of interest: 1536 voxels
    assert fill(video, mask).stats["train_steps"] == 3 * 4
    assert fill(video, mask, budget_voxels=768).stats["train_steps"] == 3 * 8  # 2x the reference region
    assert fill(video, mask, budget_voxels=100, budget_max_scale=1.5).stats["train_steps"] == 3 * 6  # capped
    assert fill(video, mask, budget_ratio=4.0, steps_per_interval=6).stats["train_steps"] == 18


def test_initial_fill_in_pieces_of_bounded_size(monkeypatch):
    """Another method's starting fill runs over pieces of whole frames of at most
    ``max_voxels``, blended over their overlaps: for a per-frame method (Telea)
    the blend equals the one-piece fill; a clip that fits is one piece."""
    import infusion.infusion_method as im
    from infusion.methods import RunContext

    rng = np.random.default_rng(0)
    video = rng.random((40, 16, 16, 3)).astype(np.float32)
    mask = np.zeros((40, 16, 16), bool)
    mask[:, 4:10, 5:11] = True
    real = im.get_method("telea")
    lengths = []

    class Counting:
        name = real.name

        @staticmethod
        def resolve_config():
            return real.resolve_config()

        @staticmethod
        def load():
            def run_piece(v, m, cfg, ctx):
                lengths.append(len(v))
                if observing:  # as flow does: every hole pixel but those of the piece's first frame
                    ctx.observed = m.copy()
                    ctx.observed[0] = False
                return real.load()(v, m, cfg, ctx)
            return run_piece

    observing = False
    monkeypatch.setattr(im, "get_method", lambda name: Counting)
    ctx = RunContext(seed=0)
    whole, seen = im.chunked_fill(video, mask, "telea", ctx, (0, 16, 0, 16))
    assert lengths == [40]
    assert seen.shape == mask.shape and not seen.any()  # Telea copies nothing from observations
    region, _ = im.chunked_fill(video, mask, "telea", ctx, (2, 14, 3, 13))
    assert np.array_equal(region, whole[:, 2:14, 3:13])
    lengths.clear()
    observing = True
    pieces, seen = im.chunked_fill(video, mask, "telea", ctx, (0, 16, 0, 16), max_voxels=10 * 16 * 16, overlap=4)
    assert len(lengths) == 6 and max(lengths) == 10  # ceil((40 - 4) / (10 - 4)) pieces of 10 frames
    assert np.abs(pieces - whole).max() < 1e-6
    # observed only where every piece covering the pixel observed it: not on the pieces' first frames
    starts = [0, 6, 12, 18, 24, 30]
    assert np.array_equal(seen, mask & ~np.isin(np.arange(40), starts)[:, None, None])
    assert ctx.observed is None  # not left behind for the caller
    observing = False
    assert not np.array_equal(pieces[mask], video[mask])  # the hole is filled, not passed through
    lengths.clear()
    mask[12:30] = True  # a piece would see nothing known: one piece instead
    im.chunked_fill(video, mask, "telea", ctx, (0, 16, 0, 16), max_voxels=10 * 16 * 16, overlap=4)
    assert lengths == [40]


def test_held_flow_pixels_end_as_the_flow_fill(monkeypatch):
    """``init_hold_t``: the pixels the flow fill copied from observations are the
    clean estimate of every step starting at ``init_hold_t`` or above. At 0
    they end exactly as the flow fill, at every keyframe level; the pixels
    flow did not observe, and a run without the hold, are redrawn."""
    from test_baselines import _translating_texture  # pytest puts tests/ on sys.path (no __init__.py)

    v = _translating_texture(T=24, H=24, W=64, speed=1)
    mask = np.zeros(v.shape[:3], bool)
    # The content moves right by 1 px a frame under a still hole 56 px wide:
    # what lies at column c of frame t is seen in another frame only if
    # c <= t + 3 (before) or c >= t + 37 (after).
    mask[:, 8:16, 4:60] = True
    video = (v * 255).round().astype(np.uint8)
    flow = run(video, mask, method="flow")
    kw = dict(init_fill="flow", start_timestep=50, keyframes="on", window_frames=8, window_overlap=2)
    held = fill(video, mask, init_hold_t=0, **kw)
    free = fill(video, mask, **kw)
    assert held.stats["sampling_levels"] > 1
    observed = held.stats["init_observed"]
    assert 0.3 < observed < 0.6  # 23 of 56 columns in most frames
    import infusion.baselines.flow as F
    from infusion.config import FlowConfig

    _, seen, _ = F.flow_inpaint(v.astype(np.float32), mask, FlowConfig())
    assert seen.sum() / mask.sum() == pytest.approx(observed, abs=1e-4)
    diff_held = np.abs(held.video.astype(int) - flow.video.astype(int))
    diff_free = np.abs(free.video.astype(int) - flow.video.astype(int))
    assert diff_held[seen].max() <= 1  # the flow value, up to rounding to 8 bits
    assert diff_held[mask & ~seen].mean() > 2  # the rest is drawn by the network
    assert diff_free[seen].mean() > 2
    with pytest.raises(InputError, match="init_hold_t .* needs init_fill=flow"):
        InfusionConfig(init_hold_t=30)


def test_patch_start_held_to_zero_is_the_patch_fill_and_runs_no_network():
    """``patch`` reports every hole pixel as copied from known ones: held down to
    t = 0 the result is the patch fill and sampling never runs the network;
    held down to t = 17 it runs in 2 of the 6 reverse steps (50, 34 | 33, 17 |
    16, 0), a third of the unheld run's work."""
    video, mask = texture(t=8, h=24, w=24)
    patch = run(video, mask, method="patch")
    kw = dict(init_fill="patch", start_timestep=50)
    held = fill(video, mask, init_hold_t=0, **kw)
    assert held.stats["init_observed"] == 1.0 and held.stats["sample_gflop"] == 0
    assert np.abs(held.video.astype(int) - patch.video.astype(int)).max() <= 1
    free = fill(video, mask, **kw)
    part = fill(video, mask, init_hold_t=17, **kw)
    assert free.stats["sample_gflop"] > 0
    assert part.stats["sample_gflop"] == pytest.approx(free.stats["sample_gflop"] / 3, rel=1e-3)


def test_working_size_closed_forms():
    """The frames shrink so that the hole's box over the clip fits ``max_region_pixels``
    and the longer side fits ``max_side``, whichever needs more; never enlarged."""
    from infusion.resolution import working_size

    mask = np.zeros((3, 100, 200), bool)
    mask[1, 10:60, 20:100] = True  # box 50 x 80 = 4000 px
    assert working_size(mask, 0, 0) == (100, 200)
    assert working_size(mask, 0, 4000) == (100, 200)  # fits
    assert working_size(mask, 0, 1000) == (50, 100)  # sqrt(1000 / 4000) = 0.5
    assert working_size(mask, 100, 0) == (50, 100)  # 100 / 200
    assert working_size(mask, 100, 250) == (25, 50)  # sqrt(250 / 4000) = 0.25 < 0.5
    assert working_size(mask, 400, 0) == (100, 200)  # never enlarged
    mask[2, 90:100, 190:200] = True  # the box spans the clip: rows 10-99, columns 20-199
    assert working_size(mask, 0, 4050) == (50, 100)  # sqrt(4050 / (90 * 180)) = 0.5
    assert working_size(mask, 0, 1) == (8, 8)  # at least 8 px a side
    assert working_size(np.zeros_like(mask), 0, 10) == (100, 200)


def test_large_frames_are_worked_at_the_region_budget_and_filled_at_full_size():
    """A hole whose box exceeds ``max_region_pixels`` is filled on frames scaled
    to fit it, and the fill enlarged back: with the ``patch`` start held to t = 0
    (no network) the result is the patch fill of the halved clip, enlarged by
    cubic interpolation into the full frames' hole; known pixels stay exact."""
    import cv2

    from infusion.resolution import resize_clip

    video, mask = texture(t=8, h=48, w=48)
    mask[:] = False
    mask[:, 12:36, 8:32] = True  # box 24 x 24 = 576 px
    kw = dict(init_fill="patch", start_timestep=50, init_hold_t=0)
    big = fill(video, mask, max_region_pixels=144, **kw)  # scale sqrt(144 / 576) = 0.5
    assert big.stats["work_size"] == [24, 24]
    assert np.array_equal(big.video[~mask], video[~mask])
    small, small_mask = resize_clip(video.astype(np.float32) / 255.0, mask, (24, 24))
    patch = run(small, small_mask, method="patch").video
    enlarged = np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_CUBIC) for f in patch])
    expected = np.rint(np.clip(enlarged, 0.0, 1.0) * 255.0)
    assert np.abs(big.video[mask].astype(int) - expected[mask]).max() <= 1
    native = fill(video, mask, **kw)
    assert native.stats["work_size"] == [48, 48]
    assert np.abs(native.video[mask].astype(int) - expected[mask]).mean() > 2.0  # a different fill


def test_large_frames_keep_one_working_size_across_segments_and_leak_nothing():
    """A split clip is worked at the clip's size in every segment; shrinking the
    frames lets no hidden pixel through (the shrunk mask covers every pixel that
    touches the hole); known pixels stay exact; the average is the samples' mean."""
    video, mask = texture(t=40, h=32, w=32)
    mask[:] = False
    mask[:, 8:24, 8:24] = True  # box 16 x 16 = 256 px
    other = video.copy()
    other[mask] = np.random.default_rng(5).integers(0, 256, other[mask].shape, dtype=np.uint8)
    kw = dict(max_region_pixels=64, segment_frames=24, samples=2, average=True)  # scale 0.5
    a, b = fill(video, mask, seed=1, **kw), fill(other, mask, seed=1, **kw)
    assert a.stats["work_size"] == [16, 16]
    assert [s["work_size"] for s in a.stats["segment_stats"]] == [[16, 16]] * 6  # 2 samples x 3 segments
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.average, b.average)
    assert all(np.array_equal(s[~mask], video[~mask]) for s in a.samples)
    assert np.array_equal(a.average[~mask], video[~mask])
    mean = np.rint(a.samples.astype(np.float64).mean(axis=0))
    assert np.abs(a.average[mask].astype(int) - mean[mask]).max() <= 1
    one = fill(video, mask, seed=1, max_region_pixels=64, samples=2, average=True)  # in one piece
    assert one.stats["work_size"] == [16, 16]
    mean = np.rint(one.samples.astype(np.float64).mean(axis=0))
    assert np.abs(one.average[mask].astype(int) - mean[mask]).max() <= 1


def test_keep_start_colour_removes_a_colour_shift_and_keeps_the_detail():
    """``redraw_lowpass``: a uniform colour shift of the fill from its start is
    taken out everywhere in the hole, a 2-px checkerboard of detail is kept
    (beyond 3 sigma of the hole's edge), and pixels outside the hole are untouched."""
    from infusion.infusion_method import keep_start_colour

    start = np.random.default_rng(0).uniform(0.3, 0.7, (1, 2, 40, 40, 3)).astype(np.float32)
    hole = np.zeros((2, 40, 40), bool)
    hole[:, 5:35, 5:35] = True
    inner = np.zeros_like(hole)
    inner[:, 12:28, 12:28] = True  # 7 px = 3.5 sigma inside the hole
    cast = start + np.where(hole[None, ..., None], np.float32([0.0, 0.0, 0.1]), 0.0).astype(np.float32)
    out = keep_start_colour(cast.copy(), start, hole, 2.0)
    assert np.abs(out[0][hole] - start[0][hole]).max() < 1e-5
    checker = ((np.indices((40, 40)).sum(axis=0) % 2) * 0.1 - 0.05).astype(np.float32)[..., None]
    detailed = (start + np.where(hole[None, ..., None], checker, 0.0)).astype(np.float32)
    out = keep_start_colour(detailed.copy(), start, hole, 2.0)
    assert np.abs(out[0][inner] - detailed[0][inner]).max() < 1e-3
    assert np.array_equal(out[0][~hole], detailed[0][~hole])
    with pytest.raises(InputError, match="redraw_lowpass"):
        InfusionConfig(redraw_lowpass=2.0)  # drawn from noise: there is no start to keep


def test_redraw_lowpass_keeps_the_patch_start_colour_end_to_end():
    """With the ``patch`` start redrawn from t = 50, a large ``redraw_lowpass``
    brings the fill's mean colour in the hole back to the patch fill's."""
    video, mask = texture(t=8, h=24, w=24)
    patch = run(video, mask, method="patch").video[mask].astype(np.float64).mean(axis=0)
    kw = dict(init_fill="patch", start_timestep=50)
    free = fill(video, mask, **kw).video[mask].astype(np.float64).mean(axis=0)
    kept = fill(video, mask, redraw_lowpass=50.0, **kw).video[mask].astype(np.float64).mean(axis=0)
    assert np.abs(kept - patch).max() < np.abs(free - patch).max()
    assert np.abs(kept - patch).max() < 1.0  # grey levels
