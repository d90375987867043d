"""How far to trust each voxel: bootstrap uncertainty of a tilt series' maps and fractions.

:func:`bootstrap_uncertainty` reconstructs a series as
:func:`~chemtomo.pipeline.volume.reconstruct_series` does, then draws ``R`` replicas of
its data from the noise model and reconstructs them through the same function with the
same method, the same parameters (the automatic choice of the measured run, when one
was made, is reused, not made again per replica), the same volume-level set-up
constants (computed once from the measured data), the same response ratios and the
same particle mask. The replicas are stacked along the slice axis of one tilt series
of ``n_slices * R`` slices: they are extra columns of the same batched solves, chunked
by the pipeline's memory planner and Dask runner like slices.

Noise models
------------
EDS
    Poisson replicas of the measured counts (``source="counts"``, the default) or of
    the fitted model's prediction (``source="model"``: the forward projection of the
    measured maps, scaled per line to the measured total counts), times the counts'
    variance-over-mean factor when it is not 1 (``noise_factor``).
HAADF (methods that use it)
    Gaussian noise of a constant standard deviation ``haadf_sigma`` (HAADF units)
    around the measured HAADF images: given, or ``"estimate"`` (default) from the
    images' second differences (:func:`~chemtomo.reconstruct.bootstrap.estimate_gaussian_sigma`).

Methods that see filtered EDS data (``raw_counts`` False) see each replica filtered
with the run's filter, replica by replica (a filter across the stacked slices would mix
replicas). Replica ``i`` draws from ``SeedSequence(seed).spawn(R)[i]``: its bits do not
depend on the chunking, the passes or the thread count.

Bias-aware intervals (``bias=True``): the plug-in bias ``T(x) - x`` and, for
``interval_method="bias_calibrated"``, one level down ``T(T(x)) - T(x)``, from which
:func:`~chemtomo.reconstruct.bootstrap.calibrate_widening` sets how far to widen.

One module over 500 lines: the driver, its summaries (``_spread_set``: the bias and its
calibration) and the jackknife share the replica layout and the private helpers; split,
each part would import the others' internals.

The optional jackknife (``jackknife=True``) reconstructs the ``n_tilts`` series with one
tilt left out (each its own geometry, so one reconstruction each): its spread measures
the sensitivity to single projections (misalignment, model error) that the counting
noise does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..geometry import columns_to_sinogram, volume_to_columns
from ..physics import Factors
from ..projector.batched import default_group
from ..quantify import atomic_fractions, weight_fractions
from ..reconstruct import MethodParams, get_method
from ..reconstruct.autoparam import estimate_noise_factor
from ..reconstruct.bootstrap import (
    INTERVAL_METHODS,
    Spread,
    bias_scale,
    calibrate_widening,
    check_interval,
    check_replicas,
    estimate_gaussian_sigma,
    gaussian_replica,
    poisson_replica,
    region_means,
    replica_generators,
    summarize,
)
from ..tiltseries import TiltSeries
from .distributed import chunk_operator
from .volume import DEFAULT_METHOD, VolumeResult, prepare_series, reconstruct_series

__all__ = ["SpreadSet", "Uncertainty", "bootstrap_uncertainty"]

log = logging.getLogger("chemtomo.pipeline")

# options of reconstruct_series the bootstrap passes on (the others it sets itself)
_PASSED = ("filter_sigma", "filter_axes", "mask_method", "threshold", "backend", "chunk_slices", "scheduler",
           "memory_budget_gb", "auto", "auto_slices", "auto_grid", "response_ratios", "n_iter", "alpha")

REGULARISED_NOTE = (
    "{method} is regularised: the bootstrap measures the variance of its estimate around its own (biased) "
    "expectation; the intervals cover the expected reconstruction, not the truth, where the regularisation's "
    "bias (smoothing of edges, shrinkage of small features) is comparable to the standard error. "
    "replica mean - estimate estimates that bias only to first order.")
SIRT_NOTE = (
    "{method} stopped after a fixed number of iterations is regularised by early stopping: the intervals cover "
    "the expected reconstruction after those iterations, which is close to the truth inside a uniform region "
    "and blurred across its edges.")


@dataclass
class SpreadSet:
    """The uncertainty of every result of one set of replicas.

    Attributes
    ----------
    maps, weight, atomic : Spread
        Per voxel, shape ``(k, n_slices, n_grid, n_grid)`` (fractions are 0 outside the
        measured particle mask, their spread too).
    regions : dict
        Region name -> {"maps", "weight", "atomic"} -> :class:`Spread` of the region
        means, shape ``(k,)`` (means of the per-voxel values over the region's voxels).
    kind : {"bootstrap", "jackknife"}
    calibration : dict
        With ``interval_method="bias_calibrated"``: quantity -> {"voxel": c, "region": c}, the
        widening factors of :func:`~chemtomo.reconstruct.bootstrap.calibrate_widening`; with
        ``"bias_scaled"``: its voxel scale and the regions' double-bootstrap factor (empty otherwise).
    """

    maps: Spread
    weight: Spread
    atomic: Spread
    regions: dict = field(default_factory=dict)
    kind: str = "bootstrap"
    calibration: dict = field(default_factory=dict)


@dataclass
class Uncertainty:
    """A reconstruction with the uncertainty of its maps and fractions.

    Attributes
    ----------
    result : VolumeResult
        The reconstruction of the measured data.
    bootstrap : SpreadSet
        From the parametric bootstrap's replicas.
    jackknife : SpreadSet or None
        From the leave-one-tilt-out replicas (``jackknife=True``).
    replicas, seed : int
    interval : float
        Probability of the central intervals.
    source : {"counts", "model"}
    noise_factor : float
        Variance over mean of the EDS counts used for the replicas.
    haadf_sigma : float, ndarray or None
        Standard deviation of the HAADF replicas' Gaussian noise (HAADF units; None:
        the method uses no HAADF).
    notes : list of str
        What the intervals mean for this method (the bias-versus-variance note).
    seconds : dict
        Wall time of the measured reconstruction, the replicas and the jackknife (s).
    """

    result: VolumeResult
    bootstrap: SpreadSet
    jackknife: SpreadSet | None
    replicas: int
    seed: int
    interval: float
    source: str
    noise_factor: float
    haadf_sigma: float | np.ndarray | None
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def table(self, quantity: str = "weight") -> list[dict]:
        """Region compositions as rows: region, element, value, se, low, high (one row per element).

        Parameters
        ----------
        quantity : {"weight", "atomic", "maps"}
        """
        if quantity not in ("weight", "atomic", "maps"):
            raise ValueError(f"quantity must be 'weight', 'atomic' or 'maps', got {quantity!r}")
        rows = []
        for name, group in self.bootstrap.regions.items():
            s = group[quantity]
            for i, el in enumerate(self.result.elements):
                rows.append({"region": name, "element": el, "value": float(s.value[i]), "se": float(s.se[i]),
                             "low": float(s.low[i]), "high": float(s.high[i]), "interval": s.interval})
        return rows


def _fractions(maps: np.ndarray, factors: Factors, lines, kind: str, mask) -> tuple[np.ndarray, np.ndarray]:
    q = factors.f(lines) if kind == "f" else factors.z(lines)
    w = weight_fractions(maps, q, mask)
    return w, atomic_fractions(w, factors.atomic_weights(lines))


def _regions(mask: np.ndarray, regions) -> dict[str, np.ndarray]:
    out = {"particle": np.asarray(mask, bool)}
    if regions is None:
        return out
    if isinstance(regions, Mapping):
        for name, m in regions.items():
            m = np.asarray(m)
            if m.dtype != bool or m.shape != mask.shape:
                raise ValueError(f"region {name!r} must be a bool mask of the volume's shape {mask.shape}, "
                                 f"got {m.dtype} {m.shape}")
            out[str(name)] = m
        return out
    labels = np.asarray(regions)
    if labels.shape != mask.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"regions must be an integer label volume of shape {mask.shape} (0: no region) or a "
                         f"mapping name -> bool mask, got {labels.dtype} {labels.shape}")
    for v in np.unique(labels):
        if v != 0:
            out[f"label_{int(v)}"] = labels == v
    return out


def _spread_set(maps, w, a, est_maps, est_w, est_a, regions, interval, kind, how="percentile",
                model=None, model2=None, mask=None, scale=None) -> SpreadSet:
    """Summaries of replica results.

    ``model``: (maps, w, a) of the model's expected data, for the bias; ``model2``: the same one level
    down (``T(T(x))``) and ``mask`` the measured particle mask, for ``how="bias_calibrated"`` and
    ``"bias_scaled"``; ``scale``: the voxel scale ``k`` of ``how="bias_scaled"``.
    """
    names = list(regions)
    masks = [regions[n] for n in names]
    est = {"maps": est_maps, "weight": est_w, "atomic": est_a}
    samples = {"maps": maps, "weight": w, "atomic": a}
    bias = {q: None for q in est} if model is None else \
        {q: np.asarray(t, np.float64) - np.asarray(e, np.float64) for (q, e), t in zip(est.items(), model, strict=True)}
    scaled = how == "bias_scaled"
    double = how == "bias_calibrated" or scaled  # the double bootstrap's factor (voxels: not for bias_scaled)
    if double and (model2 is None or mask is None):
        raise ValueError(f"interval_method {how!r} needs the second-level model reconstruction and the mask")
    if scaled and scale is None:
        raise ValueError("interval_method 'bias_scaled' needs its voxel scale")
    bias2 = {q: None for q in est} if not double else \
        {q: np.asarray(t2, np.float64) - np.asarray(t1, np.float64)
         for q, t1, t2 in zip(est, model, model2, strict=True)}
    first = "percentile" if double else how
    out = SpreadSet(*(summarize(samples[q], est[q], interval, kind, first, bias[q]) for q in est), {}, kind)
    factors = {}
    for q in est if double else ():
        sp = getattr(out, q)
        if scaled:
            c = float(scale)
        else:
            sel = np.broadcast_to(np.asarray(mask, bool), sp.value.shape)
            c = calibrate_widening((sp.value - sp.low)[sel], (sp.high - sp.value)[sel], sp.se[sel], bias[q][sel],
                                   np.abs(bias2[q])[sel], interval)
        bb = c * np.abs(bias[q])
        setattr(out, q, replace(sp, low=sp.low - bb, high=sp.high + bb, method=how, bias_bound=bb, bias2=bias2[q]))
        factors[q] = {"voxel": c}
    per = {q: (region_means(samples[q], masks), region_means(est[q], masks),
               None if model is None else region_means(bias[q], masks),
               None if model is None else region_means(np.abs(bias[q]), masks),
               None if not double else region_means(np.abs(bias2[q]), masks))
           for q in est}
    for j, n in enumerate(names):
        out.regions[n] = {q: summarize(s[..., j], e[..., j], interval, kind, first, None if b is None else b[..., j],
                                       None if bb is None else bb[..., j])
                          for q, (s, e, b, bb, _) in per.items()}
    for q in est if double else ():
        rows = [out.regions[n][q] for n in names]
        dl, dh, se, b1, b2 = (np.concatenate([np.ravel(x) for x in v]) for v in (
            [r.value - r.low for r in rows], [r.high - r.value for r in rows], [r.se for r in rows],
            [r.bias for r in rows], [per[q][4][..., j] for j in range(len(names))]))
        ok = np.isfinite(dl) & np.isfinite(dh) & np.isfinite(se) & np.isfinite(b1) & np.isfinite(b2)
        c = calibrate_widening(dl[ok], dh[ok], se[ok], b1[ok], b2[ok], interval) if ok.any() else 0.0
        for n in names:
            r = out.regions[n][q]
            bb = c * r.bias_bound  # the mean of the region's voxels' |b1|, scaled
            out.regions[n][q] = replace(r, low=r.low - bb, high=r.high + bb, method=how, bias_bound=bb,
                                        bias2=region_means(bias2[q], [regions[n]])[..., 0])
        factors[q]["region"] = c
    out.calibration = factors
    return out


def model_projections(result: VolumeResult, maps, backend: str) -> list[np.ndarray]:
    """Every line's forward projections of ``maps`` ``(n_lines, ...)`` on ``result``'s geometry (float64, >= 0)."""
    geom = result.geometry
    W = chunk_operator(geom.key(), backend, default_group() if backend == "batched" else None)
    return [np.clip(columns_to_sinogram(W.forward(volume_to_columns(np.asarray(v, np.float32))), geom.n_tilts,
                                        geom.n_pixels).astype(np.float64), 0.0, None) for v in maps]


def _model_means(result: VolumeResult, series: TiltSeries, raw: TiltSeries, backend: str) -> dict:
    """The measured maps' forward projections, scaled per line to the measured total counts."""
    out = {}
    for ln, pred in zip(result.lines, model_projections(result, result.maps, backend), strict=True):
        total = float(pred.sum())
        out[ln] = pred * (float(np.asarray(raw.eds[ln], np.float64).sum()) / total if total > 0 else 0.0)
    return out


