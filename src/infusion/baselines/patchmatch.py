"""Compiled kernels of patch-based video inpainting (``patch`` method).

Numba kernels for the two alternating steps of Wexler et al. / Newson et al.:

- :func:`patchmatch`: approximate nearest neighbours of spatio-temporal
  patches by 3D PatchMatch (Barnes et al. 2009): propagation along t, y and x
  with alternating scan directions, then random search in windows that halve
  each step;
- :func:`vote`: reconstruction of every hole pixel from all the patches that
  cover it (weighted mean with Newson's per-pixel adaptive weights, the
  mode of their colours by mean shift, or the best of them only).

Conventions shared by every kernel (the driver, :mod:`.patch`, builds them):

``F`` float32 ``(T + 2*rt, H + 2*r, W + 2*r, C)``
    Feature volume padded by the patch radii ``rt`` (time) and ``r`` (space):
    colour channels then the weighted texture features. The patch whose
    centre is the (unpadded) pixel ``(t, y, x)`` occupies
    ``F[t:t+pt, y:y+ps, x:x+ps]``: in padded coordinates its corner is the
    centre's unpadded coordinates.
``V`` float32 ``(T + 2*rt, H + 2*r, W + 2*r)``
    Weight of each pixel in the patch distance: 0 in the padding (outside the
    video) and, during the onion-peel initialisation, on hole pixels not
    filled yet; 1 elsewhere.
``tpos`` int32 ``(N, 3)``, ``tid`` int32 ``(T, H, W)``
    Target patch centres (every patch that overlaps the hole) and the map
    from a pixel to its target index (-1: not a target).
``srcok`` bool ``(T, H, W)``
    Valid source centres: the whole patch lies inside the video and in the
    known region.
``nnf`` int32 ``(N, 3)``, ``dist`` float32 ``(N,)``
    Source centre of each target and the (unnormalised) patch distance.
``nval`` float32 ``(N,)``
    Sum of ``V`` over each target patch: distances divided by it are means
    per compared pixel, comparable between patches.

Randomness comes from Numba's generator, seeded by :func:`seed`; the kernels
that draw random numbers run serially, so results depend on the seed only.
All kernels are compiled with ``cache=True``: the first use on a machine
compiles them (see :func:`warmup`), later processes load them from disk.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

# Reassociation lets LLVM vectorise the patch sums; no "no-inf/no-nan"
# assumptions, since distances start at +inf. Inlined helpers are compiled
# with their caller's flags, so every kernel carries them.
FAST = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True)
def seed(value):
    """Seed Numba's random generator (used by :func:`patchmatch`)."""
    np.random.seed(value)


@njit(cache=True, fastmath=FAST, inline="always")
def _ssd(F, V, t, y, x, st, sy, sx, pt, ps, best):
    """Weighted SSD between the patches with corners (t, y, x) and (st, sy, sx).

    Stops early (returning a value > ``best``) once the partial sum exceeds
    ``best``.
    """
    C = F.shape[3]
    acc = np.float32(0.0)
    for dt in range(pt):
        for dy in range(ps):
            for dx in range(ps):
                v = V[t + dt, y + dy, x + dx]
                if v == 0.0:
                    continue
                s = np.float32(0.0)
                for c in range(C):
                    d = F[t + dt, y + dy, x + dx, c] - F[st + dt, sy + dy, sx + dx, c]
                    s += d * d
                acc += v * s
            if acc > best:
                return acc
    return acc


@njit(cache=True, fastmath=FAST, inline="always")
def _ssd_full(F3, t, y, x, st, sy, sx, pt, ps, C, best):
    """Plain SSD of two patches (every pixel counts); ``F3`` is ``F`` viewed as
    ``(T, H, W * C)`` so that a patch row is one contiguous run."""
    acc = np.float32(0.0)
    n = ps * C
    xo = x * C
    so = sx * C
    for dt in range(pt):
        for dy in range(ps):
            s = np.float32(0.0)
            for k in range(n):
                d = F3[t + dt, y + dy, xo + k] - F3[st + dt, sy + dy, so + k]
                s += d * d
            acc += s
            if acc > best:
                return acc
    return acc


