"""Compiled element-wise passes of PDHG (numba, one thread).

Each kernel does in one pass over its arrays what :func:`~chemtomo.reconstruct.pdhg.pdhg`
did in several numpy expressions, in the same float32 operations and the same order
(``fastmath`` off, float32 constants), so the iterates are bit for bit those of the numpy
passes they replace. Arrays are ``(n, m)`` C-contiguous; an argument documented as
``(n, 1) or (n, m)`` is broadcast along its columns.

One thread, not numba's ``parallel``: these passes are memory-bound and short (one
multiply-add or a square root per element), and a parallel launch costs more than the
pass on a shared machine (measured at a load of ~15 on 2 cores: 7.7 ms of CPU per
launch against 0.04 ms for the serial pass of 37 636 elements, and 6.6 ms against 2.6 ms
at 9.6 M elements; docs/performance.md, "Fused-TV: one solve faster").
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._tv_kernels import project_pixel

_JIT = dict(cache=True, nogil=True, fastmath=False)


@njit(**_JIT)
def dual_point(kxbar, sig, y, out):
    """``out = kxbar * sig + y`` (``sig`` ``(n, 1)`` or ``(n, m)``); ``out`` may be ``kxbar``."""
    n, m = kxbar.shape
    wide = sig.shape[1] > 1
    for i in range(n):
        for q in range(m):
            s = sig[i, q] if wide else sig[i, 0]
            out[i, q] = kxbar[i, q] * s + y[i, q]


@njit(**_JIT)
def dual_data(kxbar, sig, y, d, b, w, mask, n_kl, out):
    """The data term's dual step, ``prox_{S F_d^*}(y + S K xbar)``, of a row-scaled KL / weighted-L2 pair.

    ``F_d(v) = F(v / d)`` with ``F`` the Poisson KL divergence of counts ``b`` (no
    background) on rows ``< n_kl`` and ``1/2 w (v - b)^2`` on the others; as
    ``RowScaled(Separable([KL, WeightedL2]), d)``: ``p = kxbar S + y``, ``p' = d p``,
    ``s' = S d d``, then ``(p' + 1 - sqrt((p' - 1)^2 + 4 s' b)) / 2`` times the row
    ``mask`` (KL rows) or ``w (p' - s' b) / (w + s')`` (``w`` already masked), divided
    by ``d``. ``sig`` is ``(n, 1)`` or ``(n, m)``; ``d``, ``b``, ``w``, ``mask`` are
    ``(n, m)`` (``w`` used on the L2 rows, ``mask`` on the KL rows only). ``out`` may be ``kxbar``.
    """
    n, m = kxbar.shape
    wide = sig.shape[1] > 1
    half = np.float32(0.5)
    one = np.float32(1.0)
    four = np.float32(4.0)
    for i in range(n):
        for q in range(m):
            s = sig[i, q] if wide else sig[i, 0]
            p = kxbar[i, q] * s + y[i, q]
            dd = d[i, q]
            pp = dd * p
            ss = s * dd * dd
            if i < n_kl:
                t = pp - one
                v = half * (pp + one - np.sqrt(t * t + four * ss * b[i, q]))
                v = v * mask[i, q]
            else:
                ww = w[i, q]
                v = ww * (pp - ss * b[i, q]) / (ww + ss)
            out[i, q] = v / dd


@njit(**_JIT)
def primal_step(x, kty, tau, nonneg, out):
    """``out = max(0, x - tau * kty)`` (without the max when not ``nonneg``); ``out`` may be ``kty``."""
    n, m = x.shape
    wide = tau.shape[1] > 1
    zero = np.float32(0.0)
    for i in range(n):
        for q in range(m):
            t = tau[i, q] if wide else tau[i, 0]
            v = x[i, q] - kty[i, q] * t
            if nonneg:
                v = max(v, zero)
            out[i, q] = v


@njit(**_JIT)
def primal_step2(x, a, b, tau, nonneg, out):
    """``out = max(0, x - tau * (a + b))``: :func:`primal_step` of the sum of two adjoints; ``out`` may be ``a``."""
    n, m = x.shape
    wide = tau.shape[1] > 1
    zero = np.float32(0.0)
    for i in range(n):
        for q in range(m):
            t = tau[i, q] if wide else tau[i, 0]
            v = x[i, q] - (a[i, q] + b[i, q]) * t
            if nonneg:
                v = max(v, zero)
            out[i, q] = v


@njit(**_JIT)
def extrapolate(kx_old, kx_new):
    """``kx_old <- -((kx_old - kx_new) - kx_new)``: ``K xbar = 2 K x_new - K x`` written over ``K x``."""
    n, m = kx_old.shape
    for i in range(n):
        for q in range(m):
            v = kx_old[i, q] - kx_new[i, q]
            v = v - kx_new[i, q]
            kx_old[i, q] = -v


@njit(parallel=True, **_JIT)
def dual_tv(kxbar, sig, y, radius, coupled, out):
    """``out = kxbar * sig + y`` projected pixel by pixel onto the balls of ``radius[q]``: TV's dual step.

    Fields ``(k, 2, ny, nx, m)`` (``sig`` with last axis 1 or ``m``); the arithmetic of
    :func:`dual_point` followed by :func:`._tv_kernels.project_balls`, in one pass over the
    image rows (in parallel, as ``project_balls``). ``out`` may be ``kxbar``.
    """
    k, _, ny, nx, m = kxbar.shape
    wide = sig.shape[4] > 1
    for i in prange(ny):
        s = np.empty(m, np.float32)
        for j in range(nx):
            for c in range(k):
                for a in range(2):
                    for q in range(m):
                        g = sig[c, a, i, j, q] if wide else sig[c, a, i, j, 0]
                        out[c, a, i, j, q] = kxbar[c, a, i, j, q] * g + y[c, a, i, j, q]
            project_pixel(out, i, j, radius, coupled, s)


# ----------------------------------------------------------------------------- TV's adjoint in the primal step
@njit(parallel=True, **_JIT)
def primal_step_tv(x, a, ytv, scale, tau, nonneg, out):
    """``out = max(0, x - tau (a + c D^T ytv))``: :func:`primal_step2` with TV's adjoint formed on the fly.

    ``x``, ``a``, ``out`` ``(k, ny, nx, m)``, ``ytv`` ``(k, 2, ny, nx, m)``, ``tau`` with last
    axis 1 or ``m``, ``scale`` the float32 ``c``; ``D^T ytv`` summed in
    :func:`._tv_kernels.gradient_adjoint`'s order, then times ``c`` (``Scaled``). ``out`` may be ``a``.
    """
    k, ny, nx, m = x.shape
    wide = tau.shape[3] > 1
    zero = np.float32(0.0)
    for i in prange(ny):
        s = np.empty(m, np.float32)
        for c in range(k):
            for j in range(nx):
                for q in range(m):
                    s[q] = 0.0
                if i < ny - 1:
                    for q in range(m):
                        s[q] -= ytv[c, 0, i, j, q]
                if i > 0:
                    for q in range(m):
                        s[q] += ytv[c, 0, i - 1, j, q]
                if j < nx - 1:
                    for q in range(m):
                        s[q] -= ytv[c, 1, i, j, q]
                if j > 0:
                    for q in range(m):
                        s[q] += ytv[c, 1, i, j - 1, q]
                for q in range(m):
                    t = tau[c, i, j, q] if wide else tau[c, i, j, 0]
                    v = x[c, i, j, q] - (a[c, i, j, q] + s[q] * scale) * t
                    if nonneg:
                        v = max(v, zero)
                    out[c, i, j, q] = v
