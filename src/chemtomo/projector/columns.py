"""Operators that act differently on each column: HEBT's stacked operator with one alpha per column.

HEBT's stacked operator for one ``alpha`` is ``ChannelMix(W, [(1-alpha) I_k; alpha 1^T])``
(:func:`chemtomo.reconstruct.hebt.hebt_operator`, which the batched engine runs fused).
Cross-validating ``alpha`` solves one problem per (alpha, fold, slice) column;
:class:`HebtColumns` serves every alpha with one projection of all channels and
columns. Its arithmetic (``(1 - a)`` rounded in float32, the channel sum in numpy's
order) is its own, so it is kept beside ``ChannelMix`` rather than built from it:
the cross-validation's numbers stay as they were.
"""

from __future__ import annotations

import numpy as np

from .base import DTYPE, Operator


class HebtColumns(Operator):
    """HEBT's stacked operator (eq 17) with its own ``alpha`` per column: all alphas in one pass.

    Column ``j`` of the input holds the ``k`` channel blocks of one problem; its output
    is ``[(1 - a_j) W x_1; ...; (1 - a_j) W x_k; a_j sum_A W x_A]``, i.e.
    ``hebt_operator(W, k, a_j)`` applied to that column. One projection of all
    channels and columns serves every alpha.

    Parameters
    ----------
    W : Operator
        Projector of one slice, ``(n_rays, n_vox)``.
    n_channels : int
        ``k``, the EDS lines.
    alphas : array_like, (m,)
        HAADF weight of each column, in [0, 1).
    """

    def __init__(self, W: Operator, n_channels: int, alphas):
        self.W, self.k = W, int(n_channels)
        self.alphas = np.asarray(alphas, DTYPE).ravel()
        if np.any(self.alphas < 0) or np.any(self.alphas >= 1):
            raise ValueError(f"alphas must lie in [0, 1), got {self.alphas}")
        self.shape = ((self.k + 1) * W.shape[0], self.k * W.shape[1])

    def _check(self, m):
        if m != self.alphas.size:
            raise ValueError(f"HebtColumns was built for {self.alphas.size} columns, got {m}")

    def _forward(self, x):
        m = x.shape[1]
        self._check(m)
        n_vox, n_rays, k = self.W.shape[1], self.W.shape[0], self.k
        cols = np.ascontiguousarray(x.reshape(k, n_vox, m).transpose(1, 0, 2).reshape(n_vox, k * m))
        p = self.W._forward(cols).reshape(n_rays, k, m)
        a = self.alphas
        eds = (1 - a) * p  # (n_rays, k, m)
        out = np.concatenate([eds.transpose(1, 0, 2).reshape(k * n_rays, m), a * p.sum(axis=1)], axis=0)
        return np.ascontiguousarray(out, DTYPE)

    def _adjoint(self, y):
        m = y.shape[1]
        self._check(m)
        n_vox, n_rays, k = self.W.shape[1], self.W.shape[0], self.k
        a = self.alphas
        eds = y[: k * n_rays].reshape(k, n_rays, m)
        h = y[k * n_rays:]
        back_in = (1 - a) * eds + a * h[None]  # (k, n_rays, m)
        cols = np.ascontiguousarray(back_in.transpose(1, 0, 2).reshape(n_rays, k * m), DTYPE)
        back = self.W._adjoint(cols).reshape(n_vox, k, m)
        return np.ascontiguousarray(back.transpose(1, 0, 2).reshape(k * n_vox, m))

    def column_dependent(self) -> bool:
        """True: each column has its own alpha."""
        return True

    def abs_row_sums(self) -> np.ndarray:
        """``|A| 1`` per column ``(n_out, m)`` (``W`` non-negative, as a projector)."""
        return self._forward(np.ones((self.shape[1], self.alphas.size), DTYPE))

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|A|^T w`` per column ``(n_in, m)`` (``W`` non-negative, as a projector)."""
        w = np.ones((self.shape[0], 1), DTYPE) if row_weights is None else np.asarray(row_weights, DTYPE)
        return Operator.abs_col_sums(self, np.broadcast_to(w, (self.shape[0], self.alphas.size)))


class HebtColumnsModal(Operator):
    """:class:`HebtColumns` for a HAADF at tilts of its own: ``alpha`` per column, two projectors.

    Column ``j`` maps to ``[(1 - a_j) W_E x_1; ...; (1 - a_j) W_E x_k; c a_j W_H sum_A x_A]``,
    i.e. :func:`chemtomo.reconstruct.hebt.hebt_operator` of a
    :class:`~chemtomo.projector.modality.PerModality` pair at ``alpha = a_j``
    (``c``: the HAADF rows' weight, ``n_eds_rays / n_haadf_rays``).

    Parameters
    ----------
    WE, WH : Operator
        The EDS and HAADF projectors of one slice (same reconstruction grid).
    n_channels : int
    alphas : array_like, (m,)
        HAADF weight of each column, in [0, 1).
    haadf_weight : float
        ``c``.
    """

    def __init__(self, WE: Operator, WH: Operator, n_channels: int, alphas, haadf_weight: float):
        if WE.shape[1] != WH.shape[1]:
            raise ValueError(f"the projectors must share the grid, got {WE.shape} and {WH.shape}")
        self.WE, self.WH, self.k = WE, WH, int(n_channels)
        self.alphas = np.asarray(alphas, DTYPE).ravel()
        if np.any(self.alphas < 0) or np.any(self.alphas >= 1):
            raise ValueError(f"alphas must lie in [0, 1), got {self.alphas}")
        self.c = DTYPE(haadf_weight)
        self.shape = (self.k * WE.shape[0] + WH.shape[0], self.k * WE.shape[1])

    def _check(self, m):
        if m != self.alphas.size:
            raise ValueError(f"HebtColumnsModal was built for {self.alphas.size} columns, got {m}")

    def _forward(self, x):
        m = x.shape[1]
        self._check(m)
        n_vox, n_e, k = self.WE.shape[1], self.WE.shape[0], self.k
        x3 = x.reshape(k, n_vox, m)
        cols = np.ascontiguousarray(x3.transpose(1, 0, 2).reshape(n_vox, k * m))
        p = self.WE._forward(cols).reshape(n_e, k, m)
        a = self.alphas
        eds = ((1 - a) * p).transpose(1, 0, 2).reshape(k * n_e, m)
        h = self.WH._forward(np.ascontiguousarray(x3.sum(axis=0), DTYPE)) * (self.c * a)
        return np.ascontiguousarray(np.concatenate([eds, h], axis=0), DTYPE)

    def _adjoint(self, y):
        m = y.shape[1]
        self._check(m)
        n_vox, n_e, k = self.WE.shape[1], self.WE.shape[0], self.k
        a = self.alphas
        eds = (1 - a) * y[: k * n_e].reshape(k, n_e, m)
        cols = np.ascontiguousarray(eds.transpose(1, 0, 2).reshape(n_e, k * m), DTYPE)
        back = self.WE._adjoint(cols).reshape(n_vox, k, m).transpose(1, 0, 2)
        hb = self.WH._adjoint(np.ascontiguousarray((self.c * a) * y[k * n_e:], DTYPE))
        return np.ascontiguousarray((back + hb[None]).reshape(k * n_vox, m), DTYPE)

    def column_dependent(self) -> bool:
        """True: each column has its own alpha."""
        return True

    def abs_row_sums(self) -> np.ndarray:
        """``|A| 1`` per column ``(n_out, m)`` (projectors non-negative)."""
        return self._forward(np.ones((self.shape[1], self.alphas.size), DTYPE))

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|A|^T w`` per column ``(n_in, m)`` (projectors non-negative)."""
        w = np.ones((self.shape[0], 1), DTYPE) if row_weights is None else np.asarray(row_weights, DTYPE)
        return Operator.abs_col_sums(self, np.broadcast_to(w, (self.shape[0], self.alphas.size)))
