"""The 3D UNet of Infusion (METHOD.md): small, fully convolutional, x0 output.

Input channels: masked video (3), noisy video x_t (3), mask (1) and a
sinusoidal embedding of t broadcast over (T, H, W) (``time_channels``).
``width`` channels at every level; ``levels`` resolution levels (space-only
max-pooling by 2 between them, nearest upsampling back); two 3x3x3 convs
per level on the way down and two after the skip concatenation on the way
up; ReLU after every conv but the last; no normalisation, residuals or
attention. With the defaults (width 32, 4 levels, 16 time channels) it has
492,963 parameters and 16 convolutions.

``residual=True`` (not the paper; off in every preset) keeps the same
convolutions but adds identity paths around each pair (pre-activation
residual blocks, the second conv of each pair starting near zero), a 1x1
projection carrying the decoder's concatenated skip, and linear instead of
nearest upsampling (through the identity paths nearest upsampling would put
the coarsest level's 8x8 blocks in the output). The noisy input then reaches
the output through a short path; measured against the plain network at the
``fast`` budget it moved mean lpips_hole by less than the spread between
cases (see the ``fast`` preset in :mod:`infusion.config`).

Speed on the CPU: tensors inside the network are channels-last
(``torch.channels_last_3d``), and CPU float32 convolutions call oneDNN
directly (:class:`Conv3x3x3`). PyTorch's own dispatch sends a batch-1 3D
convolution to oneDNN only when ``N*C*D*H > 20480`` and otherwise to a
reference kernel 5-10x slower, which is every coarse level of a sampling
pass; measured on a 2-core AVX2 machine, oneDNN on channels-last tensors
runs these convolutions at 125-155 GFLOP/s (peak 157) where the dispatch
gave 9-80.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, channels: int) -> torch.Tensor:
    """Sinusoidal embedding of timesteps, ``(B,) -> (B, channels)``.

    ``[sin(t w_0) .. sin(t w_{k-1}), cos(t w_0) .. cos(t w_{k-1})]`` with
    ``k = channels / 2`` and ``w_i = exp(-i ln(10000) / (k - 1))``.
    """
    half = channels // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


_ONEDNN = hasattr(torch.ops.aten, "mkldnn_convolution") and torch.backends.mkldnn.is_available()


class Conv3x3x3(nn.Conv3d):
    """``nn.Conv3d(cin, cout, 3, padding=1)``, faster on the CPU.

    Input ``(B, cin, T, H, W)``. CPU float32 tensors (outside autocast) go
    straight to oneDNN whatever the batch size (see the module doc);
    everything else to ``F.conv3d``. Differentiable either way.
    """

    def __init__(self, cin: int, cout: int, time_padding: str = "zeros"):
        super().__init__(cin, cout, kernel_size=3, padding=1)
        if time_padding not in ("zeros", "replicate"):
            raise ValueError(f"time_padding must be zeros or replicate, got {time_padding!r}")
        self.time_padding = time_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu")):
            y = torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1)
        else:
            y = F.conv3d(x, self.weight, self.bias, padding=1)
        if self.time_padding == "replicate":
            # The zero frame before the first (after the last) replaced by a copy of it:
            # add what the first (last) temporal tap sees there. Cheaper than padding
            # the whole input: two one-frame convolutions.
            w = self.weight.to(y.dtype)
            y[:, :, :1] += F.conv3d(x[:, :, :1].to(y.dtype), w[:, :, :1], padding=(0, 1, 1))
            y[:, :, -1:] += F.conv3d(x[:, :, -1:].to(y.dtype), w[:, :, 2:], padding=(0, 1, 1))
        return y


class UNet3D(nn.Module):
    """x0-predicting 3D UNet.

    ``forward(cond, x_t, mask, t)`` with ``cond``, ``x_t``: ``(B, 3, T, H, W)``,
    ``mask``: ``(B, 1, T, H, W)`` (1 = unknown), ``t``: ``(B,)`` integer
    timesteps; returns ``(B, 3, T, H, W)``. Any H, W: inputs are padded to a
    multiple of ``2 ** (levels - 1)`` and the output cropped back.
    """

    def __init__(self, width: int = 32, levels: int = 4, time_channels: int = 16, in_video_channels: int = 3,
                 residual: bool = False, time_padding: str = "zeros"):
        super().__init__()
        self.width, self.levels, self.time_channels = width, levels, time_channels
        self.residual = residual
        cin = 2 * in_video_channels + 1 + time_channels

        def conv(a: int, b: int) -> Conv3x3x3:
            return Conv3x3x3(a, b, time_padding)

        self.stem = conv(cin, width)
        self.down = nn.ModuleList(nn.ModuleList([conv(width, width), conv(width, width)]) for _ in range(levels - 1))
        self.bottleneck = nn.ModuleList([conv(width, width), conv(width, width)])
        self.up = nn.ModuleList(nn.ModuleList([conv(2 * width, width), conv(width, width)]) for _ in range(levels - 1))
        self.head = conv(width, in_video_channels)
        self.up_proj = nn.ModuleList(nn.Conv3d(2 * width, width, kernel_size=1) for _ in range(levels - 1)) \
            if residual else None
        self.reset_parameters()
        self.to(memory_format=torch.channels_last_3d)

    def reset_parameters(self) -> None:
        """He (Kaiming) initialisation for ReLU, zero biases, a near-zero head.

        PyTorch's default conv initialisation has a third of He's variance:
        through 16 plain ReLU convs without normalisation the signal fades,
        and with the large learning rates of a short CPU budget whole ReLU
        paths die (the output no longer depends on x_t). He initialisation
        keeps the signal's scale through the depth.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.weight, std=1e-3)
        if self.residual:  # each residual block starts as (nearly) the identity
            for pair in [*self.down, self.bottleneck, *self.up]:
                nn.init.normal_(pair[1].weight, std=1e-3)

    @property
    def multiple(self) -> int:
        """H and W are padded to a multiple of this."""
        return size_multiple(self.levels)

    def forward(self, cond: torch.Tensor, x_t: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, _, frames, h, w = x_t.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        emb = timestep_embedding(t, self.time_channels).to(x_t.dtype)
        emb = emb[:, :, None, None, None].expand(b, self.time_channels, frames, h, w)
        x = torch.cat([cond, x_t, mask.to(x_t.dtype), emb], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self._residual_body(x) if self.residual else self._plain_body(x)
        return self.head(x)[..., :h, :w].contiguous()

    def _plain_body(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        skips = []
        for conv_a, conv_b in self.down:
            x = F.relu(conv_b(F.relu(conv_a(x))))
            skips.append(x)
            x = F.max_pool3d(x, kernel_size=(1, 2, 2))
        x = F.relu(self.bottleneck[1](F.relu(self.bottleneck[0](x))))
        for (conv_a, conv_b), skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
            x = F.relu(conv_b(F.relu(conv_a(torch.cat([x, skip], dim=1)))))
        return x

    def _residual_body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for conv_a, conv_b in self.down:
            x = x + conv_b(F.relu(conv_a(F.relu(x))))
            skips.append(x)
            x = F.max_pool3d(x, kernel_size=(1, 2, 2))
        x = x + self.bottleneck[1](F.relu(self.bottleneck[0](F.relu(x))))
        for (conv_a, conv_b), proj, skip in zip(self.up, self.up_proj, reversed(skips)):
            # linear, not nearest: the identity paths would carry nearest
            # upsampling's 8x8 blocks from the coarsest level to the output
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
            both = torch.cat([x, skip], dim=1)
            x = proj(both) + conv_b(F.relu(conv_a(F.relu(both))))
        return F.relu(x)


def size_multiple(levels: int) -> int:
    """H and W of a ``levels``-level network are padded to a multiple of this: ``2 ** (levels - 1)``."""
    return 2 ** (levels - 1)


def temporal_reach(levels: int) -> int:
    """Frames a network output sees: 4 convolutions of 3 taps per level on the
    deepest path (space-only pooling), so ``8 * levels + 1`` (33 for 4 levels)."""
    return 8 * levels + 1


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model: UNet3D, frames: int, height: int, width: int) -> float:
    """Multiply-adds x 2 of one forward pass on a ``(1, ·, frames, height, width)`` input.

    Counts the convolutions only (they are >99% of the work); used to report
    achieved GFLOP/s against the machine's peak.
    """
    m = model.multiple
    h, w = height + (-height) % m, width + (-width) % m
    c, cin = model.width, 7 + model.time_channels
    k = 27
    total = cin * c * k * frames * h * w  # stem
    for level in range(model.levels - 1):
        vox = frames * (h >> level) * (w >> level)
        total += 2 * c * c * k * vox  # down convs
        total += (2 * c * c + c * c) * k * vox  # up convs (2c->c, c->c)
        if model.residual:
            total += 2 * c * c * vox  # 1x1 projection of the skip
    vox = frames * (h >> (model.levels - 1)) * (w >> (model.levels - 1))
    total += 2 * c * c * k * vox  # bottleneck
    total += c * 3 * k * frames * h * w  # head
    return 2.0 * total


def bf16_is_fast(device: torch.device) -> bool:
    """True when bfloat16 convolutions run natively (AMX / AVX512-BF16 CPUs, CUDA GPUs with bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # other torch builds
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" where bfloat16 is native and fast, else "fp32"."""
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """Context running the network's convolutions in ``precision`` ("fp32" or "bf16").

    bf16 uses mixed precision: weights, optimizer state and the diffusion
    state stay float32; convolutions compute in bfloat16 (2-3x faster on
    CPUs with AMX or AVX512-BF16).
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
