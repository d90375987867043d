"""Calibration of the bootstrap uncertainty on the specimen suite (issue 15).

For each specimen and method, ``seeds`` independent noise realisations of the same
noiseless tilt series (the benchmark's specimen, slices and dose) are each
reconstructed and given a bootstrap uncertainty (``replicas`` Poisson replicas of
their counts, with the plug-in bias estimate). Against the specimen's truth:

coverage
    The share of (seed, element) pairs whose nominal ``interval`` (90 %) interval
    contains the truth: for the region means (the specimen's regions as labelled, and
    their interiors eroded by ``resolution_px``) and for the voxels (all particle
    voxels inside the measured mask; those in uniform interiors: every voxel within
    ``resolution_px`` of them inside the particle and of the same composition within
    ``uniform_tol``; and the rest, near interfaces and the surface). One number per
    interval definition (:data:`DEFINITIONS`). The bootstrap runs with
    ``interval_method="bias_calibrated"`` (one more solve per realisation, ``T(T(x))``);
    the other definitions' bounds are recovered from its percentile bounds and plug-in
    bias, and its factors are reported (``calibration_factors``). The headline keys
    ``coverage_region_90`` and ``coverage_voxel_90`` are ``bias_scaled``'s (voxels: the
    percentile interval widened by the method's calibrated multiple of the plug-in bias,
    :data:`~chemtomo.reconstruct.bootstrap.BIAS_SCALES`; region means: as ``bias_calibrated``)
    for a method with a calibrated scale, else the percentile interval's.
se_over_seed_spread
    The median over particle voxels and elements of (mean over seeds of the bootstrap
    standard error) / (standard deviation over the seeds of the estimates).
bias
    The estimator's bias measured over the seeds (mean of the estimates minus the
    truth) against the standard error, and how well the plug-in estimate (the
    bootstrap's ``T(x) - x``) follows it (correlation and slope over voxels).

The method's parameters are fixed for all seeds: the benchmark's automatic choice for
its noise seed at the study's dose (passed in), else the automatic rule run once on
that series. Layering: studies sit below the pipeline, so :func:`run_uncertainty_study`
takes ``reconstruct_series`` and ``bootstrap_uncertainty`` as arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_erosion, maximum_filter, minimum_filter

from ..quantify import ESF_FALLBACK
from ..reconstruct import get_method
from ..reconstruct.bootstrap import BIAS_SCALES
from ..simulate.specimens import make_specimen, simulate_series
from ..tiltseries import TiltSeries
from .benchmark import BenchmarkConfig, Truth, dose_key, sub_series

#: Interval definitions measured (see :func:`chemtomo.reconstruct.bootstrap.summarize`).
DEFINITIONS = ("percentile", "bias_widened", "bias_corrected", "bias_calibrated", "bias_scaled")
#: The definition behind the headline keys ``coverage_region_90`` and ``coverage_voxel_90`` for a method with
#: a calibrated bias scale (:data:`~chemtomo.reconstruct.bootstrap.BIAS_SCALES`); the others: :data:`FALLBACK`.
HEADLINE = "bias_scaled"
#: The headline definition of a method without calibrated bias scales.
FALLBACK = "percentile"


@dataclass
class UncertaintyStudyConfig:
    """What the calibration runs (the specimens, methods, grid and slices come from the benchmark's config).

    Attributes
    ----------
    seeds : int
        Independent noise realisations per specimen and method (0: no study).
    replicas : int
        Bootstrap replicas per realisation.
    dose : float
        EDS dose (x the paper's).
    methods : tuple of str or None
        Methods (default: those of the benchmark's config among eds_sirt, hebt_sirt, fused_tv).
    interval : float
        Probability of the intervals.
    resolution_px : int
        Erosion (voxels) of the regions' interiors and the neighbourhood radius of the
        uniform voxels.
    uniform_tol : float
        Largest weight-fraction change within ``resolution_px`` of a uniform voxel.
    noise_seed : int
        Seed of the realisations (realisation ``j`` draws from ``SeedSequence([noise_seed, j])``).
    haadf_sigma : str
        The bootstrap's HAADF noise model (``bootstrap_uncertainty(haadf_sigma=...)``):
        ``"poisson"`` (the simulated HAADF images are counts) or ``"estimate"``.
    """

    seeds: int = 16
    replicas: int = 20
    dose: float = 1.0
    methods: tuple | None = None
    interval: float = 0.9
    resolution_px: int = 2
    uniform_tol: float = 0.02
    noise_seed: int = 1000
    haadf_sigma: str = "poisson"

    @classmethod
    def quick(cls) -> UncertaintyStudyConfig:
        """Few seeds and replicas: a smoke run of the study, not a calibration."""
        return cls(seeds=4, replicas=10)

    def __post_init__(self):
        if isinstance(self.seeds, bool) or int(self.seeds) < 0 or (0 < int(self.seeds) < 2):
            raise ValueError(f"seeds must be 0 (no study) or >= 2 (a spread over seeds), got {self.seeds!r}")
        if isinstance(self.replicas, bool) or int(self.replicas) < 2:
            raise ValueError(f"replicas must be an integer >= 2, got {self.replicas!r}")
        if not (np.isfinite(self.dose) and self.dose > 0):
            raise ValueError(f"dose must be a positive number (1 = the paper's), got {self.dose!r}")


def _ball(r: int) -> np.ndarray:
    g = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return (g**2).sum(axis=0) <= r * r


def voxel_classes(truth: Truth, resolution_px: int, tol: float) -> np.ndarray:
    """Uniform interior voxels: within ``resolution_px`` all inside the particle and within ``tol`` in composition."""
    fp = _ball(int(resolution_px))
    inside = binary_erosion(truth.particle, fp, border_value=1) if resolution_px else truth.particle
    spread = np.max([maximum_filter(w, footprint=fp) - minimum_filter(w, footprint=fp) for w in truth.weight], axis=0)
    return inside & (spread <= tol)


def intervals(low, high, bias, definition: str, bound=None, factor=None):
    """The interval of ``definition`` from the percentile bounds and the plug-in bias (as ``summarize``).

    ``bound``: the bias size of ``"bias_widened"`` (default ``|bias|``; a region's: the mean of its voxels' ``|bias|``);
    ``factor``: the double-bootstrap factor ``c`` of ``"bias_calibrated"`` (and of ``"bias_scaled"``'s region
    means) or the calibrated voxel scale ``k`` of ``"bias_scaled"`` (the widening is ``c`` or ``k`` times that
    size).
    """
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if definition == "percentile":
        return low, high
    b = np.asarray(bias, np.float64)
    if definition in ("bias_widened", "bias_calibrated", "bias_scaled"):
        bb = np.abs(b) if bound is None else np.asarray(bound, np.float64)
        if definition != "bias_widened":
            if factor is None:
                raise ValueError(f"the {definition!r} interval needs its factor (factor=...)")
            bb = float(factor) * bb
        return low - bb, high + bb
    if definition == "bias_corrected":
        return low - b, high - b
    raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")


def _draw(clean: TiltSeries, seed: int, j: int) -> TiltSeries:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(j)]))
    eds = {ln: rng.poisson(np.asarray(clean.eds[ln], np.float64)).astype(np.float32) for ln in clean.lines}
    haadf = None if clean.haadf is None else rng.poisson(np.asarray(clean.haadf, np.float64)).astype(np.float32)
    return TiltSeries(clean.angles_deg, clean.pixel_nm, eds, haadf, {**clean.metadata, "noise": "poisson", "seed": j})


def calibrate_case(clean: TiltSeries, factors, truth: Truth, method: str, params: dict, ucfg: UncertaintyStudyConfig,
                   reconstruct: Callable, bootstrap: Callable, mask_method: str = "esf") -> dict:
    """One specimen and method: ``ucfg.seeds`` realisations, each with its bootstrap; the coverage metrics.

    Parameters
    ----------
    clean : TiltSeries
        The noiseless series (expected counts) on the study's slices.
    factors : Factors
    truth : Truth
        The truth on the same slices.
    method : str
    params : dict
        The method's parameters (fixed for every realisation).
    ucfg : UncertaintyStudyConfig
    reconstruct, bootstrap : callable
        ``reconstruct_series`` and ``bootstrap_uncertainty`` of :mod:`chemtomo.pipeline`.
    mask_method : str

    Returns
    -------
    dict
        ``coverage_region_90``, ``coverage_voxel_90`` (the :data:`HEADLINE` definition for a method with
        calibrated bias scales, else :data:`FALLBACK`; named in ``headline_definition``),
        ``se_over_seed_spread``, ``coverage`` per definition, ``bias`` measures, ``regions``.
    """
    m = get_method(method)
    order = None
    per: dict = {k: [] for k in ("w", "se", "low", "high", "bias", "mask")}
    reg_names = [r for r, mm in truth.regions.items() if mm.any()]
    fp = _ball(int(ucfg.resolution_px))
    interiors = {r: binary_erosion(truth.regions[r], fp) for r in reg_names}
    regs: dict = {}
    t0 = time.perf_counter()
    for j in range(int(ucfg.seeds)):
        ser = _draw(clean, ucfg.noise_seed, j)
        try:
            res = reconstruct(ser, factors, m.name, dict(params), mask_method=mask_method)
        except ValueError as exc:  # the benchmark's fallback: no particle edge for the ESF fit
            if mask_method != "esf" or "edge" not in str(exc):
                raise
            mask_method = ESF_FALLBACK
            res = reconstruct(ser, factors, m.name, dict(params), mask_method=mask_method)
        mask = np.asarray(res.composition.mask, bool)
        given = {**{r: truth.regions[r] & mask for r in reg_names},
                 **{f"{r}_interior": interiors[r] & mask for r in reg_names}}
        given = {r: mm for r, mm in given.items() if mm.any()}
        u = bootstrap(ser, factors, m.name, dict(params), replicas=int(ucfg.replicas), seed=j, interval=ucfg.interval,
                      regions=given, result=res, bias=True, mask_method=mask_method, haadf_sigma=ucfg.haadf_sigma,
                      interval_method="bias_calibrated")
        order = [list(res.elements).index(el) for el in truth.elements]
        s = u.bootstrap.weight
        c = u.bootstrap.calibration["weight"]
        per.setdefault("c_voxel", []).append(c["voxel"])
        per.setdefault("c_region", []).append(c["region"])
        # the percentile bounds: the calibrated ones less the widening c |b|
        for k, v in (("w", s.value), ("se", s.se), ("low", s.low + s.bias_bound), ("high", s.high - s.bias_bound),
                     ("bias", s.bias)):
            per[k].append(np.asarray(v)[order])
        per["mask"].append(mask)
        for r, mm in given.items():
            g = u.bootstrap.regions[r]["weight"]
            e = regs.setdefault(r, {k: [] for k in ("value", "se", "low", "high", "bias", "bias_bound", "truth",
                                                    "factor")})
            for k, v in (("value", g.value), ("se", g.se), ("low", g.low + g.bias_bound),
                         ("high", g.high - g.bias_bound), ("bias", g.bias),
                         ("bias_bound", np.abs(np.asarray(s.bias))[:, mm].mean(axis=1))):
                e[k].append(np.asarray(v)[order])
            e["truth"].append(truth.weight[:, mm].mean(axis=1))
            e["factor"].append(c["region"])
    seconds = time.perf_counter() - t0
    w, se = np.stack(per["w"]), np.stack(per["se"])
    masks = np.stack(per["mask"])
    common = truth.particle & masks.all(axis=0)
    sel = np.broadcast_to(common, w.shape[1:])
    spread = w.std(axis=0, ddof=1)
    ratio = float(np.median(se.mean(axis=0)[sel] / np.maximum(spread[sel], 1e-12)))
    true_bias = w.mean(axis=0) - truth.weight
    plug = np.stack(per["bias"]).mean(axis=0)
    tb, pb = true_bias[sel], plug[sel]
    interior = voxel_classes(truth, ucfg.resolution_px, ucfg.uniform_tol)
    scale = BIAS_SCALES.get(m.name)
    definitions = [d for d in DEFINITIONS if d != "bias_scaled" or scale is not None]
    headline = HEADLINE if scale is not None else FALLBACK
    cover: dict = {}
    for d in definitions:
        hits = {"voxel": [], "voxel_interior": [], "voxel_edge": []}
        for j in range(w.shape[0]):
            lo, hi = intervals(per["low"][j], per["high"][j], per["bias"][j], d,
                               factor=scale if d == "bias_scaled" else per["c_voxel"][j])
            c = (truth.weight >= lo) & (truth.weight <= hi)
            vox = truth.particle & masks[j]
            for name, g in (("voxel", vox), ("voxel_interior", vox & interior), ("voxel_edge", vox & ~interior)):
                if g.any():
                    hits[name].append(c[:, g].ravel())
        out = {k: float(np.concatenate(v).mean()) if v else float("nan") for k, v in hits.items()}
        for which in ("region", "region_interior"):
            rc = []
            for r, e in regs.items():
                if r.endswith("_interior") != (which == "region_interior"):
                    continue
                for j in range(len(e["value"])):
                    lo, hi = intervals(e["low"][j], e["high"][j], e["bias"][j], d, e["bias_bound"][j],
                                       e["factor"][j])
                    rc.extend(((e["truth"][j] >= lo) & (e["truth"][j] <= hi)).tolist())
            out[which] = float(np.mean(rc)) if rc else float("nan")
        cover[d] = out
    regions = {}
    for r, e in regs.items():
        v, tr = np.stack(e["value"]), np.stack(e["truth"])
        regions[r] = {"truth": dict(zip(truth.elements, tr.mean(axis=0).tolist(), strict=True)),
                      "bias": dict(zip(truth.elements, (v - tr).mean(axis=0).tolist(), strict=True)),
                      "se": dict(zip(truth.elements, np.stack(e["se"]).mean(axis=0).tolist(), strict=True)),
                      "seed_spread": dict(zip(truth.elements, v.std(axis=0, ddof=1).tolist(), strict=True)),
                      "plugin_bias": dict(zip(truth.elements, np.stack(e["bias"]).mean(axis=0).tolist(), strict=True)),
                      "plugin_bias_bound": dict(zip(truth.elements, np.stack(e["bias_bound"]).mean(axis=0).tolist(),
                                                    strict=True)),
                      "seeds": int(v.shape[0])}
    return {
        "coverage_region_90": cover[headline]["region"],
        "coverage_voxel_90": cover[headline]["voxel"],
        "se_over_seed_spread": ratio,
        "headline_definition": headline,
        "bias_scale_voxel": scale,
        "coverage": cover,
        "bias": {
            "voxel_rms_bias": float(np.sqrt(np.mean(tb**2))),
            "voxel_median_se": float(np.median(se.mean(axis=0)[sel])),
            "voxel_rms_bias_over_median_se": float(np.sqrt(np.mean(tb**2)) / max(np.median(se.mean(axis=0)[sel]),
                                                                                   1e-12)),
            "plugin_corr": float(np.corrcoef(tb, pb)[0, 1]) if tb.size > 1 and pb.std() > 0 else float("nan"),
            "plugin_slope": float(np.sum(tb * pb) / np.sum(pb * pb)) if np.any(pb) else float("nan"),
            "note": ("bias: mean over seeds of the estimate minus the truth; plugin: the bootstrap's T(x) - x "
                     "averaged over seeds; slope: least-squares true ~ slope * plugin over particle voxels"),
        },
        "regions": regions,
        "calibration_factors": {"voxel": [float(x) for x in per["c_voxel"]],
                                "region": [float(x) for x in per["c_region"]],
                                "note": "bias_calibrated's double-bootstrap factors c per realisation "
                                        "(weight fractions)"},
        "voxels": {"particle_in_every_mask": int(common.sum()), "uniform_interior": int((common & interior).sum())},
        "params": {k: v for k, v in params.items()}, "mask": mask_method,
        "seeds": int(w.shape[0]), "replicas": int(ucfg.replicas), "seconds": seconds,
    }


def _params_from_benchmark(cfg: BenchmarkConfig, suite: dict | None, spec: str, dose: float,
                           method: str) -> dict | None:
    """The method's parameters at the benchmark's automatic choice for ``spec`` at ``dose`` (None: not run)."""
    try:
        chosen = suite[spec][dose_key(dose)]["methods"][method]["auto"]["params"]
    except (KeyError, TypeError):
        return None
    m = get_method(method)
    p = m.apply_choice(m.params(dict(cfg.params.get(m.name, {}))),
                       {k: chosen[k] for k in cfg.grid(m.name) if k in chosen})
    return p.as_dict()


def run_uncertainty_study(cfg: BenchmarkConfig, ucfg: UncertaintyStudyConfig, reconstruct: Callable,
                          bootstrap: Callable, suite: dict | None = None,
                          say: Callable[[str], None] | None = None) -> dict:
    """The calibration over the benchmark's specimens: ``{specimen: {method: calibrate_case(...)}}``.

    Parameters
    ----------
    cfg : BenchmarkConfig
        Specimens, grid size, slices, angles, beam energy, mask method.
    ucfg : UncertaintyStudyConfig
    reconstruct, bootstrap : callable
        ``reconstruct_series`` and ``bootstrap_uncertainty``.
    suite : dict, optional
        The benchmark's ``suite`` (its automatic choices give the parameters).
    say : callable, optional
        Progress messages.

    Returns
    -------
    dict
        The metrics' ``uncertainty`` entry.
    """
    say = say or (lambda msg: None)
    methods = ucfg.methods or tuple(m for m in cfg.methods if m in ("eds_sirt", "hebt_sirt", "fused_tv"))
    a, b = cfg.slice_range()
    angles = np.asarray(cfg.angles_deg, float)
    out: dict = {}
    for name in cfg.specimens:
        spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
        truth = Truth.of(spec, (a, b))
        sim = simulate_series(spec, angles, dose_scale=ucfg.dose, beam_kev=cfg.beam_kev, seed=cfg.noise_seed,
                              elastic="auto")
        clean = sub_series(sim.noiseless, a, b)
        for method in methods:
            params = _params_from_benchmark(cfg, suite, name, ucfg.dose, method)
            if params is None:
                m = get_method(method)
                res = reconstruct(sub_series(sim.series, a, b), sim.factors, m.name, dict(cfg.params.get(m.name, {})),
                                  auto=True, auto_grid=cfg.rule_grid(m.name), auto_slices=cfg.auto_slices,
                                  mask_method=cfg.mask_method)
                params = {k: res.parameters[k] for k in m.Params.names() if k in res.parameters}
            r = calibrate_case(clean, sim.factors, truth, method, params, ucfg, reconstruct, bootstrap,
                               cfg.mask_method)
            out.setdefault(name, {})[method] = r
            say(f"uncertainty {name} {method} {params}: coverage ({r['headline_definition']}) regions "
                f"{r['coverage_region_90']:.2f} voxels "
                f"{r['coverage_voxel_90']:.2f}, se/spread {r['se_over_seed_spread']:.2f}, widened regions "
                f"{r['coverage']['bias_widened']['region']:.2f} voxels {r['coverage']['bias_widened']['voxel']:.2f} "
                f"({r['seconds']:.0f} s)")
    return out
