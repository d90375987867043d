"""The batched engine: one system matrix applied to every slice and channel at once.

A volume is hundreds of slices times several channels, all with one projection
geometry. :class:`BatchedOperator` holds W once (float32 weights, int32 ray
indices) and applies it to blocks of columns (pixels x slice-channels), forward
and adjoint, multithreaded over column blocks. SIRT runs fused: one pass over W^T
per iteration back-projects the weighted residual, updates and clips a group of
pixels, and scatters their new forward projection (:func:`fused_sirt_plan`, used
automatically by :func:`chemtomo.reconstruct.sirt`).

Layout and why (measured on a 2-core AMD EPYC, see ``docs/performance.md``):

- W^T is stored explicitly, rows = pixels, so the pixel-major pass reads the small
  ray buffers (``n_rays x kb``) at random and the large pixel arrays in order.
- Pixels are grouped by 2 x 2 (``group=4``): a group's entries are the union of its
  pixels' rays with 4 weights each, so every ray row is loaded and stored once per
  group instead of once per pixel (cache traffic 0.35x for the strip model, at the
  price of 1.4x multiply-adds on zero weights). Groups follow a Morton order.
- Columns are cut into blocks of ``kb`` (8-64) lanes held in SIMD registers
  (:mod:`chemtomo.projector._simd`); each block is one C-contiguous slab
  ``(n_rows, kb)`` and one task for a thread, so threads never write the same
  memory and need no reduction.

Results are bitwise independent of the block width, the pixel grouping, the
number of threads and the chunking of the columns (see :mod:`._kernels`).

Memory (float32): the matrix (:attr:`BatchedOperator.matrix_bytes`), plus per
column for a fused SIRT iteration ``4 * (n_vox + 3 * n_rays)`` bytes (x, and the
data, projection and residual buffers), plus the caller's data and result in the
contract layout (``4 * (n_vox + n_rays)``): see :meth:`BatchedOperator.sirt_bytes`.
:func:`iter_slice_chunks` and :func:`sirt_chunked` keep a volume of any size
within a budget, with the same result.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._simd import Lanes
from .base import DTYPE, ChannelMix, Operator, Scaled

BLOCK_WIDTHS = (8, 16, 32, 64)
GROUPS = (1, 2, 4)
# relative cost per column of a block width (measured, strip model, 2 cores), per SIMD width:
# narrower blocks spend more time on index loads and loop overhead per flop; with AVX2 a
# 64-lane block's accumulators spill its 16 registers (workload B's geometry, 1300 columns,
# 10 SIRT iterations, AMD EPYC, pairs of pixels: 2.44 s at 32 lanes, 3.84 s at 64, 4.08 s at 16).
_BLOCK_COST_AVX512 = {8: 2.6, 16: 1.5, 32: 1.08, 64: 1.0}
_BLOCK_COST_AVX2 = {8: 2.6, 16: 1.67, 32: 1.0, 64: 1.57}


@functools.lru_cache(maxsize=1)
def _has_avx512() -> bool:
    """Whether this CPU has AVX-512 (asked of LLVM once per process)."""
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - feature query unavailable
        return True


_BLOCK_COST = _BLOCK_COST_AVX512 if _has_avx512() else _BLOCK_COST_AVX2


def default_group() -> int:
    """The pixel grouping this CPU runs fastest: 4 (2 x 2) with AVX-512, else 2.

    A 2 x 2 group keeps four accumulators of a block of 64 lanes in registers: 16 of the
    32 registers of AVX-512, but 32 ymm registers with AVX2, which has 16, so they
    spill. Measured on workload B's geometry (256^2, 15 tilts, 256 columns, 20 SIRT
    iterations, 2 cores): AVX-512 (profile of bench/profile_engine.py) 2 x 2 fastest;
    AVX2 (AMD EPYC) 1.00 s for pairs against 1.34 s for 2 x 2 and 1.19 s for single pixels
    (and, over 1300 columns, 2.44 s for pairs in 32-lane blocks against 3.69 s for 2 x 2 in
    64-lane blocks: :data:`_BLOCK_COST`).
    The grouping changes the summation order, hence the last bits of a result: a run's
    driver fixes it for all its chunks (``pipeline.distributed.ChunkSpec.group``).
    """
    return 4 if _has_avx512() else 2


def _check_group(group: int) -> int:
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS} pixels, got {group!r}")
    return int(group)


def _check_threads(n_threads) -> int | None:
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or int(n_threads) != n_threads or not 1 <= n_threads <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"n_threads must be an integer in [1, {numba.config.NUMBA_NUM_THREADS}] or None, got {n_threads!r}")
    return int(n_threads)


@contextlib.contextmanager
def _threads(n: int | None, n_tasks: int | None = None):
    """Run numba kernels on ``n`` threads (default: numba's current setting), never more
    than ``n_tasks`` (idle threads still cost a wake-up per parallel region, and on a
    busy machine a scheduler quantum); only the calling thread's setting changes."""
    old = numba.get_num_threads()
    want = old if n is None else n
    if n_tasks is not None:
        want = max(1, min(want, int(n_tasks)))
    if want == old:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _morton(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Interleave the bits of ``a`` (even bits) and ``b`` (odd bits)."""
    code = np.zeros(a.shape, np.int64)
    for bit in range(31):
        code |= ((a >> bit) & 1) << (2 * bit) | ((b >> bit) & 1) << (2 * bit + 1)
    return code


def slot_order(grid_shape: tuple[int, int] | None, n_pixels: int, group: int) -> np.ndarray:
    """Pixel index of every slot (-1 for a dummy slot), ``group`` slots per group.

    With ``grid_shape = (n_z, n_x)`` (row-major pixels), groups are 1 x 1, 2 x 1
    (vertical pairs) or 2 x 2 pixel blocks in Morton order; without it, ``group``
    consecutive pixels in index order.
    """
    group = _check_group(group)
    if grid_shape is None:
        n_groups = -(-n_pixels // group)
        slots = np.full(n_groups * group, -1, np.int64)
        slots[:n_pixels] = np.arange(n_pixels)
        return slots
    nz, nx = (int(v) for v in grid_shape)
    if nz * nx != n_pixels:
        raise ValueError(f"grid_shape {grid_shape} does not hold {n_pixels} pixels")
    gh, gw = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[group]
    ngz, ngx = -(-nz // gh), -(-nx // gw)
    gz, gx = np.divmod(np.arange(ngz * ngx), ngx)
    order = np.argsort(_morton(gz, gx), kind="stable")
    gz, gx = gz[order], gx[order]
    slots = np.full((ngz * ngx, group), -1, np.int64)
    for u in range(group):
        dz, dx = divmod(u, gw)
        z, x = gz * gh + dz, gx * gw + dx
        ok = (z < nz) & (x < nx)
        slots[ok, u] = z[ok] * nx + x[ok]
    return slots.ravel()


def choose_block_width(n_columns: int, n_threads: int) -> int:
    """The block width (lanes) that minimises padded, load-balanced work for ``n_columns``."""
    best, best_cost = BLOCK_WIDTHS[-1], np.inf
    for kb in BLOCK_WIDTHS:
        n_blk = -(-n_columns // kb)
        cost = -(-n_blk // n_threads) * kb * _BLOCK_COST[kb]
        if cost < best_cost - 1e-9 or (abs(cost - best_cost) < 1e-9 and kb > best):
            best, best_cost = kb, cost
    return best


class BatchedOperator(Operator):
    """W held once as a grouped CSR of W^T (float32), applied to blocks of columns.

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (n_rays, n_vox)
        The system matrix W (e.g. :func:`chemtomo.projector.astra_matrix`).
    grid_shape : (int, int), optional
        ``(n_z, n_x)`` of the row-major pixel grid, for cache-friendly 2-D pixel
        groups; without it pixels are grouped in index order (same results).
    group : {1, 2, 4}, optional
        Pixels per group (4 = 2 x 2 blocks, 2 = vertical pairs, 1 = plain CSR); default
        :func:`default_group` (the fastest for this CPU).
    min_shared : int, optional
        A ray stays a shared entry of a group when at least this many of the
        group's pixels meet it; otherwise its weights are stored per pixel
        (default 1: all shared; measured fastest on the strip model, where
        per-pixel entries save multiply-adds but cost more cache traffic).
    block_width : {8, 16, 32, 64}, optional
        Columns per block; default chosen per call from the number of columns.
    n_threads : int, optional
        Threads for this operator's kernels (default: numba's current setting).

    Notes
    -----
    The kernels only read the matrix; an instance may be shared by threads.
    Inputs must be finite (a zero weight times an infinity is NaN).
    """

    def __init__(self, matrix, grid_shape: tuple[int, int] | None = None, *, group: int | None = None,
                 min_shared: int | None = None, block_width: int | None = None,
                 n_threads: int | None = None):
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}")
        self.group = _check_group(default_group() if group is None else group)
        self._gt = Lanes(self.group)
        if block_width is not None and block_width not in BLOCK_WIDTHS:
            raise ValueError(f"block_width must be one of {BLOCK_WIDTHS} or None, got {block_width!r}")
        self.block_width = block_width
        self.n_threads = _check_threads(n_threads)
        n_rays, n_vox = (int(s) for s in matrix.shape)
        if n_rays >= 2**31 or n_vox >= 2**31:
            raise ValueError(f"matrix shape {matrix.shape} exceeds int32 indices")
        self.shape = (n_rays, n_vox)
        self.grid_shape = None if grid_shape is None else (int(grid_shape[0]), int(grid_shape[1]))
        wt = sp.csc_matrix(matrix, dtype=DTYPE)  # column j of W = row j of W^T
        wt.eliminate_zeros()
        wt.sort_indices()
        # sums in float64 from the stored float32 weights
        self._row_sums = np.bincount(wt.indices, weights=wt.data.astype(np.float64), minlength=n_rays)
        self._col_sums = np.add.reduceat(
            np.append(wt.data.astype(np.float64), 0.0), np.minimum(wt.indptr[:-1], wt.nnz)
        ) * (np.diff(wt.indptr) > 0)
        self.nnz = int(wt.nnz)
        self.slots = slot_order(self.grid_shape, n_vox, self.group)
        if min_shared is None:
            min_shared = 1
        if not 1 <= int(min_shared) <= self.group:
            raise ValueError(f"min_shared must lie in [1, group={self.group}], got {min_shared!r}")
        self.min_shared = int(min_shared)
        with _threads(self.n_threads):
            grouped = K.group_rows(
                wt.indptr.astype(np.int64), wt.indices.astype(np.int32), wt.data, self.slots, self.group)
        self.mat = K.split_shared(*grouped, self.min_shared)
        self.n_slots = int(self.slots.size)
        self._ray_map = np.arange(n_rays, dtype=np.int64)

    # ------------------------------------------------------------------ facts
    @property
    def matrix_bytes(self) -> int:
        """Bytes of the stored matrix (grouped W^T and the slot order)."""
        return int(sum(a.nbytes for a in self.mat) + self.slots.nbytes)

    @property
    def n_entries(self) -> tuple[int, int]:
        """``(shared, single)``: shared entries (one ray, ``group`` weights) and per-pixel ones."""
        return int(self.mat[1].size), int(self.mat[4].size)

    @property
    def fill(self) -> float:
        """Nonzero fraction of the multiply-adds done (``nnz / (shared * group + single)``)."""
        shared, single = self.n_entries
        return self.nnz / max(1, shared * self.group + single)

    def flops_per_column(self) -> int:
        """Useful flops of one SIRT iteration per column: ``4 nnz`` (one multiply-add each way)
        plus the element-wise updates (``3 n_rays + 3 n_vox``)."""
        return 4 * self.nnz + 3 * self.shape[0] + 3 * self.shape[1]

    def sirt_bytes(self, n_columns: int) -> int:
        """Working set (bytes) of a fused SIRT on ``n_columns`` columns.

        Matrix + internal x, data, projection, residual (``4 * (n_slots + 3 n_rays)``
        per padded column) + the caller's data and result (``4 * (n_rays + n_vox)``
        per column) + per-column norms.
        """
        n_columns = int(n_columns)
        kb = self._block_width(n_columns)
        padded = -(-n_columns // kb) * kb
        internal = 4 * padded * (self.n_slots + 3 * self.shape[0]) + 8 * padded
        caller = 4 * n_columns * (self.shape[0] + self.shape[1])
        return self.matrix_bytes + internal + caller

    def bytes_per_column(self) -> int:
        """Marginal bytes of one more column in :meth:`sirt_bytes`."""
        return 4 * (self.n_slots + 3 * self.shape[0]) + 8 + 4 * (self.shape[0] + self.shape[1])

    # ------------------------------------------------------------------ helpers
    def _n_threads(self) -> int:
        return self.n_threads if self.n_threads is not None else numba.get_num_threads()

    def _block_width(self, n_columns: int) -> int:
        if self.block_width is not None:
            return self.block_width
        return choose_block_width(max(1, n_columns), self._n_threads())

    def _slot_sums(self, sums: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_slots, DTYPE)
        ok = self.slots >= 0
        out[ok] = sums[self.slots[ok]]
        return out

    def row_sums(self) -> np.ndarray:
        """``W 1`` (float64 sums of the stored weights, returned as float32)."""
        return self._row_sums.astype(DTYPE)

    def col_sums(self) -> np.ndarray:
        """``W^T 1`` (float64 sums of the stored weights, returned as float32)."""
        return self._col_sums.astype(DTYPE)

    # ------------------------------------------------------------------ contract
    def _forward(self, x):
        ncol = x.shape[1]
        kb = self._block_width(ncol)
        nblk = -(-ncol // kb)
        with _threads(self.n_threads, nblk):
            xi = np.empty((nblk, self.n_slots, kb), DTYPE)
            K.pack_plain(x, self.slots, xi)
            yi = np.empty((nblk, self.shape[0], kb), DTYPE)
            K.forward(self.mat, xi, yi, self._gt, Lanes(kb))
            del xi
            out = np.empty((self.shape[0], ncol), DTYPE)
            K.unpack_plain(yi, self._ray_map, out)
        return out

    def _adjoint(self, y):
        ncol = y.shape[1]
        kb = self._block_width(ncol)
        nblk = -(-ncol // kb)
        with _threads(self.n_threads, nblk):
            yi = np.empty((nblk, self.shape[0], kb), DTYPE)
            K.pack_plain(y, self._ray_map, yi)
            xi = np.empty((nblk, self.n_slots, kb), DTYPE)
            K.adjoint(self.mat, yi, xi, self._gt, Lanes(kb))
            del yi
            out = np.empty((self.shape[1], ncol), DTYPE)
            K.unpack_plain(xi, self.slots, out)
        return out

    def forward_channels(self, x3: np.ndarray) -> np.ndarray:
        """``W`` on every channel of ``x3`` ``(k, n_vox, S)`` -> ``(k, n_rays, S)``, without transposing.

        The same as ``forward`` of the ``(n_vox, k S)`` matrix of columns ``c S + j``
        (bit for bit: the lanes are the same); used by :class:`~.base.ChannelMix`.
        """
        k, n, S = x3.shape
        ncol = k * S
        kb = self._block_width(ncol)
        nblk = -(-ncol // kb)
        with _threads(self.n_threads, nblk):
            xi = np.empty((nblk, self.n_slots, kb), DTYPE)
            K.pack_channels(np.ascontiguousarray(x3, DTYPE), self.slots, xi)
            yi = np.empty((nblk, self.shape[0], kb), DTYPE)
            K.forward(self.mat, xi, yi, self._gt, Lanes(kb))
            del xi
            out = np.empty((k, self.shape[0], S), DTYPE)
            K.unpack_channels(yi, self._ray_map, out)
        return out

    def adjoint_channels(self, y3: np.ndarray) -> np.ndarray:
        """``W^T`` on every channel of ``y3`` ``(k, n_rays, S)`` -> ``(k, n_vox, S)`` (see :meth:`forward_channels`)."""
        k, n, S = y3.shape
        ncol = k * S
        kb = self._block_width(ncol)
        nblk = -(-ncol // kb)
        with _threads(self.n_threads, nblk):
            yi = np.empty((nblk, self.shape[0], kb), DTYPE)
            K.pack_channels(np.ascontiguousarray(y3, DTYPE), self._ray_map, yi)
            xi = np.empty((nblk, self.n_slots, kb), DTYPE)
            K.adjoint(self.mat, yi, xi, self._gt, Lanes(kb))
            del yi
            out = np.empty((k, self.shape[1], S), DTYPE)
            K.unpack_channels(xi, self.slots, out)
        return out

    def warmup(self, block_widths=None) -> None:
        """Compile (or load from the on-disk cache) this operator's kernels for ``block_widths``.

        Call before timing: a first call otherwise includes compilation.
        """
        widths = BLOCK_WIDTHS if block_widths is None else tuple(block_widths)
        one = sp.csr_matrix(np.ones((1, 1), DTYPE))
        probe = BatchedOperator(one, group=self.group, n_threads=self.n_threads)
        for kb in widths:
            probe.block_width = kb
            x = np.ones((1, 1), DTYPE)
            b = probe.forward(x)
            probe.adjoint(b)
            plan = fused_sirt_plan(probe, b, None, *(_unit_weights(probe)), 1.0, True)
            plan.step()
            mix = ChannelMix(probe, np.array([[0.5], [0.5]], DTYPE))
            bm = np.ones((2, 1), DTYPE)
            fused_sirt_plan(mix, bm, None, np.ones((2, 1), DTYPE), np.ones((1, 1), DTYPE), 1.0, True).step()

    def __repr__(self) -> str:
        return (f"BatchedOperator(shape={self.shape}, nnz={self.nnz}, group={self.group}, "
                f"min_shared={self.min_shared}, fill={self.fill:.2f}, matrix_bytes={self.matrix_bytes})")


def _unit_weights(op):
    return np.ones((op.shape[0], 1), DTYPE), np.ones((op.shape[1], 1), DTYPE)


# ---------------------------------------------------------------------------- fused SIRT

class FusedSirt:
    """State of a fused SIRT in the engine's internal layout (made by :func:`fused_sirt_plan`).

    :meth:`step` runs one iteration on every column and returns the residual norms
    ``||b - A x_t||`` (before the update) per column of ``b``; :meth:`x` returns the
    current estimate in the contract layout (a new array).
    """

    def __init__(self, engine: BatchedOperator, n_tasks: int, step, unpack, x_int):
        self.engine, self.n_tasks = engine, int(n_tasks)
        self._step, self._unpack, self._x = step, unpack, x_int

    def step(self) -> np.ndarray:
        return np.sqrt(self._step())

    def x(self) -> np.ndarray:
        with _threads(self.engine.n_threads, self.n_tasks):
            return self._unpack(self._x)


def _unwrap(op: Operator):
    """``(engine, mix, scale)`` when ``op`` is ``s * [M (x)] W`` with a batched W, else None."""
    scale = 1.0
    while isinstance(op, Scaled):
        scale *= op.scale
        op = op.op
    if isinstance(op, BatchedOperator):
        return op, None, scale
    if isinstance(op, ChannelMix):
        inner, mix = op.op, np.asarray(op.mix, np.float64)
        while isinstance(inner, Scaled):
            scale *= inner.scale
            inner = inner.op
        if isinstance(inner, BatchedOperator):
            return inner, mix, scale
    return None


def fused_sirt_plan(op: Operator, b: np.ndarray, x0: np.ndarray | None, R: np.ndarray, C: np.ndarray,
                    relaxation: float, nonneg: bool) -> FusedSirt | None:
    """A fused SIRT for ``op`` when it is built on a :class:`BatchedOperator`, else None.

    Recognised: ``W``, ``s W`` and ``ChannelMix(W, M)`` (HEBT's stacked operator,
    never materialised: one back-projection and one forward projection per channel
    and iteration; the mixing is done per ray). ``R`` ``(n_out, 1)`` and ``C``
    ``(n_in, 1)`` are the SIRT weights; for ``ChannelMix`` the pixel weights must be
    a per-channel multiple of one pixel map (true for :func:`sirt_weights`),
    otherwise None is returned and the caller uses the generic path.

    Parameters
    ----------
    op : Operator
    b : ndarray, (n_out, S) float32 C-contiguous
    x0 : ndarray (n_in, S) or None
    R, C : ndarray
    relaxation : float
    nonneg : bool
    """
    found = _unwrap(op)
    if found is None:
        return None
    W, mix, scale = found
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


# ---------------------------------------------------------------------------- chunking

def iter_slice_chunks(n_slices: int, bytes_per_slice: int, budget_bytes: int,
                      fixed_bytes: int = 0) -> Iterator[slice]:
    """Consecutive slice ranges whose working set fits ``budget_bytes``.

    Parameters
    ----------
    n_slices : int
        Slices (columns) to process.
    bytes_per_slice : int
        Working-set bytes of one slice (e.g. :meth:`BatchedOperator.bytes_per_column`
        times the channels per slice).
    budget_bytes : int
        Memory allowed for one chunk, including ``fixed_bytes``.
    fixed_bytes : int
        Bytes independent of the chunk size (the matrix).

    Yields
    ------
    slice
        ``slice(start, stop)``, covering ``range(n_slices)`` in order.
    """
    n_slices, bytes_per_slice = int(n_slices), int(bytes_per_slice)
    if n_slices < 0 or bytes_per_slice <= 0:
        raise ValueError(f"need n_slices >= 0 and bytes_per_slice > 0, got {n_slices}, {bytes_per_slice}")
    room = int(budget_bytes) - int(fixed_bytes)
    per_chunk = room // bytes_per_slice
    if per_chunk < 1:
        raise ValueError(
            f"a budget of {budget_bytes} bytes cannot hold one slice ({bytes_per_slice} bytes) "
            f"plus the fixed {fixed_bytes} bytes; raise the budget")
    for start in range(0, n_slices, per_chunk):
        yield slice(start, min(n_slices, start + per_chunk))


@dataclass
class ChunkedResult:
    """Result of :func:`sirt_chunked`: ``x`` (n_in, S), chunks used, residual norms (n_iter, S)."""

    x: np.ndarray
    chunks: list
    residual_norms: np.ndarray


def sirt_chunked(op: Operator, b: np.ndarray, n_iter: int, budget_bytes: int, *,
                 out: np.ndarray | None = None, **sirt_kwargs) -> ChunkedResult:
    """SIRT on the columns of ``b`` in chunks that fit ``budget_bytes``; same result as one call.

    Columns are independent problems and the engine's arithmetic per column does
    not depend on its neighbours, so the chunked result equals the one-shot result
    bit for bit. ``out`` may be a ``numpy.memmap`` for a volume larger than memory
    (``b`` too).

    Parameters
    ----------
    op : Operator
        Built on a :class:`BatchedOperator` (``W``, or ``ChannelMix`` of it).
    b : ndarray, (n_out, S)
    n_iter : int
    budget_bytes : int
    out : ndarray, (n_in, S), optional
    **sirt_kwargs
        Passed to :func:`chemtomo.reconstruct.sirt` (relaxation, nonneg, weights).
    """
    from ..reconstruct.sirt import sirt, sirt_weights

    found = _unwrap(op)
    if found is None:
        raise TypeError(f"sirt_chunked needs an operator built on BatchedOperator, got {op!r}")
    W, mix, _ = found
    if b.ndim != 2 or b.shape[0] != op.shape[0]:
        raise ValueError(f"b must have shape ({op.shape[0]}, S), got {b.shape}")
    S = b.shape[1]
    per_slice = W.bytes_per_column() * (1 if mix is None else mix.shape[1])
    if out is None:
        out = np.empty((op.shape[1], S), DTYPE)
    if "weights" not in sirt_kwargs:
        sirt_kwargs["weights"] = sirt_weights(op)
    chunks, norms = [], []
    for sl in iter_slice_chunks(S, per_slice, budget_bytes, fixed_bytes=W.matrix_bytes):
        res = sirt(op, np.ascontiguousarray(b[:, sl], dtype=DTYPE), n_iter, **sirt_kwargs)
        out[:, sl] = res.x
        chunks.append((sl.start, sl.stop))
        norms.append(res.residual_norms)
    return ChunkedResult(out, chunks, np.concatenate(norms, axis=1) if norms else np.zeros((0, 0)))


def batched_operator(geom, kind: str = "strip", **options) -> BatchedOperator:
    """:class:`BatchedOperator` of ASTRA's ``kind`` projector for ``geom`` (``options``: see the class)."""
    from .astra_backend import astra_matrix

    return BatchedOperator(astra_matrix(geom, kind), (geom.n_grid, geom.n_grid), **options)