def _stack(series_list: list[TiltSeries], template: TiltSeries) -> TiltSeries:
    """Tilt series side by side along the slice axis (replica-major)."""
    eds = {ln: np.concatenate([s.eds[ln] for s in series_list], axis=1) for ln in template.lines}
    haadf = None if series_list[0].haadf is None else np.concatenate([s.haadf for s in series_list], axis=1)
    return TiltSeries(template.angles_deg, template.pixel_nm, eds, haadf, dict(template.metadata),
                      haadf_angles_deg=None if haadf is None else template.haadf_angles_deg)


def bootstrap_uncertainty(
    series: TiltSeries,
    factors: Factors,
    method: str = DEFAULT_METHOD,
    params: MethodParams | Mapping | None = None,
    replicas: int = 20,
    seed: int = 0,
    interval: float = 0.9,
    regions=None,
    jackknife: bool = False,
    *,
    source: str = "counts",
    noise_factor: float | str = 1.0,
    haadf_sigma: float | str = "estimate",
    counts: TiltSeries | None = None,
    result: VolumeResult | None = None,
    replicas_per_pass: int | None = None,
    interval_method: str = "percentile",
    bias: bool = False,
    bias_scale_voxel: float | None = None,
    crop_px: int = 0,
    replica_filter: tuple | None = None,
    draw_eds=None,
    **options,
) -> Uncertainty:
    """Reconstruct ``series`` and the uncertainty of its maps and fractions by a parametric bootstrap.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
    method : str
        A registered method (any: the replicas go through its own ``solve``).
    params : MethodParams or dict, optional
        The method's parameters (as for ``reconstruct_series``).
    replicas : int
        Bootstrap replicas (>= 2; the standard error's relative precision is about
        ``1 / sqrt(2 (R - 1))``: 16 % at 20 replicas).
    seed : int
        Seed of the replicas (non-negative).
    interval : float
        Probability of the central intervals (0.9: 5th to 95th percentiles).
    regions : int ndarray or mapping, optional
        Labelled regions: an integer volume ``(n_slices, n_grid, n_grid)`` (0: none; label
        ``v`` is region ``"label_v"``) or name -> bool mask. The measured particle mask
        is always region ``"particle"``.
    jackknife : bool
        Also the leave-one-tilt-out spread (``n_tilts`` more reconstructions).
    source : {"counts", "model"}
        EDS replicas around the measured counts or around the model's prediction.
    noise_factor : float or "estimate"
        Variance over mean of the counts (1: raw Poisson counts).
    haadf_sigma : float, ndarray, "estimate" or "poisson"
        Std of the HAADF replicas' Gaussian noise (HAADF units) for methods using HAADF:
        one number, per pixel (an array broadcastable to the HAADF stack, e.g. for a
        signal-dependent model), ``"poisson"``: ``sqrt(HAADF)`` per pixel (images in
        detected counts), or ``"estimate"``: one number from the images' second
        differences (a constant noise level; it over-states the noise of dark pixels
        when the noise is mostly shot noise, and takes the curvature of sharp, coarsely
        sampled projections for noise: 18x the Poisson level on the benchmark's 24-pixel
        core-shell, docs/uncertainty.md).
    counts : TiltSeries, optional
        The unfiltered counts when ``series`` was filtered upstream (as for
        ``reconstruct_series``); the replicas are drawn around them.
    result : VolumeResult, optional
        The measured reconstruction when already made (with these options); it is
        then not repeated.
    replicas_per_pass : int, optional
        Replicas per call of ``reconstruct_series`` (default: all in one); bounds the
        memory of the stacked series. The replicas are the same whatever it is.
    interval_method : str
        One of :data:`~chemtomo.reconstruct.bootstrap.INTERVAL_METHODS`.
        The bootstrap intervals (:func:`~chemtomo.reconstruct.bootstrap.summarize`); the
        bias methods need ``bias=True``. ``"bias_scaled"`` widens the percentile intervals by
        ``k |T(x) - x|`` per voxel, ``k`` calibrated against the truth of the specimen suite per
        method (``bias_scale_voxel``), and the region means' as ``"bias_calibrated"`` does.
        ``"bias_calibrated"`` reconstructs the model data of ``T(x)`` once more (``T(T(x))``,
        one more solve of ``n_slices`` columns) and widens the percentile intervals by
        ``c |T(x) - x|``, ``c`` calibrated in the plug-in world
        (:func:`~chemtomo.reconstruct.bootstrap.calibrate_widening`; one factor per quantity
        for the voxels, one for the regions; in ``SpreadSet.calibration``).
    bias_scale_voxel : float, optional
        The voxel scale ``k`` of ``interval_method="bias_scaled"`` (default: the method's
        calibrated one, :data:`~chemtomo.reconstruct.bootstrap.BIAS_SCALES`; a method without
        one needs this).
    bias : bool
        Also estimate the estimator's bias by the plug-in bootstrap: the fitted model's
        expected data (the measured maps' forward projections scaled per line to the
        measured counts, with the measured HAADF images) reconstructed exactly as a
        replica, as one more block of columns of the first pass, ``T(x) - x``; stored
        in every :class:`~chemtomo.reconstruct.bootstrap.Spread`'s ``bias``. For a linear
        method it is the mean of infinitely many model replicas minus the estimate.
    crop_px : int
        The padding the measured ``result`` was cropped by
        (:func:`~chemtomo.pipeline.experimental.crop_result`): every replica's maps are
        cropped alike before its fractions. Fractions are over the lines of
        ``result.parameters["quantify_lines"]`` when it holds them
        (:func:`~chemtomo.pipeline.experimental.requantify`), else all. Needs ``result``;
        not with ``bias``, ``jackknife`` or ``source="model"``.
    replica_filter : (sigma, axes), optional
        The Gaussian filter of the replicas of the methods that see filtered data
        (default: the measured run's ``filter_sigma``, ``filter_axes``); for a series
        filtered upstream, the filter it was filtered with (e.g. ``(0.8, "image")``).
    draw_eds : callable, optional
        ``draw_eds(rng, filtered) -> dict line -> stack``: one EDS replica ready for the
        solver, drawn from the replica's generator (``filtered``: the method sees filtered
        data). It replaces the Poisson draw around the counts and ``replica_filter``: the
        raw route draws its replicas before the preprocessing's filter and clipping and
        finishes them as the data were
        (:func:`~chemtomo.pipeline.experimental.bootstrap_experimental`). Not with
        ``source="model"`` or ``bias``.
    **options
        Passed to :func:`~chemtomo.pipeline.volume.reconstruct_series`: ``filter_sigma``,
        ``filter_axes``, ``mask_method``, ``threshold``, ``backend``, ``chunk_slices``,
        ``scheduler``, ``memory_budget_gb``, ``auto``, ``auto_slices``, ``auto_grid``,
        ``response_ratios``, ``n_iter``, ``alpha``.

    Returns
    -------
    Uncertainty

    Raises
    ------
    ValueError
        An unknown method, ``replicas`` < 2, an interval outside (0, 1), an unknown
        ``source`` or option; a method whose prior couples slices (stacked replicas
        would be coupled).
    """
    m = get_method(method)
    if m.halo_slices(m.params(params)):  # its prior couples neighbouring slices: stacked replicas would touch
        raise ValueError(f"{m.name} couples neighbouring slices (slice_coupling), and the bootstrap stacks its "
                         "replicas along the slice axis, so each replica's prior would reach into the next: pass "
                         "params with slice_coupling=False for the bootstrap, or use another method")
    replicas = check_replicas(replicas)
    interval = check_interval(interval)
    if source not in ("counts", "model"):
        raise ValueError(f"source must be 'counts' (replicas of the measured counts) or 'model' (of the fitted "
                         f"model's prediction), got {source!r}")
    if interval_method not in INTERVAL_METHODS:
        raise ValueError(f"interval_method must be one of {INTERVAL_METHODS}, got {interval_method!r}")
    if interval_method.startswith("bias") and not bias:
        raise ValueError(f"interval_method {interval_method!r} needs the bias estimate: pass bias=True")
    scale = bias_scale(m.name, bias_scale_voxel) if interval_method == "bias_scaled" else None
    unknown = sorted(set(options) - set(_PASSED))
    if unknown:
        raise ValueError(f"bootstrap_uncertainty does not take {unknown}; options passed to reconstruct_series: "
                         f"{list(_PASSED)}")
    if replicas_per_pass is not None and (isinstance(replicas_per_pass, bool) or int(replicas_per_pass) < 1):
        raise ValueError(f"replicas_per_pass must be a positive integer, got {replicas_per_pass!r}")
    crop = int(crop_px)
    if crop < 0 or (crop and (result is None or bias or jackknife or source == "model")):
        raise ValueError(f"crop_px must be >= 0 and, when > 0, comes with the (cropped) result and without bias, "
                         f"jackknife or source='model', got crop_px={crop_px!r}, result given: {result is not None}, "
                         f"bias={bias}, jackknife={jackknife}, source={source!r}")
    if draw_eds is not None and (source == "model" or bias):
        raise ValueError(f"draw_eds draws the replicas itself: not with source='model' or bias=True, got "
                         f"source={source!r}, bias={bias}")
    t0 = time.perf_counter()
    if result is None:
        result = reconstruct_series(series, factors, m.name, params, counts=counts, noise_factor=noise_factor,
                                    **options)
    t_measured = time.perf_counter() - t0
    pr = result.parameters
    chosen = m.params({n: pr[n] for n in m.Params.names() if n in pr})  # the auto choice too, when made
    constants = pr.get("constants")
    raw = series if counts is None else counts
    lines = result.lines
    if noise_factor == "estimate":
        noise_factor = estimate_noise_factor([raw.eds[ln] for ln in lines])
    elif isinstance(noise_factor, str):
        raise ValueError(f"noise_factor is a number or 'estimate', got {noise_factor!r}")
    noise_factor = float(noise_factor)
    sigma = None
    if m.needs_haadf:
        if isinstance(haadf_sigma, str):
            if haadf_sigma == "poisson":
                sigma = np.sqrt(np.clip(np.asarray(series.haadf, np.float64), 0.0, None))
            elif haadf_sigma == "estimate":
                sigma = estimate_gaussian_sigma(series.haadf)
            else:
                raise ValueError(f"haadf_sigma must be 'estimate', 'poisson', a number or an array >= 0, "
                                 f"got {haadf_sigma!r}")
        else:
            sigma = np.asarray(haadf_sigma, np.float64)
            if not (np.all(np.isfinite(sigma)) and np.all(sigma >= 0)):
                raise ValueError(f"haadf_sigma must be 'estimate', a number or an array >= 0, got {haadf_sigma!r}")
            np.broadcast_to(sigma, series.haadf.shape)  # a ValueError when it does not fit
            sigma = float(sigma) if sigma.ndim == 0 else sigma
    model_means = _model_means(result, series, raw, pr["backend"]) if (source == "model" or bias) else None
    means = model_means if source == "model" else {ln: raw.eds[ln] for ln in lines}
    mask = np.asarray(result.composition.mask, bool)
    est_maps = np.asarray(result.maps, np.float32)
    qlines = list(pr.get("quantify_lines") or lines)
    qi = [lines.index(ln) for ln in qlines]
    est_w, est_a = _fractions(est_maps[qi], factors, qlines, result.factor, mask)
    regs = _regions(mask, regions)
    rerun = {
        "filter_sigma": None, "mask_method": pr["mask_method"], "threshold": result.composition.threshold.value,
        "backend": pr["backend"], "chunk_slices": options.get("chunk_slices"), "scheduler": options.get("scheduler"),
        "memory_budget_gb": options.get("memory_budget_gb"), "constants": constants,
        "response_ratios": result.response_ratios if m.needs_haadf else None,
        "haadf_volume": False,  # the replicas' maps are all the spread needs
    }
    filt = (pr["filter_sigma"], pr["filter_axes"]) if replica_filter is None else tuple(replica_filter)
    per_pass = replicas if replicas_per_pass is None else min(int(replicas_per_pass), replicas)
    ns = series.n_slices
    shape = (replicas, len(lines)) + est_maps.shape[1:]
    s_maps = np.empty(shape, np.float32)
    s_w, s_a = (np.empty((replicas, len(qlines)) + est_maps.shape[1:], np.float32) for _ in range(2))
    model = None
    t1 = time.perf_counter()
    for a in range(0, replicas, per_pass):
        b = min(a + per_pass, replicas)
        reps = []
        for rng in replica_generators(seed, replicas, a, b):
            eds = {ln: poisson_replica(means[ln], rng, noise_factor) for ln in lines} if draw_eds is None else \
                draw_eds(rng, not m.raw_counts)
            haadf = gaussian_replica(series.haadf, rng, sigma) if m.needs_haadf else None
            rep = TiltSeries(series.angles_deg, series.pixel_nm, eds, haadf, dict(series.metadata),
                             haadf_angles_deg=None if haadf is None else series.haadf_angles_deg)
            reps.append(rep if (m.raw_counts or draw_eds is not None) else prepare_series(rep, *filt))
        if bias and a == 0:  # the model's expected data: one more block of the first pass
            rep = TiltSeries(series.angles_deg, series.pixel_nm,
                             {ln: np.asarray(model_means[ln], np.float32) for ln in lines}, series.haadf,
                             dict(series.metadata))
            reps.append(rep if m.raw_counts else prepare_series(rep, *filt))
        out = reconstruct_series(_stack(reps, series), factors, m.name, chosen, **rerun)
        full = np.shape(out.maps)[2:]
        maps = np.asarray(out.maps, np.float32).reshape((len(lines), len(reps), ns) + full)
        if crop:
            maps = maps[..., crop:full[0] - crop, crop:full[1] - crop]
        if bias and a == 0:
            t_maps = np.array(maps[:, -1])
            model = (t_maps, *_fractions(t_maps, factors, lines, out.factor, mask))
        for i in range(b - a):
            s_maps[a + i] = maps[:, i]
            s_w[a + i], s_a[a + i] = _fractions(maps[qi, i], factors, qlines, out.factor, mask)
        log.info("bootstrap: replicas %d:%d of %d done", a, b, replicas)
    model2 = None
    if interval_method in ("bias_calibrated", "bias_scaled"):  # one level down: T(x)'s model data, reconstructed
        means2 = _model_means(replace(result, maps=model[0]), series, raw, pr["backend"])
        rep = TiltSeries(series.angles_deg, series.pixel_nm, {ln: np.asarray(means2[ln], np.float32) for ln in lines},
                         series.haadf, dict(series.metadata))
        out2 = reconstruct_series(rep if m.raw_counts else prepare_series(rep, *filt), factors, m.name, chosen,
                                  **rerun)
        t2 = np.asarray(out2.maps, np.float32)
        model2 = (t2, *_fractions(t2, factors, lines, out2.factor, mask))
    t_boot = time.perf_counter() - t1
    boot = _spread_set(s_maps, s_w, s_a, est_maps, est_w, est_a, regs, interval, "bootstrap", interval_method,
                       model, model2, mask, scale)
    jack, t_jack = None, 0.0
    if jackknife:
        t2 = time.perf_counter()
        jack = _jackknife(series, counts, factors, m, chosen, constants, result, mask, regs, interval, options)
        t_jack = time.perf_counter() - t2
    notes = [REGULARISED_NOTE.format(method=m.name) if m.raw_counts else SIRT_NOTE.format(method=m.name)]
    if scale is not None:
        c = boot.calibration["weight"]["region"]
        notes.append(f"bias_scaled intervals: per voxel the percentile interval widened by k |T(x) - x| "
                     f"(k = {scale:.3g}, calibrated against the truth of simulated specimens: it covers the truth "
                     "as there for specimens like those); per region by c times the region's mean |T(x) - x|, "
                     f"c = {c:.3g} from the double bootstrap (as bias_calibrated).")
    elif boot.calibration:
        c = boot.calibration["weight"]
        notes.append(f"bias_calibrated intervals: the percentile interval widened by c |T(x) - x|, c from the "
                     f"double bootstrap (weight fractions: c = {c['voxel']:.3g} per voxel, {c['region']:.3g} per "
                     f"region); it assumes the estimator blurs its estimate as it blurs the truth.")
    if pr.get("auto"):
        notes.append("the automatic parameter choice of the measured run is reused for every replica: the "
                     "choice's own variability is not in the spread.")
    return Uncertainty(result, boot, jack, replicas, int(seed), interval, source, noise_factor, sigma, notes,
                       {"measured": t_measured, "replicas": t_boot, "jackknife": t_jack})


