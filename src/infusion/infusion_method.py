"""The Infusion method's driver: interval training and sampling, checkpoints.

``fill_infusion`` (registered as method "infusion") trains one network on
the video and runs the reverse process, interval by interval from the
noisiest (METHOD.md):

* interleaved (default): train interval k, then sample interval k, then
  go on with the same model and optimizer;
* not interleaved (the reference code's order): train every interval,
  keeping a snapshot of the model after each, then sample each interval
  with its snapshot — the same result in distribution.

The run is a list of stages (``train k`` / ``sample k``). Its position
(stage, steps done in it) is checkpointed with the model, optimizer, RNG
states and the partial samples at the end of every stage, every few minutes,
and on Ctrl-C, so that a resumed run gives exactly what an uninterrupted run
with the same seed gives.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import CHECKPOINT_NAME, deferred_interrupt, load_checkpoint, save_checkpoint
from .config import InfusionConfig, config_to_dict
from .diffusion import NoiseSchedule, interval_bounds, sampling_plan
from .methods import RunContext
from .roi import plan_windows
from .sampling import Sampler
from .training import Trainer
from .unet3d import UNet3D, count_parameters, forward_flops

CHECKPOINT_EVERY_S = 300.0


@dataclass(frozen=True)
class Stage:
    kind: str  # "train" or "sample"
    interval: int
    length: int


def plan_stages(config: InfusionConfig, plan: list[list[tuple[int, int]]]) -> list[Stage]:
    """Order of the training and sampling stages of a run."""
    train = [Stage("train", k, config.steps_per_interval) for k in range(config.num_intervals)]
    sample = [Stage("sample", k, len(plan[k])) for k in range(config.num_intervals)]
    if config.interleaved:
        return [s for pair in zip(train, sample) for s in pair]
    return train + sample


def resize_for_config(video: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Downsize frames whose longer side exceeds ``max_side`` (0: never).

    Frames use area averaging; the mask is marked wherever a downsized pixel
    touches the hole, so the fill covers the whole hole once enlarged back.
    """
    t, h, w, _ = video.shape
    if not max_side or max(h, w) <= max_side:
        return video, mask, False
    import cv2

    s = max_side / max(h, w)
    nh, nw = max(8, round(h * s)), max(8, round(w * s))
    v = np.stack([cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA) for f in video])
    m = np.stack([cv2.resize(f.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA) > 0 for f in mask])
    return v, m, True


