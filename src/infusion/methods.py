"""The registry of inpainting methods.

Every method has one signature::

    fill(video, mask, config, ctx) -> samples

``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool ``(T, H, W)``,
True = fill; ``config``: the method's config dataclass; ``ctx``: a
:class:`RunContext`. It returns float32 ``(S, T, H, W, 3)`` in [0, 1] with
``S == ctx.samples`` for stochastic methods and ``S == 1`` for deterministic
ones. Values outside the mask need not be exact: the pipeline pastes the
known pixels back.

Implementations are imported lazily, so that listing methods or reading a
video never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from . import config as C
from .errors import InputError
from .progress import Progress


@dataclass
class RunContext:
    """What a method needs besides the data and its config."""

    seed: int = 0
    device: str = "cpu"
    samples: int = 1
    progress: Progress = field(default_factory=Progress)
    work_dir: Optional[Path] = None
    resume: bool = False
    # Filled by methods: figures worth reporting (e.g. training seconds).
    stats: dict = field(default_factory=dict)
    # Set by methods whose fill copies known pixels: bool ``(T, H, W)``, True
    # at the hole pixels so filled (``flow``: those it traced to the same
    # content seen in another frame; ``patch``: every hole pixel, rebuilt
    # from known patches); None for the others.
    observed: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Method:
    name: str
    target: str  # "module:function", imported on first use
    config_cls: type
    presets: dict
    default_preset: Optional[str]
    stochastic: bool
    summary: str
    # its config has max_side and max_region_pixels, which the pipeline applies
    # (infusion.resolution): the method gets frames already at its working size
    resizes: bool = False

    def load(self) -> Callable[..., Any]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)

    def resolve_config(self, preset: Optional[str] = None, config=None, overrides=None):
        """Pick the config: an explicit one, else a preset (default preset if None)."""
        if config is not None:
            if not isinstance(config, self.config_cls):
                raise InputError(f"method {self.name} takes a {self.config_cls.__name__}, "
                                 f"not a {type(config).__name__}")
            if preset is not None:
                raise InputError("give either a preset or a config, not both")
        else:
            name = preset or self.default_preset
            if name is None:
                config = self.config_cls()
            elif name not in self.presets:
                raise InputError(
                    f"method {self.name} has no preset {name!r}; presets: "
                    f"{', '.join(self.presets) or '(none)'}"
                )
            else:
                config = self.presets[name]
        return C.apply_overrides(config, overrides)


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; available: {', '.join(available())}") from None


def available() -> list[str]:
    return list(_METHODS)


register(Method(
    "infusion", "infusion.infusion_method:fill_infusion", C.InfusionConfig, C.INFUSION_PRESETS,
    C.DEFAULT_INFUSION_PRESET, True,
    "internal diffusion trained on the video itself, interval training (Cherel et al. 2025)", resizes=True,
))
register(Method(
    "telea", "infusion.baselines.opencv:fill_telea", C.OpenCVConfig, {}, None, False,
    "OpenCV fast marching (Telea 2004), frame by frame",
))
register(Method(
    "ns", "infusion.baselines.opencv:fill_ns", C.OpenCVConfig, {}, None, False,
    "OpenCV Navier-Stokes inpainting (Bertalmio et al. 2001), frame by frame",
))
register(Method(
    "harmonic", "infusion.baselines.harmonic:fill_harmonic", C.HarmonicConfig, {}, None, False,
    "heat-equation (Laplace) fill in space-time, known pixels as boundary",
))
register(Method(
    "tv", "infusion.baselines.tv:fill_tv", C.TVConfig, {}, None, False,
    "total-variation inpainting in space-time (primal-dual)",
))
register(Method(
    "flow", "infusion.baselines.flow:fill_flow", C.FlowConfig, {}, None, False,
    "flow-guided propagation of known pixels (the classical core of ProPainter-like tools)",
))
register(Method(
    "patch", "infusion.baselines.patch:fill_patch", C.PatchConfig, {}, None, False,
    "patch-based video inpainting with 3D PatchMatch (Wexler 2007, Newson et al. 2014)",
))
