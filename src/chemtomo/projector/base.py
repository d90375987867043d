"""The operator contract: linear maps applied to blocks of columns, with their adjoints.

Every operator in chemtomo maps ``x`` of shape ``(n_in, k)`` to ``y`` of shape
``(n_out, k)``: the ``k`` columns are independent problems (slices, channels) that
share one geometry, so one call serves them all. A 1-D ``x`` is treated as one
column and a 1-D result is returned. Arrays are float32.

Composition: :class:`Scaled`, :class:`VStack`, :class:`BlockDiag` build joint
models from blocks; :class:`ChannelMix` is the Kronecker product ``M (x) W`` that
applies one projector to every channel and then mixes channels with a small
matrix ``M``. HEBT's stacked system (Yuan 2020, eq 17) is exactly
``ChannelMix(W, [(1-alpha) I_k ; alpha 1^T])`` and costs one pass of ``W`` per
channel instead of ``k + 1``.
"""

from __future__ import annotations

import numpy as np

DTYPE = np.float32


def as_columns(x: np.ndarray, n: int, name: str = "x") -> tuple[np.ndarray, bool]:
    """Return ``x`` as a C-contiguous float32 ``(n, k)`` array and whether it was 1-D."""
    x = np.asarray(x)
    vector = x.ndim == 1
    if vector:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k), got {x.shape}")
    return np.ascontiguousarray(x, dtype=DTYPE), vector


class Operator:
    """A linear operator ``A: R^(n_in) -> R^(n_out)`` applied column-wise.

    Subclasses set ``shape = (n_out, n_in)`` and implement ``_forward`` and
    ``_adjoint`` on C-contiguous float32 2-D arrays.
    """

    shape: tuple[int, int]

    def _forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``A x``; ``x`` is ``(n_in,)`` or ``(n_in, k)``."""
        x2, vec = as_columns(x, self.shape[1], "x")
        y = self._forward(x2)
        return y[:, 0] if vec else y

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``A^T y``; ``y`` is ``(n_out,)`` or ``(n_out, k)``."""
        y2, vec = as_columns(y, self.shape[0], "y")
        x = self._adjoint(y2)
        return x[:, 0] if vec else x

    @property
    def T(self) -> "Operator":
        return _Adjoint(self)

    def __rmul__(self, scale: float) -> "Operator":
        return Scaled(self, float(scale))

    def forward_channels(self, x3: np.ndarray) -> np.ndarray:
        """``A`` on every channel block of ``x3`` ``(k, n_in, S)`` -> ``(k, n_out, S)``.

        The same as ``_forward`` of the ``(n_in, k S)`` matrix whose column ``c S + j``
        is ``x3[c, :, j]`` (the batched engine reads that layout in place).
        """
        k, n, S = x3.shape
        y = self._forward(np.ascontiguousarray(x3.transpose(1, 0, 2).reshape(n, k * S), DTYPE))
        return np.ascontiguousarray(y.reshape(self.shape[0], k, S).transpose(1, 0, 2))

    def adjoint_channels(self, y3: np.ndarray) -> np.ndarray:
        """``A^T`` on every channel block of ``y3`` ``(k, n_out, S)`` -> ``(k, n_in, S)``."""
        k, n, S = y3.shape
        x = self._adjoint(np.ascontiguousarray(y3.transpose(1, 0, 2).reshape(n, k * S), DTYPE))
        return np.ascontiguousarray(x.reshape(self.shape[1], k, S).transpose(1, 0, 2))

    def row_sums(self) -> np.ndarray:
        """``A 1`` (n_out,): the ray sums SIRT weights by."""
        return self.forward(np.ones(self.shape[1], DTYPE))

    def col_sums(self) -> np.ndarray:
        """``A^T 1`` (n_in,): the pixel sums SIRT weights by."""
        return self.adjoint(np.ones(self.shape[0], DTYPE))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


