"""PDHG's TV term run from the primal iterates instead of its gradient fields (``pdhg(fuse_tv=True)``).

A TV term ``F(c D x)`` (``Scaled(Gradient2D, c)`` with :class:`~.functionals.GroupL21`) held
the generic way costs six passes over gradient-sized arrays per iteration (``D x_new``, its
scaling, the extrapolation ``K xbar = 2 K x_new - K x``, the dual step, ``D^T y``, its
scaling) and two gradient fields of memory. :class:`TVTerm` forms ``K xbar`` inside the dual
step from ``x`` and the previous iterate, and ``c D^T y`` inside the primal step
(:func:`._pdhg_kernels.dual_tv_extrap`, :func:`._pdhg_kernels.primal_step_tv`), in the float32
operations and order of the passes they replace: the same iterates bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..projector.base import DTYPE, Scaled
from . import _pdhg_kernels as _pk
from .functionals import GroupL21, Term, _compiled_ok
from .tv import Gradient2D


class TVTerm:
    """The last term ``F(c D x)`` (TV: ``Scaled(Gradient2D, c)``, :class:`GroupL21`) run without ``K x``.

    The dual step forms ``c D xbar`` from ``x`` and the previous iterate on the fly
    (:func:`._pdhg_kernels.dual_tv_extrap`), the primal step ``c D^T y`` from the dual field
    (:func:`._pdhg_kernels.primal_step_tv`), in the arithmetic of the passes they replace:
    the same iterates bit for bit, without the gradient fields ``c D x`` and ``K xbar``
    (twice the unknown each) and their passes. Iterations that measure residuals form
    ``K xbar`` and ``K x_new`` explicitly (:meth:`kxbar`).
    """

    def __init__(self, term: Term):
        self.op, self.f = term.op, term.f
        grad = term.op.op
        self.k, (self.ny, self.nx) = grad.k, grad.image_shape
        self.scale = DTYPE(term.op.scale)

    @staticmethod
    def applies(terms: list[Term]) -> bool:
        """Whether the last of ``terms`` (two or more) is a plain TV term this class runs."""
        if len(terms) < 2:
            return False
        t = terms[-1]
        return (type(t.op) is Scaled and type(t.op.op) is Gradient2D and type(t.f) is GroupL21
                and t.f.n_channels == t.op.op.k and tuple(t.f.image_shape) == t.op.op.image_shape)

    def rows(self, a: np.ndarray) -> np.ndarray:
        """``(k ny nx, m)`` as ``(k, ny, nx m)``: image rows with their columns."""
        return a.reshape(self.k, self.ny, self.nx * a.shape[1])

    def field_rows(self, a: np.ndarray) -> np.ndarray:
        """``(2 k ny nx, w)`` as ``(k, 2, ny, nx w)`` (``w = 1``: ``(k, 2, ny, nx)``)."""
        return a.reshape(self.k, 2, self.ny, self.nx * a.shape[1])

    def kxbar(self, x: np.ndarray, x_prev: np.ndarray | None, buf: np.ndarray | None) -> np.ndarray:
        """``K xbar`` as the generic loop holds it: ``K x`` at the first iteration, else ``2 K x - K x_prev``."""
        kx = self.op._forward(x)
        if x_prev is None:
            return kx
        ko = self.op._forward_into(x_prev, buf)
        _pk.extrapolate(ko, kx)
        return ko

    def dual_step(self, y, x, x_prev, sig) -> np.ndarray | None:
        """``prox(y + S K xbar)`` written into ``y`` in one pass, or None when the arrays do not suit the kernel."""
        first = x_prev is None
        xp = x if first else x_prev
        m = y.shape[1]
        if not (_compiled_ok(y, x, xp, sig) and sig.shape[1] in (1, m)):
            return None
        r = np.ascontiguousarray(np.broadcast_to(np.asarray(self.f.lam, DTYPE), (m,)))
        _pk.dual_tv_extrap(self.rows(x), self.rows(xp), self.scale, first, self.field_rows(sig), self.field_rows(y),
                           r, bool(self.f.coupled), self.field_rows(y))
        return y

    def primal_step(self, x, kty, y, tau, nonneg) -> bool:
        """``kty <- max(0, x - T (kty + c D^T y))`` in one pass; False when the arrays do not suit the kernel."""
        if not (_compiled_ok(x, kty, y, tau) and tau.shape == x.shape):
            return False
        _pk.primal_step_tv(self.rows(x), self.rows(kty), self.field_rows(y), self.scale, self.rows(tau),
                           x.shape[1], nonneg, self.rows(kty))
        return True
