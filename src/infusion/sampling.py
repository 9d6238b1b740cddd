"""The reverse process over a video: windowed x0 prediction and the steps.

A :class:`Sampler` holds the noisy state ``x_t`` of ``S`` samples over the
region of interest and advances it one reverse step at a time:

1. ``x0_hat = clip(f(y, x_t, M, t), -1, 1)``, computed window by window and
   blended where windows overlap;
2. ``x0_hat = M * x0_hat + (1 - M) * V`` — the known pixels re-projected
   (and, optionally, the held pixels of the initial fill, see ``hold``);
3. ``x_s`` drawn from the posterior (DDPM) or by a DDIM step.

The last ``x0_hat`` is the result. Known pixels of the region are the
input's, erased under the mask at construction so that nothing depends on
the hidden content.

Memory: a long clip's region can take gigabytes per copy, so the sampler
keeps the state ``x_t``, the last clean estimate and (while the hold
lasts) the held estimate, and otherwise works in place or a few frames at
a time (:func:`by_frames`); a step's fresh noise is drawn a piece at a
time as it is used (:class:`NoiseStream`, :func:`by_channel_frames`), the
same values as one call; the mask is bool; the input is used as it is
when its hidden pixels are already erased.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .diffusion import NoiseSchedule, ddim_step, ddpm_step, renoise, time_correlated_noise
from .roi import Window
from .unet3d import autocast


# Frame chunks (:func:`frame_chunks`) hold about this many values per operand.
CHUNK_VALUES = 1 << 21


def frame_chunks(x: torch.Tensor) -> Iterator[slice]:
    """Consecutive slices of the frames (dim 2) of a 5-D ``x``, each about ``CHUNK_VALUES`` values."""
    frames = x.shape[2]
    step = max(1, CHUNK_VALUES // max(1, x[:, :, :1].numel()))
    for a in range(0, frames, step):
        yield slice(a, min(frames, a + step))


def by_frames(fn: Callable[..., torch.Tensor], out: torch.Tensor, *args: Optional[torch.Tensor]) -> torch.Tensor:
    """``out[:, :, a:b] = fn(*(arg[:, :, a:b]))`` over chunks of frames; returns ``out``.

    ``out`` and every tensor of ``args`` are 5-D ``(S, C, T, h, w)``
    (``S`` and ``C`` may broadcast); an argument with one frame (or None)
    is passed whole to every chunk. ``fn`` must be elementwise over frames:
    then the result equals ``fn(*args)`` bit for bit, with temporaries of a
    few frames instead of a whole clip. ``out`` may be one of ``args``.
    """
    for f in frame_chunks(out):
        out[:, :, f] = fn(*(_part(x, 2, f) for x in args))
    return out


def _part(x: Optional[torch.Tensor], dim: int, index) -> Optional[torch.Tensor]:
    """``x`` indexed along ``dim`` (a slice), or ``x`` whole when it broadcasts there (size 1) or is None."""
    if x is None or x.shape[dim] == 1:
        return x
    return x[(slice(None),) * dim + (index,)]


class NoiseStream:
    """The values of one ``torch.randn(total, generator=gen)`` call, drawn a piece at a time.

    ``take(n)`` returns the next ``n`` values (float32, 1-D, on the CPU) of
    that call, bit for bit, with only about one piece of them in memory:
    the generator fills blocks of 16 values, so drawing pieces whose sizes
    are multiples of 16 (and a last one of at least 16, or the whole call
    when it is shorter) leaves the stream unchanged. ``skip()`` draws and
    discards the rest, leaving ``gen`` where the whole call would.
    :meth:`then` gives the values of a second call made after the whole
    first one, before any of the first is taken.
    """

    def __init__(self, gen: torch.Generator, total: int, piece: int = CHUNK_VALUES):
        self.gen, self.total, self.left, self.piece = gen, int(total), int(total), max(16, piece - piece % 16)
        self.buf = torch.empty(0)
        self._end: Optional[torch.Tensor] = None  # generator state once the stream is used up (see then)

    def _draw(self, need: int) -> torch.Tensor:
        k = min(self.left, max(self.piece, -(-need // 16) * 16))
        if self.left - k < 16:
            k = self.left  # the call's last block: drawn with the piece before it
        self.left -= k
        values = torch.randn(k, generator=self.gen)
        if self.left == 0 and self._end is not None:
            self.gen.set_state(self._end)
        return values

    def then(self, shape: tuple) -> torch.Tensor:
        """``torch.randn(shape)`` drawn as if after the whole stream.

        The stream is drawn once and discarded to reach those values, then
        rewound; once it is used up, the generator is where both calls
        would leave it. Call it before taking any value.
        """
        if self.left != self.total:
            raise RuntimeError("NoiseStream.then must come before any value is taken")
        start = self.gen.get_state()
        self.skip()
        after = torch.randn(shape, generator=self.gen)
        self._end = self.gen.get_state()
        self.gen.set_state(start)
        self.left = self.total
        if self.left == 0:  # nothing to take: already used up
            self.gen.set_state(self._end)
        return after

    def take(self, n: int) -> torch.Tensor:
        if n > self.buf.numel() + self.left:
            raise ValueError(f"NoiseStream: {n} values asked, {self.buf.numel() + self.left} left")
        parts, have = [self.buf], self.buf.numel()
        while have < n:
            parts.append(self._draw(n - have))
            have += parts[-1].numel()
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.buf = out[n:]
        return out[:n]

    def skip(self) -> None:
        while self.left > 0:
            self._draw(self.piece)
        self.buf = torch.empty(0)


def by_channel_frames(fn: Callable[..., torch.Tensor], out: torch.Tensor, noise: NoiseStream,
                      *args: Optional[torch.Tensor]) -> torch.Tensor:
    """``out = fn(*args, n)`` with ``n`` the next ``out.numel()`` values of ``noise``
    shaped like ``out``, computed one sample, channel and frame chunk at a time
    in memory order; returns ``out``.

    Like :func:`by_frames` (``fn`` elementwise, arguments ``(S, C, T, h, w)``
    that may broadcast in ``S``, ``C`` or ``T``, ``out`` may be one of them),
    but the noise is never held whole: the result equals
    ``fn(*args, torch.randn(out.shape, generator=...))`` bit for bit.
    """
    one = out[:1, :1]
    for s in range(out.shape[0]):
        for c in range(out.shape[1]):
            for f in frame_chunks(one):
                piece = out[s:s + 1, c:c + 1, f]
                n = noise.take(piece.numel()).view(piece.shape).to(out.device)
                picked = (_part(_part(_part(x, 0, slice(s, s + 1)), 1, slice(c, c + 1)), 2, f) for x in args)
                out[s:s + 1, c:c + 1, f] = fn(*picked, n)
    return out


def erased(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``video * (1 - mask)``: ``video`` itself when its masked pixels are
    already 0 (checked a few frames at a time), else a new tensor."""
    clean = not any(bool((video[:, :, f] * mask[:, :, f]).any()) for f in frame_chunks(video))
    return video if clean else video * (1.0 - mask.float())


