"""The batched engine's fused SIRT: one pass over W^T per iteration, in the engine's layout.

:meth:`BatchedOperator.fused_sirt_plan <chemtomo.projector.batched.BatchedOperator.fused_sirt_plan>`
builds a :class:`FusedSirt` for ``s W`` and ``s (M (x) W)`` (HEBT's stacked operator,
never materialised: one back-projection and one forward projection per channel and
iteration, the mixing done per ray); the wrappers :class:`~.base.Scaled` and
:class:`~.compose.ChannelMix` pass ``s`` and ``M`` down to it through the operator
contract. Same maths as the generic loop of :func:`chemtomo.reconstruct.sirt.sirt`.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._simd import Lanes
from ._threading import _threads
from .base import DTYPE


class FusedSirt:
    """State of a fused SIRT in the engine's internal layout (made by :func:`engine_sirt_plan`).

    :meth:`step` runs one iteration on every column and returns the residual norms
    ``||b - A x_t||`` (before the update) per column of ``b``; :meth:`x` returns the
    current estimate in the contract layout (a new array).
    """

    def __init__(self, engine, n_tasks: int, step, unpack, x_int):
        self.engine, self.n_tasks = engine, int(n_tasks)
        self._step, self._unpack, self._x = step, unpack, x_int

    def step(self) -> np.ndarray:
        """One iteration on every column; the residual norms ``||b - A x_t||`` per column."""
        return np.sqrt(self._step())

    def x(self) -> np.ndarray:
        """The current estimate ``(n_in, S)`` in the contract layout (a new array)."""
        with _threads(self.engine.n_threads, self.n_tasks):
            return self._unpack(self._x)


def engine_sirt_plan(W, b: np.ndarray, x0: np.ndarray | None, R: np.ndarray, C: np.ndarray,
                     relaxation: float, nonneg: bool, mix: np.ndarray | None = None,
                     scale: float = 1.0) -> FusedSirt | None:
    """A fused SIRT of ``scale * W`` or ``scale * (mix (x) W)`` for a batched ``W``, or None.

    ``R`` ``(n_out, 1)`` and ``C`` ``(n_in, 1)`` are the SIRT weights of the whole
    operator; with a ``mix`` the pixel weights must be a per-channel multiple of one
    pixel map (true for :func:`~chemtomo.reconstruct.sirt.sirt_weights`), otherwise
    None is returned and the caller uses the generic path.

    Parameters
    ----------
    W : BatchedOperator
    b : ndarray, (n_out, S) float32 C-contiguous
    x0 : ndarray (n_in, S) or None
    R, C : ndarray
    relaxation : float
    nonneg : bool
    mix : ndarray (m, k), optional
    scale : float

    Returns
    -------
    FusedSirt or None
    """
    n_rays, n_vox = W.shape
    R = np.asarray(R, DTYPE).reshape(-1)
    C = np.asarray(C, DTYPE).reshape(-1)
    S = b.shape[1]
    if mix is None and scale != 1.0:
        mix = np.ones((1, 1))  # s W = ChannelMix(W, [[s]]): the mixed path carries the scale
    if mix is None:
        kb = W._block_width(S)
        nblk = -(-S // kb)
        kt = Lanes(kb)
        C_slots = W._slot_sums(C.astype(np.float64) * relaxation)
        with _threads(W.n_threads, nblk):
            b_int = np.empty((nblk, n_rays, kb), DTYPE)
            K.pack_plain(b, W._ray_map, b_int)
            x_int = np.zeros((nblk, W.n_slots, kb), DTYPE)
            y_int = np.zeros((nblk, n_rays, kb), DTYPE)
            if x0 is not None:
                K.pack_plain(x0, W.slots, x_int)
                K.forward(W.mat, x_int, y_int, W._gt, kt)
        r_int = np.empty_like(y_int)
        norms = np.empty((nblk, kb), np.float64)

        def step():
            with _threads(W.n_threads, nblk):
                K.sirt_iteration(W.mat, C_slots, R, b_int, r_int, x_int, y_int, norms,
                                 bool(nonneg), W._gt, kt)
            return norms.reshape(-1)[:S].copy()

        def unpack(xi):
            out = np.empty((n_vox, S), DTYPE)
            K.unpack_plain(xi, W.slots, out)
            return out

        return FusedSirt(W, nblk, step, unpack, x_int)

    # ChannelMix(W, M): m data blocks, k channels
    m, k = mix.shape
    if b.shape[0] != m * n_rays or C.size != k * n_vox:
        return None
    C2 = C.reshape(k, n_vox).astype(np.float64)
    ref = C2[int(np.argmax(np.abs(C2).sum(axis=1)))]
    cscale = np.zeros(k)
    nz = np.abs(ref) > 0
    for c in range(k):
        if np.any(nz):
            cscale[c] = float(np.median(C2[c, nz] / ref[nz]))
        if not np.allclose(C2[c], cscale[c] * ref, rtol=1e-5, atol=0.0):
            return None
    Q = k * S
    kb = W._block_width(Q)
    nblk = -(-Q // kb)
    kt = Lanes(kb)
    q = np.arange(Q)
    col_row0 = (q % k) * n_vox        # internal column q = t*k + c: a slice's channels adjacent
    col_src = q // k
    C_slots = W._slot_sums(ref * relaxation)
    Mw = (mix * scale).astype(DTYPE)
    mrow, mc = np.nonzero(Mw)              # the mix's nonzeros by row (HEBT: 2k of (k+1) k)
    mptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(mrow, minlength=m), out=mptr[1:])
    mcol, mval = mc.astype(np.int64), np.ascontiguousarray(Mw[mrow, mc])
    Rm = R.reshape(m, n_rays)
    bm = b.reshape(m, n_rays, S)
    lane_t = np.full(nblk * kb, -1, np.int64)
    lane_c = np.full(nblk * kb, -1, np.int64)
    lane_t[:Q], lane_c[:Q] = q // k, q % k
    rchunk = 32
    n_rchunks = -(-n_rays // rchunk)
    # the ray pass is worth a second thread only when it is large (a wake-up costs ~10 us,
    # a scheduler quantum on a busy machine)
    ray_tasks = n_rchunks if n_rays * Q >= 1 << 18 else 1
    n_tasks = max(nblk, ray_tasks)
    with _threads(W.n_threads, nblk):
        x_int = np.zeros((nblk, W.n_slots, kb), DTYPE)
        y_int = np.zeros((nblk, n_rays, kb), DTYPE)
        if x0 is not None:
            K.pack_mapped(x0, W.slots, col_row0, col_src, x_int)
            K.forward(W.mat, x_int, y_int, W._gt, kt)
    r_int = np.zeros_like(y_int)  # padded lanes stay 0
    norms_part = np.empty((n_rchunks, S), np.float64)
    cs32 = cscale.astype(DTYPE)

    def step():
        with _threads(W.n_threads, ray_tasks):
            K.mix_ray_pass(bm, y_int, Rm, mptr, mcol, mval, lane_t, lane_c, cs32, r_int, norms_part, rchunk)
        with _threads(W.n_threads, nblk):
            K.sirt_pixel_pass(W.mat, C_slots, r_int, x_int, y_int, bool(nonneg), W._gt, kt)
        return norms_part.sum(axis=0)

    def unpack(xi):
        out = np.empty((k * n_vox, S), DTYPE)
        K.unpack_mapped(xi, W.slots, col_row0, col_src, out)
        return out

    return FusedSirt(W, n_tasks, step, unpack, x_int)