@njit(cache=True, fastmath=FAST, inline="always")
def _dist(F, F3, V, full, t, y, x, st, sy, sx, pt, ps, best):
    if full:
        return _ssd_full(F3, t, y, x, st, sy, sx, pt, ps, F.shape[3], best)
    return _ssd(F, V, t, y, x, st, sy, sx, pt, ps, best)


@njit(cache=True, fastmath=FAST)
def patch_distances(F, V, tpos, nnf, dist, nval, active, pt, ps):
    """Recompute ``dist`` of the ``active`` targets for their current sources."""
    inf = np.float32(np.inf)
    F3 = F.reshape(F.shape[0], F.shape[1], F.shape[2] * F.shape[3])
    kfull = np.float32(pt * ps * ps)
    for a in range(active.shape[0]):
        i = active[a]
        dist[i] = _dist(F, F3, V, nval[i] == kfull, tpos[i, 0], tpos[i, 1], tpos[i, 2],
                        nnf[i, 0], nnf[i, 1], nnf[i, 2], pt, ps, inf)


@njit(cache=True, fastmath=FAST)
def patchmatch(F, V, tpos, tid, srcok, nnf, dist, nval, active, sweeps, pt, ps):
    """Improve the nearest-neighbour field of the ``active`` targets in place.

    First recomputes their distances (the video changed since the last call),
    then runs ``sweeps`` PatchMatch sweeps: forward raster order (t, y, x) on
    even sweeps, backward on odd ones. Each target tries its already-visited
    neighbours' sources shifted by one pixel along t, y and x, then random
    candidates around its best source in windows of half-width max(H, W)
    (space) and T (time), halved until below one pixel.
    """
    T, H, W = srcok.shape
    rt = pt // 2
    r = ps // 2
    # source centres lie in [rt, T-rt) x [r, H-r) x [r, W-r)
    t_lo, t_hi = rt, T - rt - 1
    y_lo, y_hi = r, H - r - 1
    x_lo, x_hi = r, W - r - 1
    n = active.shape[0]
    F3 = F.reshape(F.shape[0], F.shape[1], F.shape[2] * F.shape[3])
    kfull = np.float32(pt * ps * ps)
    patch_distances(F, V, tpos, nnf, dist, nval, active, pt, ps)
    for sweep in range(sweeps):
        step = 1 if sweep % 2 == 0 else -1
        for k in range(n):
            a = k if step == 1 else n - 1 - k
            i = active[a]
            t = tpos[i, 0]
            y = tpos[i, 1]
            x = tpos[i, 2]
            bt = nnf[i, 0]
            by = nnf[i, 1]
            bx = nnf[i, 2]
            best = dist[i]
            full = nval[i] == kfull  # every pixel of the patch counts: fast path
            # propagation from the neighbours visited before in this sweep
            for ax in range(3):
                qt = t
                qy = y
                qx = x
                if ax == 0:
                    qt -= step
                elif ax == 1:
                    qy -= step
                else:
                    qx -= step
                if qt < 0 or qt >= T or qy < 0 or qy >= H or qx < 0 or qx >= W:
                    continue
                j = tid[qt, qy, qx]
                if j < 0:
                    continue
                ct = nnf[j, 0] + (t - qt)
                cy = nnf[j, 1] + (y - qy)
                cx = nnf[j, 2] + (x - qx)
                if ct < t_lo or ct > t_hi or cy < y_lo or cy > y_hi or cx < x_lo or cx > x_hi:
                    continue
                if not srcok[ct, cy, cx] or (ct == bt and cy == by and cx == bx):
                    continue
                d = _dist(F, F3, V, full, t, y, x, ct, cy, cx, pt, ps, best)
                if d < best:
                    best = d
                    bt = ct
                    by = cy
                    bx = cx
            # random search in shrinking windows around the best source
            rs = max(H, W)
            rw = T if t_hi > t_lo else 0
            while rs >= 1 or rw >= 1:
                ct = bt
                cy = by
                cx = bx
                if rw >= 1:
                    ct = min(max(bt + np.random.randint(-rw, rw + 1), t_lo), t_hi)
                if rs >= 1:
                    cy = min(max(by + np.random.randint(-rs, rs + 1), y_lo), y_hi)
                    cx = min(max(bx + np.random.randint(-rs, rs + 1), x_lo), x_hi)
                rs //= 2
                rw //= 2
                if not srcok[ct, cy, cx] or (ct == bt and cy == by and cx == bx):
                    continue
                d = _dist(F, F3, V, full, t, y, x, ct, cy, cx, pt, ps, best)
                if d < best:
                    best = d
                    bt = ct
                    by = cy
                    bx = cx
            nnf[i, 0] = bt
            nnf[i, 1] = by
            nnf[i, 2] = bx
            dist[i] = best


