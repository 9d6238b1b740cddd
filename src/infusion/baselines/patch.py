"""Patch-based video inpainting (``patch``): Wexler et al. 2007, Newson et al. 2014.

The hole is filled by minimising a global patch energy: every spatio-temporal
patch that overlaps the hole should look like its nearest neighbour among
the patches lying wholly in the known region. The minimisation alternates

1. nearest-neighbour search: 3D PatchMatch (:func:`.patchmatch.patchmatch`),
   sources restricted to patches in the known part of the video;
2. reconstruction: every hole pixel becomes the weighted mean of what the
   nearest neighbours of all the patches covering it say it should be
   (:func:`.patchmatch.vote`; weights ``exp(-d / 2s)``, ``s`` the 75th
   percentile of the candidates' distances at that pixel),

from coarse to fine over a spatial pyramid (time is never subsampled). At the
coarsest level the hole is first filled "onion-peel" fashion, layer by layer
from its border inward, each layer from the best matches of the partially
known patches around it; each finer level starts from the coarser
nearest-neighbour field, upsampled. After the finest level converges the
video is rebuilt once more against the blur of averaging: by default each
pixel moves from its best candidate to the nearby mode of its candidates'
colours (mean shift, Wexler et al. 2007); ``final_vote="best"`` takes the
best covering patch only (Newson et al.), ``"mean"`` keeps the mean.

The patch distance compares colours and, weighted by ``texture_weight``,
texture features: the absolute gray-level gradients ``|Ix|``, ``|Iy|``
averaged over a ``texture_window`` box (Newson et al. 2014 section 4), so that
a textured area is not filled with a smooth one. The features of the hole
are reconstructed along with the colours.

Only the region that matters is processed: the hole's bounding box grown by
``margin`` pixels in space, all frames in time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import PatchConfig
from ..errors import InputError
from ..methods import RunContext
from .common import check_inputs

GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --------------------------------------------------------------------------
# Inputs, region of interest, pyramid, features
# --------------------------------------------------------------------------

def _roi(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Spatial bounding box of the mask (over all frames) grown by ``margin``."""
    _, h, w = mask.shape
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    return (slice(max(0, ys[0] - margin), min(h, ys[-1] + 1 + margin)),
            slice(max(0, xs[0] - margin), min(w, xs[-1] + 1 + margin)))


def _largest_odd(n: int, cap: int) -> int:
    """Largest odd number <= min(n, cap), at least 1."""
    v = min(n, cap)
    return max(1, v if v % 2 == 1 else v - 1)


def _hole_width(hole: np.ndarray) -> float:
    """Width of the thickest part of the hole in any frame (twice the largest
    distance from a hole pixel to the known region)."""
    import cv2

    best = 0.0
    for frame in hole:
        if frame.any():
            d = cv2.distanceTransform(frame.astype(np.uint8), cv2.DIST_L2, 3)
            best = max(best, float(d.max()))
    return 2.0 * best


def _auto_levels(hole: np.ndarray, ps: int) -> int:
    """Pyramid depth: halve until the hole is about a patch wide, keeping
    frames at least eight patches across (coarser levels leave too few
    source patches around a large hole and decide its structure badly)."""
    _, h, w = hole.shape
    width = _hole_width(hole)
    levels = 1
    while levels < 6 and width / 2 ** (levels - 1) > ps and min(h, w) / 2 ** levels >= 8 * ps:
        levels += 1
    return levels


