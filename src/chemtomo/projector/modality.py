"""One geometry per modality: the EDS projector carrying the HAADF's own, and the HAADF's channel sum.

A HAADF recorded at tilts of its own (many) beside EDS maps at a few has its own
projector ``W_H``; the EDS lines share ``W_E``. :class:`PerModality` is ``W_E`` (it
acts as ``W_E`` for every caller that knows one projector: the EDS-only methods run
on it unchanged) and answers :meth:`~chemtomo.projector.base.Operator.modality` with
``W_H`` for ``"haadf"``. Every other operator answers with itself, so a method asks
``W.modality("haadf")`` and gets the right projector whether the series shares one
tilt set or not, without a type check.

:class:`ChannelSum` is the HAADF rows of HEBT's and the fused model's stacked
systems, ``w^T (x) W_H``: it sums the weighted channels first and projects once
(``k`` times cheaper than ``ChannelMix(W_H, w^T)``, which projects every channel).
"""

from __future__ import annotations

import numpy as np

from ..geometry import TiltGeometry
from ._work import ReusesBuffers, result_array
from .base import DTYPE, Operator


class PerModality(Operator):
    """The EDS projector ``W_E`` with the HAADF's own ``W_H``: one geometry per modality.

    Acts as ``W_E`` (forward, adjoint, capabilities, the fused SIRT of the batched
    engine); :meth:`modality` gives ``W_H`` for ``"haadf"``. Build it with
    :func:`per_modality` (which returns ``W_E`` itself when the geometries are one).

    Parameters
    ----------
    eds, haadf : Operator
        Projectors of one slice on one reconstruction grid (same ``n_in``).
    eds_geometry, haadf_geometry : TiltGeometry
        Their geometries (cross-validation pairs the HAADF's rays with the EDS's at
        the tilts they share).
    """

    def __init__(self, eds: Operator, haadf: Operator, eds_geometry: TiltGeometry, haadf_geometry: TiltGeometry):
        if eds.shape[1] != haadf.shape[1]:
            raise ValueError(f"the EDS and HAADF projectors must share the reconstruction grid (n_in), got "
                             f"{eds.shape} and {haadf.shape}")
        if eds_geometry.n_rays != eds.shape[0] or haadf_geometry.n_rays != haadf.shape[0]:
            raise ValueError("each projector's rows must be its geometry's rays (n_tilts x n_pixels)")
        self.eds, self.haadf = eds, haadf
        self.eds_geometry, self.haadf_geometry = eds_geometry, haadf_geometry
        self.shape = eds.shape

    def modality(self, name: str) -> Operator:
        """``W_E`` for ``"eds"``, ``W_H`` for ``"haadf"``."""
        if name == "haadf":
            return self.haadf
        return Operator.modality(self.eds, name)

    def modality_geometry(self, name: str) -> TiltGeometry:
        """The geometry of ``"eds"`` or ``"haadf"``."""
        if name not in ("eds", "haadf"):
            raise ValueError(f"a modality is 'eds' or 'haadf', got {name!r}")
        return self.haadf_geometry if name == "haadf" else self.eds_geometry

    def _forward(self, x):
        return self.eds._forward(x)

    def _adjoint(self, y):
        return self.eds._adjoint(y)

    def _forward_into(self, x, out):
        """As ``W_E``'s."""
        return self.eds._forward_into(x, out)

    def _adjoint_into(self, y, out):
        """As ``W_E``'s."""
        return self.eds._adjoint_into(y, out)

    def forward_channels(self, x3, out=None):
        """As ``W_E``'s."""
        return self.eds.forward_channels(x3, out=out)

    def adjoint_channels(self, y3, out=None):
        """As ``W_E``'s."""
        return self.eds.adjoint_channels(y3, out=out)

    def column_dependent(self) -> bool:
        """As ``W_E``'s."""
        return self.eds.column_dependent()

    def abs_row_sums(self) -> np.ndarray:
        """As ``W_E``'s."""
        return self.eds.abs_row_sums()

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """As ``W_E``'s."""
        return self.eds.abs_col_sums(row_weights)

    def fused_sirt_plan(self, b, x0, R, C, relaxation, nonneg, *, mix=None, scale=1.0):
        """``W_E``'s plan (an EDS-only SIRT runs as fast as on ``W_E`` alone)."""
        return self.eds.fused_sirt_plan(b, x0, R, C, relaxation, nonneg, mix=mix, scale=scale)

    def sirt_memory(self) -> tuple[int, int] | None:
        """As ``W_E``'s."""
        return self.eds.sirt_memory()

    def __repr__(self) -> str:
        return (f"PerModality(eds={self.eds!r} at {self.eds_geometry.n_tilts} tilts, "
                f"haadf={self.haadf!r} at {self.haadf_geometry.n_tilts} tilts)")


