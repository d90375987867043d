"""Operators built from operators: stacks, the channel mix, row scales.

:class:`VStack`, :class:`BlockDiag`, :class:`HStack` build joint models from
blocks; :class:`ChannelMix` is the Kronecker product ``M (x) W`` that applies one
projector to every channel and then mixes channels with a small matrix ``M``.
HEBT's stacked system (Yuan 2020, eq 17) is exactly
``ChannelMix(W, [(1-alpha) I_k ; alpha 1^T])`` and costs one pass of ``W`` per
channel instead of ``k + 1``. :class:`RowScale` is ``diag(d) K`` (PDHG's
whitening). Each answers the contract's capabilities by composing its blocks'.
"""

from __future__ import annotations

import numpy as np

from ._work import ReusesBuffers, out_buffer, result_array
from .base import DTYPE, Operator


class VStack(ReusesBuffers, Operator):
    """``[A_1; A_2; ...]``: blocks share the input, outputs are stacked."""

    def __init__(self, ops: list[Operator]):
        if not ops:
            raise ValueError("VStack needs at least one operator")
        n_in = {op.shape[1] for op in ops}
        if len(n_in) != 1:
            raise ValueError(f"VStack blocks must share n_in, got {[op.shape for op in ops]}")
        self.ops = list(ops)
        self._splits = np.cumsum([op.shape[0] for op in ops])[:-1]
        self.shape = (int(sum(op.shape[0] for op in ops)), ops[0].shape[1])

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """The blocks' ``A_i x`` written into row ranges of ``out`` (or of a new array)."""
        m = x.shape[1]
        res = result_array(out, (self.shape[0], m))
        for op, start, stop in zip(self.ops, (0, *self._splits), (*self._splits, self.shape[0]), strict=True):
            part = res[start:stop]
            got = op._forward_into(x, part)
            if got is not part:
                part[...] = got
        return res

    def _adjoint_into(self, y, out):
        """``sum_i A_i^T y_i``: the first block into ``out`` when it can, the others through reused buffers."""
        parts = np.split(y, self._splits, axis=0)
        res = self.ops[0]._adjoint_into(np.ascontiguousarray(parts[0]), out)
        for i, (op, part) in enumerate(zip(self.ops[1:], parts[1:], strict=True), start=1):
            res += op._adjoint_into(np.ascontiguousarray(part), self._work(f"adjoint{i}", res.shape))
        return res

    def column_dependent(self) -> bool:
        """Whether any block is."""
        return any(op.column_dependent() for op in self.ops)

    def abs_row_sums(self) -> np.ndarray:
        """The blocks' ``|A_i| 1``, stacked."""
        return _stack_rows([op.abs_row_sums() for op in self.ops])

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``sum_i |A_i|^T w_i`` over the blocks' rows."""
        parts = _split_rows(row_weights, self._splits)
        return _sum_cols([op.abs_col_sums(w) for op, w in zip(self.ops, parts, strict=True)])


class BlockDiag(Operator):
    """``diag(A_1, A_2, ...)``: inputs and outputs are stacked blocks."""

    def __init__(self, ops: list[Operator]):
        if not ops:
            raise ValueError("BlockDiag needs at least one operator")
        self.ops = list(ops)
        self._in = np.cumsum([op.shape[1] for op in ops])[:-1]
        self._out = np.cumsum([op.shape[0] for op in ops])[:-1]
        self.shape = (int(sum(o.shape[0] for o in ops)), int(sum(o.shape[1] for o in ops)))

    def _forward(self, x):
        parts = np.split(x, self._in, axis=0)
        return np.concatenate([op._forward(np.ascontiguousarray(p)) for op, p in zip(self.ops, parts, strict=True)])

    def _adjoint(self, y):
        parts = np.split(y, self._out, axis=0)
        return np.concatenate([op._adjoint(np.ascontiguousarray(p)) for op, p in zip(self.ops, parts, strict=True)])

    def column_dependent(self) -> bool:
        """Whether any block is."""
        return any(op.column_dependent() for op in self.ops)

    def abs_row_sums(self) -> np.ndarray:
        """The blocks' ``|A_i| 1``, stacked."""
        return _stack_rows([op.abs_row_sums() for op in self.ops])

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """The blocks' ``|A_i|^T w_i``, stacked."""
        parts = _split_rows(row_weights, self._out)
        return _stack_rows([op.abs_col_sums(w) for op, w in zip(self.ops, parts, strict=True)])


