"""The Infusion method's driver: interval training and sampling, checkpoints.

``fill_infusion`` (registered as method "infusion") trains one network on
the video and runs the reverse process, interval by interval from the
noisiest (METHOD.md):

* interleaved (default): train interval k, then sample interval k, then
  go on with the same model and optimizer;
* not interleaved (the reference code's order): train every interval,
  keeping a snapshot of the model after each, then sample each interval
  with its snapshot — the same result in distribution. Keyframe-first
  sampling (:mod:`infusion.keyframes`) needs this order, since each level
  runs the whole chain after the coarser one is finished.

The run is a list of stages (``train k`` / ``sample k`` of a level). Its
position (stage, steps done in it) is checkpointed with the model,
optimizer, RNG states and the partial samples at the end of every stage,
every few minutes, and on Ctrl-C, so that a resumed run gives exactly what
an uninterrupted run with the same seed gives.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from .checkpoint import CHECKPOINT_NAME, deferred_interrupt, load_checkpoint, save_checkpoint
from .config import InfusionConfig, config_to_dict
from .denoiser import Denoiser
from .diffusion import NoiseSchedule, interval_bounds, sampling_plan
from .keyframes import SamplingPass, footage_correlation, keyframe_strides, longest_occlusion, sampling_passes
from .methods import RunContext, get_method
from .resolution import enlarge_frame, resize_clip, working_size
from .roi import Box, coarse_side, hole_extent, plan_windows, temporal_windows, training_crop_side, window_weights
from .sampling import Sampler, frame_chunks, to_unit_frames
from .training import Trainer
from .unet3d import UNet3D, count_parameters, forward_flops, size_multiple, temporal_reach

CHECKPOINT_EVERY_S = 300.0
COARSE_RESULT = "coarse.npy"
# Another method's starting fill is computed over pieces of at most this many
# voxels (whole frames), overlapping by INIT_OVERLAP frames and blended
# linearly. The flow fill peaks at about 250 bytes per voxel (one 115 x 240x432
# piece: 2.98 GB resident; 300 frames in three pieces: 3.40 GB), so a
# 1000-frame 240x432 clip in one piece would need about 25 GB; the patch fill
# (the fast preset's) took 2.02 GB for one such piece and 2.53 GB for three.
INIT_MAX_VOXELS = 12_000_000
INIT_OVERLAP = 16


@dataclass(frozen=True)
class Stage:
    kind: str  # "train" or "sample"
    interval: int
    length: int
    level: int = 0  # sampling level (keyframe-first sampling), 0 = coarsest


def plan_stages(config: InfusionConfig, plan: list[list[tuple[int, int]]], levels: int) -> list[Stage]:
    """Order of the training and sampling stages of a run."""
    train = [Stage("train", k, steps) for k, steps in enumerate(config.interval_steps)]
    sample = [[Stage("sample", k, len(plan[k]), lvl) for k in range(config.num_intervals)] for lvl in range(levels)]
    if config.interleaved and levels == 1:
        return [s for pair in zip(train, sample[0]) for s in pair]
    return train + [s for level in sample for s in level]


def choose_strides(config: InfusionConfig, mask: np.ndarray) -> list[int]:
    """Temporal strides of the sampling levels: ``[1]`` unless keyframe-first
    sampling is on ("on", or "auto" and the occlusion outlasts the network's reach)."""
    reach = temporal_reach(config.levels)
    if config.keyframes == "off":
        return [1]
    if config.keyframes == "auto" and longest_occlusion(mask) <= reach:
        return [1]
    return keyframe_strides(mask.shape[0], reach, config.keyframe_factor)


def _upsize(samples: np.ndarray, height: int, width: int) -> np.ndarray:
    """Every frame of float32 ``(S, T, h, w, 3)`` enlarged to ``(height, width)`` (:func:`enlarge_frame`)."""
    s, t = samples.shape[:2]
    out = np.empty((s, t, height, width, 3), np.float32)
    for i in range(s):
        for j in range(t):
            out[i, j] = enlarge_frame(samples[i, j], height, width)
    return out


class LevelSampler:
    """The samplers of keyframe-first sampling, one level at a time, over a canvas.

    ``canvas`` ``(S, 3, T, h, w)`` holds the region of interest of every
    sample: the known pixels, and the fill of every finished level. A
    level's sampler works on the level's frames, with the frames filled by
    coarser levels given as known.

    With one sample the canvas is ``video`` itself, filled in place (a
    clip-sized copy less): the run must be done with ``video`` for anything
    else, as it is once every interval is trained (keyframe-first sampling
    trains them all before sampling).
    """

    def __init__(self, video: torch.Tensor, mask: torch.Tensor, passes: list[SamplingPass], config: InfusionConfig,
                 schedule: NoiseSchedule, samples: int, seed: int, precision: str, multiple: int,
                 init: Optional[torch.Tensor] = None, corr_below: int = 0, hold: Optional[torch.Tensor] = None,
                 level_corr: Optional[list[float]] = None):
        self.mask, self.passes, self.config, self.init = mask, passes, config, init
        # noise correlation over the frames of each level above the finest (keyframe_noise_corr)
        self.level_corr = level_corr or [config.keyframe_noise_corr] * len(passes)
        self.hold = hold  # pixels kept at ``init`` down to config.init_hold_t (bool, shaped like mask)
        self.corr_below = corr_below  # steps landing below it draw time-correlated noise (final_noise_corr)
        self.schedule, self.samples, self.seed, self.precision = schedule, samples, seed, precision
        self.multiple = multiple
        self.canvas = video.expand(samples, *video.shape[1:]).clone() if len(passes) > 1 and samples > 1 else video
        self.level: Optional[int] = None
        self.sampler: Optional[Sampler] = None
        self.windows_per_level = [self._windows(level) for level in range(len(passes))]

    def _level_mask(self, p: SamplingPass) -> torch.Tensor:
        m = self.mask[:, :, p.index].clone()
        m[:, :, torch.from_numpy(p.known)] = False
        return m

    def _redraws(self, level: int) -> bool:
        """Whether ``level`` (the finest of several) redraws the coarser levels' frames (keyframe_redraw_t)."""
        return level == len(self.passes) - 1 > 0 and self.config.keyframe_redraw_t >= 0

    def _windows(self, level: int):
        p = self.passes[level]
        m = (self.mask[:, :, p.index] if self._redraws(level) else self._level_mask(p))[0, 0].cpu().numpy() > 0.5
        cfg = self.config
        return plan_windows(m, cfg.window_frames, cfg.window_overlap, cfg.max_window_voxels, cfg.roi_margin,
                            self.multiple, cfg.roi)[1]

    def enter(self, level: int) -> Sampler:
        """The sampler of ``level``, created on first use (closing the previous level)."""
        if self.level != level:
            if self.sampler is not None:
                self.finish()
            p = self.passes[level]
            frames = p.index  # views of the canvas and the start fill, not copies
            mask = self._level_mask(p)
            release = None
            if self._redraws(level):  # the coarser levels' hole pixels, redrawn in the least noisy steps
                release = (self.mask[:, :, frames] > 0.5) & (mask <= 0.5)
            # a level above the finest: its noise correlated over its frames (keyframe_noise_corr)
            tied = level < len(self.passes) - 1 and self.level_corr[level] > 0.0
            corr = self.level_corr[level] if tied else self.config.final_noise_corr
            self.sampler = Sampler(self.canvas[:, :, frames], mask,
                                   self.windows_per_level[level], self.schedule, self.samples,
                                   seed=self.seed + 7919 * level, method=self.config.sampler,
                                   eta=self.config.ddim_eta, precision=self.precision,
                                   init=None if self.init is None else self.init[:, :, frames],
                                   start=self.config.top_timestep, noise_corr=corr,
                                   corr_below=self.config.num_timesteps if tied else self.corr_below,
                                   init_corr=corr if tied else 0.0,
                                   hold=None if self.hold is None else self.hold[:, :, frames],
                                   hold_to=self.config.init_hold_t, release=release,
                                   release_at=self.config.keyframe_redraw_t)
            self.level = level
        return self.sampler

    def finish(self) -> None:
        """Write the current level's fill into the canvas."""
        if self.sampler is None or len(self.passes) == 1:
            return
        self.canvas[:, :, self.passes[self.level].index] = self.sampler.x0_hat

    def result(self) -> np.ndarray:
        """float32 ``(S, T, h, w, 3)`` in [0, 1]."""
        if len(self.passes) == 1:
            return self.sampler.result()
        self.finish()
        return to_unit_frames(self.canvas)

    def state_dict(self) -> dict:
        return {"level": -1 if self.level is None else self.level,
                "sampler": None if self.sampler is None else self.sampler.state_dict(),
                "canvas": self.canvas.cpu() if len(self.passes) > 1 else None}

    def load_state_dict(self, state: dict) -> None:
        if state["canvas"] is not None:
            self.canvas.copy_(state["canvas"])
        if state["level"] >= 0:
            self.level = None
            self.sampler = None
            self.enter(state["level"]).load_state_dict(state["sampler"])


def coarse_fill(video: np.ndarray, mask: np.ndarray, config: InfusionConfig, ctx: RunContext,
                side: int, roi: Box) -> np.ndarray:
    """This method's own fill of the clip downsized to a longer side of ``side``, enlarged back.

    Float32 ``(ctx.samples, T, y1 - y0, x1 - x0, 3)`` in [0, 1]: the region
    ``roi`` only, the part the full-size chain starts from. The run keeps
    its checkpoints in ``<work_dir>/coarse`` and its result in
    ``<work_dir>/coarse.npy``, so that a resumed job does not redo it.
    """
    saved = ctx.work_dir / COARSE_RESULT if ctx.work_dir is not None else None
    if saved is not None and ctx.resume and saved.exists():
        return np.load(saved)
    sub = RunContext(seed=ctx.seed, device=ctx.device, samples=ctx.samples, progress=ctx.progress,
                     work_dir=None if ctx.work_dir is None else ctx.work_dir / "coarse", resume=ctx.resume)
    if sub.work_dir is not None:
        sub.work_dir.mkdir(parents=True, exist_ok=True)
    filled = fill_infusion(video, mask, replace(config, init_fill="noise", start_timestep=-1, max_side=side), sub)
    y0, y1, x0, x1 = roi
    filled = np.ascontiguousarray(filled[:, :, y0:y1, x0:x1])
    ctx.stats["coarse"] = sub.stats
    if saved is not None:
        tmp = saved.with_suffix(".tmp.npy")
        np.save(tmp, filled)
        os.replace(tmp, saved)
        shutil.rmtree(sub.work_dir, ignore_errors=True)
    return filled


def keep_start_colour(result: np.ndarray, start: np.ndarray, hole: np.ndarray, sigma: float) -> np.ndarray:
    """``result`` with the slow part of its departure from ``start`` taken out, in the hole.

    ``result``: float32 ``(S, T, h, w, 3)`` in [0, 1], the sampled fills;
    ``start``: float32 ``(1 or S, T, h, w, 3)`` in [0, 1], the fill sampling
    started from; ``hole``: bool ``(T, h, w)``. In every frame, inside the
    hole, ``result - (G * d) / (G * 1_hole)`` (clipped to [0, 1]), where
    ``d = result - start`` in the hole and 0 elsewhere, and ``G`` a
    Gaussian blur of standard deviation ``sigma`` px (space only, edges
    reflected): the local mean of the departure over the hole's pixels is
    removed, so the start's colour and shading at scales above ``sigma``
    are kept, and the detail the network drew below it too. Pixels outside
    the hole are returned as they are. Works in place on ``result`` and
    returns it.
    """
    import cv2

    for f in range(result.shape[1]):
        inside = hole[f][..., None]
        weight = cv2.GaussianBlur(hole[f].astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        weight = np.maximum(weight, 1e-12)[..., None]
        for i in range(result.shape[0]):
            d = np.where(inside, result[i, f] - start[min(i, len(start) - 1), f], 0.0).astype(np.float32)
            low = cv2.GaussianBlur(d, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) / weight
            np.copyto(result[i, f], np.clip(result[i, f] - low, 0.0, 1.0), where=inside)
    return result


def moving_average(frames: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average over time of ``frames`` ``(S, T, H, W, 3)``, ``size`` frames wide.

    The ends repeat the first and last frames; ``size`` 1 returns the input.
    """
    if size <= 1:
        return frames
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(frames, size=size, axis=1, mode="nearest").astype(np.float32)


def chunked_fill(video: np.ndarray, mask: np.ndarray, name: str, ctx: RunContext, roi: Box,
                 max_voxels: int = INIT_MAX_VOXELS, overlap: int = INIT_OVERLAP) -> tuple[np.ndarray, np.ndarray]:
    """Method ``name``'s fill of ``video`` over the region ``roi``, in pieces of bounded memory.

    ``video`` float32 ``(T, H, W, 3)`` in [0, 1], ``mask`` bool ``(T, H, W)``.
    The clip is cut into runs of whole frames of at most ``max_voxels``
    voxels (at least ``overlap + 1`` frames) overlapping by ``overlap``
    frames (:func:`~infusion.roi.temporal_windows`); each is filled on its
    own and the results are blended linearly over the overlaps. A clip
    that fits, or one with a piece where nothing is known, is filled in one
    piece, exactly as the method fills it.
    Returns ``(fill, observed)`` over the region: float32
    ``(T, y1 - y0, x1 - x0, 3)``, the first sample, and bool
    ``(T, y1 - y0, x1 - x0)``, the pixels the method copied from known
    ones (``RunContext.observed``) in every piece that covers them (all
    False for a method that does not report them).
    """
    method = get_method(name)
    frames = len(video)
    per_piece = max(overlap + 1, max_voxels // (video.shape[1] * video.shape[2]))
    spans = temporal_windows(frames, per_piece, overlap)
    if any(mask[a:b].all() for a, b in spans):  # a piece with nothing known: fill the clip at once
        spans = [(0, frames)]
    fill, settings = method.load(), method.resolve_config()
    y0, y1, x0, x1 = roi
    out = np.zeros((frames, y1 - y0, x1 - x0, 3), np.float32)
    seen = np.zeros(out.shape[:3], np.float32)  # weight of the pieces that observed each pixel
    with ctx.progress.bar(f"initial fill ({method.name})", total=len(spans), unit="piece") as bar:
        for (a, b), w in zip(spans, window_weights(spans, frames)):
            ctx.observed = None
            piece = fill(video[a:b], mask[a:b], settings, ctx)[0, :, y0:y1, x0:x1]
            w = w[:, None, None].astype(np.float32)  # weights 1 for a single piece
            out[a:b] += w[..., None] * piece
            if ctx.observed is not None:
                seen[a:b] += w * ctx.observed[:, y0:y1, x0:x1]
            bar.update()
    ctx.observed = None
    return out, seen > 1.0 - 1e-6  # the weights of a frame sum to 1


def initial_fill(video: np.ndarray, mask: np.ndarray, config: InfusionConfig, ctx: RunContext,
                 device: torch.device, roi: Box, coarse: Optional[np.ndarray] = None
                 ) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The fill sampling starts from (``config.init_fill``) over the region ``roi``.

    Returns ``(init, observed)``: ``init`` ``(1 or ctx.samples, 3, T,
    y1 - y0, x1 - x0)`` in [-1, 1], or None for noise; ``observed`` bool
    ``(1, 1, T, y1 - y0, x1 - x0)``, the hole pixels the fill copied from
    known ones (see :func:`chunked_fill`), or None for the "coarse" and
    "noise" starts. ``coarse``: the result of :func:`coarse_fill` (already
    the region) when ``init_fill`` is "coarse".
    """
    if config.init_fill == "noise":
        return None, None
    y0, y1, x0, x1 = roi
    box = (slice(None), slice(y0, y1), slice(x0, x1))
    observed = None
    if config.init_fill == "coarse":
        filled = moving_average(coarse, config.coarse_smooth)
    else:
        filled, seen = chunked_fill(video, mask, config.init_fill, ctx, roi)
        filled = filled[None]
        observed = torch.from_numpy(seen & mask[box])[None, None].to(device)
    # frame by frame into the channels-first layout: no clip-sized temporaries
    hole, known = mask[box], video[box]
    init = torch.empty((filled.shape[0], 3) + filled.shape[1:4], dtype=torch.float32)
    for f in range(filled.shape[1]):
        frame = np.where(hole[f, :, :, None], filled[:, f], known[f]).astype(np.float32)
        init[:, :, f] = torch.from_numpy(frame.transpose(0, 3, 1, 2))
    return init.to(device).mul_(2.0).sub_(1.0), observed


def fill_infusion(video: np.ndarray, mask: np.ndarray, config: InfusionConfig, ctx: RunContext) -> np.ndarray:
    """Fill ``mask`` in ``video`` with a diffusion model trained on the video itself.

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool ``(T, H, W)``.
    Returns float32 ``(ctx.samples, T, H, W, 3)`` in [0, 1].
    """
    device = torch.device(ctx.device)
    given = config
    full_h, full_w = video.shape[1:3]
    size = working_size(mask, config.max_side, config.max_region_pixels)
    vid, msk = resize_clip(video, mask, size)
    resized = size != (full_h, full_w)
    if resized:
        ctx.progress.log(f"infusion: working at {size[1]}x{size[0]} (of {full_w}x{full_h})")
    ctx.stats["work_size"] = [size[1], size[0]]

    strides = choose_strides(config, msk)
    passes = sampling_passes(msk.shape[0], strides)
    if len(passes) > 1:
        ctx.progress.log(f"infusion: the hole lasts {longest_occlusion(msk)} frames, more than the network's "
                         f"{temporal_reach(config.levels)}: keyframe-first sampling at strides {strides}")

    hole = hole_extent(msk)
    if config.crop_size > 0 and config.crop_hole_ratio > 0:
        crop = training_crop_side(hole, config.crop_size, config.crop_hole_ratio, config.crop_max)
        ctx.progress.log(f"infusion: training crops of {crop} px for a hole of {hole} px "
                         f"(crop_hole_ratio={config.crop_hole_ratio})")
        config = replace(config, crop_size=crop)
    ctx.stats["train_crop"] = config.crop_size

    roi: Box = plan_windows(msk, config.window_frames, config.window_overlap, config.max_window_voxels,
                            config.roi_margin, size_multiple(config.levels), config.roi)[0]
    y0, y1, x0, x1 = roi
    coarse = None
    if config.init_fill == "coarse":
        side = coarse_side(max(vid.shape[1:3]), hole, config.crop_size, config.coarse_scale)
        if side:
            ctx.progress.log(f"infusion: the hole ({hole} px) is wider than the training crops "
                             f"({config.crop_size} px): a coarse fill at {side} px first, then the full-size "
                             f"chain from it noised to t={config.top_timestep}")
            coarse = coarse_fill(vid, msk, given, ctx, side, roi)  # before seeding this run's network
        else:
            config = replace(config, init_fill="noise", start_timestep=-1)
        ctx.stats["coarse_side"] = side
    region_voxels = msk.shape[0] * (y1 - y0) * (x1 - x0)
    scaled = config.scaled_budget(region_voxels)
    if scaled.steps_per_interval != config.steps_per_interval:
        ctx.progress.log(f"infusion: {scaled.steps_per_interval} training steps per interval for a sampling "
                         f"region of {region_voxels:,} voxels (budget_voxels={config.budget_voxels:,})")
        config = scaled

    # the start fill before the run's own clip-sized tensors: its peak does not add to theirs
    init, observed = initial_fill(vid, msk, config, ctx, device, roi, coarse)
    coarse = None

    torch.manual_seed(ctx.seed)  # network initialisation
    model = UNet3D(config.width, config.levels, config.time_channels, residual=config.residual,
                   time_padding=config.time_padding).to(device)
    # In place: a long clip must not be copied more often than needed.
    v = torch.from_numpy(np.array(vid.transpose(3, 0, 1, 2), order="C"))[None].to(device)
    v.mul_(2.0).sub_(1.0)
    m = torch.from_numpy(msk)[None, None].to(device)  # bool: a float copy would take 4x the memory
    v.masked_fill_(m.expand_as(v), 0.0)  # nothing below reads the hidden content
    schedule = NoiseSchedule.linear(config.num_timesteps, config.beta_start, config.beta_end)
    denoiser = Denoiser(model, schedule, config.parametrization, config.sigma_data,
                         config.skip_sigma or None, config.loss_space)
    trainer = Trainer(denoiser, v, m, schedule, config, ctx.seed, strides=tuple(strides),
                      keyframe_factor=config.keyframe_factor)

    if observed is not None:
        ctx.stats["init_observed"] = round(float(observed.sum()) / max(1.0, float(m[..., y0:y1, x0:x1].sum())), 4)
    top = config.top_timestep
    bounds = interval_bounds(config.num_timesteps, config.num_intervals, top)
    level_corr = None  # LevelSampler's default: config.keyframe_noise_corr at every level
    if len(passes) > 1 and config.keyframe_noise_corr < 0:  # from the footage around the hole
        region = (slice(None), slice(y0, y1), slice(x0, x1))
        level_corr = [float(np.nan_to_num(footage_correlation(vid[region], ~msk[region], p.stride)))
                      for p in passes[:-1]] + [0.0]
        ctx.progress.log("infusion: keyframe noise correlated " + ", ".join(
            f"{c:.2f} at stride {p.stride}" for c, p in zip(level_corr, passes[:-1])))
    levels = LevelSampler(v[..., y0:y1, x0:x1], m[..., y0:y1, x0:x1], passes, config, schedule, ctx.samples,
                          seed=ctx.seed + 1_000_003, precision=trainer.precision, multiple=model.multiple, init=init,
                          corr_below=bounds[-1][1] + 1,  # the least noisy interval is 0 .. bounds[-1][1]
                          hold=observed if config.init_hold_t >= 0 else None, level_corr=level_corr)
    if len(passes) > 1:
        ctx.stats["keyframe_noise_corr"] = [round(max(c, 0.0), 4) for c in levels.level_corr[:-1]]
    plan = sampling_plan(config.num_timesteps, config.num_intervals, config.sample_steps_per_interval,
                         config.resample_jump, config.resample_count, top,
                         config.sample_steps_last_interval or None)
    stages = plan_stages(config, plan, len(passes))
    interleaved = stages[1].kind == "sample" if len(stages) > 1 else True
    snapshots: list[dict] = []

    ckpt_path = ctx.work_dir / CHECKPOINT_NAME if ctx.work_dir is not None else None
    position = (0, 0)
    stats = {"train_s": 0.0, "sample_s": 0.0, "losses": [], "sample_flops": 0}
    level_flops = [ctx.samples * sum(forward_flops(model, w.t1 - w.t0, w.box[1] - w.box[0], w.box[3] - w.box[2])
                                     for w in level) for level in levels.windows_per_level]
    if ckpt_path is not None and ctx.resume:
        state = load_checkpoint(ckpt_path)
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            levels.load_state_dict(state["levels"])
            snapshots = state["snapshots"]
            position = tuple(state["position"])
            stats = {"sample_flops": 0, **state["stats"]}
            at = stages[min(position[0], len(stages) - 1)]
            ctx.progress.log(f"infusion: resuming at stage {position[0] + 1}/{len(stages)} "
                             f"({at.kind} interval {at.interval + 1}), step {position[1]}")

    def save(pos) -> None:
        if ckpt_path is None:
            return
        save_checkpoint(ckpt_path, {
            "position": list(pos), "trainer": trainer.state_dict(), "levels": levels.state_dict(),
            "snapshots": snapshots, "stats": stats, "config": config_to_dict(config),
        })

    moves = sum(len(p) for p in plan)
    ctx.progress.log(
        f"infusion: {count_parameters(model):,} parameters; {config.num_intervals} intervals, "
        f"{config.total_train_steps} training steps, {moves} sampling moves x {len(passes)} level(s); "
        f"sampling region {x1 - x0}x{y1 - y0} in {sum(len(w) for w in levels.windows_per_level)} window(s); "
        f"device {device}, {trainer.precision}")

    last_save = time.monotonic()
    stage_idx, done = position
    with deferred_interrupt() as interrupt:
        while stage_idx < len(stages):
            stage = stages[stage_idx]
            lo, hi = bounds[stage.interval] if config.interval_training else (0, top)
            label = f"{stage.kind} {stage.interval + 1}/{config.num_intervals}"
            if len(passes) > 1 and stage.kind == "sample":
                label += f" (level {stage.level + 1}/{len(passes)})"
            with ctx.progress.bar(label, total=stage.length, unit="step", initial=done) as bar:
                sampler = levels.enter(stage.level) if stage.kind == "sample" else None
                if sampler is not None and not interleaved:
                    model.load_state_dict(snapshots[stage.interval])
                while done < stage.length:
                    t0 = time.perf_counter()
                    if sampler is None:
                        loss = trainer.train_step(lo, hi, config.interval_mix if config.interval_training else 0.0)
                        stats["losses"].append(loss)
                        stats["train_s"] += time.perf_counter() - t0
                        bar.update(1, loss=float(np.mean(stats["losses"][-20:])))
                    else:
                        t, s = plan[stage.interval][done]
                        sampler.move(denoiser, t, s)
                        stats["sample_flops"] += level_flops[stage.level] if sampler.ran_network else 0
                        stats["sample_s"] += time.perf_counter() - t0
                        bar.update(1, t=t)
                    done += 1
                    if interrupt.requested:
                        save((stage_idx, done))
                        raise KeyboardInterrupt
                    if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
                        save((stage_idx, done))
                        last_save = time.monotonic()
            if stage.kind == "train" and not interleaved:
                snapshots.append(copy.deepcopy(model.state_dict()))
            stage_idx, done = stage_idx + 1, 0
            save((stage_idx, done))
            last_save = time.monotonic()

    train_shape = (min(config.clip_frames, vid.shape[0]), min(config.crop_size or vid.shape[1], vid.shape[1]),
                   min(config.crop_size or vid.shape[2], vid.shape[2]))
    ctx.stats.update(_report(config, model, stats, levels, train_shape))
    result = levels.result()
    if config.redraw_lowpass > 0 and init is not None:
        for f in frame_chunks(init):  # the start in [0, 1] a few frames at a time, not a clip-sized copy
            keep_start_colour(result[:, f], to_unit_frames(init[:, :, f]), msk[f, y0:y1, x0:x1],
                              config.redraw_lowpass)
    # the clip-sized tensors of the run, freed before the output is made
    sampler = levels = trainer = init = observed = v = m = None
    full = np.broadcast_to(vid, (ctx.samples,) + vid.shape).copy()
    full[:, :, y0:y1, x0:x1] = result
    if resized:
        full = _upsize(full, full_h, full_w)
    return full


def _report(config: InfusionConfig, model: UNet3D, stats: dict, levels: LevelSampler,
            train_shape: tuple[int, int, int]) -> dict:
    """Figures worth saving with the result: times, losses, achieved GFLOP/s.

    ``stats["sample_flops"]``: the network's work in the sampling steps that ran it
    (reported in GFLOP as ``sample_gflop``).
    """
    losses = stats["losses"]
    out = {
        "train_s": round(stats["train_s"], 2),
        "sample_s": round(stats["sample_s"], 2),
        "train_steps": len(losses),
        "final_loss": round(float(np.mean(losses[-50:])), 6) if losses else None,
        "parameters": count_parameters(model),
        "sampling_levels": len(levels.passes),
    }
    out["sample_gflop"] = round(stats["sample_flops"] / 1e9, 6)
    if stats["sample_s"] > 0:
        out["sample_gflops"] = round(stats["sample_flops"] / stats["sample_s"] / 1e9, 1)
    if losses and stats["train_s"] > 0:
        # forward + backward ~ 3 forward passes
        train_flops = 3 * forward_flops(model, *train_shape) * config.batch_size * len(losses)
        out["train_gflops"] = round(train_flops / stats["train_s"] / 1e9, 1)
    return out