def _down2(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted 2x spatial downsampling with the [1 3 3 1] kernel.

    ``values`` ``(T, H, W, C)``, ``weight`` ``(T, H, W)`` (0 = ignore the
    pixel). Coarse pixel ``(y, x)`` covers fine pixels ``2y..2y+1``,
    ``2x..2x+1``; the result is 0 where no weight falls.
    """
    k = np.array([1.0, 3.0, 3.0, 1.0], dtype=np.float32)
    num = values * weight[..., None]
    den = weight[..., None].astype(np.float32)

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        pad = [(0, 0)] * a.ndim
        pad[axis] = (1, 1 + n % 2)
        a = np.pad(a, pad)
        m = (n + 1) // 2
        out = 0.0
        for i, kv in enumerate(k):
            sl = [slice(None)] * a.ndim
            sl[axis] = slice(i, i + 2 * m, 2)
            out = out + kv * a[tuple(sl)]
        return out

    num = along(along(num, 1), 2)
    den = along(along(den, 1), 2)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0).astype(np.float32)


def _down2_mask(hole: np.ndarray) -> np.ndarray:
    """A coarse pixel is in the hole when any of its 2x2 fine pixels is."""
    t, h, w = hole.shape
    p = np.pad(hole, ((0, 0), (0, h % 2), (0, w % 2)))
    return p.reshape(t, (h + 1) // 2, 2, (w + 1) // 2, 2).any(axis=(2, 4))


def _texture_features(colour: np.ndarray, hole: np.ndarray, window: int) -> np.ndarray:
    """Newson's texture features: ``|Ix|``, ``|Iy|`` of the gray level averaged
    over a ``window`` x ``window`` box, known pixels only. ``(T, H, W, 2)``.

    Gradients are central differences, one-sided next to the hole.
    """
    from scipy.ndimage import uniform_filter

    g = colour @ GRAY
    known = ~hole
    feats = []
    for axis in (2, 1):  # x then y
        n = g.shape[axis]
        fwd = np.zeros_like(g)
        okf = np.zeros(g.shape, dtype=bool)
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, n - 1)
        hi[axis] = slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        fwd[lo] = g[hi] - g[lo]
        okf[lo] = known[hi] & known[lo]
        bwd = np.zeros_like(g)
        okb = np.zeros(g.shape, dtype=bool)
        bwd[hi] = fwd[lo]
        okb[hi] = okf[lo]
        cnt = okf.astype(np.float32) + okb
        grad = (fwd * okf + bwd * okb) / np.maximum(cnt, 1.0)
        feats.append(np.abs(grad) * known)
    kf = known.astype(np.float32)
    size = (1, window, window)
    den = uniform_filter(kf, size=size, mode="constant")
    out = np.zeros(g.shape + (2,), dtype=np.float32)
    for c, f in enumerate(feats):
        num = uniform_filter(f.astype(np.float32), size=size, mode="constant")
        out[..., c] = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0) * known
    return out


# --------------------------------------------------------------------------
# One pyramid level
# --------------------------------------------------------------------------

@dataclass
class _Level:
    """The arrays of one pyramid level (see :mod:`.patchmatch` for the layout)."""

    hole: np.ndarray       # bool (T, H, W)
    F: np.ndarray          # float32 padded features
    V: np.ndarray          # float32 padded distance weights
    tpos: np.ndarray       # int32 (N, 3) target centres
    tid: np.ndarray        # int32 (T, H, W)
    srcok: np.ndarray      # bool (T, H, W)
    sources: np.ndarray    # int32 (S, 3) valid source centres
    pix: np.ndarray        # int32 (M, 3) hole pixels
    nnf: np.ndarray        # int32 (N, 3)
    dist: np.ndarray       # float32 (N,)
    nval: np.ndarray       # float32 (N,)
    pt: int
    ps: int

    @property
    def inner(self) -> tuple[slice, slice, slice]:
        rt, r = self.pt // 2, self.ps // 2
        t, h, w = self.hole.shape
        return slice(rt, rt + t), slice(r, r + h), slice(r, r + w)

    def hole_values(self) -> np.ndarray:
        """Current values of the hole pixels, ``(M, C)``."""
        rt, r = self.pt // 2, self.ps // 2
        p = self.pix
        return self.F[p[:, 0] + rt, p[:, 1] + r, p[:, 2] + r]

    def set_values(self, pix: np.ndarray, values: np.ndarray) -> None:
        rt, r = self.pt // 2, self.ps // 2
        self.F[pix[:, 0] + rt, pix[:, 1] + r, pix[:, 2] + r] = values


def _coords(mask: np.ndarray) -> np.ndarray:
    """``(t, y, x)`` of the True pixels, raster order, C-contiguous int32 ``(n, 3)``."""
    return np.ascontiguousarray(np.argwhere(mask), dtype=np.int32)


def _make_level(values: np.ndarray, hole: np.ndarray, pt: int, ps: int) -> _Level:
    from scipy.ndimage import maximum_filter

    t, h, w, c = values.shape
    rt, r = pt // 2, ps // 2
    F = np.zeros((t + 2 * rt, h + 2 * r, w + 2 * r, c), dtype=np.float32)
    F[rt:rt + t, r:r + h, r:r + w] = values
    F[rt:rt + t, r:r + h, r:r + w][hole] = 0.0
    V = np.zeros(F.shape[:3], dtype=np.float32)
    V[rt:rt + t, r:r + h, r:r + w] = 1.0
    near = maximum_filter(hole, size=(pt, ps, ps), mode="constant", cval=False)
    tpos = _coords(near)
    tid = np.full(hole.shape, -1, dtype=np.int32)
    tid[near] = np.arange(len(tpos), dtype=np.int32)
    srcok = ~near
    srcok[:rt] = False
    srcok[t - rt:] = False
    srcok[:, :r] = False
    srcok[:, h - r:] = False
    srcok[:, :, :r] = False
    srcok[:, :, w - r:] = False
    n = len(tpos)
    return _Level(hole=hole, F=F, V=V, tpos=tpos, tid=tid, srcok=np.ascontiguousarray(srcok),
                  sources=_coords(srcok), pix=_coords(hole),
                  nnf=np.zeros((n, 3), np.int32), dist=np.zeros(n, np.float32),
                  nval=np.zeros(n, np.float32), pt=pt, ps=ps)


def _random_sources(level: _Level, n: int, rng: np.random.Generator) -> np.ndarray:
    return level.sources[rng.integers(0, len(level.sources), size=n)]


def _upsample_nnf(coarse: _Level, fine: _Level, rng: np.random.Generator) -> None:
    """Initialise the fine NNF from the coarse one (offsets doubled in space).

    A fine target takes the source of the coarse target containing it,
    shifted by twice the offset; sources that are not valid at the fine level
    are clamped into the source area or, failing that, drawn at random (with
    a large distance, so that they weigh little in the first vote).
    """
    p = fine.tpos.astype(np.int64)
    tc, hc, wc = coarse.hole.shape
    t, h, w = fine.hole.shape
    qy = np.minimum(p[:, 1] // 2, hc - 1)
    qx = np.minimum(p[:, 2] // 2, wc - 1)
    j = coarse.tid[p[:, 0], qy, qx]
    has = j >= 0
    s = coarse.nnf[np.maximum(j, 0)].astype(np.int64)
    cand = np.empty_like(p)
    cand[:, 0] = s[:, 0]
    cand[:, 1] = 2 * s[:, 1] + (p[:, 1] - 2 * qy)
    cand[:, 2] = 2 * s[:, 2] + (p[:, 2] - 2 * qx)
    rt, r = fine.pt // 2, fine.ps // 2
    lo = np.array([rt, r, r])
    hi = np.array([t - rt - 1, h - r - 1, w - r - 1])
    cand = np.clip(cand, lo, hi)
    ok = has & fine.srcok[cand[:, 0], cand[:, 1], cand[:, 2]]
    bad = ~ok
    if bad.any():
        cand[bad] = _random_sources(fine, int(bad.sum()), rng)
    fine.nnf[:] = cand.astype(np.int32)
    # per-pixel mean distances carried over from the coarse level
    dn = coarse.dist[np.maximum(j, 0)] / np.maximum(coarse.nval[np.maximum(j, 0)], 1.0)
    finite = dn[ok & np.isfinite(dn)]
    worst = float(finite.max()) * 10.0 + 1.0 if finite.size else 1.0
    dn = np.where(ok & np.isfinite(dn), dn, worst)
    fine.dist[:] = (dn * np.maximum(fine.nval, 1.0)).astype(np.float32)


# --------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------

def _onion_peel(level: _Level, sweeps: int, percentile: float, rng) -> int:
    """Fill the hole of the coarsest level layer by layer from its border.

    Each layer (hole pixels touching the known or already filled region in
    the 3x3x3 sense) is rebuilt from the patches around it whose centres are
    known or filled, matched on their known and filled pixels only. Returns
    the number of layers.
    """
    from scipy.ndimage import binary_dilation, maximum_filter

    from . import patchmatch as K

    pt, ps = level.pt, level.ps
    inner = level.inner
    level.nnf[:] = _random_sources(level, len(level.tpos), rng)
    filled = ~level.hole
    remaining = level.hole.copy()
    cube = np.ones((3 if level.hole.shape[0] > 1 else 1, 3, 3), dtype=bool)
    layers = 0
    while remaining.any():
        layer = remaining & binary_dilation(filled, structure=cube)
        if not layer.any():  # pragma: no cover - cannot happen with a known pixel left
            layer = remaining
        near = maximum_filter(layer, size=(pt, ps, ps), mode="constant", cval=False) & filled
        active = level.tid[near & (level.tid >= 0)].astype(np.int32)
        level.V[inner] = filled
        K.patch_weights(level.V, level.tpos, level.nval, active, pt, ps)
        K.patchmatch(level.F, level.V, level.tpos, level.tid, level.srcok, level.nnf, level.dist,
                     level.nval, active, sweeps, pt, ps)
        pix = _coords(layer)
        out = np.empty((len(pix), level.F.shape[3]), np.float32)
        K.vote(level.F, level.tid, level.nnf, level.dist, level.nval, np.ascontiguousarray(filled),
               pix, out, pt, ps, 0, percentile, 1.0)
        level.set_values(pix, out)
        filled |= layer
        remaining &= ~layer
        layers += 1
    level.V[inner] = 1.0
    return layers


def _all(level: _Level) -> np.ndarray:
    return np.arange(len(level.tpos), dtype=np.int32)


def fill_patch(video: np.ndarray, mask: np.ndarray, config: PatchConfig, ctx: RunContext) -> np.ndarray:
    """Inpaint ``video`` where ``mask`` is True; returns float32 ``(1, T, H, W, 3)``.

    See the module docstring for the algorithm and :class:`PatchConfig` for
    the settings. Deterministic given ``ctx.seed``. Sets ``ctx.observed``
    to the whole hole: every hole pixel is rebuilt from known patches.
    """
    from . import patchmatch as K

    video, mask = check_inputs(video, mask, "patch")
    ctx.observed = mask.copy()
    if not mask.any():
        return video[None]
    log = ctx.progress.log
    compile_s = K.warmup()
    ctx.stats["patch_kernels_load_s"] = round(compile_s, 3)

    ys, xs = _roi(mask, config.margin)
    hole = np.ascontiguousarray(mask[:, ys, xs])
    colour = np.ascontiguousarray(video[:, ys, xs])
    t, h, w = hole.shape
    pt = _largest_odd(t, config.patch_frames)
    ps = _largest_odd(min(h, w), config.patch_size)
    levels = config.levels or _auto_levels(hole, ps)

    # pyramid: colour + weighted texture features, known pixels only
    values = colour
    if config.texture_weight > 0:
        feats = _texture_features(colour, hole, config.texture_window) * math.sqrt(config.texture_weight)
        values = np.concatenate([colour, feats], axis=-1)
    pyramid = [(values, hole)]
    for _ in range(levels - 1):
        v, m = pyramid[-1]
        if min(m.shape[1:]) < 2 * ps:
            break
        pyramid.append((_down2(v, (~m).astype(np.float32)), _down2_mask(m)))
    built = []
    for v, m in pyramid:
        lev = _make_level(v, m, pt, ps)
        if len(lev.sources) == 0:
            break
        built.append(lev)
    if not built:
        raise InputError(f"patch: no {pt}x{ps}x{ps} patch lies wholly in the known region; "
                         "use a smaller patch_size or a larger margin")
    levels = len(built)
    log(f"patch: region {w}x{h}x{t}, patch {ps}x{ps}x{pt}, {levels} level(s), "
        f"{int(hole.sum())} hole pixels")

    K.seed(int(ctx.seed))
    rng = np.random.default_rng(int(ctx.seed))
    percentile = float(config.sigma_percentile)
    iters = config.iterations
    history = []
    prev = None
    wall0 = time.perf_counter()
    with ctx.progress.bar("patch", total=levels * iters, unit="iter") as bar:
        for li in range(levels - 1, -1, -1):
            lev = built[li]
            active = _all(lev)
            K.patch_weights(lev.V, lev.tpos, lev.nval, active, pt, ps)
            out = np.empty((len(lev.pix), lev.F.shape[3]), np.float32)
            centre_ok = np.ones(lev.hole.shape, dtype=bool)
            if prev is None:
                layers = _onion_peel(lev, config.init_sweeps, percentile, rng)
                K.patch_weights(lev.V, lev.tpos, lev.nval, active, pt, ps)
                ctx.stats["patch_onion_layers"] = layers
            else:
                _upsample_nnf(prev, lev, rng)
                K.vote(lev.F, lev.tid, lev.nnf, lev.dist, lev.nval, centre_ok, lev.pix, out, pt, ps, 0,
                       percentile, 1.0)
                lev.set_values(lev.pix, out)
            done = 0
            for it in range(iters):
                before = lev.hole_values()[:, :3].copy()
                K.patchmatch(lev.F, lev.V, lev.tpos, lev.tid, lev.srcok, lev.nnf, lev.dist, lev.nval,
                             active, config.sweeps, pt, ps)
                K.vote(lev.F, lev.tid, lev.nnf, lev.dist, lev.nval, centre_ok, lev.pix, out, pt, ps, 0,
                       percentile, 1.0)
                lev.set_values(lev.pix, out)
                residual = float(np.abs(out[:, :3] - before).mean())
                done += 1
                bar.update(1, level=li, residual=residual * 255.0)
                if residual * 255.0 < config.tolerance:
                    break
            bar.update(iters - done)
            history.append({"level": li, "iterations": done, "residual": round(residual * 255.0, 4),
                            "size": [int(s) for s in lev.hole.shape]})
            prev = lev
        lev = built[0]
        if config.final_vote != "mean":
            out = np.empty((len(lev.pix), lev.F.shape[3]), np.float32)
            mode = 1 if config.final_vote == "best" else 2
            K.vote(lev.F, lev.tid, lev.nnf, lev.dist, lev.nval, np.ones(lev.hole.shape, dtype=bool),
                   lev.pix, out, pt, ps, mode, percentile, float(config.mode_bandwidth))
            lev.set_values(lev.pix, out)
    ctx.stats["patch_levels"] = levels
    ctx.stats["patch_history"] = history
    ctx.stats["patch_solve_s"] = round(time.perf_counter() - wall0, 3)
    filled = lev.F[lev.inner][..., :3]
    result = video.copy()
    result[:, ys, xs] = np.where(hole[..., None], filled, colour)
    return np.clip(result, 0.0, 1.0)[None]
