"""Flow-guided propagation (``flow``): the classical core of FGVC and ProPainter.

Known pixels are carried into the hole along the motion of the video, so a
region hidden in one frame is filled with what was seen there in another.

1. **Flow.** Every frame's hole is first filled in space (OpenCV Telea), so
   that nothing under the mask is ever looked at; then DIS optical flow
   (OpenCV) is computed between consecutive frames, forwards
   (``F_t``: t -> t+1) and backwards (``B_t``: t+1 -> t).
2. **Flow completion.** The flow of ``F_t`` and ``B_t`` is not trusted where
   frame t or t+1 is masked, grown by ``flow_dilate`` pixels (DIS matches
   patches, so flow near a hole is contaminated by the fill). There it is
   replaced by the space-time harmonic interpolant of the trusted flow
   (:func:`~infusion.baselines.harmonic.harmonic_fill`, the four flow
   channels in one solve): smooth motion, as in FGVC's classical variants.
3. **Propagation.** Every hole pixel follows the completed flow frame after
   frame, forwards and backwards, its position kept in sub-pixel precision
   (the flows are composed, not the colours resampled), until it lands where
   the frame is known; the colour is read there once, by bilinear
   interpolation. A chain stops (no candidate) when it leaves the frame or
   when a step fails the forward-backward check
   ``|F(p) + B(p + F(p))| <= consistency_px`` (occlusion, bad flow). Both
   directions' candidates are blended with weights 1/distance in frames
   (``combine="blend"``) or the nearer one is taken (``"nearest"``).
4. **The rest.** Pixels no chain reaches (a region hidden in every frame
   along its trajectory) are filled like FGVC does: the frame with the most
   of them is filled in space (``spatial``: Telea or harmonic) and serves as
   a new source for another round of propagation, at most
   ``max_keyframes`` times; whatever is left is filled in space frame by
   frame.

Known pixels are never changed. Static content under a static hole ends up
a copy of one filled keyframe in every frame: the "frozen texture" look of
flow-based methods on dynamic textures.

The chain tracing is compiled with numba.
"""

from __future__ import annotations

import numpy as np

from ..config import FlowConfig
from ..methods import RunContext
from ..progress import Progress
from .common import as_samples, check_inputs

try:  # pragma: no cover - numba is a dependency; the fallback only keeps imports working
    from numba import njit
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


# --------------------------------------------------------------------------
# Compiled kernels
# --------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _sample2(field, t, y, x):
    """Bilinear sample of a 2-channel field ``(T, H, W, 2)`` at frame t, (y, x) clamped."""
    H = field.shape[1]
    W = field.shape[2]
    if y < 0.0:
        y = 0.0
    if x < 0.0:
        x = 0.0
    if y > H - 1:
        y = H - 1.0
    if x > W - 1:
        x = W - 1.0
    y0 = int(y)
    x0 = int(x)
    y1 = min(y0 + 1, H - 1)
    x1 = min(x0 + 1, W - 1)
    fy = y - y0
    fx = x - x0
    a = (1 - fy) * (1 - fx)
    b = (1 - fy) * fx
    c = fy * (1 - fx)
    d = fy * fx
    u = a * field[t, y0, x0, 0] + b * field[t, y0, x1, 0] + c * field[t, y1, x0, 0] + d * field[t, y1, x1, 0]
    v = a * field[t, y0, x0, 1] + b * field[t, y0, x1, 1] + c * field[t, y1, x0, 1] + d * field[t, y1, x1, 1]
    return u, v