def _upsize(samples: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    s, t = samples.shape[:2]
    out = np.empty((s, t, height, width, 3), np.float32)
    for i in range(s):
        for j in range(t):
            out[i, j] = cv2.resize(samples[i, j], (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def fill_infusion(video: np.ndarray, mask: np.ndarray, config: InfusionConfig, ctx: RunContext) -> np.ndarray:
    """Fill ``mask`` in ``video`` with a diffusion model trained on the video itself.

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool ``(T, H, W)``.
    Returns float32 ``(ctx.samples, T, H, W, 3)`` in [0, 1].
    """
    device = torch.device(ctx.device)
    full_h, full_w = video.shape[1:3]
    vid, msk, resized = resize_for_config(video, mask, config.max_side)
    if resized:
        ctx.progress.log(f"infusion: working at {vid.shape[2]}x{vid.shape[1]} (max_side={config.max_side})")

    torch.manual_seed(ctx.seed)  # network initialisation
    model = UNet3D(config.width, config.levels, config.time_channels).to(device)
    v = torch.from_numpy(np.ascontiguousarray(vid.transpose(3, 0, 1, 2)))[None].to(device) * 2.0 - 1.0
    m = torch.from_numpy(msk)[None, None].to(device, torch.float32)
    schedule = NoiseSchedule.linear(config.num_timesteps, config.beta_start, config.beta_end)
    trainer = Trainer(model, v, m, schedule, config, ctx.seed)

    roi, windows = plan_windows(msk, config.window_frames, config.window_overlap, config.max_window_voxels,
                                config.roi_margin, model.multiple, config.roi)
    y0, y1, x0, x1 = roi
    sampler = Sampler(v[..., y0:y1, x0:x1], m[..., y0:y1, x0:x1], windows, schedule, ctx.samples,
                      seed=ctx.seed + 1_000_003, method=config.sampler, eta=config.ddim_eta)
    plan = sampling_plan(config.num_timesteps, config.num_intervals, config.sample_steps_per_interval)
    bounds = interval_bounds(config.num_timesteps, config.num_intervals)
    stages = plan_stages(config, plan)
    snapshots: list[dict] = []

    ckpt_path = ctx.work_dir / CHECKPOINT_NAME if ctx.work_dir is not None else None
    position = (0, 0)
    stats = {"train_s": 0.0, "sample_s": 0.0, "losses": []}
    if ckpt_path is not None and ctx.resume:
        state = load_checkpoint(ckpt_path)
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            sampler.load_state_dict(state["sampler"])
            snapshots = state["snapshots"]
            position = tuple(state["position"])
            stats = state["stats"]
            ctx.progress.log(f"infusion: resuming at stage {position[0] + 1}/{len(stages)} "
                             f"({stages[min(position[0], len(stages) - 1)].kind} interval "
                             f"{stages[min(position[0], len(stages) - 1)].interval + 1}), step {position[1]}")

    def save(pos) -> None:
        if ckpt_path is None:
            return
        save_checkpoint(ckpt_path, {
            "position": list(pos), "trainer": trainer.state_dict(), "sampler": sampler.state_dict(),
            "snapshots": snapshots, "stats": stats, "config": config_to_dict(config),
        })

    roi_shape = (y1 - y0, x1 - x0)
    ctx.progress.log(
        f"infusion: {count_parameters(model):,} parameters; {len(stages)} stages "
        f"({config.num_intervals} intervals x {config.steps_per_interval} training steps, "
        f"{sum(len(p) for p in plan)} reverse steps); sampling region {roi_shape[1]}x{roi_shape[0]} "
        f"in {len(windows)} window(s); device {device}")

    last_save = time.monotonic()
    stage_idx, done = position
    with deferred_interrupt() as interrupt:
        while stage_idx < len(stages):
            stage = stages[stage_idx]
            lo, hi = bounds[stage.interval] if config.interval_training else (0, config.num_timesteps - 1)
            label = f"{stage.kind} {stage.interval + 1}/{config.num_intervals}"
            with ctx.progress.bar(label, total=stage.length, unit="step", initial=done) as bar:
                if stage.kind == "sample" and not config.interleaved:
                    model.load_state_dict(snapshots[stage.interval])
                while done < stage.length:
                    t0 = time.perf_counter()
                    if stage.kind == "train":
                        loss = trainer.train_step(lo, hi)
                        stats["losses"].append(loss)
                        stats["train_s"] += time.perf_counter() - t0
                        bar.update(1, loss=float(np.mean(stats["losses"][-20:])))
                    else:
                        t, s = plan[stage.interval][done]
                        sampler.step(model, t, s)
                        stats["sample_s"] += time.perf_counter() - t0
                        bar.update(1, t=t)
                    done += 1
                    if interrupt.requested:
                        save((stage_idx, done))
                        raise KeyboardInterrupt
                    if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
                        save((stage_idx, done))
                        last_save = time.monotonic()
            if stage.kind == "train" and not config.interleaved:
                snapshots.append(copy.deepcopy(model.state_dict()))
            stage_idx, done = stage_idx + 1, 0
            save((stage_idx, done))
            last_save = time.monotonic()

    train_shape = (min(config.clip_frames, vid.shape[0]), min(config.crop_size or vid.shape[1], vid.shape[1]),
                   min(config.crop_size or vid.shape[2], vid.shape[2]))
    ctx.stats.update(_report(config, model, stats, windows, ctx.samples, sum(len(p) for p in plan), train_shape))
    result = sampler.result()
    full = np.broadcast_to(vid, (ctx.samples,) + vid.shape).copy()
    full[:, :, y0:y1, x0:x1] = result
    if resized:
        full = _upsize(full, full_h, full_w)
    return full


def _report(config: InfusionConfig, model: UNet3D, stats: dict, windows, samples: int, reverse_steps: int,
            train_shape: tuple[int, int, int]) -> dict:
    """Figures worth saving with the result: times, losses, achieved GFLOP/s."""
    losses = stats["losses"]
    out = {
        "train_s": round(stats["train_s"], 2),
        "sample_s": round(stats["sample_s"], 2),
        "train_steps": len(losses),
        "final_loss": round(float(np.mean(losses[-50:])), 6) if losses else None,
        "parameters": count_parameters(model),
    }
    sample_flops = sum(forward_flops(model, w.t1 - w.t0, w.box[1] - w.box[0], w.box[3] - w.box[2]) for w in windows)
    sample_flops *= samples * reverse_steps
    if stats["sample_s"] > 0:
        out["sample_gflops"] = round(sample_flops / stats["sample_s"] / 1e9, 1)
    if losses and stats["train_s"] > 0:
        # forward + backward ~ 3 forward passes
        train_flops = 3 * forward_flops(model, *train_shape) * config.batch_size * len(losses)
        out["train_gflops"] = round(train_flops / stats["train_s"] / 1e9, 1)
    return out