class _Adjoint(Operator):
    def __init__(self, op: Operator):
        self.op = op
        self.shape = (op.shape[1], op.shape[0])

    def _forward(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._forward(y)

    @property
    def T(self):
        return self.op


class MatrixOperator(Operator):
    """An explicit (sparse or dense) matrix and its stored transpose.

    Parameters
    ----------
    matrix : scipy.sparse matrix or ndarray, shape (n_out, n_in)
    """

    def __init__(self, matrix):
        import scipy.sparse as sp

        if sp.issparse(matrix):
            self.A = sp.csr_matrix(matrix, dtype=DTYPE)
            self.AT = sp.csr_matrix(self.A.T, dtype=DTYPE)
        else:
            self.A = np.ascontiguousarray(matrix, dtype=DTYPE)
            self.AT = np.ascontiguousarray(self.A.T)
        self.shape = tuple(int(s) for s in self.A.shape)

    def _forward(self, x):
        return np.ascontiguousarray(self.A @ x, dtype=DTYPE)

    def _adjoint(self, y):
        return np.ascontiguousarray(self.AT @ y, dtype=DTYPE)


class Scaled(Operator):
    """``s A``."""

    def __init__(self, op: Operator, scale: float):
        self.op, self.scale = op, float(scale)
        self.shape = op.shape

    def _forward(self, x):
        y = self.op._forward(x)
        y *= DTYPE(self.scale)  # in place: a fresh array would cost a page-faulting allocation
        return y

    def _adjoint(self, y):
        x = self.op._adjoint(y)
        x *= DTYPE(self.scale)
        return x


class VStack(Operator):
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
        return np.concatenate([op._forward(x) for op in self.ops], axis=0)

    def _adjoint(self, y):
        parts = np.split(y, self._splits, axis=0)
        out = self.ops[0]._adjoint(np.ascontiguousarray(parts[0]))
        for op, part in zip(self.ops[1:], parts[1:]):
            out += op._adjoint(np.ascontiguousarray(part))
        return out


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
        return np.concatenate([op._forward(np.ascontiguousarray(p)) for op, p in zip(self.ops, parts)])

    def _adjoint(self, y):
        parts = np.split(y, self._out, axis=0)
        return np.concatenate([op._adjoint(np.ascontiguousarray(p)) for op, p in zip(self.ops, parts)])


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
        for op, p in zip(self.ops[1:], parts[1:]):
            out += op._forward(np.ascontiguousarray(p))
        return out

    def _adjoint(self, y):
        return np.concatenate([op._adjoint(y) for op in self.ops], axis=0)


class ChannelMix(Operator):
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
    def _mix(y3, mix):
        # (c, n, s) -> (m, n, s): out[i] = sum_c mix[i, c] y3[c]
        return np.einsum("mc,cns->mns", mix, y3, optimize=True).astype(DTYPE, copy=False)

    def _forward(self, x):
        k = self.mix.shape[1]
        y3 = self.op.forward_channels(x.reshape(k, self.op.shape[1], -1))  # one pass of W, every channel
        out = y3 if self._identity else self._mix(y3, self.mix)
        return np.ascontiguousarray(out.reshape(self.shape[0], -1))

    def _adjoint(self, y):
        # mix^T first (cheap), then one adjoint pass over the k channels
        y3 = y.reshape(self.mix.shape[0], self.op.shape[0], -1)
        mixed = y3 if self._identity else self._mix(y3, self.mix.T)
        return np.ascontiguousarray(self.op.adjoint_channels(mixed).reshape(self.shape[1], -1))


def dottest(op: Operator, k: int = 3, rng=None) -> tuple[float, float]:
    """``(<A x, y>, <x, A^T y>)`` for random ``x``, ``y`` (float64 sums).

    Equal to float32 rounding for a correct adjoint pair.
    """
    rng = np.random.default_rng(rng)
    x = rng.standard_normal((op.shape[1], k)).astype(DTYPE)
    y = rng.standard_normal((op.shape[0], k)).astype(DTYPE)
    lhs = float(np.sum(op.forward(x).astype(np.float64) * y))
    rhs = float(np.sum(x.astype(np.float64) * op.adjoint(y)))
    return lhs, rhs
