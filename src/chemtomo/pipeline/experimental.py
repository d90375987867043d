"""Real data end to end: the stages of the experimental path, run in order.

The path of Yuan et al. 2020, section 3.2, for files as microscopes write them;
each stage lives in its own module and takes one frozen options object:

1. :func:`chemtomo.preprocess.raw.load_line_maps` (:class:`LineMapOptions`) -
   open the tilt files, turn each spectrum image into background-subtracted
   line maps and keep each tilt's HAADF image;
2. :func:`chemtomo.preprocess.series.preprocess_tilt_series`
   (:class:`PreprocessOptions`) - register HAADF to EDS per tilt, align the
   tilt series, bin, normalise shadowing, filter, clip, pad;
3. :func:`reconstruct_experimental` (:class:`ReconstructionOptions`) - every
   slice along the tilt axis by each method, with
   :func:`chemtomo.pipeline.reconstruct_series`, cropped and quantified;
4. :func:`write_outputs` (:class:`OutputOptions`) - ``result.h5``
   (:mod:`chemtomo.io.result` plus the groups of
   :mod:`chemtomo.io.experimental_result`), TIFF/MRC stacks and the figures of
   :mod:`chemtomo.report.volume`, staged and moved into place only when all
   of it is written.

:func:`run_experimental` chains them. Every step takes and returns NumPy
arrays or HyperSpy signals, so a HyperSpy/exSpy user can enter at any step.
The names of the stages' modules are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .._options import with_overrides
from ..io.experimental_result import read_experimental
from ..io.factors import resolve_factors
from ..preprocess.align import compare_with_tomviz
from ..preprocess.filters import FILTER_SIGMA_PX
from ..preprocess.raw import LineMapOptions, LineMaps, check_lines, load_line_maps
from ..preprocess.response import fit_response_ratios
from ..preprocess.series import (
    ALIGN_METHODS,
    REGISTER_METHODS,
    Preprocessed,
    PreprocessOptions,
    auto_pad,
    preprocess_tilt_series,
)
from ..reconstruct import canonical_name, get_method
from ..tiltseries import TiltSeries
from .distributed import keep_operator
from .options import DEFAULT_METHODS, OutputOptions, ReconstructionOptions, route_overrides
from .volume import VolumeResult, prepare_series, reconstruct_series

#: The stages of :func:`run_experimental` and their options classes.
STAGES = {"line_maps": LineMapOptions, "preprocess": PreprocessOptions, "reconstruction": ReconstructionOptions,
          "output": OutputOptions}


# --------------------------------------------------------------------------- 3. reconstruction

def reconstruct_experimental(series: TiltSeries, factors, options: ReconstructionOptions | None = None, *,
                             filter_sigma: float | None = FILTER_SIGMA_PX, crop_px: int = 0, progress: bool = True,
                             unfiltered: TiltSeries | None = None, absorbed: dict | None = None,
                             detector_facts: dict | None = None, series_filter_sigma: float | None = None,
                             **overrides) -> dict[str, VolumeResult]:
    """Every slice of ``series`` by each method (EDS-only SIRT, HEBT, the regularised solvers), quantified.

    Parameters
    ----------
    series : TiltSeries
        The preprocessed series (:func:`chemtomo.preprocess.preprocess_tilt_series`).
    factors : Factors
        Resolved factors of the series' lines (:func:`chemtomo.io.factors.resolve_factors`).
    options : ReconstructionOptions, optional
        Methods, their parameters, mask, chunks, engine (``factors``,
        ``beam_kev`` and ``efficiency`` are not used here: ``factors`` is resolved).
    filter_sigma : float or None
        Gaussian filter (pixels) of the EDS maps before reconstructing
        (default 0.8); None when the preprocessing filtered them (as
        :func:`run_experimental` does).
    crop_px : int
        The padding of the preprocessing: the volumes are cropped back to the
        field of view, ``(nx - 2 crop_px)`` square in (z, x), before the mask
        and the fractions are computed.
    progress : bool
    unfiltered : TiltSeries, optional
        The series before its Gaussian filter, for the methods that model the counts' noise.
    absorbed : dict, optional
        With ``options.absorption``: receives method -> :class:`~chemtomo.pipeline.raw_absorption.RawAbsorption`
        (each method runs inside :func:`~chemtomo.pipeline.absorption.reconstruct_absorption_corrected`;
        the returned results are the corrected ones; a bimodal method keeps the response
        ratios fitted on the uncorrected series: refitted on a corrected NCEM series,
        at bin 4, NNLS set r_Mg to 0).
    detector_facts : dict, optional
        The files' detector facts, for ``options.absorption`` with ``detectors="file"``.
    series_filter_sigma : float, optional
        With ``filter_sigma`` None: the filter the preprocessing gave ``series`` (pixels,
        per image), for the response-ratio fit (the HAADF filtered the same way, the EDS
        noise from ``unfiltered``; :func:`chemtomo.preprocess.fit_response_ratios`).
    **overrides
        Fields of :class:`ReconstructionOptions` by name (``n_iter=20``), replacing those of ``options``.

    Returns
    -------
    dict method -> VolumeResult

    Notes
    -----
    Methods that model the counts' noise (a registered method's ``raw_counts``) get
    ``unfiltered`` when given, and the automatic rules score it, with its
    variance-to-mean factor estimated (line maps are background-subtracted and
    normalised, not raw counts); the response ratios are fitted once, on
    ``series``, for every bimodal method (with a HAADF at tilts of its own, by
    :func:`chemtomo.pipeline.reconstruct_series` for each, on the shared tilts or
    through the reconstruction). ``quantify_lines`` (default all)
    restricts the weight and atomic fractions to some lines, as the paper left
    C and N out of its quantification while keeping them in the HEBT
    reconstruction. ``backend`` (default: the engine's) and ``engine_options``
    go to :func:`chemtomo.pipeline.reconstruct_series` unchanged; with a
    ``store`` and several methods, each method gets its own store.
    """
    o = with_overrides(options, ReconstructionOptions, overrides, "reconstruction options")
    n_iter, alpha, chunk_slices, backend = o.n_iter, o.alpha, o.chunk_slices, o.backend
    engine_options = o.engine_options
    quantify_lines, mask_method, threshold, auto = o.quantify_lines, o.mask_method, o.threshold, o.auto
    method_options, auto_grid = o.method_options, o.auto_grid
    methods = [canonical_name(m) for m in o.methods]
    out = {}
    auto_for = set(methods) if auto is True else set(auto or ())
    rr = None
    if series.haadf is not None and series.shares_angles and any(get_method(m).needs_haadf for m in methods):
        # (a HAADF at its own tilts: fitted per method by reconstruct_series)
        if filter_sigma:  # filtered here: the noise from the series itself
            prepared = prepare_series(series, filter_sigma, "image")
            rr = fit_response_ratios(series.haadf, {ln: prepared.eds[ln] for ln in series.lines}, series.eds,
                                     filter_sigma, "image", "estimate")
        else:  # filtered upstream with series_filter_sigma (not known: no noise correction)
            rr = fit_response_ratios(series.haadf, series.eds,
                                     unfiltered.eds if (unfiltered is not None and series_filter_sigma) else None,
                                     series_filter_sigma, "image", "estimate")
    with keep_operator():  # the methods reconstruct one series: one projector, built once
        for m in methods:
            kw = dict(engine_options or {})
            if backend is not None:
                kw["backend"] = backend
            if kw.get("store") and len(methods) > 1:  # one resumable store per method
                st = Path(kw["store"])
                kw["store"] = st.with_name(f"{st.stem}-{m}{st.suffix}")
            given = {"n_iter": iterations_for(n_iter, m),
                     "alpha": alpha if "alpha" in get_method(m).Params.names() else None}
            params = {**{k: v for k, v in given.items() if v is not None}, **(method_options or {}).get(m, {})}
            call = dict(filter_sigma=filter_sigma, mask_method=mask_method, threshold=threshold,
                        chunk_slices=chunk_slices, progress=progress, auto=m in auto_for,
                        response_ratios=rr if get_method(m).needs_haadf else None, counts=unfiltered,
                        noise_factor="estimate", auto_grid=(auto_grid or {}).get(m), **kw)
            if o.absorption is None:
                out[m] = _finish(reconstruct_series(series, factors, m, params, **call), factors, crop_px,
                                 quantify_lines, mask_method, threshold)
                continue
            from .absorption import reconstruct_absorption_corrected
            from .raw_absorption import absorption_record, correction_kwargs, density_note

            t0 = time.perf_counter()
            ab = reconstruct_absorption_corrected(series, factors, m, params=params,
                                                  **correction_kwargs(o.absorption, detector_facts), **call)
            seconds = time.perf_counter() - t0
            unc = _finish(ab.uncorrected, factors, crop_px, quantify_lines, mask_method, threshold)
            res = _finish(ab.corrected, factors, crop_px, quantify_lines, mask_method,
                          float(unc.composition.threshold.value), always=True)
            if absorbed is not None:
                absorbed[m] = absorption_record(ab, unc, res, crop_px, density_note(o.absorption), seconds)
            out[m] = res
    return out


def _finish(res: VolumeResult, factors, crop_px: int, quantify_lines, mask_method, threshold,
            always: bool = False) -> VolumeResult:
    """A result cropped to the field of view and quantified over ``quantify_lines`` (when either applies)."""
    if crop_px:
        res = crop_result(res, crop_px)
    if always or crop_px or (quantify_lines is not None and list(quantify_lines) != list(res.lines)):
        res = requantify(res, factors, quantify_lines or res.lines, mask_method, threshold)
    return res


def iterations_for(n_iter: int | dict | None, method: str) -> int | None:
    """The iteration count of ``method``, or None for the method's default.

    ``n_iter`` itself, or its entry for ``method`` (else its ``"default"`` entry, else None).
    """
    if isinstance(n_iter, dict):
        n_iter = n_iter.get(method, n_iter.get("default"))
    return None if n_iter is None else int(n_iter)


def crop_result(res: VolumeResult, crop_px: int) -> VolumeResult:
    """The maps cropped by ``crop_px`` on every side in (z, x) (composition to be recomputed).

    Parameters
    ----------
    res : VolumeResult
    crop_px : int
        Pixels to remove on each side.

    Returns
    -------
    VolumeResult
        With the cropped geometry (and HAADF volume); ``parameters`` record ``crop_px`` and the padded
        geometry.
    """
    from ..geometry import TiltGeometry

    c = int(crop_px)
    n = res.maps.shape[-1]
    if not 0 <= 2 * c < n - 1:
        raise ValueError(f"cannot crop {c} px from each side of a {n}-pixel grid")
    maps = np.ascontiguousarray(res.maps[:, :, c:n - c, c:n - c])
    g = res.geometry
    geom = TiltGeometry(g.angles_deg, g.n_pixels - 2 * c, g.pixel_nm, g.n_grid - 2 * c,
                        grid_pixel_nm=g.grid_pixel_nm)
    params = dict(res.parameters, crop_px=c, padded_geometry=g.key(), geometry=geom.key())
    haadf = None if res.haadf_volume is None else np.ascontiguousarray(res.haadf_volume[:, c:n - c, c:n - c])
    return replace(res, maps=maps, geometry=geom, parameters=params, haadf_volume=haadf)


def requantify(res: VolumeResult, factors, lines: Sequence[str], mask_method: str | None = None,
               threshold: float | None = None) -> VolumeResult:
    """The maps quantified (again) over ``lines``: mask and weight/atomic fractions.

    Parameters
    ----------
    res : VolumeResult
    factors : Factors
    lines : sequence of str
        Lines to quantify, among the reconstructed ones.
    mask_method : {"esf", "otsu", "multiotsu"}, optional
        Default: the one the result was made with.
    threshold : float, optional
        A fixed mask threshold.

    Returns
    -------
    VolumeResult
    """
    from ..quantify import quantify

    lines = list(lines)
    bad = [ln for ln in lines if ln not in res.lines]
    if bad:
        raise ValueError(f"quantify_lines {bad} are not among the reconstructed lines {res.lines}")
    idx = [res.lines.index(ln) for ln in lines]
    q = factors.f(lines) if res.factor == "f" else factors.z(lines)
    elements = [factors[ln].element for ln in lines]
    mm = mask_method or res.parameters.get("mask_method", "esf")
    comp = quantify(res.maps[idx], q, factors.atomic_weights(lines), lines, elements, mm, threshold)
    params = dict(res.parameters, quantify_lines=lines, threshold=comp.threshold.as_dict())
    return replace(res, elements=elements, composition=comp, parameters=params)


def bootstrap_experimental(pre: Preprocessed, factors, results: dict, options: ReconstructionOptions,
                           filter_sigma: float | None, replicas: int, seed: int = 0) -> dict:
    """The bootstrap uncertainty of each experimental reconstruction (issue 15).

    What is resampled: the preprocessed line maps before their Gaussian filter and
    their clipping (``pre.unclipped``: background-subtracted, aligned, binned,
    shadowing-normalised), as the map plus a zero-mean Poisson fluctuation of variance
    ``f * max(map, 0)`` (:func:`~chemtomo.reconstruct.bootstrap.poisson_fluctuation`;
    ``f`` the variance-over-mean factor, estimated from the maps: line maps are not raw
    counts); then finished as the data were (:meth:`Preprocessed.finish_maps`: filtered
    per image for the methods that see filtered data, clipped, padded by repeating the
    edge columns), so every replica's expectation is the map the estimate was made
    from. (A Preprocessed without ``unclipped``: replicas around ``pre.unfiltered``,
    filtered with ``filter_sigma``.) The HAADF
    (bimodal methods) gets Gaussian replicas at a level estimated from its images.
    Held fixed: each method's parameters (its automatic choice too), set-up constants,
    response ratios and particle mask; the replicas are cropped and quantified as the
    results were (:func:`~chemtomo.pipeline.uncertainty.bootstrap_uncertainty`).

    Parameters
    ----------
    pre : Preprocessed
    factors : Factors
    results : dict method -> VolumeResult
        :func:`reconstruct_experimental`'s results of ``pre``.
    options : ReconstructionOptions
        The options they were made with.
    filter_sigma : float or None
        The preprocessing's Gaussian filter (pixels).
    replicas : int
        Bootstrap replicas (>= 2).
    seed : int
        Seed of the replicas.

    Returns
    -------
    dict method -> Uncertainty
    """
    from ..reconstruct.autoparam import estimate_noise_factor
    from ..reconstruct.bootstrap import poisson_fluctuation
    from .uncertainty import bootstrap_uncertainty

    eng = {k: v for k, v in (options.engine_options or {}).items() if k in ("scheduler", "memory_budget_gb")}
    filt = (filter_sigma, "image") if (filter_sigma and pre.unfiltered is not None) else None
    draw, nf = None, "estimate"
    if pre.unclipped is not None:
        lines = pre.series.lines
        nf = estimate_noise_factor([pre.unclipped[ln] for ln in lines])

        def draw(rng, filtered):
            return pre.finish_maps({ln: poisson_fluctuation(pre.unclipped[ln], rng, nf) for ln in lines}, filtered)

    out = {}
    for m, res in results.items():
        out[m] = bootstrap_uncertainty(
            pre.series, factors, m, None, replicas=replicas, seed=seed, result=res, counts=pre.unfiltered,
            noise_factor=nf, crop_px=pre.pad_px, replica_filter=filt, filter_sigma=None,
            mask_method=options.mask_method, chunk_slices=options.chunk_slices, draw_eds=draw, **eng)
    return out


# --------------------------------------------------------------------------- 4. outputs

@dataclass
class ExperimentalResult:
    """Everything :func:`run_experimental` made.

    Attributes
    ----------
    pre : Preprocessed
    results : dict method -> VolumeResult
    primary : str
        The method written at the top level of ``result.h5``.
    factors : Factors
    timings_s : dict
        Seconds per step.
    tomviz : dict or None
        The comparison with a tomviz alignment.
    paths : dict
        What was written (``result``, ``export``, ``figures``).
    inputs : list
        The raw files.
    raw_description : dict or None
        The raw series' description (:meth:`RawTiltSeries.describe`).
    uncertainty : dict method -> Uncertainty
        The bootstrap of each result (``ReconstructionOptions.replicas``; empty without).
    absorption : dict method -> RawAbsorption
        The absorption correction of each result (``ReconstructionOptions.absorption``;
        empty without): ``results`` hold the corrected reconstructions.
    """

    pre: Preprocessed
    results: dict
    primary: str
    factors: object
    timings_s: dict = field(default_factory=dict)
    tomviz: dict | None = None
    paths: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    raw_description: dict | None = None
    uncertainty: dict = field(default_factory=dict)
    absorption: dict = field(default_factory=dict)

    @property
    def primary_result(self) -> VolumeResult:
        """The result of the primary method."""
        return self.results[self.primary]


def write_outputs(out, exp: ExperimentalResult, options: OutputOptions | None = None, *,
                  provenance_extra: dict | None = None, **overrides) -> dict:
    """Write ``result.h5``, the stacks (``export/``) and the figures (``figures/``) into folder ``out``.

    Everything is written into a temporary folder beside the outputs and moved
    into place only when all of it succeeded (:func:`chemtomo.io.experimental_result.staged_folder`):
    a failure leaves no half output. Existing files of the same names are replaced.

    Parameters
    ----------
    out : path
        The output folder.
    exp : ExperimentalResult
    options : OutputOptions, optional
        Stack formats and kinds, figures (default: its defaults).
    provenance_extra : dict, optional
        Added to the result's provenance.
    **overrides
        Fields of :class:`OutputOptions` by name (``figures=False``).

    Returns
    -------
    dict
        ``result`` (path), ``export`` and ``figures`` (lists of paths).
    """
    from ..io.experimental_result import staged_folder, write_experimental_groups
    from ..io.export import export_result_volumes
    from ..io.provenance import provenance
    from ..io.result import write_result
    from ..io.signals import write_result_signals

    o = with_overrides(options, OutputOptions, overrides, "output options")
    with staged_folder(out) as stage:
        prov = provenance(exp.inputs, pipeline="chemtomo.pipeline.experimental", raw=exp.raw_description,
                          preprocess=exp.pre.summary(), factors=exp.factors.as_dict(),
                          response_ratios={m: (r.response_ratios.as_dict() if r.response_ratios else None)
                                           for m, r in exp.results.items()},
                          tomviz=exp.tomviz, timings_s=exp.timings_s, **(provenance_extra or {}))
        result_path = stage / "result.h5"
        absorbed = exp.absorption.get(exp.primary)
        write_result(result_path, exp.primary_result, prov, uncertainty=exp.uncertainty.get(exp.primary),
                     absorption=None if absorbed is None else absorbed.record)
        write_experimental_groups(result_path, exp.results, exp.primary, exp.pre, timings_s=exp.timings_s,
                                  tomviz=exp.tomviz, primary_at_top=True)
        written = {"result": "result.h5", "export": [], "signals": [], "figures": []}
        formats = list(o.export)
        if formats:
            paths = export_result_volumes(exp.primary_result, stage / "export", formats, o.export_kinds,
                                          map_units=o.map_units, prefix=f"{exp.primary}_")
            written["export"] = [str(p.relative_to(stage)) for p in paths]
        if o.signals:
            paths = write_result_signals(exp.primary_result, stage / "signals", format=o.signals,
                                         map_units=o.map_units, provenance=prov, prefix=f"{exp.primary}_")
            written["signals"] = [str(p.relative_to(stage)) for p in paths]
        if o.figures:
            from ..report.volume import draw_result_figures

            figs = draw_result_figures(result_path, stage / "figures", processes=o.figure_processes)
            written["figures"] = [str(p.relative_to(stage)) for p in figs]
    out = Path(out)
    return {"result": out / "result.h5", "export": [out / p for p in written["export"]],
            "signals": [out / p for p in written["signals"]], "figures": [out / p for p in written["figures"]]}


# --------------------------------------------------------------------------- the whole path

def run_experimental(inputs, lines: Sequence[str], out=None, *, line_maps: LineMapOptions | None = None,
                     preprocess: PreprocessOptions | None = None,
                     reconstruction: ReconstructionOptions | None = None, output: OutputOptions | None = None,
                     progress: bool = True, **overrides) -> ExperimentalResult:
    """Raw tilt files -> line maps -> registration -> alignment -> EDS-SIRT and HEBT -> quantified outputs.

    Parameters
    ----------
    inputs : folder, file list, or RawTiltSeries
    lines : list of str
        X-ray lines to map and reconstruct.
    out : path, optional
        Output folder (``result.h5``, ``export/``, ``figures/``); None writes nothing.
    line_maps : LineMapOptions, optional
        Angles, pixel size, HAADF title, line method and windows.
    preprocess : PreprocessOptions, optional
        Registration, alignment, binning, shadowing, filter (applied here, not
        again in the reconstruction), padding.
    reconstruction : ReconstructionOptions, optional
        Factors, methods and their parameters, mask, chunks, engine.
    output : OutputOptions, optional
        Stacks, figures, the tomviz comparison.
    progress : bool
        Progress bars on standard error.
    **overrides
        Any field of those four classes by name (``bin_factor=1, n_iter=20,
        figures=False``), replacing that field of the stage's options; a
        name no stage has is a ValueError listing them.

    Returns
    -------
    ExperimentalResult
    """
    timings = {}
    t0 = time.perf_counter()
    given = {"line_maps": line_maps, "preprocess": preprocess, "reconstruction": reconstruction, "output": output}
    routed = route_overrides(overrides, STAGES)
    lo, po, ro, oo = (with_overrides(given[s], cls, routed[s], f"{s} options") for s, cls in STAGES.items())

    methods = [canonical_name(m) for m in ro.methods]
    check_lines(lines)
    lm = load_line_maps(inputs, lines, lo, progress=progress)
    timings["load_line_maps"] = time.perf_counter() - t0
    if lm.haadf is None and any(get_method(m).needs_haadf for m in methods):
        bimodal = [m for m in methods if get_method(m).needs_haadf]
        raise ValueError(f"methods {bimodal} need HAADF images and these files "
                         "have none; use --method eds_sirt")
    beam = ro.beam_kev if ro.beam_kev is not None else lm.beam_kev
    fac = resolve_factors(ro.factors, lines, beam, ro.efficiency)  # fail on a missing factor before the heavy work
    pre = preprocess_tilt_series(lm.eds, lm.haadf, lm.angles_deg, lm.pixel_nm, po,
                                 metadata={"beam_kev": beam} if beam is not None else {}, progress=progress)
    pre.windows_kev = lm.windows_kev
    if lm.raw is not None:
        pre.notes.extend(lm.raw.notes)
    timings["preprocess"] = pre.timings_s.get("total", 0.0)
    tv = None
    if oo.compare_tomviz is not None:
        tv = compare_with_tomviz(pre.alignment, oo.compare_tomviz, oo.tomviz_angles_deg)
    t1 = time.perf_counter()
    absorbed: dict = {}
    results = reconstruct_experimental(pre.series, fac, ro, filter_sigma=None, series_filter_sigma=pre.filter_sigma,
                                       crop_px=pre.pad_px, progress=progress,
                                       unfiltered=pre.unfiltered, absorbed=absorbed, detector_facts=lm.eds_detector)
    timings["reconstruct"] = time.perf_counter() - t1
    unc = {}
    if ro.replicas:
        t3 = time.perf_counter()
        unc = bootstrap_experimental(pre, fac, results, ro, po.filter_sigma, ro.replicas, ro.seed)
        timings["bootstrap"] = time.perf_counter() - t3
    bimodal = [m for m in methods if get_method(m).needs_haadf]
    primary = bimodal[-1] if bimodal else methods[-1]
    inputs_list = lm.raw.inputs() if lm.raw is not None else []
    exp = ExperimentalResult(pre, results, primary, fac, timings, tv, {}, inputs_list,
                             lm.raw.describe() if lm.raw is not None else None, unc, absorbed)
    if out is not None:
        t2 = time.perf_counter()
        exp.paths = write_outputs(out, exp, oo)
        timings["write_outputs"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return exp


__all__ = [
    "ALIGN_METHODS", "DEFAULT_METHODS", "REGISTER_METHODS", "STAGES", "ExperimentalResult", "LineMapOptions",
    "LineMaps", "OutputOptions", "PreprocessOptions", "Preprocessed", "ReconstructionOptions", "auto_pad",
    "bootstrap_experimental",
    "check_lines", "compare_with_tomviz", "crop_result", "iterations_for", "load_line_maps",
    "preprocess_tilt_series", "read_experimental", "reconstruct_experimental", "requantify", "resolve_factors",
    "run_experimental", "write_outputs",
]
