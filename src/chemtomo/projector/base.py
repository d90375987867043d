"""The operator contract: linear maps applied to blocks of columns, with their adjoints.

Every operator in chemtomo maps ``x`` of shape ``(n_in, k)`` to ``y`` of shape
``(n_out, k)``: the ``k`` columns are independent problems (slices, channels) that
share one geometry, so one call serves them all. A 1-D ``x`` is treated as one
column and a 1-D result is returned. Arrays are float32.

Capabilities are methods of the contract, asked of the operator and never found
by type checks: absolute row and column sums (:meth:`Operator.abs_row_sums`,
:meth:`Operator.abs_col_sums`: SIRT's weights, PDHG's step sizes), whether it acts
differently on each column (:meth:`Operator.column_dependent`), and an optional
fused SIRT (:meth:`Operator.fused_sirt_plan`, :meth:`Operator.sirt_memory`; the
batched engine has one). Each has a default; a wrapper answers by composing its
blocks' answers.

The projector of each modality (:meth:`Operator.modality`) is asked too: one
operator serves the EDS lines and the HAADF, unless the HAADF has tilts of its own
(:mod:`chemtomo.projector.modality`).

Here: the contract, :class:`MatrixOperator` and :class:`Scaled`; the other
compositions (stacks, the channel mix, row scales) are in
:mod:`chemtomo.projector.compose`.
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

    def _forward_into(self, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``A x``, written into ``out`` when the operator can (else a new array); returns the result.

        ``out`` is a C-contiguous float32 ``(n_out, m)`` buffer the caller no longer
        needs: an iterative solver recycles its dead arrays through it, which saves
        the page faults of a fresh large allocation every iteration. The default
        ignores ``out``; the result is the same bits either way.
        """
        return self._forward(x)

    def _adjoint_into(self, y: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``A^T y``, written into ``out`` ``(n_in, m)`` when the operator can (see :meth:`_forward_into`)."""
        return self._adjoint(y)

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
    def T(self) -> Operator:
        """The adjoint ``A^T`` as an operator (a view of this one; nothing is copied)."""
        return _Adjoint(self)

    def __rmul__(self, scale: float) -> Operator:
        return Scaled(self, float(scale))

    def forward_channels(self, x3: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``A`` on every channel block of ``x3`` ``(k, n_in, S)`` -> ``(k, n_out, S)``.

        The same as ``_forward`` of the ``(n_in, k S)`` matrix whose column ``c S + j``
        is ``x3[c, :, j]`` (the batched engine reads that layout in place). ``out``: a
        ``(k, n_out, S)`` buffer the operator may write into (see :meth:`_forward_into`;
        the default ignores it).
        """
        k, n, S = x3.shape
        y = self._forward(np.ascontiguousarray(x3.transpose(1, 0, 2).reshape(n, k * S), DTYPE))
        return np.ascontiguousarray(y.reshape(self.shape[0], k, S).transpose(1, 0, 2))

    def adjoint_channels(self, y3: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``A^T`` on every channel block of ``y3`` ``(k, n_out, S)`` -> ``(k, n_in, S)`` (``out``: as above)."""
        k, n, S = y3.shape
        x = self._adjoint(np.ascontiguousarray(y3.transpose(1, 0, 2).reshape(n, k * S), DTYPE))
        return np.ascontiguousarray(x.reshape(self.shape[1], k, S).transpose(1, 0, 2))

    def row_sums(self) -> np.ndarray:
        """``A 1`` (n_out,): the ray sums SIRT weights by."""
        return self.forward(np.ones(self.shape[1], DTYPE))

    def col_sums(self) -> np.ndarray:
        """``A^T 1`` (n_in,): the pixel sums SIRT weights by."""
        return self.adjoint(np.ones(self.shape[0], DTYPE))

    # ------------------------------------------------------------ capabilities
    # Asked of the operator, never found by type checks: a wrapper answers by
    # composing its blocks' answers.

    def modality(self, name: str) -> Operator:
        """The projector of one modality, ``"eds"`` or ``"haadf"``: this operator itself.

        A series whose HAADF has tilts of its own is served by
        :class:`~chemtomo.projector.modality.PerModality`, which answers ``"haadf"`` with
        the HAADF's projector; every other operator serves both modalities.

        Raises
        ------
        ValueError
            Another name.
        """
        if name not in ("eds", "haadf"):
            raise ValueError(f"a modality is 'eds' or 'haadf', got {name!r}")
        return self

    def modality_geometry(self, name: str):
        """The :class:`~chemtomo.geometry.TiltGeometry` of a modality's projector, where known (else None).

        A :class:`~chemtomo.projector.modality.PerModality` pair knows both; a single
        projector does not state its geometry (None).
        """
        if name not in ("eds", "haadf"):
            raise ValueError(f"a modality is 'eds' or 'haadf', got {name!r}")
        return None

    def thread_safe(self) -> bool:
        """Whether the operator may be applied from several Python threads at once.

        :func:`~chemtomo.projector.map_threads` runs independent solves on threads only
        with such an operator. True for one whose work is numpy or numba on the caller's
        arrays and per-thread buffers (the batched engine, a scipy matrix); ASTRA's
        projectors answer False. The default composes: the operator is thread safe when
        every operator it holds (an attribute, or in a list or tuple attribute) is.
        """
        for v in vars(self).values():
            held = v if isinstance(v, (list, tuple)) else (v,)
            if not all(op.thread_safe() for op in held if isinstance(op, Operator)):
                return False
        return True

    def column_dependent(self) -> bool:
        """Whether the operator acts differently on each of its columns.

        Such an operator accepts only the number of columns it was built for, and its
        :meth:`abs_row_sums` and :meth:`abs_col_sums` are per column ``(n, m)``.
        """
        return False

    def abs_row_sums(self) -> np.ndarray:
        """``|A| 1``: the absolute row sums, ``(n_out, 1)`` (``(n_out, m)`` if column dependent).

        Used by SIRT's ray weights and PDHG's dual step sizes. The default is
        ``A 1`` of an ``(n_in, m)`` block of ones, which equals ``|A| 1`` for an
        operator with non-negative entries (every projector); an operator with
        negative entries overrides it.

        Returns
        -------
        ndarray, float32, (n_out, 1) or (n_out, m)
        """
        if self.column_dependent():
            raise NotImplementedError(f"{type(self).__name__} must give its per-column abs_row_sums")
        return self.row_sums()[:, None]

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|A|^T w``: absolute column sums over rows weighted by ``w`` (default all ones).

        Used by SIRT's pixel weights (``w`` a 0/1 ray mask in cross-validation) and
        PDHG's primal step sizes. The default is ``A^T w``, which equals
        ``|A|^T w`` for non-negative entries and ``w``; an operator with negative
        entries overrides it.

        Parameters
        ----------
        row_weights : ndarray, (n_out, 1) or (n_out, m), optional
            Non-negative row weights; None means ones (``col_sums``).

        Returns
        -------
        ndarray, float32, (n_in, 1) or (n_in, m)
        """
        if row_weights is None:
            if self.column_dependent():
                raise NotImplementedError(f"{type(self).__name__} must give its per-column abs_col_sums")
            return self.col_sums()[:, None]
        w = np.asarray(row_weights, DTYPE)
        return self.adjoint(np.ascontiguousarray(np.broadcast_to(w, (self.shape[0], w.shape[1]))))

    def fused_sirt_plan(self, b: np.ndarray, x0: np.ndarray | None, R: np.ndarray, C: np.ndarray,
                        relaxation: float, nonneg: bool, *, mix: np.ndarray | None = None,
                        scale: float = 1.0):
        """A fused SIRT of ``scale * (mix (x) A)`` (``mix`` None: of ``scale * A``), or None.

        An operator with a faster SIRT than the generic loop of
        :func:`chemtomo.reconstruct.sirt.sirt` returns a plan with ``step()``
        (one iteration, returning the residual norms per column) and ``x()``;
        wrappers (:class:`Scaled`, :class:`~.compose.ChannelMix`) pass the request on to
        their block with their scale and mix. The default has none.

        Parameters
        ----------
        b : ndarray, (n_out, S) float32 C-contiguous
            Data of the whole operator (the wrapper's).
        x0 : ndarray, (n_in, S), or None
            Start.
        R, C : ndarray
            SIRT's ray and pixel weights of the whole operator.
        relaxation : float
        nonneg : bool
        mix : ndarray, (m, k), optional
            Channel mix of an enclosing :class:`~.compose.ChannelMix`.
        scale : float
            Product of the enclosing :class:`Scaled` factors.

        Returns
        -------
        plan or None
        """
        return None

    def sirt_memory(self) -> tuple[int, int] | None:
        """``(fixed_bytes, bytes_per_column)`` of a fused SIRT on this operator, or None without one.

        What a chunked SIRT needs to cut a volume into chunks that fit a memory budget.
        """
        return None

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

    def column_dependent(self) -> bool:
        """As the operator's (see :meth:`Operator.column_dependent`)."""
        return self.op.column_dependent()


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

    def _abs(self) -> MatrixOperator:
        """``|A|`` (this operator itself when no entry is negative)."""
        data = self.A if isinstance(self.A, np.ndarray) else self.A.data
        return MatrixOperator(abs(self.A)) if np.any(data < 0) else self

    def abs_row_sums(self) -> np.ndarray:
        """``|A| 1`` ``(n_out, 1)``, exact also for negative entries."""
        return Operator.abs_row_sums(self._abs())

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|A|^T w`` ``(n_in, 1)`` or ``(n_in, m)``, exact also for negative entries."""
        return Operator.abs_col_sums(self._abs(), row_weights)


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

    def _forward_into(self, x, out):
        """``s A x``, into ``out`` when ``A`` can (the same bits as :meth:`_forward`)."""
        y = self.op._forward_into(x, out)
        y *= DTYPE(self.scale)
        return y

    def _adjoint_into(self, y, out):
        """``s A^T y``, into ``out`` when ``A`` can (the same bits as :meth:`_adjoint`)."""
        x = self.op._adjoint_into(y, out)
        x *= DTYPE(self.scale)
        return x

    def column_dependent(self) -> bool:
        """As the scaled operator's."""
        return self.op.column_dependent()

    def abs_row_sums(self) -> np.ndarray:
        """``|s| |A| 1``."""
        return abs(self.scale) * self.op.abs_row_sums()

    def abs_col_sums(self, row_weights: np.ndarray | None = None) -> np.ndarray:
        """``|s| |A|^T w``."""
        return abs(self.scale) * self.op.abs_col_sums(row_weights)

    def fused_sirt_plan(self, b, x0, R, C, relaxation, nonneg, *, mix=None, scale=1.0):
        """The scaled operator's plan, with this factor folded into ``scale``."""
        return self.op.fused_sirt_plan(b, x0, R, C, relaxation, nonneg, mix=mix, scale=scale * self.scale)

    def sirt_memory(self) -> tuple[int, int] | None:
        """As the scaled operator's (the scale costs no memory)."""
        return self.op.sirt_memory()


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
