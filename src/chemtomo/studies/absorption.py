"""The absorption study (issue 14): X-ray absorption in the specimen, uncorrected and corrected.

A specimen of the suite with a light element beside a heavy one (by default
``oxide_supported``: Al2O3 support under a Pt particle) is simulated with absorption
by the independent forward model (:func:`chemtomo.simulate.absorption.simulate_series_absorbed`:
transmissions by ray marching on the specimen's fine grid), in a field large enough
(``field_nm``) that the light element's line loses 10-40 % of its counts. Each method
of the config then reconstructs the series twice:

- *uncorrected*: :func:`~chemtomo.pipeline.volume.reconstruct_series` (the thin-film model);
- *corrected*: :func:`~chemtomo.pipeline.absorption.reconstruct_absorption_corrected`
  (outer iterations of density estimate, transmissions, ratio correction).

Every slice is reconstructed: the correction's paths run across slices (``mode="3d"``),
so a slab would cut them short. The metrics' keys are
``absorption.<specimen>.uncorrected`` and ``absorption.<specimen>.corrected`` (the first
method of the config; every method under ``absorption.<specimen>.methods.<method>``),
each with ``mse_fraction_inside``, ``region_means``, ``truth_region_means`` (region ->
{element: value}), ``outer_iterations`` (0 uncorrected) and ``seconds``; beside them
``absorbed_fraction`` (line -> 1 - absorbed over thin-film counts, noiseless) and the
light element and line.

A third entry, ``no_absorption``, reconstructs the same specimen simulated *without*
absorption (same noise model and seed), with the uncorrected reconstruction's mask
threshold: the floor a perfect correction would reach. Its inside MSE over the
uncorrected one (``mse_ratio_no_absorption`` in the summary) bounds the corrected
ratio from below: measured (``scripts/absorption_mse_diagnostics.py``, docs/absorption.md)
the corrected reconstruction sits on this floor, which is set by the particle's surface
layer (voxels the mask leaves out) and the reconstruction's resolution, not by absorption.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..physics.absorption import DETECTOR_GEOMETRIES
from ..reconstruct import get_method
from ..simulate.absorption import simulate_series_absorbed
from ..simulate.specimen_series import simulate_series
from ..simulate.specimens import SPECIMENS, make_specimen
from .benchmark import Reconstruct, Truth, dose_key, score

#: The issue's band for the light element's absorbed fraction.
ABSORBED_BAND = (0.10, 0.40)


@dataclass
class AbsorptionStudyConfig:
    """What the absorption study runs.

    Attributes
    ----------
    specimens : tuple of str
        Names in :data:`~chemtomo.simulate.specimens.SPECIMENS` (each needs a light and
        a heavy element; the lightest element is the one scored for absorption).
    field_nm : float
        Field of view (nm): sets the path lengths, hence the absorbed fraction.
    n : int
        Voxels across the field (every slice is reconstructed).
    oversampling : int
        Fine grid of the simulation (and of its ray march).
    angles_deg : tuple of float
        Tilts (degrees).
    dose : float
        EDS dose per tilt relative to the paper's.
    noise : bool
        Poisson noise on the counts.
    detectors : str
        A preset of :data:`~chemtomo.physics.absorption.DETECTOR_GEOMETRIES`, for the
        simulation and the correction.
    methods : tuple of str
        Registered methods; the first one fills ``uncorrected``/``corrected``.
    params : dict
        ``{method: {parameter: value}}`` passed to the reconstruction (default: EDS-SIRT
        at 100 iterations).
    filter_sigma : float or None
        Gaussian filter of the projections (pixels), as ``reconstruct_series``.
    tol, max_outer : float, int
        The correction's stopping rule.
    step_fraction : float
        Ray-march step of the simulation (fine voxels).
    beam_kev : float
    specimen_seed, noise_seed : int
    label : str
    """

    specimens: tuple = ("oxide_supported",)
    field_nm: float = 300.0
    n: int = 24
    oversampling: int = 2
    angles_deg: tuple = tuple(np.arange(-70.0, 71.0, 5.0).tolist())
    dose: float = 1.0
    noise: bool = True
    detectors: str = "super-x"
    methods: tuple = ("eds_sirt",)
    params: dict = field(default_factory=lambda: {"eds_sirt": {"n_iter": 100}})
    filter_sigma: float | None = None
    tol: float = 0.005
    max_outer: int = 5
    step_fraction: float = 1.0
    beam_kev: float = 200.0
    specimen_seed: int = 0
    noise_seed: int = 0
    label: str = "full"

    @classmethod
    def full(cls) -> AbsorptionStudyConfig:
        """``chemtomo benchmark``'s: fused_tv first (the method that meets issue 14's MSE target), then EDS-SIRT.

        fused_tv's uncorrected error is mostly absorption (corrected MSE ratio 0.03); EDS-SIRT's floor without
        absorption is above 0.45 of its uncorrected MSE (docs/absorption.md), so it is reported beside, under
        ``methods``. Not in :meth:`quick`: at n = 16 the response-ratio fit gives O Ka r = 0 and fused_tv cannot run.
        """
        return cls(methods=("fused_tv", "eds_sirt"))

    @classmethod
    def quick(cls) -> AbsorptionStudyConfig:
        """Under a minute on 2 cores: ``oxide_supported``, ``n = 16``, 13 tilts +-60 deg, EDS-SIRT."""
        return cls(n=16, angles_deg=tuple(np.arange(-60.0, 61.0, 10.0).tolist()), label="quick")

    def __post_init__(self):
        bad = [s for s in self.specimens if s not in SPECIMENS]
        if bad or not self.specimens:
            raise ValueError(f"specimens must be names in {sorted(SPECIMENS)}, got {list(self.specimens)}")
        if not (np.isfinite(self.field_nm) and self.field_nm > 0):
            raise ValueError(f"field_nm must be a positive number of nm, got {self.field_nm!r}")
        if int(self.n) != self.n or self.n < 4:
            raise ValueError(f"n must be an integer >= 4, got {self.n!r}")
        if len(self.angles_deg) < 3 or not all(np.isfinite(a) and abs(a) < 90 for a in self.angles_deg):
            raise ValueError(f"angles_deg must be at least 3 tilts in (-90, 90), got {list(self.angles_deg)}")
        if not (np.isfinite(self.dose) and self.dose > 0):
            raise ValueError(f"dose must be a positive number (1 = the paper's dose), got {self.dose!r}")
        if self.detectors not in DETECTOR_GEOMETRIES:
            raise ValueError(f"detectors must be one of {sorted(DETECTOR_GEOMETRIES)}, got {self.detectors!r}")
        if not self.methods:
            raise ValueError("methods must name at least one registered method")
        self.methods = tuple(get_method(m).name for m in self.methods)
        self.angles_deg = tuple(float(a) for a in self.angles_deg)

    def as_dict(self) -> dict:
        """JSON-friendly copy."""
        return asdict(self)


def light_element(specimen) -> str:
    """The specimen's lightest element (lowest atomic number)."""
    import xraylib

    return min(specimen.elements, key=xraylib.SymbolToAtomicNumber)


