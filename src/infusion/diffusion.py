"""DDPM maths: the noise schedule, the forward process and the reverse steps.

Pure functions and one small immutable schedule class; no network, no loop.
Notation (Ho et al. 2020): ``beta_t`` the variances, ``alpha_t = 1 - beta_t``,
``abar_t = prod_{i<=t} alpha_i``. Timesteps are 0-based: ``t = 0 .. N-1``;
``t = -1`` stands for the clean signal (``abar_{-1} = 1``).

Every reverse step goes from a timestep ``t`` to an earlier one ``s < t``
(``s = t - 1`` for the full chain, further for a respaced chain). The
posterior ``q(x_s | x_t, x_0)`` of a jump ``t -> s`` uses the effective
``alpha = abar_t / abar_s``, which reduces to the usual DDPM formulas for
``s = t - 1``.

Interval training splits ``0 .. N-1`` into equal intervals, noisiest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass(frozen=True)
class NoiseSchedule:
    """Betas and derived products of a DDPM chain (float64 numpy arrays, length N)."""

    betas: np.ndarray

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """Betas linear from ``beta_start`` to ``beta_end`` (Ho et al. 2020)."""
        if num_timesteps < 1:
            raise ValueError("num_timesteps must be >= 1")
        return cls(np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64))

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(self.alphas)

    def abar(self, t) -> np.ndarray:
        """``abar_t`` for integer timesteps (``t = -1`` gives 1.0); array or scalar."""
        t = np.asarray(t)
        ac = self.alphas_cumprod
        return np.where(t < 0, 1.0, ac[np.clip(t, 0, None)])


def _coef(values, like: torch.Tensor) -> torch.Tensor:
    """Per-batch coefficients -> tensor broadcastable against ``like`` (B, ...)."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        return v
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """Draw ``x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` given the noise.

    ``t``: int or per-batch int array (length B of ``x0``'s first axis).
    """
    ab = schedule.abar(t)
    return _coef(np.sqrt(ab), x0) * x0 + _coef(np.sqrt(1.0 - ab), x0) * noise


