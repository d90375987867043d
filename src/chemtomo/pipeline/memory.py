"""The memory model of a chunked run: what one chunk solve and the projector need, and chunk sizes.

:func:`chunk_bytes` states the peak working set of one chunk solve from the
method's own factors (:meth:`chemtomo.reconstruct.Method.peak_factors`, measured
by ``tests/pipeline/test_distributed.py`` against ``tracemalloc``);
:func:`operator_bytes` the projector's; :func:`plan_chunk_slices` sizes chunks so
that a slot's budget covers the projector plus one chunk.
"""

from __future__ import annotations

import math

from ..geometry import TiltGeometry
from ..projector import DEFAULT_BACKEND
from ..reconstruct import get_method

# The memory model of a method is its own (Method.peak_factors: per backend, measured
# with tracemalloc; tests/pipeline/test_distributed.py checks the measurement stays under
# the estimate). The batched engine pads its k s columns to whole blocks of 8-64 lanes,
# never more than the columns plus 8, nor 64: that allowance is added here, per backend.
_PAD_COLUMNS = {"batched": 64}
WORKER_BASELINE_BYTES = 400 * 2**20  # python + numpy/scipy/numba/astra + distributed, per worker process
_BUDGET_FILL = 0.7  # of a worker's memory_limit: below Dask's pause (80 %) and restart (95 %) thresholds


def chunk_bytes(geom: TiltGeometry, n_lines: int, n_slices: int, method: str,
                backend: str = DEFAULT_BACKEND, haadf_geom: TiltGeometry | None = None) -> int:
    """Peak memory (bytes) of one chunk solve, the projector excluded.

    ``4 s (a (k n_rays + n_rays_H) + b k n_voxels)`` for ``s`` slices of ``k`` lines
    (data, iterate and the operator's temporaries; ``a``, ``b`` from the method's
    :meth:`~chemtomo.reconstruct.Method.peak_factors` for the backend; ``n_rays_H`` the
    HAADF's own rays (``haadf_geom``), else ``n_rays``), plus the batched engine's
    padding to whole column blocks.
    """
    a, b = get_method(method).peak_factors(backend)
    k = int(n_lines)
    n_rays_h = geom.n_rays if haadf_geom is None else haadf_geom.n_rays
    pad_columns = min(_PAD_COLUMNS.get(backend, 0), k * int(n_slices) + 8)
    pad = 4 * pad_columns * (geom.n_voxels + 3 * max(geom.n_rays, n_rays_h))
    return int(4 * int(n_slices) * (a * (k * geom.n_rays + n_rays_h) + b * k * geom.n_voxels)) + pad + (256 << 10)


def operator_bytes(geom: TiltGeometry, backend: str = DEFAULT_BACKEND) -> int:
    """Memory (bytes) of the projector, estimated before it is built.

    A strip model meets about 3 pixels per grid column per ray, so
    ``nnz ~ 3 n_rays n_grid``. ``sparse`` holds W and W^T in CSR (8 bytes per
    entry each); ``batched`` holds grouped W^T (about 6 bytes per entry, measured);
    ASTRA's own projectors hold no matrix.
    """
    if backend.startswith("astra"):
        return 64 << 20
    nnz = 3 * geom.n_rays * geom.n_grid
    if backend == "batched":
        return int(6 * nnz + 8 * geom.n_voxels)
    return int(2 * (8 * nnz + 4 * (geom.n_rays + geom.n_voxels)))


def plan_chunk_slices(geom: TiltGeometry, n_lines: int, n_slices: int, method: str, budget_bytes: float,
                      backend: str = DEFAULT_BACKEND, min_chunks: int = 1,
                      haadf_geom: TiltGeometry | None = None, halo_slices: int = 0, slots: int = 1) -> int:
    """Slices per chunk so that the projector plus ``slots`` chunks fit ``budget_bytes``.

    Parameters
    ----------
    geom : TiltGeometry
    n_lines : int
    n_slices : int
        Slices of the volume.
    method, backend : str
    budget_bytes : float
        Memory one slot (one task at a time) may use, the process baseline excluded.
    min_chunks : int
        At least this many chunks (load balance over slots, resume granularity).
    haadf_geom : TiltGeometry, optional
        The HAADF's own geometry (tilts of its own): its projector and rays count too.
    halo_slices : int
        Context slices solved on each side of a chunk and dropped after
        (:meth:`chemtomo.reconstruct.Method.halo_slices`: a prior across slices): a
        chunk of ``c`` slices solves up to ``c + 2 halo_slices``.
    slots : int
        Chunks solved at once that share one projector (threads of one process): the
        budget holds the projector once and ``slots`` chunks.

    Raises
    ------
    MemoryError
        Not even one slice per slot fits: the message names the memory one slice needs.
    """
    op_bytes = operator_bytes(geom, backend) + (0 if haadf_geom is None else operator_bytes(haadf_geom, backend))
    halo = int(halo_slices)
    if halo < 0:
        raise ValueError(f"halo_slices must be >= 0, got {halo_slices!r}")
    if isinstance(slots, bool) or int(slots) != slots or slots < 1:
        raise ValueError(f"slots must be a positive integer, got {slots!r}")
    free = (float(budget_bytes) - op_bytes) / int(slots)
    one = chunk_bytes(geom, n_lines, 1 + 2 * halo, method, backend, haadf_geom)
    if free < one:
        at_once = f" for each of {slots} chunks at once" if slots > 1 else ""
        raise MemoryError(
            f"one slice of {n_lines} lines on a {geom.n_grid}^2 grid"
            + (f" with {halo} context slices on each side" if halo else "") + at_once + " needs "
            + f"{(int(slots) * one + op_bytes) / 2**30:.2f} "
            f"GiB with the projector, more than the budget of {budget_bytes / 2**30:.2f} GiB: give more memory "
            "per worker")
    per_slice = chunk_bytes(geom, n_lines, 2 + 2 * halo, method, backend, haadf_geom) - one
    fit = int(1 + (free - one) // max(per_slice, 1))
    balanced = math.ceil(n_slices / max(1, int(min_chunks)))
    return max(1, min(fit, balanced, n_slices))


def default_memory_budget() -> int:
    """Half of the memory available now (bytes): the default budget of a run on this machine."""
    import psutil

    return int(0.5 * psutil.virtual_memory().available)