def _scored(truth: Truth, res, outer: int, seconds: float) -> dict:
    s = score(truth, np.asarray(res.maps), np.asarray(res.composition.weight), list(res.elements))
    return {**s, "outer_iterations": int(outer), "seconds": float(seconds)}


def run_absorption_case(sim, truth: Truth, method: str, cfg: AbsorptionStudyConfig, reconstruct: Reconstruct,
                        correct: Reconstruct, keep: Callable[[str, np.ndarray], None] | None = None,
                        thin=None) -> dict:
    """One method on one absorbed series: uncorrected, then corrected.

    Parameters
    ----------
    sim : SpecimenSimulation
        From :func:`~chemtomo.simulate.absorption.simulate_series_absorbed`.
    truth : Truth
    method : str
    cfg : AbsorptionStudyConfig
    reconstruct : callable
        :func:`chemtomo.pipeline.volume.reconstruct_series`.
    correct : callable
        :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`.
    keep : callable, optional
        ``keep(which, weight)`` receives the weight fractions ``(k, n, n, n)`` in the
        truth's element order (``which``: ``"uncorrected"``, ``"corrected"``).
    thin : SpecimenSimulation, optional
        The same specimen simulated without absorption: reconstructed with the
        uncorrected mask threshold into ``no_absorption`` (the floor of the correction).

    Returns
    -------
    dict
        ``uncorrected`` and ``corrected`` (score entries, ``outer_iterations``,
        ``seconds``; corrected also ``changes``, ``predicted_changes`` and ``converged``),
        ``no_absorption`` (with ``thin``) and ``cost_ratio`` (corrected over uncorrected
        seconds; the uncorrected timed on a second call, after a warm-up call).
    """
    kw = {"params": dict(cfg.params.get(method, {})), "filter_sigma": cfg.filter_sigma}
    reconstruct(sim.series, sim.factors, method, **kw)  # warm-up: the first call pays one-off set-up costs
    t0 = time.perf_counter()
    plain = reconstruct(sim.series, sim.factors, method, **kw)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = correct(sim.series, sim.factors, method, detectors=cfg.detectors, tol=cfg.tol,
                            max_outer=cfg.max_outer, **kw)
    t_corr = time.perf_counter() - t0
    unc = _scored(truth, plain, 0, t_plain)
    cor = {**_scored(truth, res.corrected, res.outer_iterations, t_corr),
           "changes": [float(c) for c in res.changes], "converged": bool(res.converged),
           "predicted_changes": [float(c) for c in getattr(res, "predicted_changes", [])]}
    if keep is not None:
        for which, r in (("uncorrected", plain), ("corrected", res.corrected)):
            els = list(r.elements)
            keep(which, np.asarray(r.composition.weight)[[els.index(el) for el in truth.elements]])
    out = {"uncorrected": unc, "corrected": cor, "cost_ratio": t_corr / t_plain}
    if thin is not None:
        t0 = time.perf_counter()
        floor = reconstruct(thin.series, thin.factors, method, **kw, haadf_volume=False,
                            threshold=float(plain.composition.threshold.value))
        out["no_absorption"] = _scored(truth, floor, 0, time.perf_counter() - t0)
    return out