class HStack(Operator):
    """``[A_1, A_2, ...]``: inputs are stacked blocks, outputs are summed."""

    def __init__(self, ops: list[Operator]):
        if not ops:
            raise ValueError("HStack needs at least one operator")
        n_out = {op.shape[0] for op in ops}
        if len(n_out) != 1:
            raise ValueError(f"HStack blocks must share n_out, got {[op.shape for op in ops]}")
        self.ops = list(ops)
        self._in = np.cumsum([op.shape[1] for op in ops])[:-1]
        self.shape = (ops[0].shape[0], int(sum(op.shape[1] for op in ops)))

    def _forward(self, x):
        parts = np.split(x, self._in, axis=0)
        out = self.ops[0]._forward(np.ascontiguousarray(parts[0]))
        for op, p in zip(self.ops[1:], parts[1:], strict=True):
            out += op._forward(np.ascontiguousarray(p))
        return out

    def _adjoint(self, y):
        return np.concatenate([op._adjoint(y) for op in self.ops], axis=0)

    def column_dependent(self) -> bool:
        """Whether any block is."""
        return any(op.column_dependent() for op in self.ops)

    def abs_row_sums(self) -> np.ndarray:
        """``sum_i |A_i| 1``."""
        return _sum_cols([op.abs_row_sums() for op in self.ops])

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """The blocks' ``|A_i|^T w``, stacked."""
        return _stack_rows([op.abs_col_sums(row_weights) for op in self.ops])


class ChannelMix(ReusesBuffers, Operator):
    """``M (x) W``: one projector on every channel, then a channel-mixing matrix.

    Input: ``k`` channel blocks stacked, ``(k * n_in_W, s)``. Output: ``m`` blocks,
    ``(m * n_out_W, s)``, block ``i`` being ``sum_c M[i, c] W x_c``.

    Parameters
    ----------
    op : Operator
        The shared projector ``W``.
    mix : array_like, shape (m, k)
    """

    def __init__(self, op: Operator, mix):
        mix = np.asarray(mix, dtype=DTYPE)
        if mix.ndim != 2:
            raise ValueError(f"mix must be a 2-D (m, k) matrix, got shape {mix.shape}")
        self.op, self.mix = op, mix
        m, k = mix.shape
        self.shape = (m * op.shape[0], k * op.shape[1])
        self._identity = m == k and np.array_equal(mix, np.eye(k, dtype=DTYPE))

    @staticmethod
    def _mix(y3, mix, out=None):
        # (c, n, s) -> (m, n, s): out[i] = sum_c mix[i, c] y3[c]. einsum's own loops, not optimize=True:
        # that routes this product of inner dimension c (2-5 channels) to a BLAS sgemm, which OpenBLAS
        # threads; on a busy machine it cost 150 ms per call at 160 columns against 0.09 ms here
        # (fused-TV's bootstrap replicas: 40 % of their time). ``out`` (float32, C-contiguous): the same
        # loops and bits, written in place (float32 operands: einsum's result is float32 already).
        if out is not None and mix.dtype == DTYPE and y3.dtype == DTYPE:
            return np.einsum("mc,cns->mns", mix, y3, out=out)
        return np.einsum("mc,cns->mns", mix, y3).astype(DTYPE, copy=False)

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """``(M (x) W) x``, into ``out`` ``(m n_out_W, s)`` when it fits; the unmixed projections in a reused buffer."""
        (m, k), s = self.mix.shape, x.shape[1]
        n_out = self.op.shape[0]
        res = out_buffer(out, (self.shape[0], s))
        res3 = None if res is None else res.reshape(m, n_out, s)
        x3 = x.reshape(k, self.op.shape[1], -1)
        if self._identity:
            y3 = self.op.forward_channels(x3, out=res3)  # one pass of W, every channel
        else:
            y3 = self._mix(self.op.forward_channels(x3, out=self._work("proj", (k, n_out, s))), self.mix, res3)
        if res3 is not None and y3 is res3:
            return res
        return np.ascontiguousarray(y3.reshape(self.shape[0], -1))

    def _adjoint_into(self, y, out):
        """``(M (x) W)^T y``, into ``out`` ``(k n_in_W, s)`` when it fits; the mixed rays in a reused buffer."""
        (m, k), s = self.mix.shape, y.shape[1]
        n_out, n_in = self.op.shape
        res = out_buffer(out, (self.shape[1], s))
        res3 = None if res is None else res.reshape(k, n_in, s)
        # mix^T first (cheap), then one adjoint pass over the k channels
        y3 = y.reshape(m, n_out, -1)
        mixed = y3 if self._identity else self._mix(y3, self.mix.T, self._work("mixed", (k, n_out, s)))
        x3 = self.op.adjoint_channels(mixed, out=res3)
        if res3 is not None and x3 is res3:
            return res
        return np.ascontiguousarray(x3.reshape(self.shape[1], -1))

    def column_dependent(self) -> bool:
        """As the projector's."""
        return self.op.column_dependent()

    def _abs(self) -> ChannelMix:
        # |M (x) W| = |M| (x) W for a projector W with non-negative entries (the use of ChannelMix)
        return ChannelMix(self.op, np.abs(self.mix)) if np.any(self.mix < 0) else self

    def abs_row_sums(self) -> np.ndarray:
        """``(|M| (x) W) 1`` (``W``'s entries are taken to be non-negative, as a projector's)."""
        return Operator.abs_row_sums(self._abs())

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``(|M| (x) W)^T w`` (``W``'s entries are taken to be non-negative, as a projector's)."""
        return Operator.abs_col_sums(self._abs(), row_weights)

    def fused_sirt_plan(self, b, x0, R, C, relaxation, nonneg, *, mix=None, scale=1.0):
        """The projector's plan with this mix; None inside another mix."""
        if mix is not None:
            return None
        return self.op.fused_sirt_plan(b, x0, R, C, relaxation, nonneg,
                                       mix=np.asarray(self.mix, np.float64), scale=scale)

    def sirt_memory(self) -> tuple[int, int] | None:
        """The projector's, with ``k`` columns of it per column of this operator."""
        inner = self.op.sirt_memory()
        return None if inner is None else (inner[0], inner[1] * self.mix.shape[1])


