"""Helpers shared by the classical baselines (``harmonic``, ``tv``, ``flow``).

- :func:`check_inputs` validates what a ``fill_*`` function receives and
  erases the hidden content under the mask, so that no baseline can read it;
- :func:`crop_box` finds the part of the video that matters: the mask's
  bounding box grown by a margin;
- :func:`difference_system` builds the forward-difference operators of a
  space-time volume restricted to the unknown pixels, the common ground of
  the Laplace (harmonic) and total-variation energies;
- :func:`as_samples` shapes a result the way :mod:`infusion.methods` expects.

Axes are always ``(t, y, x)``: axis 0 is time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


def check_inputs(video, mask, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a method's inputs and erase the content under the mask.

    Parameters
    ----------
    video : ndarray float ``(T, H, W, 3)`` in [0, 1]
    mask : ndarray bool ``(T, H, W)``, True = fill
    name : str
        Method name, for error messages.

    Returns
    -------
    (video, mask)
        ``video``: a float32 copy whose masked pixels are set to 0 (a method
        must never see what it is asked to fill); ``mask``: bool, contiguous.

    Raises :class:`InputError` on wrong shapes, values outside [0, 1], NaNs,
    or a mask that covers everything (nothing to fill from).
    """
    video = np.asarray(video)
    mask = np.asarray(mask)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(f"{name}: video must be (T, H, W, 3); got {video.shape}")
    if mask.shape != video.shape[:3]:
        raise InputError(f"{name}: mask must be (T, H, W) = {video.shape[:3]}; got {mask.shape}")
    if video.dtype.kind != "f":
        raise InputError(f"{name}: video must be float in [0, 1]; got dtype {video.dtype}")
    if mask.dtype != bool:
        raise InputError(f"{name}: mask must be bool; got dtype {mask.dtype}")
    if video.size == 0:
        raise InputError(f"{name}: video has no pixels")
    known = ~mask
    if not known.any():
        raise InputError(f"{name}: the mask covers every pixel; nothing is known to fill it from")
    vk = video[known]
    if not np.isfinite(vk).all() or vk.min() < 0 or vk.max() > 1:
        raise InputError(f"{name}: known pixels must be finite and in [0, 1]")
    out = np.array(video, dtype=np.float32, copy=True)
    out[mask] = 0.0
    return out, np.ascontiguousarray(mask)


def as_samples(video: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` -> float32 ``(1, T, H, W, 3)`` clipped to [0, 1]."""
    return np.clip(np.asarray(video, dtype=np.float32), 0.0, 1.0)[None]


def crop_box(mask: np.ndarray, margin: int = 1, time_margin: int | None = None) -> tuple[slice, slice, slice]:
    """Bounding box of a ``(T, H, W)`` mask grown by ``margin`` pixels in space
    and ``time_margin`` frames (default: ``margin``), clipped to the volume.

    Returns ``(t, y, x)`` slices; the whole volume when the mask is empty.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be (T, H, W); got {mask.shape}")
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    if time_margin is None:
        time_margin = margin
    out = []
    for axis, grow in zip(range(3), (time_margin, margin, margin)):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, int(nz[0]) - grow), min(mask.shape[axis], int(nz[-1]) + 1 + grow)))
    return tuple(out)


@dataclass
class DifferenceSystem:
    """Forward differences of a volume, restricted to the unknown pixels.

    For every axis ``a`` in ``axes`` and every *term pixel* ``p`` (a pixel
    whose forward difference along some active axis involves an unknown
    pixel), the difference ``v[p + e_a] - v[p]`` equals
    ``(K[a] @ u)[i] + g[a][i]`` where ``u`` holds the unknown values (in
    ``coords`` order) and ``g`` the contribution of the known ones. A
    difference whose ``p + e_a`` lies outside the volume is 0 (Neumann
    boundary).

    Attributes
    ----------
    coords : int64 ``(n, 3)``
        ``(t, y, x)`` of the unknown pixels, row-major order.
    index : int64 ``(T, H, W)``
        Row of each unknown pixel in ``u``; -1 for known pixels.
    axes : tuple of int
        Axes with a difference operator (0 = t, 1 = y, 2 = x).
    K : dict axis -> scipy.sparse.csr_matrix ``(m, n)``
        Entries +1 / -1; one row per term pixel (same rows for every axis).
    g : dict axis -> float64 ``(m, C)``
        Known part of each difference.
    terms : int64 ``(m,)``
        Flat indices of the term pixels in the volume.
    """

    coords: np.ndarray
    index: np.ndarray
    axes: tuple
    K: dict
    g: dict
    terms: np.ndarray

    @property
    def n(self) -> int:
        return int(self.coords.shape[0])


def difference_system(values: np.ndarray, mask: np.ndarray, axes=(0, 1, 2)) -> DifferenceSystem:
    """Build the forward differences of ``values`` with ``mask`` True = unknown.

    Parameters
    ----------
    values : float ``(T, H, W, C)``
        Known values (what lies under the mask is ignored).
    mask : bool ``(T, H, W)``
    axes : iterable of int
        Axes along which differences are taken (leave time out for a frame
        by frame problem).
    """
    import scipy.sparse as sp

    if values.shape[:3] != mask.shape:
        raise ValueError(f"values {values.shape} and mask {mask.shape} differ")
    shape = mask.shape
    axes = tuple(int(a) for a in axes)
    n = int(mask.sum())
    index = np.full(shape, -1, dtype=np.int64)
    index[mask] = np.arange(n, dtype=np.int64)
    coords = np.argwhere(mask).astype(np.int64)

    # term pixels: p unknown, or p + e_a unknown for an active axis a
    term = mask.copy()
    for a in axes:
        if shape[a] < 2:
            continue
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[a] = slice(1, None)
        dst[a] = slice(0, -1)
        term[tuple(dst)] |= mask[tuple(src)]
    terms = np.flatnonzero(term)
    m = terms.size
    tcoords = np.unravel_index(terms, shape)

    flat_mask = mask.reshape(-1)
    flat_index = index.reshape(-1)
    flat_values = values.reshape(-1, values.shape[-1])
    strides = (shape[1] * shape[2], shape[2], 1)
    rows_all = np.arange(m, dtype=np.int64)
    K, g = {}, {}
    for a in axes:
        has_edge = tcoords[a] < shape[a] - 1
        rows = rows_all[has_edge]
        p = terms[has_edge]
        q = p + strides[a]
        up, uq = flat_mask[p], flat_mask[q]
        r = np.concatenate([rows[uq], rows[up]])
        c = np.concatenate([flat_index[q[uq]], flat_index[p[up]]])
        d = np.concatenate([np.ones(int(uq.sum())), -np.ones(int(up.sum()))])
        K[a] = sp.csr_matrix((d, (r, c)), shape=(m, n))
        ga = np.zeros((m, values.shape[-1]), dtype=np.float64)
        ga[rows] = (np.where(uq[:, None], 0.0, flat_values[q].astype(np.float64))
                    - np.where(up[:, None], 0.0, flat_values[p].astype(np.float64)))
        g[a] = ga
    return DifferenceSystem(coords, index, axes, K, g, terms)