def summarise_absorption(study: dict) -> dict:
    """Issue 14's targets on the measured numbers, per specimen (first method).

    The light element's region means are those of the regions where the truth holds
    it (mean over them of the absolute error).

    Parameters
    ----------
    study : dict
        ``metrics["absorption"]``.

    Returns
    -------
    dict
        ``cases``: ``{specimen: {mse_ratio, light_region_error_uncorrected,
        light_region_error_corrected, outer_iterations, cost_ratio}}`` (and ``mse_ratio_no_absorption``
        when the entry has ``no_absorption``); ``acceptance``: booleans.
    """
    cases, acc = {}, {}
    for name, e in study.items():
        el, u, c = e["light_element"], e["uncorrected"], e["corrected"]
        truth = c["truth_region_means"]
        regions = [r for r, v in truth.items() if np.isfinite(v[el]) and v[el] > 0]

        def err(entry, regions=regions, el=el, truth=truth):
            return float(np.mean([abs(entry["region_means"][r][el] - truth[r][el]) for r in regions]))

        k = {"mse_ratio": c["mse_fraction_inside"] / u["mse_fraction_inside"],
             "light_regions": regions, "light_region_error_uncorrected": err(u),
             "light_region_error_corrected": err(c), "outer_iterations": c["outer_iterations"],
             "cost_ratio": e["cost_ratio"]}
        if "no_absorption" in e:
            k["mse_ratio_no_absorption"] = e["no_absorption"]["mse_fraction_inside"] / u["mse_fraction_inside"]
        cases[name] = k
        acc[f"absorption_{name}_light_element_absorbed_10_to_40_percent"] = e["light_absorbed_in_band"]
        acc[f"absorption_{name}_corrected_mse_at_most_a_third_of_uncorrected"] = bool(k["mse_ratio"] <= 1 / 3)
        acc[f"absorption_{name}_light_region_mean_within_0.02"] = bool(k["light_region_error_corrected"] <= 0.02)
        acc[f"absorption_{name}_at_most_5_outer_iterations"] = bool(c["converged"] and c["outer_iterations"] <= 5)
    return {"cases": cases, "acceptance": acc}


