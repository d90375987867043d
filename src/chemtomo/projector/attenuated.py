"""Attenuated projection: X-ray transmissions through the specimen, and W weighted by them.

A voxel ``j`` emitting a line at tilt ``t`` is seen by a detector through the
specimen: its counts are multiplied by ``T_tj = exp(-integral mu(s) ds)`` along
the straight path from the voxel's centre to the detector, ``mu`` the linear
attenuation coefficient (1/nm) of the line's photons
(:func:`chemtomo.physics.absorption.linear_attenuation_per_nm`). The
attenuated projector of one line is ``I_i = sum_j w_ij T_{t(i) j} x_j``:
:class:`AttenuatedOperator`.

Geometry (volume index frame ``(slice, z, x)`` = (tilt axis, rows, columns) of
:mod:`chemtomo.geometry`). ASTRA's parallel beam at tilt ``theta`` travels
along ``b = (0, cos theta, sin theta)`` and its detector bins increase along
``u = (0, -sin theta, cos theta)``. A detector of elevation ``epsilon`` and
azimuth ``phi`` (:class:`~chemtomo.physics.absorption.DetectorGeometry`) lies
along ``d = cos(eps) cos(phi) a + cos(eps) sin(phi) u - sin(eps) b``, ``a``
the tilt axis: it keeps its place relative to the beam while the specimen
tilts. The path has a component along the tilt axis, across slices.

Two path models (``mode``):

- ``"3d"`` (default): the true 3-D path through the whole volume
  ``(n_slices, n_grid, n_grid)``, the slices ``slice_nm`` apart (default: the
  detector pixel, the scan step along the tilt axis). Nothing outside the
  volume absorbs.
- ``"slice"``: each slice alone, as if the specimen were homogeneous along the
  tilt axis over the path's out-of-plane extent: the path's in-plane projection
  is marched and its length scaled by ``1 / |d_in-plane|`` (``1/cos`` of the
  out-of-plane angle). Exact for a specimen extruded along the tilt axis;
  wrong near its ends along the axis. Needs a detector not along the axis.

Path integrals (:func:`path_integrals`) are computed by a plane sweep: for one
direction, the planes of voxels across the direction's dominant axis are
visited from the exit side; the integral from a voxel centre is the
trapezoidal step to the next plane plus the integral there, bilinearly
interpolated. One sweep costs ``O(n_voxels)``; a transmission map costs one
sweep per tilt and detector. Exact for ``mu`` linear along the path, with an
interpolation error under one voxel at a sharp boundary.

Several detectors: ``T`` is the solid-angle-weighted mean of their
transmissions (the counts they add up to).
"""

from __future__ import annotations

import numpy as np

from ..geometry import TiltGeometry
from .base import DTYPE, MatrixOperator, Operator

__all__ = ["AttenuatedOperator", "detector_directions", "path_integrals", "transmissions"]

MODES = ("3d", "slice")


def detector_directions(detectors, angles_deg) -> np.ndarray:
    """Unit vectors to each detector at each tilt in the volume index frame.

    Parameters
    ----------
    detectors : DetectorGeometry
    angles_deg : array_like, (n_tilts,)

    Returns
    -------
    ndarray, (n_tilts, n_detectors, 3)
        Components along (slice, z, x).
    """
    beam = detectors.directions_beam_frame()  # (n_det, 3): along axis, along u, towards source
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).ravel())
    a = np.broadcast_to(np.array([1.0, 0.0, 0.0]), (th.size, 3))
    u = np.stack([np.zeros_like(th), -np.sin(th), np.cos(th)], axis=1)
    b = np.stack([np.zeros_like(th), np.cos(th), np.sin(th)], axis=1)
    return (beam[None, :, 0, None] * a[:, None] + beam[None, :, 1, None] * u[:, None]
            - beam[None, :, 2, None] * b[:, None])


def _shifted(P: np.ndarray, o1: int, o2: int) -> np.ndarray:
    """``Q[i, j] = P[i + o1, j + o2]``, zero outside ``P``."""
    Q = np.zeros_like(P)
    n1, n2 = P.shape
    s1, e1 = max(0, -o1), min(n1, n1 - o1)
    s2, e2 = max(0, -o2), min(n2, n2 - o2)
    if s1 < e1 and s2 < e2:
        Q[s1:e1, s2:e2] = P[s1 + o1:e1 + o1, s2 + o2:e2 + o2]
    return Q


