"""The Huber-TV prior: a gradient across slices (3-D coupling) and the Huber group norm.

TV (:mod:`chemtomo.reconstruct.tv`) charges every gradient its length, so a smooth
composition gradient costs as much as a step of the same total height and the
minimiser turns ramps into staircases. The Huber-TV charges a small gradient its
squared length and a large one its length::

    HTV(x) = sum_vox h_delta(||(D x)_vox||)
    h_delta(t) = t^2 / (2 delta)   (t <= delta),   t - delta / 2   (t > delta)

so gradients below ``delta`` are smoothed as by a quadratic (Tikhonov) prior, without
staircasing, and edges above it keep TV's linear cost. ``delta = 0`` is TV. As the TV
here, the norm is vectorial by default (over the channels and directions of a voxel:
shared edges).

**Across slices.** The volume path solves a chunk of neighbouring slices as the columns
of one batched problem. :class:`SliceGradient` adds the forward difference along the
slice axis between consecutive columns of a block of ``block`` slices (the blocks are
runs of consecutive columns: the slices of a chunk, or of one fold and candidate of a
cross-validation whose slice index runs fastest), so the prior is 3-D inside a block;
the difference leaving a block is 0 (Neumann, as at the image edges). The operator is
*column dependent* (:meth:`~chemtomo.projector.base.Operator.column_dependent`): it is
built for a number of columns.

Layout of a gradient field (rows of ``(n_out, m)``): the in-plane field of
:class:`~chemtomo.reconstruct.tv.Gradient2D` ``(k, 2, ny, nx)``, then (3-D) the slice
differences ``(k, ny, nx)``.

**The conjugate's proximal map.** ``h_delta`` is the infimal convolution of ``|.|`` and
``|.|^2 / (2 delta)``, so ``(lam h_delta(||.||))^*(q) = i(||q|| <= lam) + delta / (2 lam)
||q||^2`` and, with one step ``sigma`` for the group, ``prox_{sigma F*}(p)`` is ``p / (1 +
sigma delta / lam)`` projected onto the ball of radius ``lam``. PDHG's diagonal steps are
``1 / |row|`` and equal on every difference of a voxel's group inside the grid (``2 c``
for the scaled gradient ``c D``); the boundary differences are zero rows (step 0, dual
0). :class:`HuberGroup` takes each group's largest step, which is then the exact
proximal map (tested against a brute-force minimisation).
"""

from __future__ import annotations

import numpy as np

from ..projector.base import DTYPE, Operator
from .functionals import Functional
from .tv import Gradient2D