@njit(cache=True, nogil=True)
def _trace(tt, ty, tx, fwd, bwd, ok, frames, direction, thr, out_val, out_dist):
    """Follow the flow from each target pixel until it lands on a source pixel.

    tt, ty, tx : int arrays (n,), the target pixels (frame, row, column).
    fwd, bwd : float32 (T-1, H, W, 2) flows (dx, dy): fwd[s] maps frame s to
        s+1 on the grid of s; bwd[s] maps frame s+1 to s on the grid of s+1.
    ok : bool (T, H, W), True where a frame may serve as a source.
    frames : float32 (T, H, W, C) colours of the sources.
    direction : +1 (forwards in time) or -1.
    thr : forward-backward consistency threshold in pixels.
    out_val : float32 (n, C) colour found; out_dist : int32 (n,) distance in
        frames (0 = nothing found).
    """
    T = frames.shape[0]
    H = frames.shape[1]
    W = frames.shape[2]
    C = frames.shape[3]
    thr2 = thr * thr
    for i in range(tt.shape[0]):
        s = tt[i]
        y = float(ty[i])
        x = float(tx[i])
        out_dist[i] = 0
        steps = 0
        while True:
            if direction > 0:
                if s >= T - 1:
                    break
                dx, dy = _sample2(fwd, s, y, x)
                ny = y + dy
                nx = x + dx
                if ny < 0.0 or nx < 0.0 or ny > H - 1 or nx > W - 1:
                    break
                bx, by = _sample2(bwd, s, ny, nx)
                s += 1
            else:
                if s <= 0:
                    break
                dx, dy = _sample2(bwd, s - 1, y, x)
                ny = y + dy
                nx = x + dx
                if ny < 0.0 or nx < 0.0 or ny > H - 1 or nx > W - 1:
                    break
                bx, by = _sample2(fwd, s - 1, ny, nx)
                s -= 1
            if (dx + bx) * (dx + bx) + (dy + by) * (dy + by) > thr2:
                break
            y = ny
            x = nx
            steps += 1
            # a source when every pixel the bilinear read touches is one
            y0 = int(y)
            x0 = int(x)
            fy = y - y0
            fx = x - x0
            y1 = min(y0 + 1, H - 1)
            x1 = min(x0 + 1, W - 1)
            eps = 1e-4
            wa = (1 - fy) * (1 - fx)
            wb = (1 - fy) * fx
            wc = fy * (1 - fx)
            wd = fy * fx
            good = True
            if wa > eps and not ok[s, y0, x0]:
                good = False
            if wb > eps and not ok[s, y0, x1]:
                good = False
            if wc > eps and not ok[s, y1, x0]:
                good = False
            if wd > eps and not ok[s, y1, x1]:
                good = False
            if good:
                tot = 0.0
                for w in (wa, wb, wc, wd):
                    if w > eps:
                        tot += w
                for c in range(C):
                    acc = 0.0
                    if wa > eps:
                        acc += wa * frames[s, y0, x0, c]
                    if wb > eps:
                        acc += wb * frames[s, y0, x1, c]
                    if wc > eps:
                        acc += wc * frames[s, y1, x0, c]
                    if wd > eps:
                        acc += wd * frames[s, y1, x1, c]
                    out_val[i, c] = acc / tot
                out_dist[i] = steps
                break


# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------

def _to_u8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)


def spatial_fill(frame: np.ndarray, hole: np.ndarray, how: str = "telea", radius: int = 3) -> np.ndarray:
    """Fill ``hole`` (bool ``(H, W)``) of one float ``(H, W, 3)`` frame in space ("telea" or "harmonic")."""
    if not hole.any():
        return frame
    if hole.all():
        out = frame.copy()
        return out  # nothing known in this frame: left to the caller
    if how == "harmonic":
        from .harmonic import harmonic_fill

        filled, _ = harmonic_fill(frame[None], hole[None], temporal_weight=0.0)
        return filled[0]
    import cv2

    filled = cv2.inpaint(np.ascontiguousarray(_to_u8(frame)[..., ::-1]), hole.astype(np.uint8), radius,
                         cv2.INPAINT_TELEA)
    out = frame.copy()
    out[hole] = filled[..., ::-1][hole].astype(np.float32) / 255.0
    return out


_DIS_PRESETS = {"ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST", "fast": "DISOPTICAL_FLOW_PRESET_FAST",
                "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM"}