def _interp(P: np.ndarray, d1: float, d2: float) -> np.ndarray:
    """``P`` bilinearly interpolated at ``(i + d1, j + d2)``, zero outside."""
    f1, f2 = int(np.floor(d1)), int(np.floor(d2))
    r1, r2 = d1 - f1, d2 - f2
    out = np.zeros_like(P)
    for o1, w1 in ((f1, 1 - r1), (f1 + 1, r1)):
        for o2, w2 in ((f2, 1 - r2), (f2 + 1, r2)):
            w = w1 * w2
            if w > 1e-12:
                out += w * _shifted(P, o1, o2)
    return out


def path_integrals(mu_per_nm: np.ndarray, direction, spacing_nm) -> np.ndarray:
    """``integral_0^inf mu(r_j + s d) ds`` from every voxel centre ``r_j`` along ``d``.

    Parameters
    ----------
    mu_per_nm : ndarray, (n0, n1, n2)
        Linear attenuation coefficient per voxel (1/nm); zero outside.
    direction : array_like, (3,)
        Direction (normalised here) in the array's index frame.
    spacing_nm : array_like, (3,)
        Voxel size along each axis (nm).

    Returns
    -------
    ndarray, float64, (n0, n1, n2)
        The dimensionless optical depths (``T = exp(-result)``).
    """
    mu = np.asarray(mu_per_nm, dtype=np.float64)
    if mu.ndim != 3:
        raise ValueError(f"mu_per_nm must be a 3-D array, got shape {mu.shape}")
    d = np.asarray(direction, dtype=np.float64).ravel()
    h = np.asarray(spacing_nm, dtype=np.float64).ravel()
    if d.size != 3 or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
        raise ValueError(f"direction must be a finite non-zero 3-vector, got {direction!r}")
    if h.size != 3 or np.any(~np.isfinite(h) | (h <= 0)):
        raise ValueError(f"spacing_nm must be three positive voxel sizes, got {spacing_nm!r}")
    d = d / np.linalg.norm(d)
    steps = np.abs(d) / h  # index steps per nm
    m = int(np.argmax(steps))
    others = [k for k in range(3) if k != m]
    dt = h[m] / abs(d[m])  # path length (nm) from one plane to the next
    d1, d2 = (dt * d[k] / h[k] for k in others)  # in-plane index offsets, |.| <= 1
    M = np.moveaxis(mu, m, 0)
    out = np.empty_like(M)
    order = range(M.shape[0] - 1, -1, -1) if d[m] > 0 else range(M.shape[0])
    carry = np.zeros(M.shape[1:])  # I + dt/2 mu on the previous (downstream) plane
    for i in order:
        half = 0.5 * dt * M[i]
        out[i] = half + _interp(carry, d1, d2)
        carry = out[i] + half
    return np.moveaxis(out, 0, m)


def _sweep_parameters(dirs: np.ndarray, spacing, mode: str):
    """Per direction: dominant axis, reverse order, in-plane offsets, path per plane, depth factor.

    The same arithmetic as :func:`path_integrals` (which is the reference of the
    compiled sweep); ``dirs`` is ``(n_tilts, n_det, 3)``.
    """
    h = np.asarray(spacing, dtype=np.float64)
    shape = dirs.shape[:2]
    axis = np.empty(shape, np.int64)
    rev = np.empty(shape, np.bool_)
    d1, d2, dt, scale = (np.empty(shape) for _ in range(4))
    for t, k in np.ndindex(*shape):
        d = dirs[t, k].astype(np.float64).copy()
        sc = 1.0
        if mode == "slice":
            inplane = float(np.hypot(d[1], d[2]))
            if inplane < 1e-6:
                raise ValueError(
                    "mode='slice' needs a detector direction with an in-plane component; detector "
                    f"{k} looks along the tilt axis: use mode='3d'"
                )
            sc, d[0] = 1.0 / inplane, 0.0
        d = d / np.linalg.norm(d)
        m = int(np.argmax(np.abs(d) / h))
        others = [j for j in range(3) if j != m]
        dt[t, k] = h[m] / abs(d[m])
        d1[t, k], d2[t, k] = (dt[t, k] * d[j] / h[j] for j in others)
        axis[t, k], rev[t, k], scale[t, k] = m, d[m] > 0, sc
    return axis, rev, d1, d2, dt, scale