@njit(cache=True)
def patch_weights(V, tpos, nval, active, pt, ps):
    """``nval[i]`` = sum of ``V`` over the patch of each active target ``i``."""
    for a in range(active.shape[0]):
        i = active[a]
        t = tpos[i, 0]
        y = tpos[i, 1]
        x = tpos[i, 2]
        s = np.float32(0.0)
        for dt in range(pt):
            for dy in range(ps):
                for dx in range(ps):
                    s += V[t + dt, y + dy, x + dx]
        nval[i] = s


@njit(cache=True, inline="always")
def _kth_smallest(buf, n, k):
    """k-th smallest of ``buf[:n]`` (0-based), reordering ``buf`` (quickselect)."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                tmp = buf[i]
                buf[i] = buf[j]
                buf[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return buf[k]


@njit(cache=True, parallel=True, fastmath=FAST)
def vote(F, tid, nnf, dist, nval, centre_ok, pix, out, pt, ps, mode, percentile, bandwidth):
    """Reconstruct the pixels ``pix`` (int32 ``(M, 3)``, unpadded) into ``out``.

    Every target patch whose centre ``q`` is within the patch radius of the
    pixel ``p`` (and ``centre_ok[q]``) proposes the value its source holds at
    the same relative position, ``F[nnf[q] + (p - q)]``, with the distance
    ``d = dist / nval`` (mean per compared pixel).

    ``mode`` 0: weighted mean with weights ``exp(-d / (2 s))``, ``s`` the
    ``percentile`` (0..100) of the candidates' ``d`` at this pixel (Newson et
    al.'s adaptive weights, with ``s`` in squared-distance units so the rule
    does not depend on the value scale). ``mode`` 1: the value of the best
    candidate (smallest ``d``). ``mode`` 2: mean shift on the candidates'
    colours (Gaussian kernel times the weights above, bandwidth
    ``bandwidth`` times their weighted standard deviation around the
    weighted mean, 10 steps) from the best candidate to the nearby mode the
    covering patches agree on (Wexler et al. 2007). A pixel with
    no candidate keeps its value.
    ``out`` float32 ``(M, C)``. Pixels are independent: the result does not
    depend on the number of threads.
    """
    T, H, W = tid.shape
    rt = pt // 2
    r = ps // 2
    C = F.shape[3]
    K = pt * ps * ps
    M = pix.shape[0]
    chunk = 256
    for ch in prange((M + chunk - 1) // chunk):
        ds = np.empty(K, dtype=np.float32)
        buf = np.empty(K, dtype=np.float32)
        off = np.empty((K, 3), dtype=np.int32)
        acc = np.empty(C, dtype=np.float32)
        num = np.empty(C, dtype=np.float32)
        for m in range(ch * chunk, min(M, (ch + 1) * chunk)):
            t = pix[m, 0]
            y = pix[m, 1]
            x = pix[m, 2]
            n = 0
            for dt in range(-rt, rt + 1):
                qt = t + dt
                if qt < 0 or qt >= T:
                    continue
                for dy in range(-r, r + 1):
                    qy = y + dy
                    if qy < 0 or qy >= H:
                        continue
                    for dx in range(-r, r + 1):
                        qx = x + dx
                        if qx < 0 or qx >= W:
                            continue
                        j = tid[qt, qy, qx]
                        if j < 0 or not centre_ok[qt, qy, qx]:
                            continue
                        ds[n] = dist[j] / max(nval[j], np.float32(1.0))
                        # source pixel (padded coordinates) = nnf[j] - (q - p) + pad
                        off[n, 0] = nnf[j, 0] - dt + rt
                        off[n, 1] = nnf[j, 1] - dy + r
                        off[n, 2] = nnf[j, 2] - dx + r
                        n += 1
            if n == 0:
                for c in range(C):
                    out[m, c] = F[t + rt, y + r, x + r, c]
                continue
            if mode == 1:
                b = 0
                for k in range(1, n):
                    if ds[k] < ds[b]:
                        b = k
                for c in range(C):
                    out[m, c] = F[off[b, 0], off[b, 1], off[b, 2], c]
                continue
            for k in range(n):
                buf[k] = ds[k]
            kk = min(n - 1, max(0, int(percentile / 100.0 * (n - 1) + 0.5)))
            s = max(_kth_smallest(buf, n, kk), np.float32(1e-8))
            inv = np.float32(-0.5) / s
            for c in range(C):
                acc[c] = 0.0
            wsum = np.float32(0.0)
            for k in range(n):
                w = np.exp(ds[k] * inv)
                wsum += w
                for c in range(C):
                    acc[c] += w * F[off[k, 0], off[k, 1], off[k, 2], c]
            if wsum > np.float32(1e-20) and mode == 2:
                # mean shift on the colours, from the best candidate, to the
                # mode of the covering patches near it (Wexler et al. 2007);
                # the bandwidth is relative to the candidates' spread around
                # their weighted mean
                for c in range(C):
                    acc[c] /= wsum
                var = np.float32(0.0)
                for k in range(n):
                    w = np.exp(ds[k] * inv)
                    dd = np.float32(0.0)
                    for c in range(3):
                        e = F[off[k, 0], off[k, 1], off[k, 2], c] - acc[c]
                        dd += e * e
                    var += w * dd
                h = max(bandwidth * bandwidth * var / wsum, np.float32(1e-10))
                ih = np.float32(-0.5) / h
                b = 0
                for k in range(1, n):
                    if ds[k] < ds[b]:
                        b = k
                for c in range(C):
                    acc[c] = F[off[b, 0], off[b, 1], off[b, 2], c]
                for _ in range(10):
                    for c in range(C):
                        num[c] = 0.0
                    den = np.float32(0.0)
                    for k in range(n):
                        dd = np.float32(0.0)
                        for c in range(3):
                            e = F[off[k, 0], off[k, 1], off[k, 2], c] - acc[c]
                            dd += e * e
                        g = np.exp(ds[k] * inv + dd * ih)
                        den += g
                        for c in range(C):
                            num[c] += g * F[off[k, 0], off[k, 1], off[k, 2], c]
                    if den <= np.float32(1e-30):
                        break
                    for c in range(C):
                        acc[c] = num[c] / den
                for c in range(C):
                    out[m, c] = acc[c]
            elif wsum > np.float32(1e-20):
                for c in range(C):
                    out[m, c] = acc[c] / wsum
            else:  # every candidate far worse than the percentile: plain mean
                for c in range(C):
                    acc[c] = 0.0
                for k in range(n):
                    for c in range(C):
                        acc[c] += F[off[k, 0], off[k, 1], off[k, 2], c]
                for c in range(C):
                    out[m, c] = acc[c] / n


def warmup() -> float:
    """Compile (first use on this machine) or load every kernel; return seconds taken."""
    t0 = time.perf_counter()
    pt, ps = 3, 3
    T, H, W, C = 4, 8, 8, 5
    F = np.zeros((T + 2, H + 2, W + 2, C), np.float32)
    V = np.ones((T + 2, H + 2, W + 2), np.float32)
    tid = np.full((T, H, W), -1, np.int32)
    tid[1, 3, 3] = 0
    tpos = np.array([[1, 3, 3]], np.int32)
    srcok = np.zeros((T, H, W), np.bool_)
    srcok[1:3, 1:7, 6] = True
    nnf = np.array([[1, 3, 6]], np.int32)
    dist = np.zeros(1, np.float32)
    nval = np.zeros(1, np.float32)
    active = np.zeros(1, np.int32)
    seed(0)
    patch_weights(V, tpos, nval, active, pt, ps)
    patchmatch(F, V, tpos, tid, srcok, nnf, dist, nval, active, 2, pt, ps)
    out = np.zeros((1, C), np.float32)
    centre_ok = np.ones((T, H, W), np.bool_)
    vote(F, tid, nnf, dist, nval, centre_ok, tpos, out, pt, ps, 0, 75.0, 1.0)
    vote(F, tid, nnf, dist, nval, centre_ok, tpos, out, pt, ps, 1, 75.0, 1.0)
    return time.perf_counter() - t0
