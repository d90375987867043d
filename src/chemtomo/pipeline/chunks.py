"""Chunk-level helpers of the volume path: a series' slices as operator columns, chunks run into a volume.

:func:`series_to_channel_data` and :func:`haadf_channel_data` cut a
:class:`~chemtomo.tiltseries.TiltSeries` into a chunk's columns;
:func:`solve_in_memory` runs every chunk on a :class:`~chemtomo.pipeline.distributed.Runner`
into one in-memory volume; :func:`haadf_sirt_volume` is the HAADF volume every
chemical result carries.
"""

from __future__ import annotations

import logging

import numpy as np

from ..geometry import sinogram_to_columns
from ..reconstruct import ChannelData
from ..tiltseries import TiltSeries
from .distributed import ChunkSpec, Runner

log = logging.getLogger("chemtomo.pipeline")


def series_to_channel_data(series: TiltSeries, lines: list[str], start: int = 0, stop: int | None = None,
                           r: np.ndarray | None = None) -> ChannelData:
    """Operator columns of slices ``start:stop`` of ``series`` (the HAADF's on its own tilts' rays)."""
    stop = series.n_slices if stop is None else stop
    eds = np.stack([sinogram_to_columns(series.eds[ln][:, start:stop]) for ln in lines])
    haadf = None if series.haadf is None else sinogram_to_columns(series.haadf[:, start:stop])
    return ChannelData(list(lines), eds, haadf, r)


def slice_chunks(n_slices: int, chunk_slices: int | None):
    """Half-open ``(start, stop)`` slice ranges that cover ``n_slices`` in chunks of ``chunk_slices``.

    Parameters
    ----------
    n_slices : int
        Slices in the volume.
    chunk_slices : int or None
        Slices per chunk (values below 1 count as 1); None or 0 gives one chunk of all the slices.

    Returns
    -------
    list of tuple of int
        ``(start, stop)`` per chunk, in order; the last chunk may be shorter.
    """
    chunk = n_slices if not chunk_slices else max(1, int(chunk_slices))
    return [(a, min(a + chunk, n_slices)) for a in range(0, n_slices, chunk)]


def haadf_channel_data(series: TiltSeries, start: int = 0, stop: int | None = None) -> ChannelData:
    """The HAADF stack's slices ``start:stop`` as a one-channel :class:`ChannelData` (``lines == ["HAADF"]``).

    The HAADF reconstructions run the EDS-only engines (``eds_sirt``, ``ls_tv``) on it.

    Raises
    ------
    ValueError
        The series has no HAADF images.
    """
    if series.haadf is None:
        raise ValueError("the tilt series has no HAADF images to reconstruct")
    stop = series.n_slices if stop is None else stop
    return ChannelData(["HAADF"], sinogram_to_columns(series.haadf[:, start:stop])[None], None, None)


def solve_in_memory(runner: Runner, spec: ChunkSpec, make_data, k: int, n_slices: int, n_grid: int, chunk: int,
                    bar=None, warm_parts: dict | None = None) -> tuple[np.ndarray, str]:
    """Run every chunk of ``n_slices`` slices on ``runner`` into one in-memory volume.

    Parameters
    ----------
    runner : Runner
    spec : ChunkSpec
    make_data : callable
        ``make_data(start, stop)`` -> the chunk's :class:`ChannelData`.
    k : int
        Channels (lines) the method returns.
    n_slices, n_grid : int
    chunk : int
        Slices per chunk (:func:`slice_chunks`).
    bar : tqdm or None
        Progress bar advanced per chunk.
    warm_parts : dict, optional
        Filled with chunk start -> the chunk's final state (``ChunkOutput.warm``), when
        its data asked for one (``ChannelData.keep_warm``).

    Returns
    -------
    maps : ndarray, (k, n_slices, n_grid, n_grid) float32
    factor : str
        The factor kind of the last chunk (``"f"`` when there was none).
    """
    maps = np.zeros((k, n_slices, n_grid, n_grid), np.float32)
    kinds: list[str] = []
    chunks = slice_chunks(n_slices, chunk)

    def keep(i, a, b, out):
        maps[:, a:b] = out.maps
        kinds.append(out.factor)
        if warm_parts is not None and out.warm is not None:
            warm_parts[a] = out.warm
        report_chunk(bar, i, a, b, out, len(chunks))

    runner.run(spec, [(i, a, b) for i, (a, b) in enumerate(chunks)], make_data, keep)
    return maps, (kinds[-1] if kinds else "f")


def haadf_sirt_volume(runner: Runner, series: TiltSeries, n_iter: int, backend: str, group: int | None,
                      chunk_slices: int | None = None) -> np.ndarray:
    """SIRT (non-negative, ``eds_sirt``'s engine) of the series' HAADF stack: (n_slices, n_grid, n_grid), per nm.

    At the HAADF's own tilts when it has them (:meth:`~chemtomo.tiltseries.TiltSeries.haadf_geometry`).

    Parameters
    ----------
    runner : Runner
        Where the chunks run (the chemical run's own).
    series : TiltSeries
        With HAADF images.
    n_iter : int
        SIRT iterations.
    backend : str
    group : int or None
        Pixel grouping of the batched engine (the run's).
    chunk_slices : int, optional
        Slices per chunk (default: sized from the runner's memory for one channel).
    """
    geom = series.haadf_geometry()
    spec = ChunkSpec(geom.key(), backend, "eds_sirt", {"n_iter": int(n_iter)}, group=group)
    chunk = int(chunk_slices) if chunk_slices else runner.plan_chunk(geom, 1, series.n_slices, "eds_sirt", backend)
    vol, _ = solve_in_memory(runner, spec, lambda a, b: haadf_channel_data(series, a, b), 1, series.n_slices,
                             geom.n_grid, chunk)
    return vol[0]


def report_chunk(bar, i: int, a: int, b: int, out, n_chunks: int) -> None:
    """Log chunk ``i`` (slices ``a:b``) as done and advance the progress bar ``bar`` (if any)."""
    log.info("chunk %d/%d (slices %d:%d) done in %.2f s on %s pid %d", i + 1, n_chunks, a, b, out.seconds,
             out.host, out.pid)
    if bar is not None:
        bar.update(b - a)
        bar.set_postfix_str(f"chunk {i + 1}/{n_chunks} {out.seconds:.1f} s")
