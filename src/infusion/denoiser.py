"""The network as a denoiser: how its output becomes the clean estimate x0_hat.

``parametrization``:

* ``"x0"`` (the paper): the network outputs x0 directly.
* ``"edm"``: Karras et al. (2022) output preconditioning,
  ``x0_hat = a_t x_t + c_out F`` (see :func:`infusion.diffusion.edm_coefficients`):
  near t = 0 the network only corrects the noisy input instead of learning
  the identity from scratch, which trains much faster on a small budget.

:func:`loss_weights` gives the matching per-sample loss weights: 1 for
"x0"; for "edm" ``1 / c_out^2`` (``loss_space="output"``, Karras et al.:
every noise level trains the network's output at unit scale) or 1
(``loss_space="x0"``: the plain error of the clean estimate, as for "x0",
so that the least noisy steps, whose error the skip already keeps small,
do not swamp the others).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .diffusion import NoiseSchedule, edm_coefficients

PARAMETRIZATIONS = ("x0", "edm")
LOSS_SPACES = ("output", "x0")


def _per_sample(values, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32, device=like.device)
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


class Denoiser(nn.Module):
    """Wraps a network ``f(cond, x_t, mask, t)`` into ``x0_hat(cond, x_t, mask, t)``.

    ``t``: ``(B,)`` integer timesteps; tensors as in :class:`infusion.unet3d.UNet3D`.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, parametrization: str = "x0",
                 sigma_data: float = 0.5, skip_sigma: Optional[float] = None, loss_space: str = "output"):
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}")
        if loss_space not in LOSS_SPACES:
            raise ValueError(f"loss_space must be one of {LOSS_SPACES}")
        self.net, self.schedule = net, schedule
        self.parametrization, self.sigma_data, self.skip_sigma = parametrization, sigma_data, skip_sigma
        self.loss_space = loss_space

    def forward(self, cond: torch.Tensor, x_t: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(cond, x_t, mask, t).float()
        if self.parametrization == "x0":
            return out
        a, c_out = edm_coefficients(self.schedule, t.cpu().numpy(), self.sigma_data, self.skip_sigma)
        return _per_sample(a, out) * x_t.float() + _per_sample(c_out, out) * out

    def loss_weights(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-sample weights of the squared error on x0, broadcastable against ``like``."""
        if self.parametrization == "x0" or self.loss_space == "x0":
            return torch.ones((), device=like.device)
        _, c_out = edm_coefficients(self.schedule, t.cpu().numpy(), self.sigma_data, self.skip_sigma)
        return _per_sample(1.0 / np.square(c_out), like)