def compute_flows(frames: np.ndarray, preset: str = "medium", progress: Progress | None = None):
    """DIS optical flow between consecutive frames.

    ``frames``: float ``(T, H, W, 3)`` in [0, 1], T >= 2. Returns ``(fwd, bwd)``,
    float32 ``(T-1, H, W, 2)`` displacements ``(dx, dy)``: ``fwd[t]`` from
    frame t to t+1 (on t's grid), ``bwd[t]`` from t+1 to t (on t+1's grid).
    Frames smaller than 16 pixels on a side get zero flow (DIS needs patches).
    """
    import cv2

    progress = progress or Progress()
    T, H, W = frames.shape[:3]
    fwd = np.zeros((T - 1, H, W, 2), np.float32)
    bwd = np.zeros((T - 1, H, W, 2), np.float32)
    if min(H, W) < 16 or T < 2:
        return fwd, bwd
    dis = cv2.DISOpticalFlow_create(getattr(cv2, _DIS_PRESETS[preset]))
    grey = [cv2.cvtColor(_to_u8(f), cv2.COLOR_RGB2GRAY) for f in frames]
    with progress.bar("flow: optical flow", total=T - 1, unit="pair") as bar:
        for t in range(T - 1):
            fwd[t] = dis.calc(grey[t], grey[t + 1], None)
            bwd[t] = dis.calc(grey[t + 1], grey[t], None)
            bar.update()
    return fwd, bwd


