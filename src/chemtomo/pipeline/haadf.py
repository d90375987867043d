"""HAADF-only (or ADF) reconstruction: the morphology, through the same engine as the maps.

A HAADF stack is one channel: :func:`reconstruct_haadf` runs it through the
EDS-only engines of the registry, slice-chunk by slice-chunk like
:func:`~chemtomo.pipeline.volume.reconstruct_series` (same projector, same
chunking and runners):

=========  ==========================================  =================================
method     engine                                      parameters
=========  ==========================================  =================================
``sirt``   ``eds_sirt``: non-negative SIRT             :class:`~chemtomo.reconstruct.EdsSirtParams`
``tv``     ``ls_tv``: least squares + TV (PDHG)        :class:`~chemtomo.reconstruct.TvParams`
=========  ==========================================  =================================

No quantification applies: the result is a
:class:`~chemtomo.pipeline.volume.VolumeResult` with no lines, an empty ``maps``
and no composition, whose ``haadf_volume`` (slices, z, x) holds the HAADF signal
per nm of beam path, the maps' convention (ASTRA, etspy and tomviz SIRT values
are per voxel: these times ``pixel_nm``). :func:`chemtomo.io.write_result` writes
it as ``/haadf``.

The TV weight ``mu`` converts to an absolute weight as for EDS counts (noise
level ``sqrt`` of the mean signal): for a HAADF in arbitrary units the smoothing
depends on their scale; give ``lam`` for a fixed absolute weight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np

from ..projector import DEFAULT_BACKEND
from ..projector.batched import default_group
from ..reconstruct import MethodParams, get_method
from ..tiltseries import TiltSeries
from .chunks import haadf_channel_data, solve_in_memory
from .distributed import ChunkSpec, Runner, chunk_operator
from .volume import VolumeResult

#: HAADF-only method -> the registered engine that runs it on one channel.
HAADF_METHODS = {"sirt": "eds_sirt", "tv": "ls_tv"}


def haadf_engine(method: str) -> str:
    """The registered engine of a HAADF-only ``method`` (``"sirt"`` or ``"tv"``).

    Parameters
    ----------
    method : str
        ``"sirt"``, ``"tv"``, or an engine name itself (``"eds_sirt"``, ``"ls_tv"``;
        hyphens work).

    Returns
    -------
    str
        ``"eds_sirt"`` or ``"ls_tv"``.

    Raises
    ------
    ValueError
        Any other method.
    """
    key = str(method).strip().lower().replace("-", "_")
    if key in HAADF_METHODS:
        return HAADF_METHODS[key]
    if key in HAADF_METHODS.values():
        return key
    raise ValueError(f"HAADF-only reconstruction takes method 'sirt' or 'tv', got {method!r}")


def reconstruct_haadf(
    series: TiltSeries,
    method: str = "sirt",
    params: MethodParams | Mapping | None = None,
    *,
    n_iter: int | None = None,
    mu: float | None = None,
    backend: str = DEFAULT_BACKEND,
    chunk_slices: int | None = None,
    progress: bool = False,
    scheduler=None,
    memory_budget_gb: float | None = None,
) -> VolumeResult:
    """Reconstruct the HAADF (or ADF) stack of ``series`` alone, slice-chunk by slice-chunk.

    Parameters
    ----------
    series : TiltSeries
        With HAADF images; its EDS lines (if any) are not used.
    method : {"sirt", "tv"}
        Non-negative SIRT (``eds_sirt``'s engine) or least squares + TV (``ls_tv``'s).
    params : MethodParams or dict, optional
        The engine's parameters (:class:`~chemtomo.reconstruct.EdsSirtParams` or
        :class:`~chemtomo.reconstruct.TvParams`, or a dict validated into it).
    n_iter : int, optional
        Shortcut for ``params["n_iter"]`` (SIRT iterations, or the PDHG budget).
    mu : float, optional
        Shortcut for ``params["mu"]`` (``tv`` only).
    backend : str
        Operator backend (:func:`chemtomo.projector.make_operator`).
    chunk_slices : int, optional
        Slices per batched solve (default: sized from the memory budget).
    progress : bool
        Show a progress bar over slices.
    scheduler : str or distributed.Client, optional
        Where chunks run (see :func:`~chemtomo.pipeline.volume.reconstruct_series`).
    memory_budget_gb : float, optional
        Memory (GiB) the chunks may use.

    Returns
    -------
    VolumeResult
        ``haadf_volume`` (n_slices, n_grid, n_grid) float32 per nm of beam path;
        ``lines`` and ``elements`` empty, ``maps`` of shape (0, n_slices, n_grid,
        n_grid), ``composition`` None; ``parameters`` hold ``method`` (``haadf_sirt``
        or ``haadf_tv``), the engine and its parameters.

    Raises
    ------
    ValueError
        No HAADF images, an unknown method or parameter, ``mu`` with ``sirt``, a
        negative or non-finite HAADF with ``tv``, a bad ``chunk_slices`` or ``memory_budget_gb``.

    Examples
    --------
    >>> res = reconstruct_haadf(series, "sirt", n_iter=100)        # doctest: +SKIP
    >>> res.haadf_volume.shape                                     # doctest: +SKIP
    (64, 64, 64)
    """
    engine = haadf_engine(method)
    m = get_method(engine)
    p = m.params(params, **{k: v for k, v in (("n_iter", n_iter), ("mu", mu)) if v is not None})
    if series.haadf is None:
        raise ValueError("HAADF-only reconstruction needs a series with HAADF images; this one has none")
    if engine == "ls_tv" and (np.any(series.haadf < 0) or not np.all(np.isfinite(series.haadf))):
        raise ValueError(f"the tv method needs a finite, non-negative HAADF stack (its minimum is "
                         f"{float(np.nanmin(series.haadf)):.4g}): subtract a smaller background or use sirt")
    if chunk_slices is not None and (isinstance(chunk_slices, bool) or int(chunk_slices) < 1):
        raise ValueError(f"chunk_slices must be a positive integer, got {chunk_slices!r}")
    if memory_budget_gb is not None and not (np.isfinite(memory_budget_gb) and memory_budget_gb > 0):
        raise ValueError(f"memory_budget_gb must be a positive number, got {memory_budget_gb!r}")
    geom = series.haadf_geometry()  # the HAADF's own tilts when it has them
    n_slices = series.n_slices
    group = default_group() if backend == "batched" else None
    constants = None
    if m.has_setup:  # the volume's constants from every slice: a slice does not depend on its chunk
        constants = m.setup(chunk_operator(geom.key(), backend, group), haadf_channel_data(series), p)
    spec = ChunkSpec(geom.key(), backend, engine, p, constants, group=group)
    name = "haadf_" + ("sirt" if engine == "eds_sirt" else "tv")
    budget = None if memory_budget_gb is None else float(memory_budget_gb) * 2**30
    with contextlib.ExitStack() as stack, Runner(scheduler, memory_budget_bytes=budget) as runner:
        if chunk_slices:
            chunk = int(chunk_slices)
        else:
            chunk = runner.plan_chunk(geom, 1, n_slices, engine, backend)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = stack.enter_context(tqdm(total=n_slices, desc=f"{name} ({p.n_iter} it)", unit="slice"))
        vol, _ = solve_in_memory(runner, spec, lambda a, b: haadf_channel_data(series, a, b), 1, n_slices,
                                 geom.n_grid, chunk, bar)
        where = runner.describe()
    params_out = {"method": name, "engine": engine, **p.as_dict(), "backend": backend, "chunk_slices": chunk,
                  "lines": [], "geometry": geom.key(), "scheduler": where,
                  "haadf_volume": {"method": name.removeprefix("haadf_"), "n_iter": int(p.n_iter)}}
    if constants is not None:
        params_out["constants"] = constants
    empty = np.zeros((0, n_slices, geom.n_grid, geom.n_grid), np.float32)
    return VolumeResult([], [], empty, "", None, None, None, geom, params_out, vol[0])
