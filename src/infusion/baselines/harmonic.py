"""Heat-equation (harmonic) fill in space-time (``harmonic``).

The fill ``u`` is the minimiser of the Dirichlet energy

    sum over links (p, q) of  w_pq * (u_p - u_q)^2

with the known pixels fixed (Dirichlet boundary) and no link across the
video's borders (Neumann boundary). Links join 6-neighbours of the
space-time grid: weight 1 in a frame, ``temporal_weight`` between frames.
Its minimiser solves the discrete Laplace equation at every unknown pixel,

    sum_q w_pq (u_p - u_q) = 0,

a sparse symmetric positive definite system whose variables are the unknown
pixels only; the three colour channels share the matrix. Small systems are
solved directly (sparse LU); large ones (hundreds of thousands of unknowns,
e.g. 80 frames of 240x432 with 10% masked) by conjugate gradients
preconditioned with a smoothed-aggregation algebraic multigrid V-cycle whose
aggregates are 2x2x2 blocks of the grid (semi-coarsened when the temporal
and spatial links differ in strength, and the prolongation smoothed along
the strong links only). It converges in well under 20 iterations (measured:
5-8 for 0.9M unknowns, temporal weights 0 to 10) whatever the size of the hole.

:func:`harmonic_fill` is the reusable solver (any number of channels; the
``flow`` baseline completes its flow fields with it); :func:`fill_harmonic`
is the method of the registry.
"""

from __future__ import annotations

import numpy as np

from ..config import HarmonicConfig
from ..methods import RunContext
from ..progress import Progress
from .common import as_samples, check_inputs, crop_box, difference_system


# --------------------------------------------------------------------------
# Algebraic multigrid (smoothed aggregation on the grid's 2x2x2 blocks)
# --------------------------------------------------------------------------

class _Level:
    __slots__ = ("A", "dinv", "omega", "P", "R", "lu")

    def __init__(self, A, dinv, omega, P=None, R=None, lu=None):
        self.A, self.dinv, self.omega, self.P, self.R, self.lu = A, dinv, omega, P, R, lu


def _filtered(A, theta: float):
    """``A`` without its weak off-diagonal links (|a_ij| < theta * max_k |a_ik|), lumped onto the diagonal."""
    import scipy.sparse as sp

    A = sp.csr_matrix(A)
    coo = A.tocoo()
    off = coo.row != coo.col
    mag = np.abs(coo.data)
    rowmax = np.zeros(A.shape[0])
    np.maximum.at(rowmax, coo.row[off], mag[off])
    weak = off & (mag < theta * rowmax[coo.row])
    if not weak.any():
        return A
    keep = ~weak
    lump = np.bincount(coo.row[weak], weights=coo.data[weak], minlength=A.shape[0])
    F = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=A.shape)
    return (F + sp.diags(lump)).tocsr()


