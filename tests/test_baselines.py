"""Classical baselines: harmonic, tv, flow (and telea / ns briefly), against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from infusion.baselines.common import crop_box, difference_system
from infusion.baselines.harmonic import fill_harmonic, harmonic_fill
from infusion.baselines.tv import tv_inpaint
from infusion.config import FlowConfig, HarmonicConfig, TVConfig
from infusion.errors import InputError
from infusion.methods import RunContext
from infusion.pipeline import run

CLASSICAL = ["telea", "ns", "harmonic", "tv", "flow"]


def _grid(T, H, W):
    return np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")


def _interior_mask(T=8, H=20, W=24):
    """A hole (two boxes) that touches no border of the volume, in space or time."""
    m = np.zeros((T, H, W), bool)
    m[2:6, 5:15, 6:18] = True
    m[1:7, 2:4, 2:5] = True
    return m


def _laplace_residual(u, mask, tw):
    """sum_q w_pq (u_p - u_q) at every unknown pixel p, neighbours inside the volume only."""
    res = np.zeros(u.shape, np.float64)
    u = u.astype(np.float64)
    for axis, w in ((0, tw), (1, 1.0), (2, 1.0)):
        if w == 0 or u.shape[axis] < 2:
            continue
        d = np.diff(u, axis=axis)  # u[i+1] - u[i]
        lo = [slice(None)] * u.ndim
        hi = [slice(None)] * u.ndim
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        res[tuple(lo)] -= w * d
        res[tuple(hi)] += w * d
    return res[mask]


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------

def test_difference_system_matches_numpy_differences():
    rng = np.random.default_rng(0)
    v = rng.random((5, 7, 9, 2))
    m = rng.random((5, 7, 9)) < 0.3
    sy = difference_system(v, m, axes=(0, 1, 2))
    u = v[m]
    for a in (0, 1, 2):
        got = sy.K[a] @ u + sy.g[a]
        full = np.zeros_like(v)
        sl = [slice(None)] * 3
        sl[a] = slice(0, -1)
        full[tuple(sl)] = np.diff(v, axis=a)
        np.testing.assert_allclose(got, full.reshape(-1, 2)[sy.terms], atol=1e-12)


def test_crop_box_grows_and_clips():
    m = np.zeros((10, 20, 30), bool)
    m[3:5, 0:4, 25:30] = True
    assert crop_box(m, margin=2) == (slice(1, 7), slice(0, 6), slice(23, 30))
    assert crop_box(np.zeros((2, 3, 4), bool)) == (slice(0, 2), slice(0, 3), slice(0, 4))


# --------------------------------------------------------------------------
# harmonic
# --------------------------------------------------------------------------

@pytest.mark.parametrize("direct_max", [10**9, 0], ids=["direct", "multigrid-cg"])
@pytest.mark.parametrize("tw", [1.0, 2.5])
def test_harmonic_recovers_linear_ramps(direct_max, tw):
    t, y, x = _grid(8, 20, 24)
    v = np.stack([0.02 * x + 0.01 * y, 0.03 * t + 0.1, 0.9 - 0.01 * x - 0.02 * t + 0.005 * y], -1).astype(np.float32)
    m = _interior_mask()
    out, info = harmonic_fill(v, m, temporal_weight=tw, direct_max=direct_max, tol=1e-10)
    assert info["solver"] == ("direct" if direct_max else "amg-cg")
    np.testing.assert_allclose(out, v, atol=1e-5)


def test_harmonic_constant_stays_constant_even_at_borders():
    v = np.empty((5, 16, 16, 3), np.float32)
    v[:] = (0.2, 0.5, 0.7)
    m = np.zeros((5, 16, 16), bool)
    m[:, :6, :] = True  # touches the borders in space and time
    out, _ = harmonic_fill(v, m, direct_max=0)
    np.testing.assert_allclose(out, v, atol=1e-5)


@pytest.mark.parametrize("tw", [0.0, 0.1, 1.0, 10.0])
def test_harmonic_satisfies_laplace_equation(tw):
    rng = np.random.default_rng(1)
    v = rng.random((6, 40, 40, 3)).astype(np.float32)
    m = np.zeros((6, 40, 40), bool)
    m[:, 8:30, 5:33] = True
    m[2, :, :12] = True
    for direct_max in (10**9, 0):
        out, info = harmonic_fill(v, m, temporal_weight=tw, direct_max=direct_max, tol=1e-8)
        r = _laplace_residual(out.astype(np.float64), np.broadcast_to(m[..., None], v.shape), tw)
        assert np.abs(r).max() < 2e-5, (tw, direct_max, np.abs(r).max())
        if direct_max == 0:
            assert info["iterations"] < 40


def test_harmonic_frame_with_nothing_known_and_no_time_links():
    v = np.random.default_rng(2).random((3, 10, 10, 3)).astype(np.float32)
    m = np.zeros((3, 10, 10), bool)
    m[1] = True
    m[0, 2:5, 2:5] = True
    out, _ = harmonic_fill(v, m, temporal_weight=0.0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[1], np.broadcast_to(v[~m].mean(axis=0), (10, 10, 3)), atol=1e-5)


# --------------------------------------------------------------------------
# total variation
# --------------------------------------------------------------------------

def _two_tone(H=40, W=40):
    img = np.empty((1, H, W, 3), np.float32)
    img[..., :] = (0.2, 0.3, 0.1)
    img[:, :, W // 2:, :] = (0.8, 0.6, 0.9)
    return img


def test_tv_recovers_constant_region():
    img = _two_tone()
    m = np.zeros((1, 40, 40), bool)
    m[0, 5:12, 3:10] = True
    out, _ = tv_inpaint(img, m, iterations=2000, tol=0, init="mean")
    np.testing.assert_allclose(out, img, atol=1e-3)


def test_tv_continues_a_straight_edge_where_harmonic_blurs():
    img = _two_tone()
    m = np.zeros((1, 40, 40), bool)
    m[0, 15:25, 16:24] = True  # a hole across the edge
    out, _ = tv_inpaint(img, m, iterations=1500, tol=0)
    assert np.abs(out - img).max() < 0.02
    harm, _ = harmonic_fill(img, m)
    assert np.abs(harm - img).max() > 0.1


def test_tv_energy_decreases():
    rng = np.random.default_rng(3)
    v = np.clip(rng.random((4, 24, 24, 3)) * 0.3 + np.linspace(0, 0.6, 24)[None, None, :, None], 0, 1)
    m = np.zeros((4, 24, 24), bool)
    m[:, 6:18, 5:19] = True
    for init in ("mean", "harmonic"):
        _, info = tv_inpaint(v.astype(np.float32), m, iterations=400, tol=0, init=init, energy_every=50)
        e = np.array([val for _, val in info["energy"]])
        assert e[-1] < e[0]
        assert e[-1] <= e.min() * 1.002  # settled at the lowest value seen
        assert e[len(e) // 2] < e[0]


# --------------------------------------------------------------------------
# flow
# --------------------------------------------------------------------------

def _translating_texture(T=10, H=48, W=64, speed=2):
    import cv2

    rng = np.random.default_rng(4)
    big = cv2.GaussianBlur(rng.random((H + 20, W + speed * T + 20, 3)).astype(np.float32), (0, 0), 1.5)
    big = (big - big.min()) / (big.max() - big.min())
    # content moves right by `speed` px per frame
    return np.stack([big[10:10 + H, 10 + speed * (T - t):10 + speed * (T - t) + W] for t in range(T)])


def test_flow_recovers_a_translating_texture():
    v = _translating_texture()
    T, H, W = v.shape[:3]
    m = np.zeros((T, H, W), bool)
    for t in range(T):  # hole moving left while the content moves right
        m[t, 14:34, 40 - 2 * t:54 - 2 * t] = True
    res = run(v, m, method="flow", device="cpu")
    mse = float(((res.video[m] - v[m]) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 35
    assert res.stats["flow_propagated"] == m.sum()


def test_flow_static_hole_in_static_video_is_one_fill_copied_to_every_frame():
    v = np.repeat(_translating_texture(T=1), 6, axis=0)
    m = np.zeros(v.shape[:3], bool)
    m[:, 10:30, 20:40] = True  # never visible: one keyframe filled in space, then propagated
    res = run(v, m, method="flow", device="cpu")
    out = res.video
    assert res.stats["flow_keyframes"] == 1
    assert np.abs(out - out[:1]).max() < 1e-6  # the same fill in every frame ("frozen")


def test_flow_reports_which_pixels_it_copied_from_observations():
    """``observed``: the hole pixels linked to a pixel seen in another frame (the
    first propagation round), not those filled from a keyframe filled in space."""
    from infusion.baselines.flow import flow_inpaint, fill_flow
    from infusion.config import FlowConfig
    from infusion.methods import RunContext

    v = _translating_texture()
    m = np.zeros(v.shape[:3], bool)
    for t in range(v.shape[0]):  # every hidden pixel is seen in another frame
        m[t, 14:34, 40 - 2 * t:54 - 2 * t] = True
    _, observed, info = flow_inpaint(v, m, FlowConfig())
    assert np.array_equal(observed, m) and info["keyframes"] == 0
    still = np.repeat(_translating_texture(T=1), 6, axis=0)
    hole = np.zeros(still.shape[:3], bool)
    hole[:, 10:30, 20:40] = True  # never seen: filled, but nothing observed
    filled, observed, info = flow_inpaint(still, hole, FlowConfig())
    assert info["keyframes"] == 1 and not observed.any()
    ctx = RunContext()
    fill_flow(v, m, FlowConfig(), ctx)
    assert np.array_equal(ctx.observed, m)


# --------------------------------------------------------------------------
# every method: contract of the registry
# --------------------------------------------------------------------------

def _textured_video(T=6, H=24, W=32):
    t, y, x = _grid(T, H, W)
    v = np.stack([0.5 + 0.4 * np.sin(0.4 * x + 0.3 * t), 0.5 + 0.4 * np.cos(0.3 * y - 0.2 * t),
                  0.3 + 0.02 * x], -1)
    return np.clip(v, 0, 1).astype(np.float32)


@pytest.mark.parametrize("method", CLASSICAL)
def test_known_pixels_unchanged_and_mask_at_borders(method):
    v = (_textured_video() * 255).round().astype(np.uint8)
    m = np.zeros(v.shape[:3], bool)
    m[:, :5, :] = True      # top border, every frame
    m[:, :, -4:] = True     # right border
    m[2:4, 10:20, 8:16] = True
    res = run(v, m, method=method, device="cpu")
    out = res.video
    assert out.dtype == np.uint8 and out.shape == v.shape
    assert np.array_equal(out[~m], v[~m])
    assert out[m].std() > 0  # something was put there


@pytest.mark.parametrize("method", CLASSICAL)
def test_single_frame_video(method):
    v = _textured_video(T=1)
    m = np.zeros(v.shape[:3], bool)
    m[0, 6:14, 10:20] = True
    out = run(v, m, method=method, device="cpu").video
    assert out.shape == v.shape
    assert np.array_equal(out[~m], v[~m])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("method", CLASSICAL)
def test_hidden_content_is_never_read(method):
    v = _textured_video()
    m = np.zeros(v.shape[:3], bool)
    m[:, 8:16, 10:22] = True
    w = v.copy()
    w[m] = np.random.default_rng(5).random((int(m.sum()), 3))
    a = run(v, m, method=method, device="cpu").video
    b = run(w, m, method=method, device="cpu").video
    assert np.array_equal(a, b)


def test_direct_call_validates_inputs():
    ctx = RunContext()
    v = _textured_video()
    m = np.zeros(v.shape[:3], bool)
    with pytest.raises(InputError):
        fill_harmonic(v[..., :2], m, HarmonicConfig(), ctx)
    with pytest.raises(InputError):
        fill_harmonic(v, np.ones(v.shape[:3], bool), HarmonicConfig(), ctx)
    with pytest.raises(InputError):
        fill_harmonic(v, m[:, :-1], HarmonicConfig(), ctx)


@pytest.mark.parametrize("bad", [
    lambda: HarmonicConfig(temporal_weight=-1), lambda: HarmonicConfig(tol=0),
    lambda: TVConfig(iterations=0), lambda: TVConfig(init="zeros"),
    lambda: FlowConfig(combine="max"), lambda: FlowConfig(spatial="ns"), lambda: FlowConfig(consistency_px=0),
])
def test_config_validation(bad):
    with pytest.raises(InputError):
        bad()
