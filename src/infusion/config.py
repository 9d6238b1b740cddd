"""Typed settings of every method, with named presets.

A config is a frozen dataclass. Presets are named instances; the CLI's
``--set key=value`` and the API's ``overrides`` change single fields with the
field's own type. Every result carries the config it ran with
(:func:`config_to_dict`), printed and saved beside the output.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional

from .errors import InputError


@dataclass(frozen=True)
class InfusionConfig:
    """Settings of the internal-diffusion method (see METHOD.md).

    Network
        ``width`` channels at every level, ``levels`` resolution levels
        (full, 1/2, ... space only), ``time_channels`` sinusoidal embedding
        channels of t; ``residual`` adds identity paths around each pair of
        convolutions (not the paper; see :class:`infusion.unet3d.UNet3D`).
        ``time_padding`` "zeros" pads every convolution's input in time
        with zeros (the paper's network), "replicate" with the first and
        last frames repeated: then a scene that stands still gives an
        output that stands still in every frame, ends included.
    Diffusion
        DDPM with ``num_timesteps`` steps and betas linear from
        ``beta_start`` to ``beta_end``.
    Interval training
        The chain is split into ``num_intervals`` equal intervals, noisiest
        first; ``steps_per_interval`` training steps are spent on each
        (``interval_training=False``: the same total budget with t drawn from
        the whole chain, the paper's "no interval" ablation).
        ``budget_ratio`` != 1 splits the same total unevenly: geometrically,
        the least noisy interval getting ``budget_ratio`` times the noisiest
        one's share (see :attr:`interval_steps`). ``budget_voxels`` > 0 makes
        ``steps_per_interval`` the budget of a sampling region of that many
        voxels (frames x height x width of the region of interest); a larger
        region, with more to learn, gets proportionally more steps, at most
        ``budget_max_scale`` times as many (:meth:`scaled_budget`).
        ``interval_mix`` > 0 draws that share of the clips' t below the
        current interval instead: on a small budget, a network trained only
        on the noisiest t learns to ignore x_t and cannot relearn it in the
        next intervals' few steps (its x_t pathway dies); a share of the
        less noisy levels still to come keeps it alive. 0 is the paper. Sampling of an
        interval follows its training (``interleaved``), with
        ``sample_steps_per_interval`` reverse steps (the interval length =
        the full chain; fewer = respaced; the least noisy interval, where the
        finest detail is drawn, takes ``sample_steps_last_interval`` if not 0),
        by ``sampler`` "ddpm" (ancestral)
        or "ddim" (``ddim_eta`` = 0 deterministic). ``resample_jump`` > 0 and
        ``resample_count`` > 1 add RePaint resampling inside each interval:
        every ``resample_jump`` steps the chain goes back up as many steps
        and comes down again, ``resample_count`` times in all.
        ``init_fill`` "noise" starts from pure noise at the top of the chain
        (the paper); a method name ("patch", "flow", "telea", ...) starts
        from that method's fill noised to ``start_timestep`` (SDEdit,
        Meng et al. 2022): the intervals then split ``0 .. start_timestep``
        and the noisiest levels, which only learn the conditional mean,
        cost nothing. ``start_timestep`` -1 means the top (N-1).
        ``init_fill`` "coarse" starts from this method's own fill of the
        clip downsized by ``coarse_scale`` (a whole run at that size,
        enlarged back; a spatial pyramid of two levels, as patch-based
        methods use for large holes), but only when the hole is wider than
        the training crops (``crop_size``) and no wider than them at the
        coarse size: the network, trained on masks no larger than a crop,
        cannot lay out a larger hole at full size, while at the coarse size
        it can (see :func:`infusion.roi.coarse_side`). Otherwise the run
        starts from noise at the top as usual. ``coarse_smooth`` > 1
        averages the coarse fill over that many frames first (centred;
        1: as it is), so that its frame-to-frame jumps do not survive into
        the full-size chain, which draws the motion again.
        ``final_noise_corr`` correlates over time the fresh noise of the
        steps of the least noisy interval (0: independent in every frame,
        the paper; 1: the same in every frame): at low noise the network
        passes part of its noisy input through, and independent noise there
        is left in the fill as a flicker of fine grain.
        ``init_hold_t`` >= 0 (with ``init_fill`` "flow" or "patch") keeps
        the hole pixels that the starting fill copied from known ones as the
        clean estimate of every step that starts at that timestep or above;
        the network redraws them only in the steps below it (0: never). For
        "flow" these are the pixels traced to the same content seen in
        another frame (its first propagation round, see
        :func:`infusion.baselines.flow.flow_inpaint`), for "patch" the whole
        hole (then the network is not run in those steps at all). -1: off,
        every pixel is redrawn from ``start_timestep``.
        ``redraw_lowpass`` > 0 (with a starting fill) keeps, in the hole, the
        starting fill's colour and shading at scales above a Gaussian of that
        standard deviation in pixels, and takes from the sampled fill only
        its detail below it (see :func:`infusion.infusion_method.keep_start_colour`);
        0: off.
        ``keyframes`` "on" samples keyframes first when the clip is longer
        than the network's temporal reach, "auto" does so when the hole
        itself lasts longer than that reach, "off" never; levels are
        ``keyframe_factor`` apart in stride (see :mod:`infusion.keyframes`).
        ``keyframe_noise_corr`` correlates over the frames of every level
        above the finest the noise it is drawn from (its starting noise and
        every step's fresh noise, as
        :func:`infusion.diffusion.time_correlated_noise`), so that far-apart
        keyframes of a hidden region start from nearly the same noise and
        lay out the same content where the scene stands still; 0:
        independent noise; -1: as much as the known footage around the hole
        carries over the level's stride
        (:func:`infusion.keyframes.footage_correlation`).
        ``keyframe_redraw_t`` >= 0: from the first of its steps at or
        below that timestep, the finest level redraws the frames the
        coarser levels filled too (their fill noised to the step's
        timestep, then drawn with the rest), so that the finest detail of
        every frame is drawn together: without it the motion beats every
        ``keyframe_factor`` frames (a jump into and out of every keyframe).
        The layout stays the keyframes'; -1: off.
    Training data
        ``clip_frames`` consecutive frames per step, ``batch_size`` clips;
        ``crop_size`` > 0 trains on square crops of that side (chosen near the
        hole with probability ``crop_near_hole``), 0 on whole frames;
        ``crop_hole_ratio`` > 0 grows the crop to that multiple of the
        hole's largest extent in a frame, up to ``crop_max`` (0: the frame),
        so the training masks are as large as the hole (off in every preset:
        at the ``fast`` budget the larger crops learnt less, see there);
        ``max_side`` > 0 downsizes frames whose longer side exceeds it before
        anything else (0: native size); ``max_region_pixels`` > 0 downsizes
        them so that the hole's bounding box over the clip holds at most that
        many pixels (0: no limit); the fill is enlarged back to the frame
        size (see :func:`infusion.resolution.working_size`). ``train_masks`` is "blobs",
        "strokes" or "mixed".
    Objective
        ``parametrization`` "x0" (the network predicts the clean video, the
        paper) or "edm" (Karras et al. output preconditioning with data
        std ``sigma_data`` and skip level ``skip_sigma``, 0 meaning
        ``sigma_data``, see :mod:`infusion.denoiser`), trained with the error
        of the network's output at unit scale (``loss_space`` "output",
        Karras et al.) or of the clean estimate ("x0"); ``loss_region``
        "known" (every pixel outside the hole, the paper) or "masked"
        (only the pixels hidden by the training mask).
    Optimiser
        Adam with learning rate ``lr``; ``lr_schedule`` "constant" or
        "cosine" over the whole run (down to ``lr_min_ratio`` * lr), after a
        linear warm-up over the first ``warmup_steps`` steps; gradients are
        rescaled to a global norm of at most ``grad_clip`` (0: never). Both
        keep the first large Adam steps of a short budget from killing the
        ReLU paths (the fill then turns flat).
    Inference
        ``window_frames`` frames per temporal window (0: the whole clip at
        once when it fits ``max_window_voxels``), overlapping by
        ``window_overlap`` frames and blended linearly. ``roi`` restricts
        sampling to the mask's bounding box grown by ``roi_margin`` pixels.
    Compute
        ``precision`` of the network: "fp32", "bf16" (mixed precision) or
        "auto" (bf16 where the hardware runs it natively, else fp32).
    """

    # network
    width: int = 32
    levels: int = 4
    time_channels: int = 16
    residual: bool = False
    time_padding: str = "zeros"
    # diffusion
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # interval schedule
    num_intervals: int = 20
    steps_per_interval: int = 100
    budget_ratio: float = 1.0
    budget_voxels: int = 0
    budget_max_scale: float = 4.0
    interval_training: bool = True
    interval_mix: float = 0.0
    interleaved: bool = True
    sample_steps_per_interval: int = 50
    sample_steps_last_interval: int = 0
    sampler: str = "ddpm"
    ddim_eta: float = 1.0
    resample_jump: int = 0
    resample_count: int = 1
    init_fill: str = "noise"
    start_timestep: int = -1
    coarse_scale: float = 0.5
    coarse_smooth: int = 1
    final_noise_corr: float = 0.0
    init_hold_t: int = -1
    redraw_lowpass: float = 0.0
    keyframes: str = "off"
    keyframe_factor: int = 4
    keyframe_noise_corr: float = 0.0
    keyframe_redraw_t: int = -1
    # training data
    clip_frames: int = 12
    batch_size: int = 1
    crop_size: int = 0
    crop_near_hole: float = 0.5
    crop_hole_ratio: float = 0.0
    crop_max: int = 0
    max_side: int = 0
    max_region_pixels: int = 0
    train_masks: str = "blobs"
    # objective
    parametrization: str = "x0"
    sigma_data: float = 0.5
    skip_sigma: float = 0.0
    loss_space: str = "output"
    loss_region: str = "known"
    # optimiser
    lr: float = 1e-4
    lr_schedule: str = "constant"
    lr_min_ratio: float = 0.1
    warmup_steps: int = 0
    grad_clip: float = 0.0
    # inference
    window_frames: int = 0
    window_overlap: int = 8
    max_window_voxels: int = 48 * 256 * 256
    roi: bool = False
    roi_margin: int = 32
    # compute
    precision: str = "fp32"

    def __post_init__(self) -> None:
        checks = [
            (self.width >= 1, "width must be >= 1"),
            (1 <= self.levels <= 6, "levels must be in 1..6"),
            (self.time_channels >= 2 and self.time_channels % 2 == 0, "time_channels must be even and >= 2"),
            (self.num_timesteps >= 1, "num_timesteps must be >= 1"),
            (0 < self.beta_start <= self.beta_end < 1, "need 0 < beta_start <= beta_end < 1"),
            (1 <= self.num_intervals <= self.num_timesteps, "num_intervals must be in 1..num_timesteps"),
            (self.start_timestep < 0 or self.num_intervals <= self.start_timestep + 1,
             "num_intervals must not exceed start_timestep + 1"),
            (self.steps_per_interval >= 0, "steps_per_interval must be >= 0"),
            (self.budget_ratio > 0, "budget_ratio must be > 0"),
            (self.budget_voxels >= 0, "budget_voxels must be >= 0 (0: a fixed budget)"),
            (self.budget_max_scale >= 1.0, "budget_max_scale must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.grad_clip >= 0.0, "grad_clip must be >= 0 (0: no clipping)"),
            (0.0 <= self.interval_mix < 1.0, "interval_mix must be in [0, 1)"),
            (self.sample_steps_per_interval >= 1, "sample_steps_per_interval must be >= 1"),
            (self.sample_steps_last_interval >= 0, "sample_steps_last_interval must be >= 0 (0: the same)"),
            (self.sampler in ("ddpm", "ddim"), "sampler must be 'ddpm' or 'ddim'"),
            (0.0 <= self.ddim_eta <= 1.0, "ddim_eta must be in [0, 1]"),
            (self.resample_jump >= 0 and self.resample_count >= 1, "resample_jump must be >= 0, resample_count >= 1"),
            (self.keyframes in ("off", "on", "auto"), "keyframes must be off, on or auto"),
            (-1 <= self.start_timestep < self.num_timesteps, "start_timestep must be -1 or in 0..num_timesteps-1"),
            (self.init_fill != "noise" or self.start_timestep in (-1, self.num_timesteps - 1),
             "start_timestep below the top needs an init_fill method "
             "(from noise: init_fill=noise with start_timestep=-1)"),
            (self.init_fill not in ("infusion",), "init_fill cannot be infusion itself (\"coarse\" runs it "
             "at a smaller size)"),
            (0.0 < self.coarse_scale < 1.0, "coarse_scale must be in (0, 1)"),
            (self.coarse_smooth >= 1, "coarse_smooth must be >= 1 (1: no smoothing)"),
            (0.0 <= self.final_noise_corr <= 1.0, "final_noise_corr must be in [0, 1] (0: independent noise)"),
            (self.init_hold_t >= -1, "init_hold_t must be -1 (off) or a timestep >= 0"),
            (self.redraw_lowpass >= 0, "redraw_lowpass must be >= 0 (0: off)"),
            (self.redraw_lowpass == 0 or self.init_fill != "noise",
             "redraw_lowpass keeps the starting fill's colour: it needs init_fill=flow, patch or coarse"),
            (self.init_hold_t < 0 or self.init_fill in ("flow", "patch"),
             "init_hold_t holds the pixels the initial fill copied from known ones: it needs init_fill=flow "
             "or patch (init_hold_t=-1: off)"),
            (self.keyframe_factor >= 2, "keyframe_factor must be >= 2"),
            (self.time_padding in ("zeros", "replicate"), "time_padding must be zeros or replicate"),
            (self.keyframe_noise_corr == -1 or 0.0 <= self.keyframe_noise_corr <= 1.0,
             "keyframe_noise_corr must be in [0, 1] (0: independent noise) or -1 (from the footage)"),
            (-1 <= self.keyframe_redraw_t < self.num_timesteps,
             "keyframe_redraw_t must be a timestep (0 .. num_timesteps - 1) or -1 (off)"),
            (self.clip_frames >= 1, "clip_frames must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.crop_size == 0 or self.crop_size >= 8, "crop_size must be 0 (whole frames) or >= 8"),
            (0.0 <= self.crop_near_hole <= 1.0, "crop_near_hole must be in [0, 1]"),
            (self.crop_hole_ratio >= 0.0, "crop_hole_ratio must be >= 0"),
            (self.crop_max == 0 or self.crop_max >= 8, "crop_max must be 0 (no bound) or >= 8"),
            (self.max_side == 0 or self.max_side >= 16, "max_side must be 0 (native) or >= 16"),
            (self.max_region_pixels >= 0, "max_region_pixels must be >= 0 (0: no limit)"),
            (self.train_masks in ("blobs", "strokes", "mixed"), "train_masks must be blobs, strokes or mixed"),
            (self.parametrization in ("x0", "edm"), "parametrization must be x0 or edm"),
            (self.sigma_data > 0, "sigma_data must be > 0"),
            (self.skip_sigma >= 0, "skip_sigma must be >= 0 (0: sigma_data)"),
            (self.loss_space in ("output", "x0"), "loss_space must be output or x0"),
            (self.loss_region in ("known", "masked"), "loss_region must be known or masked"),
            (self.lr > 0, "lr must be > 0"),
            (self.lr_schedule in ("constant", "cosine"), "lr_schedule must be constant or cosine"),
            (0.0 <= self.lr_min_ratio <= 1.0, "lr_min_ratio must be in [0, 1]"),
            (self.window_frames == 0 or self.window_frames >= 2, "window_frames must be 0 or >= 2"),
            (self.window_overlap >= 0, "window_overlap must be >= 0"),
            (self.window_frames == 0 or self.window_overlap < self.window_frames,
             "window_overlap must be smaller than window_frames"),
            (self.max_window_voxels >= 4096, "max_window_voxels must be >= 4096"),
            (self.roi_margin >= 0, "roi_margin must be >= 0"),
            (self.precision in ("fp32", "bf16", "auto"), "precision must be fp32, bf16 or auto"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(f"infusion config: {msg}")

    @property
    def top_timestep(self) -> int:
        """The noisiest timestep sampled: N-1, or ``start_timestep`` from an initial fill."""
        return self.num_timesteps - 1 if self.start_timestep < 0 else self.start_timestep

    @property
    def interval_steps(self) -> tuple[int, ...]:
        """Training steps of each interval, noisiest first.

        ``steps_per_interval`` each when ``budget_ratio`` is 1 (the paper);
        otherwise the same total split geometrically, the least noisy
        interval getting ``budget_ratio`` times the noisiest one's share
        (rounded so that the total is kept exactly).
        """
        n, total = self.num_intervals, self.num_intervals * self.steps_per_interval
        if self.budget_ratio == 1.0 or n == 1:
            return (self.steps_per_interval,) * n
        weights = [self.budget_ratio ** (k / (n - 1)) for k in range(n)]
        edges = [round(total * sum(weights[:k]) / sum(weights)) for k in range(n + 1)]
        return tuple(b - a for a, b in zip(edges, edges[1:]))

    def scaled_budget(self, region_voxels: int) -> "InfusionConfig":
        """This config with ``steps_per_interval`` scaled to a sampling region of ``region_voxels``.

        ``steps_per_interval * clip(region_voxels / budget_voxels, 1, budget_max_scale)``,
        rounded; unchanged when ``budget_voxels`` is 0.
        """
        if self.budget_voxels == 0:
            return self
        scale = min(max(region_voxels / self.budget_voxels, 1.0), self.budget_max_scale)
        return replace(self, steps_per_interval=round(self.steps_per_interval * scale))

    @property
    def total_train_steps(self) -> int:
        return self.num_intervals * self.steps_per_interval


INFUSION_PRESETS: dict[str, InfusionConfig] = {
    # The paper: 20 intervals of 50 steps, 10k training steps per interval,
    # 20-frame clips at most 432x240, Adam 1e-4, the full 1000-step chain.
    # The paper draws from noise, where a region hidden for longer than the
    # network's reach drifts: this preset pads the network in time with the
    # clip's end frames (a still scene stays still), samples keyframes first
    # when the hole outlasts that reach and ties the keyframes' noise as much
    # as the footage around the hole carries over (see the README's "Long
    # occlusions" for the figures, measured at fast's budget).
    "paper": InfusionConfig(steps_per_interval=10_000, clip_frames=20, max_side=432,
                            time_padding="replicate", keyframes="auto", keyframe_noise_corr=-1,
                            keyframe_redraw_t=29),
    # The authors' public code defaults: 100 steps per interval, 12-frame
    # clips at native size, the full chain.
    "reference": InfusionConfig(steps_per_interval=100, clip_frames=12, max_side=0),
    # The CPU preset (issue 5): a 16-wide net in bfloat16 where the CPU has
    # it, batches of two 8x32x32 clips cropped near the hole (crops grown to
    # 1.2 x the hole were worse at this budget: long-fountain lpips_hole
    # 0.48 -> 0.72, dyntex-fountain box 0.27 -> 0.50 at 2.5x the time), 10 intervals of
    # 50 steps at a cosine-decayed 3e-3 with 30 % of each batch drawn below
    # the current interval (keeps the x_t pathway alive), two DDIM steps per
    # interval, computed on the hole's region of interest only. The first
    # interval's 50 steps warm the rate up linearly and gradients are clipped
    # to norm 1: without them the first large steps often leave the fill flat
    # (tiny fire5/flame/waterfall1: lpips_hole 0.096 -> 0.074, motion_ratio
    # 0.05-2.8 -> 0.33-1.26). The residual network (``residual=True``) was
    # measured and left off: mean lpips_hole tiny 0.064 -> 0.061, medium
    # 0.252 -> 0.243, standard 0.209 -> 0.207 (each within the seed-to-seed
    # spread), 4-10 % slower, medium motion_ratio 1.17 -> 0.65.
    # Peak rate 3e-3 instead of 1e-3 (each interval has only 50 steps to
    # adapt): mean lpips_hole tiny 0.064 -> 0.054, medium 0.252 -> 0.259,
    # standard 0.209 -> 0.212 (the last two within the spread), but
    # long-fountain 0.48 -> 0.66 (one run; a flat fill either way, flow
    # 0.077); 5e-3 was worse on tiny (box masks 0.076 -> 0.084).
    # Drawing t from the whole chain instead of intervals (same budget) was
    # much worse (tiny box fire5/flame/goldenlines 0.13/0.11/0.16).
    # The budget grows with the sampling region (500 steps for 48x64x64 or
    # less, up to 1000): twice the steps took medium (12x256x256) from
    # 0.263 to 0.201 (every case better, motion_ratio 0.34-2.26 -> 0.62-0.86)
    # and left standard (48x128x128) where it was (blob masks better, box
    # worse), in 2x the training time, within both tiers' time targets
    # (1-thread runs; the 2-thread bench of the preset gave medium 0.237,
    # standard 0.220: the seed-to-seed spread is that large; over seeds
    # 0-2, tiny 0.062 +- 0.006 and medium 0.230 +- 0.013).
    # Steps weighted towards the less noisy intervals (``budget_ratio`` 3)
    # gave tiny 0.062 -> 0.056 over seeds 0-2 (seed 0 worse, 1 and 2
    # better; 16 of 30 runs better, about one seed spread) with two runs
    # over 60 s: left at 1.
    # The clean estimate passes the noisy input through at the least noisy
    # steps (``parametrization="edm"`` with ``skip_sigma`` 0.05 and
    # ``sigma_data`` 1: the paper's x0 prediction above noise level ~0.1,
    # a small correction of x_t below it; trained on the plain x0 error) and
    # the least noisy interval is sampled in 5 steps instead of 2. The plain
    # x0 network could not pass a nearly clean input through: at t = 2 its
    # error on hidden training pixels was 0.018 against 0.0004 for the
    # identity, so every fill ended as its blur. Over seeds 0-2: tiny
    # 0.062 -> 0.048 (24 of 30 runs better, motion_ratio 0.78 -> 1.15,
    # 49 s mean); the skip alone (2 steps) or 5 steps everywhere were less
    # good on tiny box masks (0.073, 0.069 against 0.066). Other skip
    # levels were worse: 0.1 (2 steps) 0.077 against 0.073 for 0.05
    # (2 steps), and it leaves noise in smooth water; 0.03 with 5 last
    # steps 0.102 against 0.066.
    # Five intervals of 100 steps (4 reverse steps each) instead of ten of
    # 50: tiny 0.048 -> 0.050, medium 0.236 -> 0.237 (seeds 0-2), standard
    # 0.205 -> 0.233 (seeds 0 and 1, the flashing light's motion_ratio up
    # to 4): left at ten. Sampling with a moving average of the weights
    # (decay 0.9, a probe outside the code): tiny 0.048 -> 0.047, 15 of 30
    # runs better, within the spread: not added.
    # Holes wider than the 32-px crops, up to 64 px, start from a half-size
    # fill (``init_fill="coarse"``), averaged over 11 frames and noised to
    # t = 300. Standard (47-51-px holes), seeds 0 and 1: 0.190 -> 0.174
    # and 0.242 -> 0.193 (13 of 16 runs better; flow 0.178), motion_ratio
    # 1.03 -> 1.20 and 1.31 -> 1.28, about 1.3x the time; long-fountain
    # (40 px): see the README. Without the average the flashing light's
    # fill flickered (the half-size fill's brightness jumps from frame to
    # frame and a start at t = 300 keeps it): motion_ratio 1.92 and 1.60
    # (flashing light 5.9 and 4.4 at seed 0; 5 frames: 3.2 and 2.9; 11
    # frames: 2.4 and 2.3). Narrower holes (tiny tier) run as before, bit
    # for bit. Medium's 100-px holes are 50 px at half size: the coarse
    # fill was worse there (0.232 -> 0.272; at quarter size 0.232 ->
    # 0.269, 1 of 6 better), hence the 64-px bound. Starting at t = 450
    # or 600 kept less of the coarse layout: standard 0.184 and 0.189,
    # long-fountain 0.47 at 600 (medium, half size: 0.273 at 450, 0.223 at
    # 600, 3 of 6 better; all seed 0, no average).
    # Starting from the ``flow`` fill instead (noised to t = 300) was
    # better still: standard 0.184 -> 0.157 (15 of 16 runs better than the
    # coarse start, seeds 0 and 1), tiny 0.061 -> 0.043 (seed 0, 6 of 10),
    # medium level (0.232 -> 0.236), long-fountain 0.271 -> 0.252, and
    # faster (no half-size run; flow takes seconds). A start at t = 200
    # kept more of flow's frozen look: standard 0.180, motion_ratio 1.57.
    # But the tiny clips' fills flickered (motion_ratio 1.18 -> 1.41: the
    # smooth ocean at 3.0, its fine grain changing in every frame): the
    # least noisy interval's fresh noise correlated 0.9 over time
    # (``final_noise_corr``) brought tiny to 1.26 and standard from 1.23
    # to 1.09 at the same lpips_hole (tiny 0.0431 -> 0.0430, standard
    # 0.1574 -> 0.1584).
    # Holding the pixels of the starting fill that were copied from known
    # ones as the clean estimate down to t = 10 (``init_hold_t``), so that
    # the network redraws them only in the last two steps, was better still,
    # and best from the ``patch`` fill (every hole pixel rebuilt from known
    # patches), seed 0: tiny 0.0430 -> 0.0230 (flow held to t = 30: 0.0390;
    # patch held to 20: 0.0272; patch noised to t = 10, one interval of 500
    # steps: 0.0291), medium 0.2370 -> 0.1443, standard 0.1588 -> 0.0954,
    # with the motion ratio 0.93, 0.82 and 0.94. ``patch`` alone scores
    # 0.0211, 0.141 and 0.089 (motion 0.83, 0.86 and 0.90): at this budget
    # the network's redraw of the last noise levels is about even with
    # the copy it starts from (better on 10 of 24 runs). See the README for the
    # figures of this preset.
    # The network's redraw of the last steps can shift the colour of a
    # large flat region: on a 1920x1080 object removal (worked at 460x259)
    # a wall in the hole came out bluish, +1.5/+3.0/+5.1 on R/G/B against
    # the patch fill it started from (the patch fill itself was clean). So
    # the fill keeps the patch fill's colour and shading above a Gaussian
    # of 4 px and takes only the detail below it from the network
    # (``redraw_lowpass``): the cast is gone (wall shift 0), and at seed 0
    # tiny 0.0230 -> 0.0230, medium 0.1443 -> 0.1439, standard 0.0954 ->
    # 0.0950 (15 of 24 runs better), motion ratio 0.93, 0.81 and 0.93,
    # same time.
    # Footage larger than the paper's 432x240 frames is worked at the size
    # where the hole's bounding box holds at most 432 x 240 pixels
    # (``max_region_pixels``), and the fill enlarged back: a small hole in
    # HD or 4K footage keeps its native detail, a large one costs what it
    # would at 432x240 (see the README's "Large frames").
    # Keyframes (a hole outlasting the network's 33 frames) have their fine
    # detail redrawn with the frames between them (``keyframe_redraw_t``, at
    # the least noisy interval's top, 29): without it the motion jumped
    # into and out of every 4th frame (boiling water: 0.018 against 0.0125
    # per frame); with it, 1.0 times. At seed 0: tiny 0.0230 -> 0.0234,
    # standard 0.0950 -> 0.0954, motion ratio 0.93 -> 0.81 and 0.93 -> 0.84
    # (the beat was the extra motion).
    "fast": InfusionConfig(
        width=16, precision="auto", batch_size=2, crop_size=32, clip_frames=8,
        num_intervals=10, steps_per_interval=50, interval_mix=0.3,
        lr=3e-3, lr_schedule="cosine", warmup_steps=50, grad_clip=1.0,
        budget_voxels=48 * 64 * 64, budget_max_scale=2.0,
        sample_steps_per_interval=2, sample_steps_last_interval=5, sampler="ddim", ddim_eta=1.0,
        parametrization="edm", sigma_data=1.0, skip_sigma=0.05, loss_space="x0",
        roi=True, window_frames=24, window_overlap=8, keyframes="auto", keyframe_redraw_t=29,
        init_fill="patch", start_timestep=300, final_noise_corr=0.9, init_hold_t=10,
        redraw_lowpass=4.0, max_region_pixels=432 * 240,
    ),
}
DEFAULT_INFUSION_PRESET = "fast"


@dataclass(frozen=True)
class HarmonicConfig:
    """Space-time heat-equation fill (``harmonic``).

    The fill solves the discrete Laplace equation at every masked pixel with
    the known pixels as boundary values. ``temporal_weight`` weighs the links
    between frames against those in a frame (0: frame by frame). Systems of
    at most ``direct_max`` unknowns are solved directly (sparse LU); larger
    ones by multigrid-preconditioned conjugate gradients, until the relative
    residual is below ``tol`` or after ``max_iterations`` iterations.
    """

    temporal_weight: float = 1.0
    tol: float = 1e-6
    max_iterations: int = 300
    direct_max: int = 30_000

    def __post_init__(self) -> None:
        if self.temporal_weight < 0:
            raise InputError("harmonic config: temporal_weight must be >= 0")
        if not 0 < self.tol < 1:
            raise InputError("harmonic config: tol must be in (0, 1)")
        if self.max_iterations < 1 or self.direct_max < 0:
            raise InputError("harmonic config: max_iterations must be >= 1 and direct_max >= 0")


@dataclass(frozen=True)
class TVConfig:
    """Total-variation inpainting (``tv``), primal-dual (Chambolle-Pock).

    Minimises the isotropic, colour-coupled total variation of the video
    (time derivative weighted by ``temporal_weight``; 0: frame by frame)
    with the known pixels held fixed, on the mask's bounding box.
    ``iterations`` primal-dual steps at most, stopping early once the energy
    changed by less than ``tol`` (relative) over the last 50 steps (0: never).
    ``init`` is the starting point: "harmonic" (the heat-equation fill, a
    good start that shortens the run) or "mean" (the mean known colour).
    """

    iterations: int = 500
    temporal_weight: float = 1.0
    tol: float = 1e-4
    init: str = "harmonic"

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.temporal_weight < 0:
            raise InputError("tv config: iterations must be >= 1 and temporal_weight >= 0")
        if self.tol < 0:
            raise InputError("tv config: tol must be >= 0")
        if self.init not in ("harmonic", "mean"):
            raise InputError("tv config: init must be harmonic or mean")


@dataclass(frozen=True)
class FlowConfig:
    """Flow-guided propagation (``flow``), the classical core of FGVC / ProPainter.

    1. DIS optical flow (``dis_preset``) between consecutive frames, on frames
       whose hole is first filled in space (the hidden content is never seen);
    2. the flow inside the hole, grown by ``flow_dilate`` pixels, is replaced
       by its space-time harmonic completion;
    3. every hole pixel follows the completed flow forwards and backwards,
       frame after frame, until it lands on a known pixel; a step whose
       forward-backward flow disagrees by more than ``consistency_px`` pixels
       ends the chain. ``combine``: "blend" averages the two directions'
       colours weighted by 1/distance in frames, "nearest" takes the
       temporally nearer one;
    4. what no chain reaches: the frame with the most such pixels is filled in
       space (``spatial``: "harmonic" or "telea") and propagated again, at
       most ``max_keyframes`` times; the rest is filled in space frame by
       frame.
    """

    dis_preset: str = "medium"
    consistency_px: float = 2.0
    flow_dilate: int = 6
    combine: str = "blend"
    spatial: str = "harmonic"
    max_keyframes: int = 8

    def __post_init__(self) -> None:
        if self.dis_preset not in ("ultrafast", "fast", "medium"):
            raise InputError("flow config: dis_preset must be ultrafast, fast or medium")
        if self.consistency_px <= 0:
            raise InputError("flow config: consistency_px must be > 0")
        if self.flow_dilate < 0 or self.max_keyframes < 0:
            raise InputError("flow config: flow_dilate and max_keyframes must be >= 0")
        if self.combine not in ("blend", "nearest"):
            raise InputError("flow config: combine must be blend or nearest")
        if self.spatial not in ("telea", "harmonic"):
            raise InputError("flow config: spatial must be telea or harmonic")


@dataclass(frozen=True)
class PatchConfig:
    """Patch-based video inpainting (``patch``, Wexler et al. 2007, Newson et al. 2014).

    Patches
        ``patch_size`` pixels across in space and ``patch_frames`` in time
        (both odd; shrunk to fit a short clip or a small region).
    Pyramid
        ``levels`` of the space-only pyramid (0: automatic, halving until the
        hole is about a patch wide); ``margin`` pixels of context kept around
        the hole's bounding box (the rest of the frame is not used).
    Iterations
        At each level at most ``iterations`` rounds of nearest-neighbour
        search (``sweeps`` PatchMatch sweeps each) and reconstruction, stopped
        early when the hole changes by less than ``tolerance`` (mean absolute
        change, in 0..255 grey levels). ``init_sweeps`` PatchMatch sweeps per
        layer of the onion-peel initialisation at the coarsest level.
    Distance and reconstruction
        ``texture_weight`` weighs the texture features (absolute grey-level
        gradients averaged over a ``texture_window`` pixels wide box,
        Newson's beta) against the colours in the patch distance, 0 to
        leave them out. Pixels are rebuilt as the mean of the
        covering patches weighted by ``exp(-d / 2s)``, ``s`` the
        ``sigma_percentile`` of their distances. When the finest level has
        converged the video is rebuilt once more by ``final_vote``: "mode"
        (default) moves each pixel from its best covering patch's value to
        the nearby mode of all the covering patches' colours by mean shift
        (Wexler et al. 2007), with a bandwidth of ``mode_bandwidth`` times
        their weighted spread: sharp and lively like the best patch, with
        fewer seams; "mean" keeps the weighted mean (smoothest, least
        motion); "best" takes the best covering patch only (Newson et al.'s
        final step: sharpest, with seams).
    """

    patch_size: int = 5
    patch_frames: int = 3
    levels: int = 0
    iterations: int = 6
    sweeps: int = 2
    init_sweeps: int = 4
    texture_weight: float = 50.0
    texture_window: int = 8
    sigma_percentile: float = 75.0
    tolerance: float = 0.5
    final_vote: str = "mode"
    mode_bandwidth: float = 0.5
    margin: int = 64

    def __post_init__(self) -> None:
        checks = [
            (self.patch_size >= 3 and self.patch_size % 2 == 1, "patch_size must be odd and >= 3"),
            (self.patch_frames >= 1 and self.patch_frames % 2 == 1, "patch_frames must be odd and >= 1"),
            (0 <= self.levels <= 8, "levels must be in 0..8 (0: automatic)"),
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.sweeps >= 1 and self.init_sweeps >= 1, "sweeps and init_sweeps must be >= 1"),
            (self.texture_weight >= 0, "texture_weight must be >= 0"),
            (self.texture_window >= 1, "texture_window must be >= 1"),
            (0 <= self.sigma_percentile <= 100, "sigma_percentile must be in [0, 100]"),
            (self.tolerance >= 0, "tolerance must be >= 0"),
            (self.final_vote in ("mode", "mean", "best"), "final_vote must be mode, mean or best"),
            (self.mode_bandwidth > 0, "mode_bandwidth must be > 0"),
            (self.margin >= 0, "margin must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(f"patch config: {msg}")


# --------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------

def config_to_dict(config) -> dict:
    """Plain-JSON view of a config dataclass (field name -> value)."""
    return dataclasses.asdict(config)


def _coerce(value: Any, annotation: Any, name: str):
    """Convert a value (often a string from the CLI) to a field's type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is Optional:  # Optional[X]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        annotation = args[0]
    if annotation is bool or annotation == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InputError(f"setting {name}: expected true/false, got {value!r}")
    if annotation is int or annotation == "int":
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or float(number) != int(number):
                raise ValueError
            return int(number)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"setting {name}: expected an integer, got {value!r}") from None
    if annotation is float or annotation == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(f"setting {name}: expected a number, got {value!r}") from None
    if annotation is str or annotation == "str":
        return str(value)
    return value