def _spectral_radius(A, dinv: np.ndarray, iters: int = 12) -> float:
    """Estimate of the largest eigenvalue of D^-1 A (power iteration, fixed seed)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(A.shape[0])
    lam = 2.0
    for _ in range(iters):
        y = dinv * (A @ x)
        norm = np.linalg.norm(y)
        if norm == 0:
            return 1.0
        lam = norm / max(np.linalg.norm(x), 1e-300)
        x = y / norm
    return float(lam) * 1.05  # power iteration underestimates


class Multigrid:
    """Smoothed-aggregation AMG V-cycle for a grid Laplacian, used as a preconditioner.

    Parameters
    ----------
    A : scipy.sparse matrix ``(n, n)``, symmetric positive definite
    coords : int ``(n, 3)``
        Grid coordinates ``(t, y, x)`` of the unknowns: aggregates are the
        unknowns sharing a 2x2x2 block (or 1 along an axis whose links are
        under a quarter of the strongest's weight).
    strengths : 3 floats
        Link weight along t, y and x (the coarsening follows them).
    max_coarse : int
        Size under which the coarsest level is factorised (sparse LU).
    sweeps : int
        Damped-Jacobi sweeps before and after each coarse correction.
    theta : float
        Links weaker than ``theta`` times the strongest of their row are left
        out when smoothing the prolongation.
    """

    def __init__(self, A, coords: np.ndarray, strengths, max_coarse: int = 1500, max_levels: int = 16,
                 sweeps: int = 2, theta: float = 0.25):
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        self.sweeps = sweeps
        self.theta = theta
        self.levels: list[_Level] = []
        A = sp.csr_matrix(A)
        coords = np.asarray(coords, dtype=np.int64)
        w = np.asarray(strengths, dtype=np.float64)
        while True:
            n = A.shape[0]
            diag = A.diagonal()
            dinv = 1.0 / diag
            if n <= max_coarse or len(self.levels) >= max_levels - 1:
                self.levels.append(_Level(A, dinv, 0.0, lu=spla.splu(sp.csc_matrix(A))))
                break
            rho = _spectral_radius(A, dinv)
            omega = 4.0 / (3.0 * rho)
            # choose the axes to coarsen: the strong ones that still have extent
            extent = coords.max(axis=0) - coords.min(axis=0) if n else np.zeros(3, np.int64)
            strong = (w >= 0.25 * w.max()) & (extent > 0)
            if not strong.any():
                strong = extent > 0
            if not strong.any():  # a single point left (cannot happen with n > max_coarse)
                self.levels.append(_Level(A, dinv, 0.0, lu=spla.splu(sp.csc_matrix(A))))
                break
            factor = np.where(strong, 2, 1)
            ccoords = coords // factor
            key = (ccoords[:, 0] * (ccoords[:, 1].max() + 1) + ccoords[:, 1]) * (ccoords[:, 2].max() + 1) \
                + ccoords[:, 2]
            uniq, agg = np.unique(key, return_inverse=True)
            nc = uniq.size
            if nc >= n:  # no reduction: stop here
                self.levels.append(_Level(A, dinv, 0.0, lu=spla.splu(sp.csc_matrix(A))))
                break
            T = sp.csr_matrix((np.ones(n), (np.arange(n), agg.ravel())), shape=(n, nc))
            # Smooth the tentative prolongator with the strong links only (weak
            # ones lumped onto the diagonal): with anisotropic links, smoothing
            # along the weak ones would make the coarse operators dense.
            Af = _filtered(A, self.theta)
            dfinv = 1.0 / Af.diagonal()
            omega_p = 4.0 / (3.0 * _spectral_radius(Af, dfinv))
            P = (T - omega_p * (sp.diags(dfinv) @ (Af @ T))).tocsr()
            R = P.T.tocsr()
            Ac = (R @ A @ P).tocsr()
            Ac = ((Ac + Ac.T) * 0.5).tocsr()  # symmetric up to rounding
            self.levels.append(_Level(A, dinv, omega, P, R))
            first = np.zeros(nc, dtype=np.int64)
            first[agg.ravel()[::-1]] = np.arange(n)[::-1]
            coords = ccoords[first]
            w = w * np.prod(factor) / factor ** 2
            A = Ac

    @property
    def sizes(self) -> list[int]:
        return [lv.A.shape[0] for lv in self.levels]

    def _cycle(self, lvl: int, b: np.ndarray) -> np.ndarray:
        L = self.levels[lvl]
        if L.lu is not None:
            return L.lu.solve(b)
        d = (L.omega * L.dinv)[:, None] if b.ndim == 2 else L.omega * L.dinv
        x = d * b
        for _ in range(self.sweeps - 1):
            x += d * (b - L.A @ x)
        xc = self._cycle(lvl + 1, L.R @ (b - L.A @ x))
        x += L.P @ xc
        for _ in range(self.sweeps):
            x += d * (b - L.A @ x)
        return x

    def __call__(self, b: np.ndarray) -> np.ndarray:
        """Apply one V-cycle (an approximation of A^-1 b); ``b`` is ``(n,)`` or ``(n, k)``."""
        return self._cycle(0, b)


def pcg(A, B: np.ndarray, precond, X0: np.ndarray | None = None, tol: float = 1e-6,
        max_iterations: int = 500, callback=None) -> tuple[np.ndarray, int, np.ndarray]:
    """Preconditioned conjugate gradients for several right-hand sides at once.

    ``B``: ``(n, k)``; each column is solved until ``|r| <= tol * |b|``.
    Returns ``(X, iterations, relative residuals)``; ``callback(it, relres)``
    is called after each iteration.
    """
    B = np.asarray(B, dtype=np.float64)
    X = np.zeros_like(B) if X0 is None else np.array(X0, dtype=np.float64)
    R = B - A @ X
    bnorm = np.linalg.norm(B, axis=0)
    bnorm[bnorm == 0] = 1.0
    relres = np.linalg.norm(R, axis=0) / bnorm
    if (relres <= tol).all():
        return X, 0, relres
    Z = precond(R)
    Pd = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    it = 0
    for it in range(1, max_iterations + 1):
        AP = A @ Pd
        pap = np.einsum("ij,ij->j", Pd, AP)
        active = (relres > tol) & (pap > 0)
        alpha = np.where(active, rz / np.where(pap > 0, pap, 1.0), 0.0)
        X += Pd * alpha
        R -= AP * alpha
        relres = np.linalg.norm(R, axis=0) / bnorm
        if callback is not None:
            callback(it, float(relres.max()))
        if (relres <= tol).all():
            break
        Z = precond(R)
        rz_new = np.einsum("ij,ij->j", R, Z)
        beta = np.where(rz != 0, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        Pd = Z + Pd * beta
        rz = rz_new
    return X, it, relres


# --------------------------------------------------------------------------
# The harmonic fill
# --------------------------------------------------------------------------

def laplace_system(values: np.ndarray, mask: np.ndarray, temporal_weight: float = 1.0):
    """The Laplace system of the unknown pixels.

    Returns ``(A, b, system, weights)``: ``A`` sparse SPD-or-singular
    ``(n, n)`` float64 (the weighted graph Laplacian restricted to the
    unknowns), ``b`` ``(n, C)`` (the known neighbours' pull),
    ``system`` the :class:`~infusion.baselines.common.DifferenceSystem` and
    ``weights`` the link weight per axis. ``A u = b`` is the discrete Laplace
    equation at the unknown pixels.
    """
    weights = {0: float(temporal_weight), 1: 1.0, 2: 1.0}
    axes = tuple(a for a in (0, 1, 2) if weights[a] > 0 and mask.shape[a] > 1)
    system = difference_system(values, mask, axes)
    n = system.n
    import scipy.sparse as sp

    A = sp.csr_matrix((n, n))
    b = np.zeros((n, values.shape[-1]))
    for a in axes:
        Ka = system.K[a]
        KaT = Ka.T.tocsr()
        A = A + weights[a] * (KaT @ Ka)
        b -= weights[a] * (KaT @ system.g[a])
    return A.tocsr(), b, system, weights


def harmonic_fill(values: np.ndarray, mask: np.ndarray, *, temporal_weight: float = 1.0, tol: float = 1e-6,
                  max_iterations: int = 500, direct_max: int = 30_000, progress: Progress | None = None,
                  name: str = "harmonic") -> tuple[np.ndarray, dict]:
    """Replace the masked entries of ``values`` by the harmonic interpolant of the rest.

    Parameters
    ----------
    values : float ``(T, H, W, C)``
        Any number of channels, any range; entries under ``mask`` are ignored.
    mask : bool ``(T, H, W)``
        True = unknown. Must leave at least one pixel known.
    temporal_weight : float >= 0
        Weight of the links between frames (0: every frame on its own).
    tol, max_iterations
        Stopping rule of the conjugate gradients: relative residual per channel.
    direct_max : int
        Systems with at most this many unknowns are solved directly.

    Returns
    -------
    (filled, info)
        ``filled``: float32 copy of ``values`` with the mask filled;
        ``info``: ``unknowns``, ``solver``, ``iterations``, ``residual``,
        ``seconds``.

    A group of unknowns with no known pixel linked to it (possible only with
    ``temporal_weight == 0`` and a frame masked entirely) has no unique
    harmonic fill; it receives the mean of the known values.
    """
    import time

    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from scipy.sparse.csgraph import connected_components

    t0 = time.perf_counter()
    progress = progress or Progress()
    values = np.asarray(values)
    mask = np.asarray(mask, dtype=bool)
    if values.ndim != 4 or values.shape[:3] != mask.shape:
        raise ValueError(f"values must be (T, H, W, C) matching mask {mask.shape}; got {values.shape}")
    out = np.array(values, dtype=np.float32, copy=True)
    info = {"unknowns": int(mask.sum()), "solver": "none", "iterations": 0, "residual": 0.0}
    if not mask.any():
        info["seconds"] = 0.0
        return out, info
    if mask.all():
        raise ValueError("harmonic_fill: every pixel is unknown")

    box = crop_box(mask, margin=1)
    sub_mask = mask[box]
    sub_vals = values[box]
    A, b, system, weights = laplace_system(sub_vals, sub_mask, temporal_weight)
    n = system.n

    # unknowns cut off from every known pixel (singular blocks): mean colour
    diag = A.diagonal()
    offsum = np.asarray(abs(A).sum(axis=1)).ravel() - np.abs(diag)
    contact = diag - offsum > 1e-9
    solve_idx = np.arange(n)
    x = np.zeros((n, values.shape[-1]))
    if not contact.all():
        ncomp, labels = connected_components(A, directed=False)
        anchored = np.zeros(ncomp, dtype=bool)
        anchored[labels[contact]] = True
        floating = ~anchored[labels]
        if floating.any():
            x[floating] = values[~mask].astype(np.float64).mean(axis=0)
            solve_idx = np.flatnonzero(~floating)
            progress.log(f"{name}: {int(floating.sum())} pixels have no known neighbour in space or time; "
                         "filled with the mean colour")
    if solve_idx.size:
        if solve_idx.size < n:
            A = A[solve_idx][:, solve_idx].tocsr()
            b = b[solve_idx]
            coords = system.coords[solve_idx]
        else:
            coords = system.coords
        if solve_idx.size <= direct_max:
            with progress.bar(f"{name}: direct solve", total=1, unit="solve") as bar:
                lu = spla.splu(sp.csc_matrix(A))
                xs = lu.solve(b)
                bar.update()
            info.update(solver="direct")
        else:
            with progress.bar(f"{name}: multigrid setup", total=1, unit="step") as bar:
                mg = Multigrid(A, coords, (weights[0], weights[1], weights[2]))
                bar.update()
            with progress.bar(f"{name}: conjugate gradients", total=max_iterations, unit="it") as bar:
                xs, its, rel = pcg(A, b, mg, tol=tol, max_iterations=max_iterations,
                                   callback=lambda it, r: bar.update(1, residual=r))
            info.update(solver="amg-cg", iterations=int(its), levels=mg.sizes)
        x[solve_idx] = xs
        bnorm = np.linalg.norm(b, axis=0)
        bnorm[bnorm == 0] = 1
        info["residual"] = float((np.linalg.norm(b - A @ xs, axis=0) / bnorm).max())
    sub_out = out[box]
    sub_out[sub_mask] = x.astype(np.float32)
    out[box] = sub_out
    info["seconds"] = round(time.perf_counter() - t0, 3)
    return out, info


def fill_harmonic(video: np.ndarray, mask: np.ndarray, config: HarmonicConfig, ctx: RunContext) -> np.ndarray:
    """Space-time harmonic fill.

    ``video``: float32 ``(T, H, W, 3)`` in [0, 1]; ``mask``: bool ``(T, H, W)``,
    True = fill. Returns float32 ``(1, T, H, W, 3)`` in [0, 1]; known pixels
    are returned as given. Deterministic.
    """
    video, mask = check_inputs(video, mask, "harmonic")
    filled, info = harmonic_fill(video, mask, temporal_weight=config.temporal_weight, tol=config.tol,
                                 max_iterations=config.max_iterations, direct_max=config.direct_max,
                                 progress=ctx.progress)
    ctx.stats.update({f"harmonic_{k}": v for k, v in info.items()})
    return as_samples(filled)