def run_absorption_study(cfg: AbsorptionStudyConfig, reconstruct: Reconstruct, correct: Reconstruct,
                         say: Callable[[str], None] | None = None) -> dict:
    """Run the absorption study; return its part of the benchmark's metrics.

    Parameters
    ----------
    cfg : AbsorptionStudyConfig
    reconstruct : callable
        :func:`chemtomo.pipeline.volume.reconstruct_series`.
    correct : callable
        :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected` (studies sit
        below the pipeline: the CLI hands both in).
    say : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``absorption``: ``{specimen: {uncorrected, corrected, no_absorption, cost_ratio, methods: {method:
        {uncorrected, corrected, no_absorption, cost_ratio}}, light_element, light_line, absorbed_fraction,
        light_absorbed_in_band, simulate_seconds}}``; ``absorption_config``;
        ``absorption_slices``: per specimen the middle slice of the light element's truth,
        uncorrected and corrected weight fractions (first method); ``absorption_summary``
        (:func:`summarise_absorption`); ``absorption_seconds``.
    """
    say = say or (lambda msg: None)
    t_all = time.perf_counter()
    study: dict = {}
    slices: dict = {}
    for name in cfg.specimens:
        t0 = time.perf_counter()
        spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed, field_nm=cfg.field_nm)
        truth = Truth.of(spec)
        sim = simulate_series_absorbed(spec, cfg.angles_deg, cfg.detectors, cfg.dose, cfg.beam_kev, cfg.noise_seed,
                                       noise=cfg.noise, step_fraction=cfg.step_fraction, elastic="auto")
        thin = simulate_series(spec, cfg.angles_deg, cfg.dose, cfg.beam_kev, cfg.noise_seed, noise=cfg.noise,
                               elastic="auto")
        absorbed = {ln: 1.0 - float(sim.noiseless.eds[ln].sum(dtype=np.float64)
                                    / thin.noiseless.eds[ln].sum(dtype=np.float64)) for ln in sim.lines}
        light = light_element(spec)
        light_line = sim.lines[list(spec.elements).index(light)]
        entry = {"light_element": light, "light_line": light_line, "absorbed_fraction": absorbed,
                 "absorbed_band": list(ABSORBED_BAND),
                 "light_absorbed_in_band": bool(ABSORBED_BAND[0] <= absorbed[light_line] <= ABSORBED_BAND[1]),
                 "dose": dose_key(cfg.dose), "simulate_seconds": time.perf_counter() - t0, "methods": {}}
        say(f"absorption {name}: {light_line} loses {absorbed[light_line]:.1%} of its counts "
            f"({entry['simulate_seconds']:.1f} s to simulate)")
        mid = cfg.n // 2
        li = truth.elements.index(light)
        for i, method in enumerate(cfg.methods):
            kept: dict = {}
            r = run_absorption_case(sim, truth, method, cfg, reconstruct, correct,
                                    (lambda w, weight, kept=kept: kept.update({w: weight})) if i == 0 else None,
                                    thin=thin)
            entry["methods"][method] = r
            if i == 0:
                entry.update({k: r[k] for k in ("uncorrected", "corrected", "no_absorption", "cost_ratio")})
                entry["method"] = method
                slices[name] = {"element": light, "slice": mid, "truth": truth.weight[li, mid],
                                "uncorrected": kept["uncorrected"][li, mid], "corrected": kept["corrected"][li, mid],
                                "particle": truth.particle[mid]}
            u, c = r["uncorrected"], r["corrected"]
            say(f"absorption {name} {method}: inside MSE {u['mse_fraction_inside']:.2e} -> "
                f"{c['mse_fraction_inside']:.2e} in {c['outer_iterations']} outer iterations, "
                f"cost x{r['cost_ratio']:.2f}")
        study[name] = entry
    return {"absorption": study, "absorption_config": cfg.as_dict(), "absorption_slices": slices,
            "absorption_summary": summarise_absorption(study), "absorption_seconds": time.perf_counter() - t_all}
