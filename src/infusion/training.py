"""Internal training of the x0-predicting network on the video itself.

Leakage-safe by construction (METHOD.md): the content under the real hole
(the "test mask") is erased before anything else, so nothing the network
sees or is scored on depends on it. Each step:

1. take a clip (and crop) of the video, ``x0 = (1 - M_test) * V``;
2. draw a fresh training mask, ``M = M_train or M_test``;
3. condition ``y = (1 - M) * x0``, draw ``t`` in the current interval and
   ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``;
4. loss ``mean(((1 - M_test) * (f(y, x_t, M, t) - x0))^2)``: every pixel
   outside the real hole counts, the hole contributes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import InfusionConfig
from .denoiser import Denoiser
from .diffusion import NoiseSchedule, q_sample
from .keyframes import keyframe_training_mask
from .roi import sample_clip
from .train_masks import random_masks
from .unet3d import autocast, resolve_precision


@dataclass
class TrainingBatch:
    """Tensors of one step, all ``(B, C, T, H, W)``: clean target ``x0``,
    condition ``cond``, network mask ``mask`` (1 = unknown to the network)
    and loss weight ``weight`` (0 inside the real hole)."""

    x0: torch.Tensor
    cond: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor


def leakage_safe_batch(video: torch.Tensor, test_mask: torch.Tensor, train_mask: torch.Tensor,
                       loss_region: str = "known") -> TrainingBatch:
    """Build a training batch from a clip without ever using the hidden content.

    ``video``: ``(B, 3, T, H, W)`` in [-1, 1]; ``test_mask``, ``train_mask``:
    ``(B, 1, T, H, W)`` in {0, 1}. ``loss_region`` "known" scores every pixel
    outside the real hole (the paper); "masked" only the pixels hidden by
    the training mask (the only ones whose prediction is ever used).
    """
    keep = 1.0 - test_mask
    x0 = video * keep  # the hidden content is erased first
    mask = torch.maximum(train_mask, test_mask)
    weight = keep if loss_region == "known" else keep * train_mask
    return TrainingBatch(x0=x0, cond=(1.0 - mask) * x0, mask=mask, weight=weight)


def masked_x0_loss(pred: torch.Tensor, x0: torch.Tensor, weight: torch.Tensor,
                   scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``mean(scale * (weight * (pred - x0))^2)`` over all elements (METHOD.md, step 6).

    ``scale``: per-sample loss weights (1 for the paper's x0 loss).
    """
    return (scale * (weight * (pred - x0)) ** 2).mean()