def _width(parts: list[np.ndarray]) -> int:
    return max(p.shape[1] for p in parts)


def _stack_rows(parts: list[np.ndarray]) -> np.ndarray:
    """Blocks ``(n_i, 1)`` or ``(n_i, m)`` stacked into ``(sum n_i, m)``."""
    m = _width(parts)
    return np.concatenate([np.broadcast_to(p, (p.shape[0], m)) for p in parts], axis=0)


def _sum_cols(parts: list[np.ndarray]) -> np.ndarray:
    """Sum of blocks ``(n, 1)`` or ``(n, m)``."""
    out = parts[0].copy()
    for p in parts[1:]:
        out = out + p
    return out


def _split_rows(w: np.ndarray | None, splits) -> list:
    if w is None:
        return [None] * (len(splits) + 1)
    return [np.ascontiguousarray(p) for p in np.split(np.asarray(w, DTYPE), splits, axis=0)]


class RowScale(ReusesBuffers, Operator):
    """``diag(d) K``: rows of ``K`` scaled by ``d >= 0``.

    Rescaling the rows of a data term leaves the problem unchanged but changes the
    diagonal preconditioners of PDHG (whitening). With a per-column ``d``
    (``(n_out, m)``) the operator acts differently on each of its ``m`` columns
    (:meth:`column_dependent`) and accepts only ``m`` columns.

    Parameters
    ----------
    op : Operator
        ``K``.
    d : array_like, (n_out,), (n_out, 1) or (n_out, m)
        Finite, non-negative row scales.
    """

    def __init__(self, op: Operator, d):
        d = np.asarray(d, DTYPE)
        if d.ndim == 1:
            d = d[:, None]
        if d.ndim != 2 or d.shape[0] != op.shape[0]:
            raise ValueError(f"row scales must be (n_out,) or (n_out, m) with n_out = {op.shape[0]}, got {d.shape}")
        if np.any(d < 0) or not np.all(np.isfinite(d)):
            raise ValueError("row scales must be finite and >= 0")
        self.op, self.d = op, d
        self.shape = op.shape

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """``d K x``: ``K x`` into ``out`` when ``K`` can, scaled in place (the same bits as ``d * (K x)``)."""
        y = self.op._forward_into(x, out)
        if y.dtype != np.result_type(self.d, y) or y.shape != np.broadcast_shapes(self.d.shape, y.shape):
            return self.d * y  # a product that cannot be written in place: the plain expression
        y *= self.d
        return y

    def _adjoint_into(self, y, out):
        """``K^T (d y)``, ``d y`` in a reused buffer, the result into ``out`` when ``K`` can."""
        if y.dtype != DTYPE or y.shape != np.broadcast_shapes(self.d.shape, y.shape):
            return self.op._adjoint_into(np.ascontiguousarray(self.d * y), out)
        return self.op._adjoint_into(np.multiply(self.d, y, out=self._work("dy", y.shape)), out)

    def column_dependent(self) -> bool:
        """True with per-column scales, else as ``K``."""
        return self.d.shape[1] > 1 or self.op.column_dependent()

    def abs_row_sums(self) -> np.ndarray:
        """``d |K| 1``."""
        return self.d * self.op.abs_row_sums()

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|K|^T (d w)``."""
        return self.op.abs_col_sums(self.d if row_weights is None else self.d * row_weights)