def _jackknife(series, counts, factors, m, chosen, constants, result, mask, regs, interval, options) -> SpreadSet:
    """Leave-one-tilt-out reconstructions summarised (one reconstruction per tilt: a new geometry each)."""
    n_t = len(series.angles_deg)
    if n_t < 3:
        raise ValueError(f"the jackknife leaves one tilt out of {n_t}: it needs 3 tilts or more")
    lines = result.lines
    pr = result.parameters
    shape = (n_t, len(lines)) + tuple(np.shape(result.maps)[1:])
    s_maps, s_w, s_a = (np.empty(shape, np.float32) for _ in range(3))

    def drop(s: TiltSeries | None, t: int) -> TiltSeries | None:
        if s is None:
            return None
        keep = np.arange(n_t) != t
        if s.haadf_angles_deg is not None:  # the HAADF at tilts of its own: an EDS tilt left out, the HAADF whole
            return TiltSeries(np.asarray(s.angles_deg)[keep], s.pixel_nm, {ln: s.eds[ln][keep] for ln in s.lines},
                              s.haadf, dict(s.metadata), haadf_angles_deg=s.haadf_angles_deg)
        return TiltSeries(np.asarray(s.angles_deg)[keep], s.pixel_nm, {ln: s.eds[ln][keep] for ln in s.lines},
                          None if s.haadf is None else s.haadf[keep], dict(s.metadata))

    for t in range(n_t):
        out = reconstruct_series(
            drop(series, t), factors, m.name, chosen, counts=drop(counts, t), filter_sigma=pr["filter_sigma"],
            filter_axes=pr["filter_axes"], threshold=result.composition.threshold.value, backend=pr["backend"],
            chunk_slices=options.get("chunk_slices"), scheduler=options.get("scheduler"),
            memory_budget_gb=options.get("memory_budget_gb"), constants=constants,
            response_ratios=result.response_ratios if m.needs_haadf else None, haadf_volume=False)
        s_maps[t] = np.asarray(out.maps, np.float32)
        s_w[t], s_a[t] = _fractions(s_maps[t], factors, lines, out.factor, mask)
    est_maps = np.asarray(result.maps, np.float32)
    est_w, est_a = _fractions(est_maps, factors, lines, result.factor, mask)
    return _spread_set(s_maps, s_w, s_a, est_maps, est_w, est_a, regs, interval, "jackknife")
