"""Reconstruct and quantify a whole tilt series, slice-chunk by slice-chunk.

Slices along the tilt axis are independent problems sharing one projector, so
a chunk of slices is one batched solve (all its slices and lines as columns).
The response ratios are estimated once from the whole series; the particle
mask is chosen once on the whole volume. The chunks run in this process or on
a Dask cluster (:mod:`.distributed`) and can be written to a resumable Zarr
store as they complete (:mod:`.store`).

A series whose HAADF has tilts of its own (``TiltSeries.haadf_angles_deg``) runs
the same way with a projector per modality (``ChunkSpec.haadf_geometry``); its
response ratios are fitted on the shared tilts or through the reconstruction
(:func:`~chemtomo.reconstruct.estimate_response_ratios_tilts`), and the HAADF
geometry is in the parameters (``haadf_geometry``) and the store's fingerprint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..geometry import TiltGeometry
from ..physics import Factors
from ..preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack
from ..projector import DEFAULT_BACKEND
from ..projector.batched import default_group
from ..quantify import (
    ESF_EDGE_LEVEL,
    Composition,
    check_mask_options,
    check_one_line_per_element,
    check_threshold,
    quantify,
)
from ..reconstruct import (
    ChannelData,
    MethodParams,
    ResponseRatios,
    WarmStart,
    estimate_response_ratios_tilts,
    get_method,
    method_names,
)
from ..tiltseries import TiltSeries
from .chunks import (
    haadf_sirt_volume,
    report_chunk,
    series_to_channel_data,
    solve_in_memory,
)
from .distributed import ChunkSpec, Runner, chunk_operator
from .store import Fingerprint, StoreArray, VolumeStore, array_sha256
from .store_quantify import quantify_store

#: full width at half maximum of a Gaussian, in sigmas (2 sqrt(2 ln 2))
FWHM_PER_SIGMA = 2.3548200450309493

log = logging.getLogger("chemtomo.pipeline")

# the method of a run that names none (the paper's bimodal HEBT)
DEFAULT_METHOD = "hebt_sirt"
# the HAADF volume of a chemical run: SIRT with the method's n_iter for these, else this many iterations
SIRT_METHODS = ("eds_sirt", "hebt_sirt")
HAADF_VOLUME_N_ITER = 100


@dataclass
class VolumeResult:
    """Reconstructed and quantified maps of a tilt series.

    Attributes
    ----------
    lines, elements : list of str
    maps : ndarray, (k, n_slices, n_grid, n_grid)
        Reconstructed maps (slices, z, x) per line, in the method's units. A
        run with a store returns :class:`~chemtomo.pipeline.store.StoreArray`
        views here and in ``composition`` (they load on indexing).
    factor : {"f", "z"}
        The factor the maps are quantified by.
    composition : Composition
        Weight / atomic fractions, mask and threshold.
    response_ratios : ResponseRatios or None
    theory_response_ratios : ndarray or None
    geometry : TiltGeometry
    parameters : dict
    haadf_volume : ndarray (n_slices, n_grid, n_grid) or None
        The HAADF volume (slices, z, x), float32, per nm of beam path like the maps
        (ASTRA/etspy SIRT values are these times the voxel size): a SIRT of the
        series' HAADF stack (:func:`haadf_sirt_volume`), None when the series has no
        HAADF or the run was asked for none. A HAADF-only result
        (:func:`chemtomo.pipeline.haadf.reconstruct_haadf`) holds no lines, an empty
        ``maps`` (0, n_slices, n_grid, n_grid) and no composition (None).
    warm : WarmStart or None
        The method's final state on every slice (``reconstruct_series(keep_warm=True)``):
        the ``warm_start`` of a reconstruction of nearby data.
    """

    lines: list[str]
    elements: list[str]
    maps: np.ndarray
    factor: str
    composition: Composition | None
    response_ratios: ResponseRatios | None
    theory_response_ratios: np.ndarray | None
    geometry: TiltGeometry
    parameters: dict = field(default_factory=dict)
    haadf_volume: np.ndarray | None = None
    warm: WarmStart | None = None


def prepare_series(series: TiltSeries, filter_sigma: float | None, filter_axes: str) -> TiltSeries:
    """The EDS stacks Gaussian-filtered (HAADF and its angles untouched), as the paper feeds both methods."""
    if not filter_sigma:
        return series
    return dataclasses.replace(
        series, eds={k: gaussian_filter_stack(v, filter_sigma, filter_axes) for k, v in series.eds.items()},
        metadata=dict(series.metadata))


def reconstruct_series(
    series: TiltSeries,
    factors: Factors,
    method: str = DEFAULT_METHOD,
    params: MethodParams | Mapping | None = None,
    *,
    n_iter: int | None = None,
    alpha: float | None = None,
    filter_sigma: float | None = FILTER_SIGMA_PX,
    filter_axes: str = "image",
    mask_method: str = "esf",
    threshold: float | None = None,
    edge_level: float = ESF_EDGE_LEVEL,
    backend: str = DEFAULT_BACKEND,
    chunk_slices: int | None = None,
    progress: bool = False,
    store: str | os.PathLike | None = None,
    scheduler=None,
    resume: bool = False,
    replace_store: bool = False,
    memory_budget_gb: float | None = None,
    auto: bool = False,
    auto_slices: int = 8,
    auto_grid: dict | None = None,
    response_ratios: ResponseRatios | None = None,
    counts: TiltSeries | None = None,
    noise_factor: float | str = 1.0,
    constants: dict | None = None,
    haadf_volume: bool = True,
    warm_start: WarmStart | None = None,
    keep_warm: bool = False,
) -> VolumeResult:
    """EDS-only or bimodal reconstruction of every slice, then quantification.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
        Must hold every EDS line of ``series``.
    method : str
        A registered method (``eds_sirt``, ``hebt_sirt``, ...; hyphens work too).
    params : MethodParams or dict, optional
        The method's parameters (its ``Params`` dataclass, or a dict validated into
        it; default: the method's defaults). An unknown name is a ValueError that
        lists the method's parameters.
    n_iter, alpha : optional
        Shortcuts for ``params["n_iter"]``, ``params["alpha"]`` (None: not given); a
        method without such a parameter refuses them.
    filter_sigma : float or None
        Gaussian filter of the EDS stacks (pixels); None or 0 for none.
    filter_axes : {"image", "sinogram"}
    mask_method : {"esf", "otsu", "multiotsu"}
    threshold : float, optional
        Fixed threshold instead of ``mask_method``.
    edge_level : float
        The ESF threshold's place on the particle-background step
        (:func:`chemtomo.quantify.esf_threshold`; default
        :data:`chemtomo.quantify.ESF_EDGE_LEVEL`, 0.35 of its height; 0.5 its centre).
    backend : str
        Operator backend (see :func:`chemtomo.projector.make_operator`).
    chunk_slices : int, optional
        Slices per batched solve. Default: sized from the memory budget (all
        slices at once when they fit and the run is in process without a store).
    progress : bool
        Show a progress bar over slices, advanced per chunk.
    store : path-like, optional
        A Zarr store (folder) to write the maps into chunk by chunk, and the
        mask and fractions after them; the returned maps and fractions then
        read from it (:class:`~chemtomo.pipeline.store.StoreArray`). See
        :mod:`chemtomo.pipeline.store`.
    scheduler : str or distributed.Client, optional
        Where chunks run: in process (default), ``"local[:N]"`` for a
        LocalCluster, or a Dask scheduler address; None reads
        ``CHEMTOMO_SCHEDULER``. See :mod:`chemtomo.pipeline.distributed`.
    resume : bool
        Continue the run in ``store``: verified chunks are kept, the rest
        computed. A store of other inputs or parameters is refused.
    replace_store : bool
        Replace what is at ``store`` (an earlier store, or a folder the caller
        was told may be replaced: CLI ``--overwrite``) by this run's new store,
        when the run starts; without it an existing ``store`` is an error
        unless ``resume``.
    memory_budget_gb : float, optional
        Memory (GiB) the chunks may use on this machine (default: half of what
        is available). Sizes the chunks; on a LocalCluster it is shared by the
        workers and enforced as their memory limit.
    auto : bool
        Choose the method's parameters from the data (``n``; ``alpha, n``; or the TV
        weight ``mu``) by :func:`chemtomo.reconstruct.choose_parameters`, on a block of
        ``auto_slices`` contiguous slices around the one with the most EDS counts,
        then reconstruct every slice with them. The choice is in ``parameters["auto"]``.
    auto_slices : int
        Slices the automatic choice is made on.
    auto_grid : dict, optional
        Candidates of the automatic rule, e.g. ``{"mu": (0.02, 0.04, 0.08)}`` (default:
        the method's ``default_grid``).
    response_ratios : ResponseRatios, optional
        ``r_A`` fitted elsewhere (e.g. on a filtered copy of the series) instead of
        from the (filtered) ``series`` here; the lines must match.
    counts : TiltSeries, optional
        The unfiltered counts when ``series`` was filtered upstream (as the
        experimental path does): what the methods of
        whose ``raw_counts`` is set reconstruct and what the automatic
        rules score. Default: ``series`` itself.
    noise_factor : float or "estimate"
        Variance over mean of ``counts`` for the discrepancy rule (``auto``): 1 for
        raw Poisson counts; ``"estimate"`` measures it on the counts
        (:func:`~chemtomo.reconstruct.autoparam.estimate_noise_factor`), for
        background-subtracted or normalised line maps.
    constants : dict, optional
        The method's volume-level set-up constants computed elsewhere (default: from
        this series by :meth:`~chemtomo.reconstruct.Method.setup`). The bootstrap
        (:mod:`.uncertainty`) hands the measured data's to its replicas, so that the
        replicas do not change the regularisation. Ignored by methods without a set-up.
    haadf_volume : bool
        Also reconstruct the HAADF stack, when the series has one, into
        ``VolumeResult.haadf_volume`` (:func:`haadf_sirt_volume`: one channel, SIRT
        with the method's ``n_iter`` for the SIRT methods, else
        ``HAADF_VOLUME_N_ITER``). It does not touch the maps.
    warm_start : WarmStart, optional
        Start every slice's solve from an earlier reconstruction's state on all the
        slices (its ``VolumeResult.warm``), cut per chunk like the slices (halo
        included); only for a method with ``warm_start`` (the regularised solvers), in
        process and without a store (refused otherwise). The result then depends on
        the start as well as on the data.
    keep_warm : bool
        Keep the method's final state of every slice in ``VolumeResult.warm`` (same
        limits as ``warm_start``).

    Notes
    -----
    The response ratios are estimated from the whole (filtered) series before
    the chunks and the particle mask is chosen on the whole volume after them,
    so the chunking changes nothing in the result: every slice is the same
    bits whichever chunk, process or machine reconstructed it.
    """
    m = get_method(method)  # an unknown name fails here, before any work
    method = m.name
    # validated once, here: an unknown name is a ValueError listing the method's parameters
    p = m.params(params, **{k: v for k, v in (("n_iter", n_iter), ("alpha", alpha)) if v is not None})
    lines = series.lines
    if not lines:
        raise ValueError("the tilt series has no EDS line to reconstruct")
    missing = [ln for ln in lines if ln not in factors]
    if missing:
        raise KeyError(f"no physics factors for line(s) {missing}; factors hold {list(factors)}")
    check_one_line_per_element(lines, [factors[ln].element for ln in lines])  # before any solve, not at writing
    n_px = series.shape[2]
    if filter_sigma and float(filter_sigma) * FWHM_PER_SIGMA > n_px:
        raise ValueError(f"filter_sigma {float(filter_sigma):g} px (--filter-sigma): the Gaussian's FWHM "
                         f"({float(filter_sigma) * FWHM_PER_SIGMA:.3g} px) is wider than the images ({n_px} px "
                         f"across the tilt axis) and would blur them flat; give a sigma below "
                         f"{n_px / FWHM_PER_SIGMA:.3g} px (default {FILTER_SIGMA_PX} px, 0: no filter)")
    needs_haadf = m.needs_haadf
    if needs_haadf and series.haadf is None:
        raise ValueError(f"method {method!r} needs HAADF images; this series has none (use one of "
                         f"{[n for n in method_names() if not get_method(n).needs_haadf]})")
    series.check_for_reconstruction(needs_haadf=needs_haadf)  # degenerate channels named before any solve
    edge_level = check_mask_options(mask_method, threshold, edge_level)  # before any solve
    if threshold is not None:
        check_threshold(threshold)  # finite, before any solve (its range is checked on the maps)
    if chunk_slices is not None and (isinstance(chunk_slices, bool) or int(chunk_slices) < 1):
        raise ValueError(f"chunk_slices must be a positive integer, got {chunk_slices!r}")
    if memory_budget_gb is not None and not (np.isfinite(memory_budget_gb) and memory_budget_gb > 0):
        raise ValueError(f"memory_budget_gb must be a positive number, got {memory_budget_gb!r}")
    if resume and store is None:
        raise ValueError("resume=True needs a store to resume from (store=PATH, --store)")
    if replace_store and resume:
        raise ValueError("replace_store=True starts the store afresh, resume=True continues it: give one")
    if auto and not m.default_grid:
        raise ValueError(f"method {method!r} has no automatic parameter rule (auto=True); methods with one: "
                         f"{[n for n in method_names() if get_method(n).default_grid]}")
    if warm_start is not None or keep_warm:
        check_warm_request(m, warm_start, len(lines), series.n_slices, store)
    if auto and (isinstance(auto_slices, bool) or int(auto_slices) < 1):
        raise ValueError(f"auto_slices must be a positive integer, got {auto_slices!r}")
    prepared = prepare_series(series, filter_sigma, filter_axes)
    raw = series if counts is None else counts
    if counts is not None and (counts.lines != lines or counts.shape != series.shape):
        raise ValueError(f"counts {counts.lines} {counts.shape} must match the series {lines} {series.shape}")
    if counts is not None and counts.haadf is not None and not np.array_equal(counts.haadf_angles,
                                                                               series.haadf_angles):
        raise ValueError("counts and the series must have their HAADF at the same tilts")
    geom = series.geometry()
    haadf_geom = None if series.shares_angles or series.haadf is None else series.haadf_geometry()
    haadf_key = None if haadf_geom is None else haadf_geom.key()
    group = default_group() if backend == "batched" else None  # one summation order for every worker
    # methods that model the counts' noise see them unfiltered; r_A is fitted on the filtered series
    solve_series = raw if m.raw_counts else prepared
    rr = theory = None
    if needs_haadf:
        if response_ratios is not None:
            if list(response_ratios.lines) != list(lines):
                raise ValueError(f"response ratios are for lines {list(response_ratios.lines)}, the series has {lines}")
            rr = response_ratios
        elif haadf_geom is not None:  # on the shared tilts, or through an EDS-only reconstruction
            rr = estimate_response_ratios_tilts(prepared.haadf, {ln: prepared.eds[ln] for ln in lines},
                                                series.angles_deg, series.haadf_angles,
                                                W=chunk_operator(geom.key(), backend, group, haadf_key))
        else:  # the series is filtered here (counts given with no filter: it was filtered upstream, unknown how)
            rr = fit_response_ratios(prepared.haadf, {ln: prepared.eds[ln] for ln in lines},
                                     raw.eds if (counts is None or filter_sigma) else None,
                                     filter_sigma, filter_axes, noise_factor)
        md = series.metadata
        if all(k in md for k in ("haadf_dose", "eds_dose", "solid_angle_sr")):
            theory = factors.response_ratios(haadf_dose=md["haadf_dose"], eds_dose=md["eds_dose"],
                                             solid_angle_sr=md["solid_angle_sr"], lines=lines)
    k, n_slices = len(lines), series.n_slices
    r = None if rr is None else rr.r
    choice = None
    constants = constants if m.has_setup else None
    # an EDS-only method never reads the HAADF: one projector, as for a shared series
    solve_haadf_key = haadf_key if needs_haadf else None
    W = chunk_operator(geom.key(), backend, group, solve_haadf_key) if (m.has_setup or auto) else None
    if m.has_setup and constants is None:
        constants = m.setup(W, series_to_channel_data(solve_series, lines, r=r), p)
    if auto:
        choice = choose_series_parameters(method, W, raw, prepared, lines, r, geom, filter_sigma, filter_axes,
                                          getattr(p, "n_iter", None), int(auto_slices), constants, noise_factor,
                                          auto_grid, params=p)
        p = m.apply_choice(p, choice.params)
        log.info("automatic parameters for %s: %s (%s)", method, choice.params, choice.rule)
        if choice.info.get("at_grid_edge"):
            log.warning("automatic %s parameters %s lie at the %s end of the candidate grid", method,
                        choice.params, choice.info["at_grid_edge"])
    spec = ChunkSpec(geom.key(), backend, method, p, constants, group=group, haadf_geometry=solve_haadf_key)

    halo = m.halo_slices(p)  # a prior across slices: overlapping chunks, the method drops the context slices

    def make_data(a: int, b: int) -> ChannelData:
        a0, b0 = max(0, a - halo), min(n_slices, b + halo)
        data = series_to_channel_data(solve_series, lines, a0, b0, r)
        data.halo = (a - a0, b0 - b)
        data.warm = None if warm_start is None else warm_start.columns(a0, b0)
        data.keep_warm = bool(keep_warm)
        return data

    budget = None if memory_budget_gb is None else float(memory_budget_gb) * 2**30
    bar = None
    warm_parts: dict = {}
    with contextlib.ExitStack() as stack, Runner(scheduler, memory_budget_bytes=budget) as runner:
        if (warm_start is not None or keep_warm) and runner.kind != "inprocess":
            raise ValueError(f"a warm start (warm_start, keep_warm) runs in process only; the run's scheduler is "
                             f"{runner.kind!r} (give scheduler=None and unset CHEMTOMO_SCHEDULER)")
        if chunk_slices:
            chunk = int(chunk_slices)
        else:
            # every chunk carries the HAADF's rays and its halo
            chunk = runner.plan_chunk(geom, k, n_slices, method, backend, store is not None, haadf_geom, halo)
        if progress:
            from tqdm.auto import tqdm

            it = getattr(p, "n_iter", None)
            bar = tqdm(total=n_slices, desc=method + (f" ({it} it)" if it is not None else ""), unit="slice")
        try:
            if store is None:
                maps, factor_kind = solve_in_memory(runner, spec, make_data, k, n_slices, geom.n_grid, chunk, bar,
                                                    warm_parts)
                q = factors.f(lines) if factor_kind == "f" else factors.z(lines)
                elements = [factors[ln].element for ln in lines]
                comp = quantify(maps, q, factors.atomic_weights(lines), lines, elements, mask_method, threshold,
                                edge_level)
            else:
                fp = run_fingerprint(solve_series, spec, lines, r, {
                    "filter_sigma": None if m.raw_counts else filter_sigma,
                    "filter_axes": None if m.raw_counts or not filter_sigma else filter_axes})
                vs = VolumeStore.open(store, fp, lines=lines,
                                      n_slices=n_slices, n_grid=geom.n_grid, chunk_slices=chunk, resume=resume,
                                      chunk_slices_given=bool(chunk_slices), replace=replace_store)
                stack.callback(vs.close)
                chunk = vs.chunk_slices
                good, bad = vs.verify()
                if bad:
                    log.warning("store %s: chunk(s) %s do not match their checksums; recomputing them", store, bad)
                    vs.forget(bad)
                n_chunks = len(vs.chunks)
                todo = [(i, a, b) for i, (a, b) in enumerate(vs.chunks) if i not in set(good)]
                if good:
                    log.info("store %s: resuming; %d of %d chunks verified, %d to do", store, len(good), n_chunks,
                             len(todo))
                if bar is not None:
                    bar.update(sum(b - a for i, (a, b) in enumerate(vs.chunks) if i in set(good)))

                def write(i, a, b, out):
                    vs.write_chunk(i, out.maps, factor=out.factor, seconds=out.seconds, host=out.host, pid=out.pid,
                                   max_rss_bytes=out.max_rss_bytes)
                    report_chunk(bar, i, a, b, out, n_chunks)

                runner.run(spec, todo, make_data, write)
                records = vs.records()
                if sorted(records) != list(range(n_chunks)):  # pragma: no cover - runner raises first
                    raise RuntimeError(f"store {store}: chunks {sorted(set(range(n_chunks)) - set(records))} missing")
                factor_kind = records[n_chunks - 1].factor or "f"
                q = factors.f(lines) if factor_kind == "f" else factors.z(lines)
                elements = [factors[ln].element for ln in lines]
                th = quantify_store(vs, q, factors.atomic_weights(lines), elements, mask_method, threshold, edge_level)
                g = vs.group
                comp = Composition(list(lines), elements, StoreArray(g["fractions/weight"], np.float64),
                                   StoreArray(g["fractions/atomic"], np.float64), StoreArray(g["mask"], bool), th)
                maps = StoreArray(vs.maps)
            haadf_vol = haadf_iter = None
            if haadf_volume and series.haadf is not None:
                haadf_iter = int(p.n_iter) if method in SIRT_METHODS else HAADF_VOLUME_N_ITER
                haadf_vol = haadf_sirt_volume(runner, series, haadf_iter, backend, group, chunk_slices)
            where = runner.describe()
        finally:
            if bar is not None:
                bar.close()
        params = {
            "method": method, "n_iter": None, "alpha": None, **p.as_dict(),
            "filter_sigma": filter_sigma, "filter_axes": filter_axes, "mask_method": mask_method,
            "threshold": comp.threshold.as_dict(), "backend": backend, "chunk_slices": chunk,
            "lines": lines, "factor": factor_kind, "geometry": geom.key(),
            **({} if haadf_key is None else {"haadf_geometry": haadf_key}),
            "factors": factors.subset(lines).as_dict(), "scheduler": where,
        }
        if haadf_vol is not None:
            params["haadf_volume"] = {"method": "sirt", "n_iter": haadf_iter}
        if constants is not None:
            params["constants"] = constants
        if choice is not None:
            params["auto"] = {**choice.as_dict(), "slices": choice.info.get("slices")}
        if store is not None:
            params["store"] = str(store)
            vs.mark_complete({"parameters": params, "elements": elements,
                              "response_ratios": None if rr is None else rr.as_dict()})
    warm = WarmStart.concatenate([warm_parts[a] for a in sorted(warm_parts)]) if keep_warm else None
    if warm_start is not None:
        params["warm_started"] = True
    return VolumeResult(lines, elements, maps, factor_kind, comp, rr, theory, geom, params, haadf_vol, warm)


def check_warm_request(method, warm_start: WarmStart | None, k: int, n_slices: int, store) -> None:
    """Raise ValueError when a warm start (or keeping one) cannot be had: see ``reconstruct_series``.

    Parameters
    ----------
    method : Method
    warm_start : WarmStart or None
    k, n_slices : int
        Lines and slices of the series.
    store : path-like or None
    """
    if not method.warm_start:
        raise ValueError(f"method {method.name!r} cannot start from an earlier reconstruction (warm_start, "
                         f"keep_warm); methods that can: {[n for n in method_names() if get_method(n).warm_start]}")
    if store is not None:
        raise ValueError("a warm start (warm_start, keep_warm) is not kept in a store: run without store")
    if warm_start is not None and (warm_start.maps.shape[0] != k or warm_start.n_slices != n_slices):
        raise ValueError(f"the warm start holds {warm_start.maps.shape[0]} lines x {warm_start.n_slices} slices, "
                         f"the series {k} x {n_slices}")


def auto_slice_block(series: TiltSeries, lines: list[str], n: int) -> tuple[int, int]:
    """``n`` contiguous slices centred on the slice with the most EDS counts (all lines and tilts)."""
    total = sum(np.asarray(series.eds[ln], np.float64).sum(axis=(0, 2)) for ln in lines)
    n = min(int(n), series.n_slices)
    centre = int(np.argmax(total))
    a = min(max(centre - n // 2, 0), series.n_slices - n)
    return a, a + n


def choose_series_parameters(method: str, W, series: TiltSeries, prepared: TiltSeries, lines: list[str], r,
                             geom: TiltGeometry, filter_sigma, filter_axes: str, n_iter: int | None, n_slices: int,
                             constants=None, noise_factor: float | str = 1.0, grid: dict | None = None,
                             params=None):
    """The method's parameters chosen on a block of slices (see ``reconstruct_series(auto=True)``).

    ``series`` holds the counts the rules score, ``prepared`` what the method reconstructs;
    ``n_iter`` (the run's) is the iteration budget of the solves a rule runs (None: the rule's default);
    ``params`` (the run's) fixes what the rule does not choose (e.g. the regularised solvers' model options).
    The choice's ``info`` holds the block of ``slices`` and the rule's wall-clock ``seconds``.
    """
    from ..reconstruct import choose_parameters
    from ..reconstruct.autoparam import estimate_noise_factor

    t0 = time.perf_counter()
    a, b = auto_slice_block(series, lines, n_slices)
    raw = series_to_channel_data(series, lines, a, b, r)
    data = series_to_channel_data(prepared, lines, a, b, r)
    if noise_factor == "estimate":
        noise_factor = estimate_noise_factor([series.eds[ln] for ln in lines])
    elif isinstance(noise_factor, str):
        raise ValueError(f"noise_factor is a number or 'estimate', got {noise_factor!r}")
    choice = choose_parameters(
        method, W, raw.eds, data=data.eds, haadf=raw.haadf, r=r, n_tilts=geom.n_tilts,
        n_pixels=geom.n_pixels, filter_sigma=float(filter_sigma or 0.0), filter_axes=filter_axes,
        constants=constants, noise_factor=float(noise_factor), grid=grid, params=params,
        **({} if n_iter is None else {"n_iter": int(n_iter)}))
    choice.info["slices"] = [a, b]
    choice.info["noise_factor"] = float(noise_factor)
    choice.info["seconds"] = time.perf_counter() - t0  # the rule's cost, wall clock
    return choice


def run_fingerprint(series: TiltSeries, spec: ChunkSpec, lines: list[str], r, filter_params: dict | None = None
                    ) -> Fingerprint:
    """What a volume's maps are a function of.

    The arrays the chunks reconstruct (after any filter) and the parameters of the solve
    (``filter_params`` named for a readable refusal).
    """
    from .. import __version__

    method = get_method(spec.method)
    run = {
        "chemtomo": __version__, "method": spec.method, "constants": spec.constants,
        "backend": spec.backend, "group": spec.group, "geometry": spec.geometry, "lines": list(lines),
        **({} if spec.haadf_geometry is None else {"haadf_geometry": spec.haadf_geometry}),
        "response_ratios": None if r is None else [float(v) for v in r], **(filter_params or {}),
    }
    clash = sorted(set(run) & set(method.Params.names()))
    if clash:
        raise ValueError(f"method {spec.method!r}: parameter name(s) {clash} clash with the run's fingerprint keys")
    params = {**spec.params.as_dict(), **run}
    inputs = {f"eds {ln}": array_sha256(series.eds[ln]) for ln in lines}
    if series.haadf is not None and method.needs_haadf:
        inputs["haadf"] = array_sha256(series.haadf)
    return Fingerprint(params, inputs)