def transmissions(mu_per_nm: np.ndarray, geom: TiltGeometry, detectors, *, mode: str = "3d",
                  slice_nm: float | None = None, per_detector: bool = False) -> np.ndarray:
    """Transmissions ``T`` of every voxel at every tilt towards the detectors.

    One compiled call (:mod:`._sweep`) sweeps every tilt, detector and field, the
    tilts in parallel, with the arithmetic of :func:`path_integrals`.

    Parameters
    ----------
    mu_per_nm : ndarray, (n_slices, n_grid, n_grid), (n_grid, n_grid) or (n_fields, n_slices, n_grid, n_grid)
        Linear attenuation coefficient of the line's photons (1/nm), in the
        volume layout of :mod:`chemtomo.geometry` (a 2-D map is one slice; a 4-D
        stack holds one map per line, each swept alike).
    geom : TiltGeometry
    detectors : DetectorGeometry
    mode : {"3d", "slice"}
        Path model (see the module docstring).
    slice_nm : float, optional
        Spacing of the slices along the tilt axis (nm); default ``geom.pixel_nm``.
    per_detector : bool
        Return each detector's transmissions instead of their weighted mean.

    Returns
    -------
    ndarray, float32, (n_tilts, n_grid**2, n_slices)
        (``(n_detectors, n_tilts, n_grid**2, n_slices)`` with ``per_detector``),
        the layout :class:`AttenuatedOperator` takes; with a 4-D stack, one such
        array per field along a new first axis.
    """
    from ._sweep import sweep_transmissions

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    mu = np.asarray(mu_per_nm, dtype=np.float64)
    stacked = mu.ndim == 4
    if mu.ndim == 2:
        mu = mu[None]
    if mu.ndim == 3:
        mu = mu[None]
    n = geom.n_grid
    if mu.ndim != 4 or mu.shape[2:] != (n, n):
        raise ValueError(
            f"mu_per_nm must be (n_slices, {n}, {n}), (n_fields, n_slices, {n}, {n}) or ({n}, {n}), "
            f"got {np.shape(mu_per_nm)}"
        )
    if np.any(mu < 0) or not np.all(np.isfinite(mu)):
        raise ValueError("mu_per_nm must be finite and >= 0")
    sl = geom.pixel_nm if slice_nm is None else float(slice_nm)
    if not (np.isfinite(sl) and sl > 0):
        raise ValueError(f"slice_nm must be a positive number, got {slice_nm!r}")
    spacing = (sl, geom.grid_pixel_nm, geom.grid_pixel_nm)
    dirs = detector_directions(detectors, geom.angles_deg)
    axis, rev, d1, d2, dt, scale = _sweep_parameters(dirs, spacing, mode)
    L, S = mu.shape[0], mu.shape[1]
    M0 = np.ascontiguousarray(mu)
    M1 = np.ascontiguousarray(np.moveaxis(mu, 2, 1))  # per field: moveaxis(., 1, 0) -> (z, slice, x)
    M2 = np.ascontiguousarray(np.moveaxis(mu, 3, 1))  # per field: moveaxis(., 2, 0) -> (x, slice, z)
    n_out = detectors.n_detectors if per_detector else 1
    out = np.empty((L, n_out, geom.n_tilts, n * n, S), dtype=DTYPE)
    w = np.ascontiguousarray(detectors.weights, dtype=DTYPE)
    sweep_transmissions(M0, M1, M2, axis, rev, d1, d2, dt, scale, w, bool(per_detector), out)
    out = out if per_detector else out[:, 0]
    return out if stacked else out[0]