def edm_coefficients(schedule: NoiseSchedule, t, sigma_data: float = 0.5,
                     skip_sigma: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Output preconditioning of Karras et al. (2022) in the variance-preserving chain.

    With ``sigma^2 = (1 - abar_t) / abar_t`` (the noise level of
    ``y = x_t / sqrt(abar_t) = x_0 + sigma eps``), the clean estimate is
    ``x0_hat = c_skip * y + c_out * F`` with
    ``c_skip = s_k^2 / (sigma^2 + s_k^2)`` and
    ``c_out = sqrt((1 - c_skip)^2 s_d^2 + c_skip^2 sigma^2)``, the standard
    deviation of the ideal ``F``'s target ``x_0 - c_skip y`` for data of
    standard deviation ``s_d`` (``sigma_data``), so that the network always
    outputs at unit scale. ``s_k`` (``skip_sigma``, default ``s_d``) is the
    noise level where the skip and the network weigh equally: with
    ``s_k = s_d`` this is Karras et al.'s ``c_skip = s_d^2 / (sigma^2 + s_d^2)``,
    ``c_out = sigma s_d / sqrt(sigma^2 + s_d^2)``; a smaller ``s_k`` keeps the
    skip to the least noisy steps (the network predicts the clean signal,
    scaled by ``s_d``, everywhere else). At low noise the network only learns
    a small correction of the noisy input. Returns ``(c_skip / sqrt(abar_t),
    c_out)``, the factors of ``x_t`` and ``F``.
    """
    skip_sigma = sigma_data if skip_sigma is None else skip_sigma
    ab = schedule.abar(t)
    sigma2 = (1.0 - ab) / ab
    c_skip = skip_sigma**2 / (sigma2 + skip_sigma**2)
    c_out = np.sqrt((1.0 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * sigma2)
    return c_skip / np.sqrt(ab), c_out


def posterior_coefficients(schedule: NoiseSchedule, t: int, s: int) -> tuple[float, float, float]:
    """Coefficients of ``q(x_s | x_t, x_0) = N(c0 x_0 + ct x_t, var)`` for ``s < t``.

    With ``a = abar_t / abar_s`` (the jump's effective alpha):
    ``c0 = sqrt(abar_s) (1 - a) / (1 - abar_t)``,
    ``ct = sqrt(a) (1 - abar_s) / (1 - abar_t)``,
    ``var = (1 - a) (1 - abar_s) / (1 - abar_t)``.
    For ``s = t - 1`` these are DDPM's ``beta_t sqrt(abar_{t-1}) / (1 - abar_t)``,
    ``sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)`` and
    ``beta_t (1 - abar_{t-1}) / (1 - abar_t)``. For ``s = -1``: (1, 0, 0).
    """
    if not -1 <= s < t < schedule.num_timesteps:
        raise ValueError(f"need -1 <= s < t < N; got t={t}, s={s}")
    ab_t, ab_s = float(schedule.abar(t)), float(schedule.abar(s))
    a = ab_t / ab_s
    c0 = np.sqrt(ab_s) * (1.0 - a) / (1.0 - ab_t)
    ct = np.sqrt(a) * (1.0 - ab_s) / (1.0 - ab_t)
    var = (1.0 - a) * (1.0 - ab_s) / (1.0 - ab_t)
    return float(c0), float(ct), float(var)


def ddpm_step(schedule: NoiseSchedule, x0_hat: torch.Tensor, x_t: torch.Tensor, t: int, s: int,
              noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Ancestral step ``x_t -> x_s`` from the clean estimate: a draw of the posterior.

    ``noise`` (standard normal, shaped like ``x_t``) may be None only when the
    variance is 0 (``s = -1``).
    """
    c0, ct, var = posterior_coefficients(schedule, t, s)
    mean = c0 * x0_hat + ct * x_t
    if var == 0.0:
        return mean
    return mean + float(np.sqrt(var)) * noise


def ddim_step(schedule: NoiseSchedule, x0_hat: torch.Tensor, x_t: torch.Tensor, t: int, s: int,
              noise: Optional[torch.Tensor], eta: float = 0.0) -> torch.Tensor:
    """DDIM step ``x_t -> x_s`` (Song et al. 2021) from the clean estimate.

    ``x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z`` with
    ``eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)`` and
    ``sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)``.
    ``eta = 1`` has the law of the ancestral step; ``eta = 0`` is deterministic.
    """
    if not -1 <= s < t < schedule.num_timesteps:
        raise ValueError(f"need -1 <= s < t < N; got t={t}, s={s}")
    ab_t, ab_s = float(schedule.abar(t)), float(schedule.abar(s))
    eps = (x_t - np.sqrt(ab_t) * x0_hat) / np.sqrt(1.0 - ab_t)
    sigma = eta * np.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * np.sqrt(max(0.0, 1.0 - ab_t / ab_s))
    out = np.sqrt(ab_s) * x0_hat + np.sqrt(max(0.0, 1.0 - ab_s - sigma**2)) * eps
    if sigma > 0.0:
        out = out + float(sigma) * noise
    return out


def renoise(schedule: NoiseSchedule, x_s: torch.Tensor, s: int, t: int, noise: torch.Tensor) -> torch.Tensor:
    """Forward jump ``x_s -> x_t`` (``t > s``): ``q(x_t | x_s) = N(sqrt(a) x_s, (1 - a) I)``, ``a = abar_t/abar_s``.

    Used by RePaint-style resampling to go back up the chain.
    """
    if not -1 <= s < t < schedule.num_timesteps:
        raise ValueError(f"need -1 <= s < t < N; got s={s}, t={t}")
    a = float(schedule.abar(t)) / float(schedule.abar(s))
    return np.sqrt(a) * x_s + np.sqrt(1.0 - a) * noise


def time_correlated_noise(independent: torch.Tensor, shared: torch.Tensor, corr: float) -> torch.Tensor:
    """Unit-variance noise whose frames are correlated ``corr`` over time.

    ``sqrt(corr) * shared + sqrt(1 - corr) * independent``: ``independent``
    ``(S, C, T, h, w)`` and ``shared`` ``(S, C, 1, h, w)`` standard normal,
    the latter repeated over the ``T`` frames. Each value stays N(0, 1);
    two frames of a pixel have correlation ``corr`` (0: ``independent``
    unchanged, 1: the same noise in every frame). ``corr`` in [0, 1].
    """
    if not 0.0 <= corr <= 1.0:
        raise ValueError(f"need 0 <= corr <= 1; got {corr}")
    if corr == 0.0:
        return independent
    return np.sqrt(corr) * shared.expand_as(independent) + np.sqrt(1.0 - corr) * independent


def interval_bounds(num_timesteps: int, num_intervals: int, top: Optional[int] = None) -> list[tuple[int, int]]:
    """Inclusive ``(low, high)`` timestep ranges of the intervals, noisiest first.

    The chain ``0 .. top`` (``top`` = N-1 by default; lower when sampling
    starts from a noised initial fill) is split into ``num_intervals``
    contiguous intervals of (nearly) equal length; 1000 steps in 20
    intervals gives ``[(950, 999), (900, 949), ..., (0, 49)]``.
    """
    top = num_timesteps - 1 if top is None else top
    if not 0 <= top < num_timesteps:
        raise ValueError("need 0 <= top < num_timesteps")
    if not 1 <= num_intervals <= top + 1:
        raise ValueError("need 1 <= num_intervals <= top + 1")
    edges = np.linspace(0, top + 1, num_intervals + 1).round().astype(int)
    return [(int(edges[k]), int(edges[k + 1]) - 1) for k in range(num_intervals)][::-1]


def interval_timesteps(low: int, high: int, steps: int) -> list[int]:
    """Descending timesteps visited when sampling the interval ``[low, high]`` in ``steps`` steps.

    ``steps >= high - low + 1`` gives every timestep (the full chain);
    fewer gives evenly spaced ones, always starting at ``high`` so that
    consecutive intervals chain up. The step from the last one goes to the
    next interval's ``high`` (or to -1 after the last interval).
    """
    n = high - low + 1
    if steps >= n:
        return list(range(high, low - 1, -1))
    ts = np.round(np.linspace(high, low, steps)).astype(int)
    return [int(v) for v in dict.fromkeys(ts.tolist())]


def resample_moves(seq: list[int], jump: int = 0, count: int = 1) -> list[tuple[int, int]]:
    """Moves along the timesteps ``seq`` (descending, the last one the next
    interval's start or -1), with RePaint resampling (Lugmayr et al. 2022).

    Without resampling (``jump == 0`` or ``count <= 1``) the moves are the
    reverse steps ``(seq[i], seq[i+1])``. With it, each time the chain has
    come down ``jump`` positions it goes back up the same ``jump`` positions
    (``(t, s)`` with ``s > t``: re-noise) and comes down again, ``count - 1``
    times, so every stretch of ``jump`` steps is sampled ``count`` times
    and the generated content is harmonised with the known pixels. Never
    jumps back from the clean end (-1).
    """
    n = len(seq) - 1
    if jump <= 0 or count <= 1:
        return [(seq[i], seq[i + 1]) for i in range(n)]
    left = {p: count - 1 for p in range(jump, n + 1, jump) if seq[p] >= 0}
    moves, p = [], 0
    while p < n:
        moves.append((seq[p], seq[p + 1]))
        p += 1
        if left.get(p, 0) > 0:
            left[p] -= 1
            for _ in range(jump):
                moves.append((seq[p], seq[p - 1]))
                p -= 1
    return moves


def sampling_plan(num_timesteps: int, num_intervals: int, steps_per_interval: int, resample_jump: int = 0,
                  resample_count: int = 1, top: Optional[int] = None,
                  last_steps: Optional[int] = None) -> list[list[tuple[int, int]]]:
    """Moves ``(t, s)`` of each interval, noisiest interval first.

    Each interval is sampled in ``steps_per_interval`` reverse steps, the
    least noisy one in ``last_steps`` (default: the same): that is where the
    finest detail is drawn. ``s < t`` is a reverse step, ``s > t`` a
    re-noising jump (RePaint resampling, see :func:`resample_moves`).
    Without resampling the moves, concatenated over intervals, go from
    ``top`` (N-1) down to ``-1``.
    """
    bounds = interval_bounds(num_timesteps, num_intervals, top)
    plan = []
    for k, (low, high) in enumerate(bounds):
        last = k + 1 == len(bounds) and last_steps is not None
        ts = interval_timesteps(low, high, last_steps if last else steps_per_interval)
        nxt = bounds[k + 1][1] if k + 1 < len(bounds) else -1
        plan.append(resample_moves(ts + [nxt], resample_jump, resample_count))
    return plan
