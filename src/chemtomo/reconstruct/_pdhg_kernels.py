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


# ----------------------------------------------------------------------------- the TV term from the primal iterates
# PDHG's TV term ``F(c D x)`` (``Scaled(Gradient2D, c)`` with ``GroupL21``) run from the primal
# iterates instead of its gradient fields: the dual step forms ``K xbar = 2 c D x - c D xp`` per
# element, the primal step ``c D^T y``, in the arithmetic of the passes they replace
# (``gradient``, ``Scaled``'s product, ``extrapolate``, ``dual_tv``; ``gradient_adjoint``, the
# product, ``primal_step2``), so the iterates are the same bits. Layout: image rows flattened
# with their ``m`` columns, images ``(k, ny, nx m)``, fields ``(k, 2, ny, nx m)``; each row is
# done in long loops over its ``nx m`` elements (one row function per step).


@njit(inline="always", **_JIT)
def _dual_row(i, x, xp, scale, first, edge, sig, y, rrow, m, coupled, out, kb, ko, srow):
    """TV's dual step on image row ``i`` (:func:`dual_tv_extrap`); ``kb``, ``ko``, ``srow`` scratch rows of ``nx m``."""
    k, _, ny, L = y.shape
    nx = L // m
    wide = sig.shape[3] == L
    for c in range(k):
        for a in range(2):
            # K xbar of the row's differences along axis a (a = 0: to row i + 1; a = 1: to column j + 1)
            if a == 0:
                if i == ny - 1:
                    for p in range(L):
                        kb[p] = edge
                else:
                    for p in range(L):
                        kb[p] = (x[c, i + 1, p] - x[c, i, p]) * scale
                    if not first:
                        for p in range(L):
                            ko[p] = (xp[c, i + 1, p] - xp[c, i, p]) * scale
                        for p in range(L):
                            kb[p] = -((ko[p] - kb[p]) - kb[p])
            else:
                for p in range(L - m):
                    kb[p] = (x[c, i, p + m] - x[c, i, p]) * scale
                if not first:
                    for p in range(L - m):
                        ko[p] = (xp[c, i, p + m] - xp[c, i, p]) * scale
                    for p in range(L - m):
                        kb[p] = -((ko[p] - kb[p]) - kb[p])
                for p in range(L - m, L):
                    kb[p] = edge
            if wide:
                for p in range(L):
                    out[c, a, i, p] = kb[p] * sig[c, a, i, p] + y[c, a, i, p]
            else:
                for j in range(nx):
                    g = sig[c, a, i, j]
                    for q in range(m):
                        srow[j * m + q] = g
                for p in range(L):
                    out[c, a, i, p] = kb[p] * srow[p] + y[c, a, i, p]
    # the projection onto the balls, pixel by pixel as project_pixel (srow: the squared norms, then factors)
    if coupled:
        for p in range(L):
            srow[p] = 0.0
        for c in range(k):
            for p in range(L):
                srow[p] += out[c, 0, i, p] * out[c, 0, i, p] + out[c, 1, i, p] * out[c, 1, i, p]
        for p in range(L):
            n = np.sqrt(srow[p])
            srow[p] = rrow[p] / n if n > rrow[p] else 1.0
        for c in range(k):
            for p in range(L):
                out[c, 0, i, p] *= srow[p]
                out[c, 1, i, p] *= srow[p]
    else:
        for c in range(k):
            for p in range(L):
                n = np.sqrt(out[c, 0, i, p] * out[c, 0, i, p] + out[c, 1, i, p] * out[c, 1, i, p])
                f = rrow[p] / n if n > rrow[p] else np.float32(1.0)
                out[c, 0, i, p] *= f
                out[c, 1, i, p] *= f


@njit(inline="always", **_JIT)
def _primal_row(i, x, a, ytv, scale, tau, m, nonneg, out, s):
    """The primal step on image row ``i`` (:func:`primal_step_tv`); ``s`` a scratch row of ``nx m``."""
    k, ny, L = x.shape
    zero = np.float32(0.0)
    for c in range(k):
        for p in range(L):
            s[p] = 0.0
        if i < ny - 1:
            for p in range(L):
                s[p] -= ytv[c, 0, i, p]
        if i > 0:
            for p in range(L):
                s[p] += ytv[c, 0, i - 1, p]
        for p in range(L - m):
            s[p] -= ytv[c, 1, i, p]
        for p in range(m, L):
            s[p] += ytv[c, 1, i, p - m]
        for p in range(L):
            v = x[c, i, p] - (a[c, i, p] + s[p] * scale) * tau[c, i, p]
            if nonneg:
                v = max(v, zero)
            out[c, i, p] = v


@njit(**_JIT)
def _radius_row(radius, L):
    """``radius[p % m]`` for every element ``p`` of a flattened image row."""
    m = radius.shape[0]
    r = np.empty(L, np.float32)
    for p in range(L):
        r[p] = radius[p % m]
    return r


@njit(parallel=True, **_JIT)
def dual_tv_extrap(x, xp, scale, first, sig, y, radius, coupled, out):
    """TV's dual step from the primal iterates: :func:`dual_tv` of ``K xbar = 2 c D x - c D xp``.

    ``x``, ``xp`` ``(k, ny, nx m)`` (the current and the previous iterate; ``first``: the
    first iteration, where ``K xbar = c D x``), ``scale`` the float32 ``c``, ``radius``
    ``(m,)``; fields ``y``, ``out`` ``(k, 2, ny, nx m)``, ``sig`` ``(k, 2, ny, nx m)`` or
    ``(k, 2, ny, nx)`` (one step per difference). Every element of ``K xbar`` is formed as
    :func:`._tv_kernels.gradient`, ``Scaled``'s product and :func:`extrapolate` would
    (``-((c D xp - c D x) - c D x)``, or ``c D x`` at the first iteration), then
    ``y + S K xbar`` is projected onto the balls as :func:`._tv_kernels.project_pixel` does:
    the same bits as those passes. In parallel over image rows. ``out`` may be ``y``.
    """
    k, _, ny, L = y.shape
    m = radius.shape[0]
    zero = np.float32(0.0) * scale
    edge = zero if first else -((zero - zero) - zero)  # K xbar of a difference leaving the grid
    rrow = _radius_row(radius, L)
    for i in prange(ny):
        kb = np.empty(L, np.float32)
        ko = np.empty(L, np.float32)
        srow = np.empty(L, np.float32)
        _dual_row(i, x, xp, scale, first, edge, sig, y, rrow, m, coupled, out, kb, ko, srow)


@njit(parallel=True, **_JIT)
def primal_step_tv(x, a, ytv, scale, tau, m, nonneg, out):
    """``out = max(0, x - tau (a + c D^T ytv))``: :func:`primal_step2` with TV's adjoint formed on the fly.

    ``x``, ``a``, ``tau``, ``out`` ``(k, ny, nx m)`` (``tau`` per column), ``ytv``
    ``(k, 2, ny, nx m)``, ``scale`` the float32 ``c``, ``m`` the columns; ``D^T ytv`` summed
    per element in :func:`._tv_kernels.gradient_adjoint`'s order, then times ``c``
    (``Scaled``): the same bits as those passes. In parallel over image rows. ``out`` may be ``a``.
    """
    k, ny, L = x.shape
    for i in prange(ny):
        s = np.empty(L, np.float32)
        _primal_row(i, x, a, ytv, scale, tau, m, nonneg, out, s)