class SliceGradient(Operator):
    """In-plane forward differences and, across slices, differences between consecutive columns.

    ``shape = (3 k ny nx, k ny nx)``, built for ``n_cols`` columns in blocks of ``block``
    consecutive slices (``n_cols`` a multiple of ``block``). The in-plane part is
    :class:`~chemtomo.reconstruct.tv.Gradient2D`'s (same kernels, same layout); the
    slice part is ``x[:, j + 1] - x[:, j]`` inside a block, 0 on a block's last slice.

    Parameters
    ----------
    image_shape : (ny, nx)
    n_channels : int
    block : int
        Consecutive columns that are neighbouring slices (>= 1; 1: no coupling).
    n_cols : int
        Columns the operator acts on.
    """

    def __init__(self, image_shape: tuple[int, int], n_channels: int, block: int, n_cols: int):
        self.plane = Gradient2D(image_shape, n_channels)
        block, n_cols = int(block), int(n_cols)
        if block < 1 or n_cols < 1 or n_cols % block:
            raise ValueError(f"n_cols ({n_cols}) must be a positive multiple of the slice block ({block})")
        self.image_shape, self.k = self.plane.image_shape, self.plane.k
        self.block, self.n_cols = block, n_cols
        n = self.plane.shape[1]
        self.n_plane = self.plane.shape[0]
        self.shape = (self.n_plane + n, n)

    def column_dependent(self) -> bool:
        """True: the slice differences link columns (see the class)."""
        return True

    def _check(self, a):
        if a.shape[1] != self.n_cols:
            raise ValueError(f"SliceGradient was built for {self.n_cols} columns, got {a.shape[1]}")

    def _runs(self, a):
        """``(rows, n_blocks, block)`` view of columns ``(rows, m)``."""
        return a.reshape(a.shape[0], self.n_cols // self.block, self.block)

    def _forward(self, x):
        self._check(x)
        m = x.shape[1]
        g = np.empty((self.shape[0], m), DTYPE)
        g[:self.n_plane] = self.plane._forward(x)
        gz = self._runs(g[self.n_plane:])
        x3 = self._runs(x)
        np.subtract(x3[:, :, 1:], x3[:, :, :-1], out=gz[:, :, :-1])
        gz[:, :, -1] = 0
        return g

    def _adjoint(self, y):
        self._check(y)
        y = np.ascontiguousarray(y, DTYPE)
        out = self.plane._adjoint(y[:self.n_plane])
        o3 = self._runs(out)
        yz = self._runs(y[self.n_plane:])
        o3[:, :, :-1] -= yz[:, :, :-1]
        o3[:, :, 1:] += yz[:, :, :-1]
        return out

    def _slice_rows(self) -> np.ndarray:
        """``(1, m)``: 1 where a column has a slice difference (not a block's last slice)."""
        r = np.ones((1, self.n_cols // self.block, self.block), DTYPE)
        r[:, :, -1] = 0
        return r.reshape(1, -1)

    def abs_row_sums(self) -> np.ndarray:
        """``|D| 1`` per column ``(n_out, m)``: 2 for a difference inside the grid and its block, else 0."""
        out = np.empty(self.shape[:1] + (self.n_cols,), DTYPE)
        out[:self.n_plane] = self.plane.abs_row_sums()
        out[self.n_plane:] = 2 * self._slice_rows()
        return out

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|D|^T w`` per column ``(n_in, m)`` (``w`` ``(n_out, 1)`` or ``(n_out, m)``; None: ones)."""
        if row_weights is None:
            w = np.ones((self.shape[0], self.n_cols), DTYPE)
        else:
            w = np.ascontiguousarray(np.broadcast_to(np.asarray(row_weights, DTYPE), (self.shape[0], self.n_cols)))
        out = np.array(np.broadcast_to(self.plane.abs_col_sums(w[:self.n_plane]), (self.shape[1], self.n_cols)),
                       DTYPE)
        o3 = self._runs(out)
        wz = self._runs(w[self.n_plane:])
        o3[:, :, :-1] += wz[:, :, :-1]
        o3[:, :, 1:] += wz[:, :, :-1]
        return out


def _group_view(a: np.ndarray, k: int, image_shape, n_dirs: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The in-plane ``(k, 2, ny, nx, m)`` and slice ``(k, ny, nx, m)`` (or None) parts of a field."""
    ny, nx = image_shape
    n2 = 2 * k * ny * nx
    a2 = a[:n2].reshape(k, 2, ny, nx, a.shape[1])
    az = a[n2:].reshape(k, ny, nx, a.shape[1]) if n_dirs == 3 else None
    return a2, az


def group_sq_norms(g: np.ndarray, k: int, image_shape, n_dirs: int, coupled: bool) -> np.ndarray:
    """Squared norms of the groups of a field ``(n_out, m)``: ``(ny, nx, m)`` coupled, else ``(k, ny, nx, m)``."""
    g2, gz = _group_view(g, k, image_shape, n_dirs)
    s = np.einsum("cdyxm,cdyxm->cyxm", g2, g2, dtype=np.float64)
    if gz is not None:
        s += np.asarray(gz, np.float64) ** 2
    return s.sum(axis=0) if coupled else s


class HuberGroup(Functional):
    """``F(g) = lam sum_groups h_delta(||g_group||)`` on :class:`SliceGradient` or ``Gradient2D`` fields.

    A group is a voxel's differences (its ``n_dirs`` directions) of one channel, or of
    every channel when ``coupled`` (vectorial). ``delta = 0`` is the (group) l2,1 norm
    of TV.

    Parameters
    ----------
    lam : float or ndarray (m,)
        Weight per column (>= 0).
    delta : float or ndarray (m,)
        Huber threshold per column, in the units of the field (>= 0).
    n_channels : int
    image_shape : (ny, nx)
    n_dirs : {2, 3}
        In-plane only (``Gradient2D``) or with the slice differences (``SliceGradient``).
    coupled : bool
    """

    def __init__(self, lam, delta, n_channels: int, image_shape, n_dirs: int = 2, coupled: bool = True):
        lam = np.asarray(lam, np.float64)
        delta = np.asarray(delta, np.float64)
        if np.any(lam < 0) or not np.all(np.isfinite(lam)):
            raise ValueError(f"the prior's weight lambda must be finite and >= 0, got {lam}")
        if np.any(delta < 0) or not np.all(np.isfinite(delta)):
            raise ValueError(f"the Huber threshold delta must be finite and >= 0, got {delta}")
        if n_dirs not in (2, 3):
            raise ValueError(f"n_dirs is 2 (in-plane) or 3 (with the slice axis), got {n_dirs!r}")
        self.lam, self.delta = lam, delta
        self.k, self.image_shape = int(n_channels), tuple(int(s) for s in image_shape)
        self.n_dirs, self.coupled = int(n_dirs), bool(coupled)

    def value(self, g):
        """``lam sum h_delta(||g_group||)`` per column, float64 ``(m,)``."""
        m = g.shape[1]
        t = np.sqrt(group_sq_norms(g, self.k, self.image_shape, self.n_dirs, self.coupled))
        d = np.broadcast_to(self.delta, (m,))
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(t <= d, t * t / (2 * np.where(d > 0, d, 1.0)), t - d / 2)
        h = h.reshape(-1, m).sum(axis=0)
        return np.broadcast_to(self.lam, (m,)) * h

    def prox_conj(self, p, sigma):
        """``prox_{sigma F*}(p)``: ``p / (1 + sigma delta / lam)`` onto the ball of radius ``lam`` (per group).

        ``sigma`` (per row, broadcastable to ``p``) is taken per group as its largest value
        (exact when a group's nonzero rows share one step, as for the gradients here).
        """
        m = p.shape[1]
        lam = np.broadcast_to(self.lam, (m,)).astype(DTYPE)
        delta = np.broadcast_to(self.delta, (m,)).astype(DTYPE)
        ny, nx = self.image_shape
        p2, pz = _group_view(p, self.k, self.image_shape, self.n_dirs)
        if np.any(delta > 0):
            s = np.broadcast_to(np.asarray(sigma, DTYPE), p.shape)
            s2, sz = _group_view(s, self.k, self.image_shape, self.n_dirs)
            sg = s2.max(axis=1) if sz is None else np.maximum(s2.max(axis=1), sz)  # (k, ny, nx, m)
            if self.coupled:
                sg = sg.max(axis=0, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                shrink = np.where(lam > 0, 1.0 / (1.0 + sg * (delta / np.where(lam > 0, lam, 1))), 0).astype(DTYPE)
        else:
            shrink = np.ones((1, 1, 1, m), DTYPE)
        sq = group_sq_norms(p, self.k, self.image_shape, self.n_dirs, self.coupled)  # float64
        if self.coupled:
            sq = sq[None]
        nrm = np.sqrt(sq) * shrink
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(nrm > lam, lam / np.where(nrm > 0, nrm, 1), 1.0) * shrink
        f = f.astype(DTYPE)
        out = np.empty_like(p, dtype=DTYPE)
        o2, oz = _group_view(out, self.k, self.image_shape, self.n_dirs)
        np.multiply(p2, f[:, None], out=o2)
        if pz is not None:
            np.multiply(pz, f, out=oz)
        return out