def apply_overrides(config, overrides: Mapping[str, Any] | None):
    """Return ``config`` with some fields replaced, values converted to the fields' types.

    Unknown names raise :class:`InputError` listing the valid ones.
    """
    if not overrides:
        return config
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in fields(config)}
    changes = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in names:
            raise InputError(
                f"unknown setting {key!r} for {type(config).__name__}; valid: {', '.join(sorted(names))}"
            )
        changes[key] = _coerce(value, hints[key], key)
    return replace(config, **changes)


def config_from_dict(cls, data: Mapping[str, Any]):
    """Rebuild a config dataclass from :func:`config_to_dict` output."""
    return apply_overrides(cls(), data)


def parse_assignments(items) -> dict[str, str]:
    """Parse CLI ``key=value`` strings into a dict."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise InputError(f"--set expects key=value; got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class OpenCVConfig:
    """OpenCV per-frame inpainting (``telea``, ``ns``): neighbourhood ``radius`` in pixels."""

    radius: int = 3

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise InputError("opencv config: radius must be >= 1")


__all__ = [
    "InfusionConfig", "INFUSION_PRESETS", "DEFAULT_INFUSION_PRESET", "OpenCVConfig",
    "HarmonicConfig", "TVConfig", "FlowConfig", "PatchConfig",
    "config_to_dict", "config_from_dict", "apply_overrides", "parse_assignments",
]
