"""Compiled plane sweep of :func:`chemtomo.projector.attenuated.transmissions` (numba).

The same arithmetic as :func:`chemtomo.projector.attenuated.path_integrals` (the
reference, in numpy): for one direction, planes across its dominant axis are
visited from the exit side; a voxel's optical depth is half a trapezoidal step on
its own plane plus the downstream plane's carry (optical depth plus the other
half step) bilinearly interpolated at the in-plane offset, weights under 1e-12
skipped, the four corners added in the same order. Here every tilt, detector and
field (one attenuation map per line) is swept in one call, the tilts in parallel,
and the transmissions ``exp(-scale * tau)`` are written straight into the layout
of :class:`~chemtomo.projector.attenuated.AttenuatedOperator`, averaged over the
detectors with their weights (or kept per detector).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def _sweep_one(M, f, order_rev, d1, d2, dt, scale, m, n, S, out, w, assign, carry, new):
    """Sweep field ``f`` of ``M`` (``(L, P, A, B)``) along its first axis; write ``w * T`` into ``out``.

    ``out`` is ``(n*n, S)`` (voxel ``z*n + x``, slice ``s``); ``m`` says which volume axis
    the sweep axis is (0: slice, 1: z, 2: x), hence how ``(p, a, b)`` map to ``(s, z, x)``.
    """
    P, A, B = M.shape[1], M.shape[2], M.shape[3]
    f1 = int(np.floor(d1))
    f2 = int(np.floor(d2))
    r1 = d1 - f1
    r2 = d2 - f2
    o1s = (f1, f1, f1 + 1, f1 + 1)
    o2s = (f2, f2 + 1, f2, f2 + 1)
    ws = ((1 - r1) * (1 - r2), (1 - r1) * r2, r1 * (1 - r2), r1 * r2)
    for a in range(A):
        for b in range(B):
            carry[a, b] = 0.0
    for q in range(P):
        p = P - 1 - q if order_rev else q
        for a in range(A):
            for b in range(B):
                acc = 0.0
                for c in range(4):
                    wc = ws[c]
                    if wc > 1e-12:
                        i1 = a + o1s[c]
                        i2 = b + o2s[c]
                        if 0 <= i1 < A and 0 <= i2 < B:
                            acc += wc * carry[i1, i2]
                        else:
                            acc += wc * 0.0
                half = 0.5 * dt * M[f, p, a, b]
                tau = half + acc
                new[a, b] = tau + half
                t32 = np.float32(np.exp(-(scale * tau)))
                if m == 0:
                    s, z, x = p, a, b
                elif m == 1:
                    s, z, x = a, p, b
                else:
                    s, z, x = a, b, p
                if assign:
                    out[z * n + x, s] = t32
                else:
                    out[z * n + x, s] += w * t32
        for a in range(A):
            for b in range(B):
                carry[a, b] = new[a, b]


@njit(parallel=True, **_JIT)
def sweep_transmissions(M0, M1, M2, axis, rev, d1, d2, dt, scale, weights, per_detector, out):
    """Transmissions of every field, tilt and detector.

    Parameters
    ----------
    M0, M1, M2 : float64 arrays
        The fields ``(L, S, n, n)`` with the sweep axis first: the volume itself
        (``M0``), ``moveaxis(., 1, 0)`` (``M1``: ``(L, n, S, n)``) and ``moveaxis(., 2, 0)``
        (``M2``: ``(L, n, S, n)``), per field.
    axis, rev : int64 / bool arrays, (n_tilts, n_det)
        Dominant axis of each direction; whether the sweep runs from the last plane.
    d1, d2, dt, scale : float64 arrays, (n_tilts, n_det)
        In-plane index offsets per plane (other axes in ascending order), the path
        length per plane (nm) and the factor on the optical depth.
    weights : float32 array, (n_det,)
    per_detector : bool
        Write each detector's transmissions (``out`` ``(L, n_det, n_tilts, n*n, S)``) or
        their weighted sum (``out`` ``(L, 1, n_tilts, n*n, S)``, zeroed here).
    out : float32 array
    """
    L = M0.shape[0]
    S, n = M0.shape[1], M0.shape[2]
    n_tilts, n_det = axis.shape
    PA = max(S, n)
    for t in prange(n_tilts):
        carry = np.empty((PA, PA))
        new = np.empty((PA, PA))
        if not per_detector:
            for f in range(L):
                out[f, 0, t] = 0.0
        for k in range(n_det):
            m = axis[t, k]
            M = M0 if m == 0 else (M1 if m == 1 else M2)
            kk = k if per_detector else 0
            for f in range(L):
                _sweep_one(M, f, rev[t, k], d1[t, k], d2[t, k], dt[t, k], scale[t, k], m, n, S, out[f, kk, t],
                           weights[k], per_detector, carry, new)