def lr_at(config: InfusionConfig, step: int) -> float:
    """Learning rate at a global training step: constant, or cosine from ``lr``
    down to ``lr * lr_min_ratio`` over ``total_train_steps``; both scaled by a
    linear warm-up ``(step + 1) / warmup_steps`` over the first ``warmup_steps``."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    if config.lr_schedule == "constant" or config.total_train_steps <= 1:
        return config.lr * warm
    progress = min(1.0, step / (config.total_train_steps - 1))
    low = config.lr * config.lr_min_ratio
    return warm * (low + (config.lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class Trainer:
    """Trains a network on one video; owns the optimizer and the training RNGs.

    ``model``: a :class:`~infusion.denoiser.Denoiser` (or any module
    ``(cond, x_t, mask, t) -> x0_hat``).
    ``video``: ``(1, 3, T, H, W)`` in [-1, 1]; ``test_mask``: ``(1, 1, T, H, W)``
    bool, or float in {0, 1} (True/1 = real hole). The random draws (clips, crops, training
    masks, timesteps, noise) come from ``seed`` alone, so a run is
    reproducible, and :meth:`state_dict` captures everything needed to
    resume bit-exactly.

    For keyframe-first sampling, ``strides`` (coarsest first, ending with
    1) are the temporal strides of the clips to learn: half of the clips
    are taken at stride 1, the others at the coarser strides; clips of the
    levels that get keyframes from a coarser one have, half of the time,
    every ``keyframe_factor``-th frame left visible in their training mask.
    """

    def __init__(self, model: torch.nn.Module, video: torch.Tensor, test_mask: torch.Tensor,
                 schedule: NoiseSchedule, config: InfusionConfig, seed: int, strides: tuple[int, ...] = (1,),
                 keyframe_factor: int = 0):
        self.model, self.video, self.test_mask = model, video, test_mask
        self.schedule, self.config = schedule, config
        # fused: one kernel for all parameters (CPU and CUDA), 2x faster than the
        # per-parameter loop on this network's small tensors
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
        self.np_rng = np.random.Generator(np.random.PCG64(seed))
        self.gen = torch.Generator().manual_seed(seed)
        self.step_count = 0
        self.precision = resolve_precision(config.precision, video.device)
        self.strides, self.keyframe_factor = tuple(strides), keyframe_factor
        self._mask_np = test_mask[0, 0].detach().cpu().numpy() > 0.5

    @property
    def device(self) -> torch.device:
        return self.video.device

    def draw_batch(self) -> TrainingBatch:
        """A random leakage-safe batch of ``batch_size`` clips."""
        cfg = self.config
        clips, tests, trains = [], [], []
        stride = self._draw_stride()
        for _ in range(cfg.batch_size):
            for _attempt in range(20):  # avoid crops that lie entirely in the hole
                ts, ys, xs = sample_clip(self.np_rng, self._mask_np, cfg.clip_frames, cfg.crop_size,
                                         cfg.crop_near_hole, stride)
                if not self._mask_np[ts, ys, xs].all():
                    break
            clips.append(self.video[:, :, ts, ys, xs])
            tests.append(self.test_mask[:, :, ts, ys, xs].float())
            n, h, w = len(range(ts.start, ts.stop, ts.step)), ys.stop - ys.start, xs.stop - xs.start
            m = random_masks(self.np_rng, n, h, w, cfg.train_masks)
            if stride < self.strides[0] and self.np_rng.uniform() < 0.5:
                m = keyframe_training_mask(m, self.keyframe_factor, self.np_rng)
            trains.append(torch.from_numpy(m)[None, None].to(self.device, torch.float32))
        return leakage_safe_batch(torch.cat(clips), torch.cat(tests), torch.cat(trains), cfg.loss_region)

    def _draw_stride(self) -> int:
        if len(self.strides) == 1:
            return self.strides[0]
        if self.np_rng.uniform() < 0.5:
            return 1
        return int(self.strides[int(self.np_rng.integers(0, len(self.strides) - 1))])

    def train_step(self, t_low: int, t_high: int, below: float = 0.0) -> float:
        """One optimisation step with ``t`` uniform in ``[t_low, t_high]``; returns the loss.

        ``below``: probability of drawing a clip's ``t`` in ``[0, t_low)``
        instead (the less noisy levels still to come), see
        ``InfusionConfig.interval_mix``.
        """
        batch = self.draw_batch()
        b = batch.x0.shape[0]
        t = torch.randint(t_low, t_high + 1, (b,), generator=self.gen)
        if below > 0.0 and t_low > 0:
            lower = torch.randint(0, t_low, (b,), generator=self.gen)
            pick = torch.rand(b, generator=self.gen) < below
            t = torch.where(pick, lower, t)
        noise = torch.randn(batch.x0.shape, generator=self.gen).to(self.device)
        x_t = q_sample(self.schedule, batch.x0, t.numpy(), noise)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.config, self.step_count)
        self.model.train()
        tt = t.to(self.device)
        with autocast(self.device, self.precision):
            pred = self.model(batch.cond, x_t, batch.mask, tt)
        scale = self.model.loss_weights(tt, pred) if isinstance(self.model, Denoiser) else 1.0
        loss = masked_x0_loss(pred.float(), batch.x0, batch.weight, scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())

    def state_dict(self) -> dict:
        """Model, optimizer, step count and RNG states (loadable with weights_only=True)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step_count": self.step_count,
            "np_rng": self.np_rng.bit_generator.state,
            "torch_rng": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step_count"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.gen.set_state(state["torch_rng"])