def complete_flows(fwd: np.ndarray, bwd: np.ndarray, mask: np.ndarray, dilate: int,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Replace the untrusted flow near the hole by its space-time harmonic completion.

    ``mask``: bool ``(T, H, W)``. The flow between frames t and t+1 is
    untrusted where frame t or t+1 is masked (grown by ``dilate`` pixels).
    Returns completed copies of ``fwd``, ``bwd`` and the solver's info.
    """
    from ..masks import dilate_mask
    from .harmonic import harmonic_fill

    grown = dilate_mask(mask, dilate) if dilate > 0 else mask
    bad = grown[:-1] | grown[1:]
    if not bad.any():
        return fwd, bwd, {"unknowns": 0}
    if bad.all():
        z = np.zeros_like(fwd)
        return z, z.copy(), {"unknowns": int(bad.size)}
    both = np.concatenate([fwd, bwd], axis=-1)
    filled, info = harmonic_fill(both, bad, temporal_weight=1.0, tol=1e-5, progress=progress,
                                 name="flow: completion")
    return np.ascontiguousarray(filled[..., :2]), np.ascontiguousarray(filled[..., 2:]), info


def propagate(frames: np.ndarray, todo: np.ndarray, ok: np.ndarray, fwd: np.ndarray, bwd: np.ndarray,
              consistency_px: float, combine: str) -> np.ndarray:
    """One round of propagation: fill what the flow chains reach.

    ``frames`` float32 ``(T, H, W, C)`` is updated in place at the pixels of
    ``todo`` (bool ``(T, H, W)``) that a chain links to a pixel of ``ok``.
    Returns the bool mask of the pixels filled.
    """
    tt, ty, tx = (a.astype(np.int64) for a in np.nonzero(todo))
    n = tt.size
    C = frames.shape[-1]
    found = np.zeros(todo.shape, bool)
    if n == 0 or frames.shape[0] < 2:
        return found
    val_f = np.zeros((n, C), np.float32)
    val_b = np.zeros((n, C), np.float32)
    d_f = np.zeros(n, np.int32)
    d_b = np.zeros(n, np.int32)
    _trace(tt, ty, tx, fwd, bwd, ok, frames, 1, float(consistency_px), val_f, d_f)
    _trace(tt, ty, tx, fwd, bwd, ok, frames, -1, float(consistency_px), val_b, d_b)
    hit_f, hit_b = d_f > 0, d_b > 0
    if combine == "nearest":
        w_f = (hit_f & (~hit_b | (d_f <= d_b))).astype(np.float32)
        w_b = (hit_b & (~hit_f | (d_b <= d_f))).astype(np.float32)
    else:
        w_f = np.where(hit_f, 1.0 / np.maximum(d_f, 1), 0.0).astype(np.float32)
        w_b = np.where(hit_b, 1.0 / np.maximum(d_b, 1), 0.0).astype(np.float32)
    hit = hit_f | hit_b
    wsum = np.where(hit, w_f + w_b, 1.0)
    value = (val_f * w_f[:, None] + val_b * w_b[:, None]) / wsum[:, None]
    frames[tt[hit], ty[hit], tx[hit]] = value[hit]
    found[tt[hit], ty[hit], tx[hit]] = True
    return found


def flow_inpaint(video: np.ndarray, mask: np.ndarray, config: FlowConfig,
                 progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Flow-guided inpainting; see the module docstring.

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1] (what lies under the mask is
    not read); ``mask``: bool ``(T, H, W)``. Returns ``(filled, observed,
    info)``: ``observed`` bool ``(T, H, W)`` marks the hole pixels of the
    first propagation round, those a chain linked to a pixel actually seen
    in another frame (not to a keyframe filled in space).
    """
    import time

    progress = progress or Progress()
    t0 = time.perf_counter()
    T = video.shape[0]
    out = np.array(video, dtype=np.float32, copy=True)
    out[mask] = 0.0
    info: dict = {"unknowns": int(mask.sum())}

    fwd = bwd = None
    if T >= 2:
        with progress.bar("flow: fill holes for matching", total=T, unit="frame") as bar:
            prefilled = np.empty_like(out)
            for t in range(T):
                prefilled[t] = spatial_fill(out[t], mask[t], "telea") if mask[t].any() else out[t]
                bar.update()
        fwd, bwd = compute_flows(prefilled, config.dis_preset, progress)
        del prefilled
        fwd, bwd, cinfo = complete_flows(fwd, bwd, mask, config.flow_dilate, progress)
        info["flow_completion_unknowns"] = cinfo.get("unknowns", 0)
    info["flow_seconds"] = round(time.perf_counter() - t0, 3)

    ok = ~mask
    todo = mask.copy()
    propagated = keyframes = 0
    observed = np.zeros_like(mask)
    t1 = time.perf_counter()
    with progress.bar("flow: propagation", total=int(todo.sum()), unit="px") as bar:
        for round_ in range(config.max_keyframes + 1):
            if T >= 2:
                found = propagate(out, todo, ok, fwd, bwd, config.consistency_px, config.combine)
                nfound = int(found.sum())
                if round_ == 0:
                    observed = found
                propagated += nfound
                todo &= ~found
                ok |= found
                bar.update(nfound)
            if not todo.any() or round_ == config.max_keyframes or T < 2:
                break
            # keyframe: the frame with the most unreached pixels, filled in space
            per_frame = todo.sum(axis=(1, 2))
            k = int(np.argmax(per_frame))
            if todo[k].all():  # nothing known in that frame: leave it to the next rounds / final fill
                candidates = np.flatnonzero((per_frame > 0) & ~todo.reshape(T, -1).all(axis=1))
                if candidates.size == 0:
                    break
                k = int(candidates[np.argmax(per_frame[candidates])])
            out[k] = spatial_fill(out[k], todo[k], config.spatial)
            bar.update(int(per_frame[k]))
            ok[k] = True
            todo[k] = False
            keyframes += 1
    # whatever no chain reached: spatial fill frame by frame
    spatial = int(todo.sum())
    if todo.any():
        for t in np.flatnonzero(todo.any(axis=(1, 2))):
            if not todo[t].all():
                out[t] = spatial_fill(out[t], todo[t], config.spatial)
                todo[t] = False
        if todo.any():  # frames with nothing known and nothing propagated: nearest filled frame
            done = np.flatnonzero(~todo.any(axis=(1, 2)))
            for t in np.flatnonzero(todo.any(axis=(1, 2))):
                src = done[np.argmin(np.abs(done - t))]
                out[t][todo[t]] = out[src][todo[t]]
    info.update(propagated=propagated, keyframes=keyframes, spatial=spatial,
                propagation_seconds=round(time.perf_counter() - t1, 3),
                seconds=round(time.perf_counter() - t0, 3))
    return out, observed, info


def fill_flow(video: np.ndarray, mask: np.ndarray, config: FlowConfig, ctx: RunContext) -> np.ndarray:
    """Flow-guided propagation of known pixels, then spatial fill of the rest.

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool ``(T, H, W)``,
    True = fill. Returns float32 ``(1, T, H, W, 3)`` in [0, 1]; known pixels
    are returned as given. Deterministic. Sets ``ctx.observed`` (see
    :func:`flow_inpaint`).
    """
    video, mask = check_inputs(video, mask, "flow")
    filled, ctx.observed, info = flow_inpaint(video, mask, config, ctx.progress)
    ctx.stats.update({f"flow_{k}": v for k, v in info.items()})
    return as_samples(filled)
