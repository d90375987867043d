"""The batched engine: one system matrix applied to every slice and channel at once.

A volume is hundreds of slices times several channels, all with one projection
geometry. :class:`BatchedOperator` holds W once (float32 weights, int32 ray
indices) and applies it to blocks of columns (pixels x slice-channels), forward
and adjoint, multithreaded over column blocks. SIRT runs fused: one pass over W^T
per iteration back-projects the weighted residual, updates and clips a group of
pixels, and scatters their new forward projection (:meth:`BatchedOperator.fused_sirt_plan`,
in :mod:`._fused`; asked for by :func:`chemtomo.reconstruct.sirt`).

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
:func:`iter_slice_chunks` and :func:`chemtomo.reconstruct.sirt.sirt_chunked` keep a
volume of any size within a budget, with the same result.

The SIMD width (AVX-512 or AVX2) sets the default pixel grouping and the block-width
costs; it is asked of LLVM on first use, once per process (:func:`_has_avx512`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numba
import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._fused import FusedSirt, engine_sirt_plan
from ._simd import Lanes
from ._threading import _check_threads, _threads
from ._work import ReusesBuffers, result_array
from .base import DTYPE, Operator
from .compose import ChannelMix

_log = logging.getLogger(__name__)

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
    """Whether this CPU has AVX-512, asked of LLVM on first use and cached for the process.

    When the query fails the answer is False: the AVX2 layout (pairs of pixels, the
    AVX2 block costs) runs on every x86-64 CPU without spilling registers, while the
    AVX-512 one would spill on a CPU without it. The reason is logged.
    """
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except Exception as exc:  # pragma: no cover - feature query unavailable
        _log.warning("CPU feature query failed (%s: %s); assuming no AVX-512 (AVX2 layout)",
                     type(exc).__name__, exc)
        return False


def _block_cost() -> dict[int, float]:
    """Relative cost per column of each block width for this CPU's SIMD width."""
    return _BLOCK_COST_AVX512 if _has_avx512() else _BLOCK_COST_AVX2


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
    costs = _block_cost()
    for kb in BLOCK_WIDTHS:
        n_blk = -(-n_columns // kb)
        cost = -(-n_blk // n_threads) * kb * costs[kb]
        if cost < best_cost - 1e-9 or (abs(cost - best_cost) < 1e-9 and kb > best):
            best, best_cost = kb, cost
    return best


class BatchedOperator(ReusesBuffers, Operator):
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
    The kernels only read the matrix; an instance may be shared by threads. The packing
    buffers are kept from one call to the next, one set per thread (dropped when pickled;
    :meth:`release_buffers`), which saves the page faults of fresh allocations.
    Inputs must be finite (a zero weight times an infinity is NaN).
    """

    #: Project channel blocks whose width is a multiple of the block width in place (no packed
    #: copy of the unknown; the same bits). False: always through the packed copy (for measurement).
    in_place_channels: bool = True

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
        """Useful flops of one SIRT iteration per column.

        ``4 nnz`` (one multiply-add each way) plus the element-wise updates (``3 n_rays + 3 n_vox``).
        """
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

    def _channel_blocks(self, k: int, S: int):
        """``(kb, yi)`` when ``k`` channels of ``S`` columns project in place, else None.

        In place: ``S`` a multiple of the block width ``kb`` (no block straddles two channels) and
        :attr:`in_place_channels` on; ``yi`` is the ray blocks' work buffer.
        """
        kb = self._block_width(k * S)
        if not self.in_place_channels or S % kb:
            return None
        return kb, self._work("yi", (k * S // kb, self.shape[0], kb))

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
    def _apply(self, src: np.ndarray, ncol: int, out: np.ndarray, adjoint: bool, pack, unpack) -> np.ndarray:
        """Pack ``src``, run W (or W^T) on every block, unpack into ``out``.

        The packing buffers are reused between calls (:class:`._work.WorkBuffers`): pack writes
        every element of its buffer (0 on dummy slots and past the last column), the forward
        kernel zeroes its output block first and the adjoint writes every slot, so no value of a
        previous call is read.
        """
        kb = self._block_width(ncol)
        nblk = -(-ncol // kb)
        xi = self._work("xi", (nblk, self.n_slots, kb))
        yi = self._work("yi", (nblk, self.shape[0], kb))
        with _threads(self.n_threads, nblk):
            if adjoint:
                pack(src, self._ray_map, yi)
                K.adjoint(self.mat, yi, xi, self._gt, Lanes(kb))
                unpack(xi, self.slots, out)
            else:
                pack(src, self.slots, xi)
                K.forward(self.mat, xi, yi, self._gt, Lanes(kb))
                unpack(yi, self._ray_map, out)
        return out

    def _forward(self, x):
        return self._forward_into(x, None)

    def _adjoint(self, y):
        return self._adjoint_into(y, None)

    def _forward_into(self, x, out):
        """``W x``, written into ``out`` ``(n_rays, m)`` when it is a float32 C-contiguous buffer of that shape."""
        ncol = x.shape[1]
        res = result_array(out, (self.shape[0], ncol))
        return self._apply(x, ncol, res, False, K.pack_plain, K.unpack_plain)

    def _adjoint_into(self, y, out):
        """``W^T y``, written into ``out`` ``(n_vox, m)`` when it is a float32 C-contiguous buffer of that shape."""
        ncol = y.shape[1]
        res = result_array(out, (self.shape[1], ncol))
        return self._apply(y, ncol, res, True, K.pack_plain, K.unpack_plain)

    def forward_channels(self, x3: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``W`` on every channel of ``x3`` ``(k, n_vox, S)`` -> ``(k, n_rays, S)``, without transposing.

        The same as ``forward`` of the ``(n_vox, k S)`` matrix of columns ``c S + j``
        (bit for bit: the lanes are the same); used by :class:`~.compose.ChannelMix`.

        Parameters
        ----------
        x3 : ndarray, (k, n_vox, S)
        out : ndarray, optional
            Written into when it is a float32 C-contiguous ``(k, n_rays, S)`` array (else a new one).

        Returns
        -------
        ndarray, (k, n_rays, S)
        """
        k, n, S = x3.shape
        res = result_array(out, (k, self.shape[0], S))
        src = np.ascontiguousarray(x3, DTYPE)
        blocks = self._channel_blocks(k, S)
        if blocks is not None:  # blocks of one channel's columns: read in place
            kb, yi = blocks
            with _threads(self.n_threads, yi.shape[0]):
                K.forward_channels_direct(self.mat, src, self.slots, yi, self._gt, Lanes(kb))
                K.unpack_channels(yi, self._ray_map, res)
            return res
        return self._apply(src, k * S, res, False, K.pack_channels, K.unpack_channels)

    def adjoint_channels(self, y3: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``W^T`` on every channel of ``y3`` ``(k, n_rays, S)`` -> ``(k, n_vox, S)`` (see :meth:`forward_channels`).

        Parameters
        ----------
        y3 : ndarray, (k, n_rays, S)
        out : ndarray, optional
            Written into when it is a float32 C-contiguous ``(k, n_vox, S)`` array (else a new one).

        Returns
        -------
        ndarray, (k, n_vox, S)
        """
        k, n, S = y3.shape
        res = result_array(out, (k, self.shape[1], S))
        src = np.ascontiguousarray(y3, DTYPE)
        blocks = self._channel_blocks(k, S)
        if blocks is not None:  # blocks of one channel's columns: stored in place
            kb, yi = blocks
            with _threads(self.n_threads, yi.shape[0]):
                K.pack_channels(src, self._ray_map, yi)
                K.adjoint_channels_direct(self.mat, yi, self.slots, res, self._gt, Lanes(kb))
            return res
        return self._apply(src, k * S, res, True, K.pack_channels, K.unpack_channels)

    # ------------------------------------------------------------------ capabilities
    def fused_sirt_plan(self, b: np.ndarray, x0: np.ndarray | None, R: np.ndarray, C: np.ndarray,
                        relaxation: float, nonneg: bool, *, mix: np.ndarray | None = None,
                        scale: float = 1.0) -> FusedSirt | None:
        """The engine's fused SIRT of ``scale * [mix (x)] W`` (see :func:`._fused.engine_sirt_plan`)."""
        return engine_sirt_plan(self, b, x0, R, C, relaxation, nonneg, mix, scale)

    def sirt_memory(self) -> tuple[int, int]:
        """``(matrix_bytes, bytes_per_column())``: the fixed and per-column bytes of a fused SIRT."""
        return self.matrix_bytes, self.bytes_per_column()

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
            plan = probe.fused_sirt_plan(b, None, *(_unit_weights(probe)), 1.0, True)
            plan.step()
            mix = ChannelMix(probe, np.array([[0.5], [0.5]], DTYPE))
            bm = np.ones((2, 1), DTYPE)
            mix.fused_sirt_plan(bm, None, np.ones((2, 1), DTYPE), np.ones((1, 1), DTYPE), 1.0, True).step()

    def __repr__(self) -> str:
        return (f"BatchedOperator(shape={self.shape}, nnz={self.nnz}, group={self.group}, "
                f"min_shared={self.min_shared}, fill={self.fill:.2f}, matrix_bytes={self.matrix_bytes})")


def _unit_weights(op):
    return np.ones((op.shape[0], 1), DTYPE), np.ones((op.shape[1], 1), DTYPE)


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


def batched_operator(geom, kind: str = "strip", **options) -> BatchedOperator:
    """:class:`BatchedOperator` of ASTRA's ``kind`` projector for ``geom`` (``options``: see the class)."""
    from .astra_backend import astra_matrix

    return BatchedOperator(astra_matrix(geom, kind), (geom.n_grid, geom.n_grid), **options)