class AttenuatedOperator(Operator):
    """The attenuated projector of one line: ``A x = sum_j w_ij T_{t(i) j} x_j``.

    Rows are ordered tilt by tilt as ``W``'s (``n_pixels`` rays per tilt).
    With one transmission column the operator acts alike on any number of
    columns; with ``m`` columns (one per slice) it is column dependent and
    accepts exactly ``m``.

    Parameters
    ----------
    W : scipy.sparse matrix, ndarray or MatrixOperator, (n_tilts * n_pixels, n_voxels)
        The plain projector (non-negative entries).
    T : ndarray, (n_tilts, n_voxels) or (n_tilts, n_voxels, m)
        Transmissions in [0, 1] (:func:`transmissions`).
    """

    def __init__(self, W, T):
        import scipy.sparse as sp

        A = W.A if isinstance(W, MatrixOperator) else W
        A = sp.csr_matrix(A, dtype=DTYPE)
        T = np.asarray(T, dtype=DTYPE)
        if T.ndim == 2:
            T = T[:, :, None]
        if T.ndim != 3:
            raise ValueError(f"T must be (n_tilts, n_voxels) or (n_tilts, n_voxels, m), got shape {T.shape}")
        n_rays, n_vox = A.shape
        n_tilts = T.shape[0]
        if T.shape[1] != n_vox or n_tilts == 0 or n_rays % n_tilts:
            raise ValueError(
                f"T of shape {T.shape} does not fit W of shape {A.shape}: need (n_tilts, {n_vox}, m) "
                "with n_tilts dividing the number of rays"
            )
        if np.any(T < 0) or not np.all(np.isfinite(T)):
            raise ValueError("transmissions T must be finite and >= 0")
        self.transmission = np.ascontiguousarray(T)
        self.n_tilts, self.n_pixels = n_tilts, n_rays // n_tilts
        self._blocks = [A[t * self.n_pixels:(t + 1) * self.n_pixels] for t in range(n_tilts)]
        self._blocks_T_cache = None  # made on the first adjoint: a forward-only use does not pay for it
        self.shape = (int(n_rays), int(n_vox))

    @property
    def _blocks_T(self) -> list:
        """The tilt blocks transposed (CSR), made once on first use."""
        if self._blocks_T_cache is None:
            import scipy.sparse as sp

            self._blocks_T_cache = [sp.csr_matrix(B.T) for B in self._blocks]
        return self._blocks_T_cache

    @property
    def n_columns(self) -> int:
        """Transmission columns ``m`` (1: the same transmissions for every column)."""
        return int(self.transmission.shape[2])

    def _check(self, k: int) -> None:
        if self.n_columns > 1 and k != self.n_columns:
            raise ValueError(
                f"this attenuated operator has transmissions for {self.n_columns} columns (slices), got {k}"
            )

    def _forward(self, x):
        self._check(x.shape[1])
        y = np.empty((self.shape[0], x.shape[1]), dtype=DTYPE)
        for t, B in enumerate(self._blocks):
            y[t * self.n_pixels:(t + 1) * self.n_pixels] = B @ (self.transmission[t] * x)
        return y

    def _adjoint(self, y):
        self._check(y.shape[1])
        x = np.zeros((self.shape[1], y.shape[1]), dtype=DTYPE)
        for t, BT in enumerate(self._blocks_T):
            x += self.transmission[t] * (BT @ y[t * self.n_pixels:(t + 1) * self.n_pixels])
        return x

    def column_dependent(self) -> bool:
        """True with per-column (per-slice) transmissions."""
        return self.n_columns > 1

    def abs_row_sums(self) -> np.ndarray:
        """``A 1`` per column, ``(n_out, m)`` (entries are non-negative)."""
        return self._forward(np.ones((self.shape[1], self.n_columns), DTYPE))

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``A^T w`` per column, ``(n_in, m)`` (``w`` broadcast to the operator's columns)."""
        if row_weights is None:
            return self._adjoint(np.ones((self.shape[0], self.n_columns), DTYPE))
        w = np.asarray(row_weights, DTYPE)
        if w.ndim == 1:
            w = w[:, None]
        m = max(w.shape[1], self.n_columns)
        return self._adjoint(np.ascontiguousarray(np.broadcast_to(w, (self.shape[0], m))))