def per_modality(eds: Operator, haadf: Operator | None, eds_geometry: TiltGeometry,
                 haadf_geometry: TiltGeometry | None) -> Operator:
    """``eds`` itself when there is no HAADF geometry of its own, else :class:`PerModality`.

    Parameters
    ----------
    eds : Operator
    haadf : Operator or None
    eds_geometry : TiltGeometry
    haadf_geometry : TiltGeometry or None
        None (or ``haadf`` None): one tilt set.

    Returns
    -------
    Operator
    """
    if haadf is None or haadf_geometry is None:
        return eds
    return PerModality(eds, haadf, eds_geometry, haadf_geometry)


def shares_geometry(W: Operator) -> bool:
    """Whether ``W`` serves the HAADF too (one tilt set): ``W.modality("haadf") is W.modality("eds")``."""
    return W.modality("haadf") is W.modality("eds")


class ChannelSum(ReusesBuffers, Operator):
    """``w^T (x) W``: the weighted sum of ``k`` channels, projected once.

    Input ``(k * n_in, s)`` (channel blocks stacked), output ``(n_out, s)``:
    ``W (sum_c w_c x_c)``; the adjoint is ``[w_c W^T y]_c``. Equal to
    ``ChannelMix(W, w[None])`` with one projection instead of ``k``.

    Parameters
    ----------
    op : Operator
        ``W``, column independent (a projector).
    weights : array_like, (k,)
    """

    def __init__(self, op: Operator, weights):
        w = np.asarray(weights, np.float64).ravel()
        if w.size < 1 or not np.all(np.isfinite(w)):
            raise ValueError(f"channel weights must be finite, at least one, got {w}")
        if op.column_dependent():
            raise ValueError("ChannelSum needs a column-independent projector")
        self.op, self.w = op, w.astype(DTYPE)
        self.k = int(w.size)
        self.shape = (op.shape[0], self.k * op.shape[1])

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """``W (sum_c w_c x_c)``, into ``out`` when ``W`` can; the sum in reused scratch arrays."""
        n = self.op.shape[1]
        x3 = x.reshape(self.k, n, -1)
        if x3.dtype != DTYPE:  # outside the contract (float32): the fresh arrays of the plain expression
            acc = self.w[0] * x3[0]
            for c in range(1, self.k):
                acc = acc + self.w[c] * x3[c]
            return self.op._forward_into(np.ascontiguousarray(acc, DTYPE), out)
        acc = np.multiply(self.w[0], x3[0], out=self._work("acc", x3.shape[1:]))
        if self.k > 1:
            term = self._work("term", x3.shape[1:])
            for c in range(1, self.k):
                acc += np.multiply(self.w[c], x3[c], out=term)
        return self.op._forward_into(acc, out)

    def _adjoint_into(self, y, out):
        """``[w_c W^T y]_c``, into ``out`` ``(k n_in, m)`` when it fits (else a new array)."""
        n, m = self.op.shape[1], y.shape[1]
        back = self.op._adjoint_into(y, self._work("back", (n, m)))
        res = result_array(out, (self.k * n, m))
        res3 = res.reshape(self.k, n, m)
        for c in range(self.k):
            np.multiply(self.w[c], back, out=res3[c])
        return res

    def abs_row_sums(self) -> np.ndarray:
        """``(sum_c |w_c|) |W| 1``."""
        return (float(np.sum(np.abs(self.w), dtype=np.float64)) * self.op.abs_row_sums()).astype(DTYPE)

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``[|w_c| |W|^T r]_c``."""
        cs = self.op.abs_col_sums(row_weights)
        return np.ascontiguousarray(np.concatenate([abs(self.w[c]) * cs for c in range(self.k)], axis=0), DTYPE)