class Sampler:
    """Reverse diffusion of ``samples`` fills of one region.

    Parameters
    ----------
    video : tensor ``(1 or samples, 3, T, h, w)`` in [-1, 1]
        The region of interest (its hidden content is never read); one per
        sample when the samples have different known pixels (keyframes).
    mask : bool tensor ``(1, 1, T, h, w)``, True = fill (float {0, 1} works too).
    windows : list of :class:`~infusion.roi.Window`
        Pieces the network runs on, covering every masked pixel.
    schedule : NoiseSchedule
    samples : int
    seed : int
        Seed of the initial noise and of every step's noise.
    method : "ddpm" or "ddim"; ``eta`` is DDIM's noise level.
    precision : "fp32" or "bf16" (see :func:`infusion.unet3d.autocast`).
    init, start : optional
        An initial fill ``(1 or samples, 3, T, h, w)`` in [-1, 1] and the
        timestep it is noised to (the first move must start there);
        default pure noise.
    noise_corr, corr_below : optional
        The fresh noise of every reverse step that lands below timestep
        ``corr_below`` is correlated ``noise_corr`` over time
        (:func:`~infusion.diffusion.time_correlated_noise`): the grain the
        least noisy steps leave in the fill is then nearly the same in
        every frame instead of a flicker. Default 0: independent noise.
        ``corr_below`` above the top timestep correlates every step's
        noise; ``init_corr`` correlates the starting noise the same way.
    hold, hold_to : optional
        Bool ``(1, 1, T, h, w)``: the pixels of the hole (``mask``, and
        ``release`` once released) that it marks have ``init`` as clean
        estimate in every step that starts at timestep ``hold_to`` or
        above (the network's below; when they are the whole hole the
        network is not run in those steps). For a start copied from known
        pixels (the same content seen in another frame, or known patches),
        which the noisier steps would otherwise redraw less sharp.
    release, release_at : optional
        Bool ``(1, 1, T, h, w)``, pixels outside ``mask`` that join the
        hole at the first step starting at timestep ``release_at`` or
        below: their value in ``video`` is noised to that step's timestep
        and drawn from then on like the rest of the hole (the finest
        keyframe level redraws the keyframes' finest detail this way).
        ``video`` must not be read elsewhere for those pixels afterwards:
        when it is passed with its hidden pixels already erased it is used
        as it is, and the released pixels are erased in it.
    """

    def __init__(self, video: torch.Tensor, mask: torch.Tensor, windows: list[Window], schedule: NoiseSchedule,
                 samples: int, seed: int, method: str = "ddpm", eta: float = 1.0, precision: str = "fp32",
                 init: Optional[torch.Tensor] = None, start: Optional[int] = None,
                 noise_corr: float = 0.0, corr_below: int = 0, init_corr: float = 0.0,
                 hold: Optional[torch.Tensor] = None, hold_to: int = 0,
                 release: Optional[torch.Tensor] = None, release_at: int = -1):
        if hold is not None and init is None:
            raise ValueError("hold needs an init")
        self.mask = mask
        self.release, self.release_at, self.released = release, release_at, False
        self.hold_given, self.hold_to = hold, hold_to
        self._set_hold()
        self.init = init
        self.noise_corr, self.corr_below = noise_corr, corr_below
        self.known = erased(video, mask)
        self.windows = windows
        self.schedule = schedule
        self.method, self.eta, self.precision = method, eta, precision
        self.gen = torch.Generator().manual_seed(seed)
        shape = (samples,) + tuple(video.shape[1:])
        self.x = self._noise(shape)
        if init_corr > 0.0:
            shared = self._noise(shape[:2] + (1,) + shape[3:])
            by_frames(lambda n: time_correlated_noise(n, shared, init_corr), self.x, self.x)
        if init is not None:  # SDEdit: start from an initial fill noised to ``start``
            ab = float(schedule.abar(start))
            a, b = np.sqrt(ab), np.sqrt(1.0 - ab)
            by_frames(lambda i, n: a * i + b * n, self.x, init, self.x)
        self.x0_hat: Optional[torch.Tensor] = None
        self.steps_done = 0
        self.ran_network = False  # whether the last move ran the network (for the FLOP count)
        self._held_x0: Optional[torch.Tensor] = None  # see _held_estimate

    @property
    def device(self) -> torch.device:
        return self.known.device

    def _noise(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen).to(self.device)

    @torch.inference_mode()
    def predict_x0(self, model: torch.nn.Module, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Blended, clipped and re-projected clean estimate of every sample, shaped like ``x_t``."""
        model.eval()
        acc = torch.zeros_like(x_t)
        tt = torch.full((1,), t, dtype=torch.long, device=self.device)
        for win in self.windows:
            y0, y1, x0, x1 = win.box
            sl = (slice(None), slice(None), slice(win.t0, win.t1), slice(y0, y1), slice(x0, x1))
            weight = torch.as_tensor(win.weights, dtype=x_t.dtype, device=self.device).reshape(1, 1, -1, 1, 1)
            mask = self.mask[sl].to(x_t.dtype)
            for i in range(x_t.shape[0]):
                cond = self.known[min(i, self.known.shape[0] - 1):][:1][sl]
                with autocast(self.device, self.precision):
                    pred = model(cond, x_t[i:i + 1][sl], mask, tt).float().clamp_(-1.0, 1.0)
                acc[i:i + 1][sl] += weight * pred
        return acc.mul_(self.mask).add_(self.known)

    @torch.inference_mode()
    def step(self, model: torch.nn.Module, t: int, s: int) -> None:
        """Advance every sample from timestep ``t`` to ``s < t`` (``s = -1``: the end)."""
        if self.release is not None and not self.released and t <= self.release_at:
            self._release(t)
        held = self.hold is not None and t >= self.hold_to
        self.ran_network = not (held and self.hold_covers)
        self.x0_hat = None  # the new estimate replaces it: not two of them at once
        if not self.ran_network:
            x0 = self._held_estimate()
        else:
            self._held_x0 = None  # freed; rebuilt if a resampling jump goes back above the hold
            x0 = self.predict_x0(model, self.x, t)
            if held:
                by_frames(torch.where, x0, self.hold, self.init, x0)

        def reverse(x0_, x_, shared_, noise_):
            if shared_ is not None:
                noise_ = time_correlated_noise(noise_, shared_, self.noise_corr)
            if self.method == "ddim":
                return ddim_step(self.schedule, x0_, x_, t, s, noise_, self.eta)
            return ddpm_step(self.schedule, x0_, x_, t, s, noise_)

        if s < 0:  # the last step: no fresh noise
            by_frames(lambda x0_, x_: reverse(x0_, x_, None, None), self.x, x0, self.x)
        else:
            # The fresh noise is drawn piece by piece as it is used (a clip-sized
            # tensor less); the time-correlated part comes after it in the stream.
            noise = NoiseStream(self.gen, self.x.numel())
            shared = None
            if s < self.corr_below and self.noise_corr > 0.0:
                shared = noise.then(self.x.shape[:2] + (1,) + tuple(self.x.shape[3:])).to(self.device)
            by_channel_frames(reverse, self.x, noise, x0, self.x, shared)
        self.x0_hat = x0
        self.steps_done += 1

    def _held_estimate(self) -> torch.Tensor:
        """The clean estimate of a step whose hold covers the whole hole: the
        init in the hole, the known pixels elsewhere. The same in every such
        step, so it is built once (steps only read it)."""
        if self._held_x0 is None:
            self._held_x0 = torch.where(self.hold, self.init, self.known).expand_as(self.x).contiguous()
        return self._held_x0

    def _set_hold(self) -> None:
        """The held pixels: those of ``hold`` in the current hole."""
        hold = self.hold_given
        self.hold = None if hold is None else hold & (self.mask > 0.5)
        # a hold over the whole hole leaves nothing for the network to estimate above hold_to
        self.hold_covers = hold is not None and bool(torch.equal(self.hold.expand_as(self.mask), self.mask > 0.5))
        self._held_x0 = None

    def _release(self, t: int) -> None:
        """The ``release`` pixels join the hole: their known value noised to timestep ``t``
        (where the hold covers them at ``t``, ``init`` noised: they start where the held pixels are)."""
        ab = float(self.schedule.abar(t))
        a, b = float(np.sqrt(ab)), float(np.sqrt(1.0 - ab))
        held = self.hold_given if self.hold_given is not None and t >= self.hold_to else None

        def start(x, k, r, h, i, n):
            value = k if h is None else torch.where(h, i, k)
            return torch.where(r, a * value + b * n, x)

        by_channel_frames(start, self.x, NoiseStream(self.gen, self.x.numel()), self.x, self.known, self.release,
                          held, None if held is None else self.init)
        self._take_released()

    def _take_released(self) -> None:
        """The mask and the known pixels once the ``release`` pixels have joined the hole."""
        self.mask = (self.mask > 0.5) | self.release
        by_frames(lambda k, r: k.masked_fill(r, 0.0), self.known, self.known, self.release)
        self._set_hold()
        self.released = True

    def jump_back(self, s: int, t: int) -> None:
        """Re-noise the state from timestep ``s`` up to ``t > s`` (RePaint resampling)."""
        by_channel_frames(lambda x, n: renoise(self.schedule, x, s, t, n), self.x,
                          NoiseStream(self.gen, self.x.numel()), self.x)
        self.ran_network = False
        self.steps_done += 1

    def move(self, model: torch.nn.Module, t: int, s: int) -> None:
        """Apply one move of a sampling plan: a reverse step if ``s < t``, else a re-noising jump."""
        if s < t:
            self.step(model, t, s)
        else:
            self.jump_back(t, s)

    def result(self) -> np.ndarray:
        """The last clean estimate as float32 ``(S, T, h, w, 3)`` in [0, 1]."""
        if self.x0_hat is None:
            raise RuntimeError("no reverse step has been taken")
        return to_unit_frames(self.x0_hat)

    def state_dict(self) -> dict:
        return {"x": self.x.cpu(), "x0_hat": None if self.x0_hat is None else self.x0_hat.cpu(),
                "rng": self.gen.get_state(), "steps_done": self.steps_done, "released": self.released}

    def load_state_dict(self, state: dict) -> None:
        self.x = state["x"].to(self.device)
        self.x0_hat = None if state["x0_hat"] is None else state["x0_hat"].to(self.device)
        self.gen.set_state(state["rng"])
        self.steps_done = int(state["steps_done"])
        if state.get("released", False) and not self.released:
            self._take_released()


def to_unit_frames(x: torch.Tensor) -> np.ndarray:
    """``(S, 3, T, h, w)`` in [-1, 1] to float32 ``(S, T, h, w, 3)`` in [0, 1], a few frames at a time."""
    out = np.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[4], 3), np.float32)
    for f in frame_chunks(x):
        out[:, f] = ((x[:, :, f].permute(0, 2, 3, 4, 1).float().cpu().numpy() + 1.0) * 0.5).clip(0.0, 1.0)
    return out
