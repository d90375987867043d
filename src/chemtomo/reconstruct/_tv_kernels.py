"""Compiled kernels of the TV operators (numba, multithreaded over image rows).

Layouts (C order, ``m`` columns innermost, as every solver's column blocks):
images ``(k, ny, nx, m)``, gradient fields ``(k, 2, ny, nx, m)`` (component 0 along
``y``, 1 along ``x``; forward differences, 0 on the last row / column). Each kernel is
one pass over its arrays where the numpy expressions they replace take several; the
innermost loop runs over the ``m`` contiguous columns without branches, so it
vectorises. Arithmetic is float32 (as the numpy version), except the norm sums of
:func:`norm_sums` (float64, for objective values).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath=False)


@njit(parallel=True, **_JIT)
def gradient(u, g):
    """``g = D u``."""
    k, ny, nx, m = u.shape
    zero = np.float32(0.0)
    for i in prange(ny):
        for c in range(k):
            for j in range(nx):
                if i < ny - 1:
                    for q in range(m):
                        g[c, 0, i, j, q] = u[c, i + 1, j, q] - u[c, i, j, q]
                else:
                    for q in range(m):
                        g[c, 0, i, j, q] = zero
                if j < nx - 1:
                    for q in range(m):
                        g[c, 1, i, j, q] = u[c, i, j + 1, q] - u[c, i, j, q]
                else:
                    for q in range(m):
                        g[c, 1, i, j, q] = zero


@njit(parallel=True, **_JIT)
def gradient_adjoint(g, out):
    """``out = D^T g`` (minus the divergence), summed in the order of the numpy version."""
    k, _, ny, nx, m = g.shape
    for i in prange(ny):
        for c in range(k):
            for j in range(nx):
                for q in range(m):
                    out[c, i, j, q] = 0.0
                if i < ny - 1:
                    for q in range(m):
                        out[c, i, j, q] -= g[c, 0, i, j, q]
                if i > 0:
                    for q in range(m):
                        out[c, i, j, q] += g[c, 0, i - 1, j, q]
                if j < nx - 1:
                    for q in range(m):
                        out[c, i, j, q] -= g[c, 1, i, j, q]
                if j > 0:
                    for q in range(m):
                        out[c, i, j, q] += g[c, 1, i, j - 1, q]


@njit(inline="always", **_JIT)
def project_pixel(p, i, j, radius, coupled, s):
    """Scale pixel ``(i, j)``'s vectors of ``p`` ``(k, 2, ny, nx, m)`` onto the balls of ``radius[q]`` (in place).

    The vector is the two components of one channel, or of every channel when
    ``coupled`` (vectorial TV); ``s`` is a float32 scratch row of ``m``. The one
    definition of the projection: :func:`project_balls` and the fused dual step of
    :mod:`._pdhg_kernels` both call it, so their bits agree.
    """
    k = p.shape[0]
    m = p.shape[4]
    if coupled:
        for q in range(m):
            s[q] = 0.0
        for c in range(k):
            for q in range(m):
                s[q] += p[c, 0, i, j, q] * p[c, 0, i, j, q] + p[c, 1, i, j, q] * p[c, 1, i, j, q]
        for q in range(m):
            n = np.sqrt(s[q])
            s[q] = radius[q] / n if n > radius[q] else 1.0
        for c in range(k):
            for q in range(m):
                p[c, 0, i, j, q] *= s[q]
                p[c, 1, i, j, q] *= s[q]
    else:
        for c in range(k):
            for q in range(m):
                n = np.sqrt(p[c, 0, i, j, q] * p[c, 0, i, j, q] + p[c, 1, i, j, q] * p[c, 1, i, j, q])
                f = radius[q] / n if n > radius[q] else np.float32(1.0)
                p[c, 0, i, j, q] *= f
                p[c, 1, i, j, q] *= f


@njit(parallel=True, **_JIT)
def project_balls(p, radius, coupled):
    """Scale each pixel's vector of ``p`` onto the ball of ``radius[q]`` (in place).

    The vector is the two components of one channel, or of every channel when
    ``coupled`` (vectorial TV).
    """
    _, _, ny, nx, m = p.shape
    for i in prange(ny):
        s = np.empty(m, np.float32)
        for j in range(nx):
            project_pixel(p, i, j, radius, coupled, s)


@njit(parallel=True, **_JIT)
def norm_sums(g, coupled):
    """``(ny, m)`` float64: per image row and column, the sum over pixels of the pointwise norms."""
    k, _, ny, nx, m = g.shape
    out = np.zeros((ny, m))
    for i in prange(ny):
        s = np.empty(m)
        for j in range(nx):
            if coupled:
                for q in range(m):
                    s[q] = 0.0
                for c in range(k):
                    for q in range(m):
                        a = np.float64(g[c, 0, i, j, q])
                        b = np.float64(g[c, 1, i, j, q])
                        s[q] += a * a + b * b
                for q in range(m):
                    out[i, q] += np.sqrt(s[q])
            else:
                for c in range(k):
                    for q in range(m):
                        a = np.float64(g[c, 0, i, j, q])
                        b = np.float64(g[c, 1, i, j, q])
                        out[i, q] += np.sqrt(a * a + b * b)
    return out
