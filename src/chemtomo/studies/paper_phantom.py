"""The paper's phantom study (Yuan 2020, section 3.1), end to end, plus a dose sweep.

Simulate the core-shell Ag-Au slice, reconstruct it by EDS-only SIRT and by HEBT
over sweeps of the iteration count n and the HAADF weight alpha, quantify every
reconstruction (ESF mask, eqs 12 and 18), and score it against the phantom.
Every number lands in one dict (``metrics.json``); figures and the report are
drawn from that dict and the kept maps by :mod:`chemtomo.report`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from scipy.ndimage import binary_erosion

from ..geometry import TiltGeometry, columns_to_volume, sinogram_to_columns
from ..metrics import mse, mse_scaled, ssim_structure
from ..physics import Factors
from ..preprocess import gaussian_filter_stack
from ..projector import make_operator
from ..quantify import quantify
from ..reconstruct import ChannelData, estimate_response_ratios, get_method, sirt
from ..reconstruct.autoparam import DEFAULT_GRIDS as GRIDS
from ..simulate import Acquisition, Phantom, Simulation, core_shell_phantom, simulate_tilt_series

LINES = ("Ag_La", "Au_Ma")


@dataclass
class StudyConfig:
    """Parameters of the phantom study (defaults: the paper's, section 3.1.1)."""

    n_pixels: int = 97
    pixel_nm: float = 1.5
    angles_deg: tuple = tuple(np.arange(-75.0, 75.1, 5.0))
    refine: int = 4
    beam_kev: float = 100.0
    factors: str = "physics"  # "physics" (chemtomo.physics) or "paper" (Table 2)
    detector_efficiency: float = 0.96
    filter_sigma: float = 0.8
    seeds: tuple = (0,)
    # sweeps: the candidate grids of the automatic rules (chemtomo.reconstruct.autoparam)
    eds_n: tuple = GRIDS["eds_sirt"]["n"]
    hebt_n: tuple = GRIDS["hebt_sirt"]["n"]
    alphas: tuple = GRIDS["hebt_sirt"]["alpha"]
    doses: tuple = (1.0, 0.1, 0.01)
    methods: tuple = ("eds_sirt", "hebt_sirt", "ls_tv", "poisson_tv", "fused_tv")
    mu: tuple = GRIDS["fused_tv"]["mu"]  # dimensionless TV weights, factor sqrt 2 apart
    tv_n_iter: int = 300
    erode_px: int = 2
    acquisition: Acquisition = field(default_factory=Acquisition)
    label: str = "full"

    @classmethod
    def quick(cls) -> "StudyConfig":
        """A reduced sweep for CI (well under 2 minutes)."""
        return cls(eds_n=(20, 50, 100, 200), hebt_n=(100, 200), alphas=(0.5, 0.7, 0.8, 0.9),
                   mu=(0.085, 0.12, 0.17, 0.24, 0.34), tv_n_iter=200, label="quick")

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("the study needs at least one noise seed")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["angles_deg"] = [float(a) for a in self.angles_deg]
        return d


def study_factors(cfg: StudyConfig) -> Factors:
    """Factors for the two lines: from first principles, or the paper's Table 2."""
    if cfg.factors == "paper":
        from ..physics import paper_table2

        return paper_table2(LINES, detector_efficiency=cfg.detector_efficiency)
    if cfg.factors == "physics":
        from ..physics import compute_factors

        return compute_factors(list(LINES), beam_kev=cfg.beam_kev, detector=cfg.detector_efficiency)
    raise ValueError(f"factors must be 'physics' or 'paper', got {cfg.factors!r}")


@dataclass
class Problem:
    """One simulated data set, prepared for reconstruction and scoring."""

    dose: float
    sim: Simulation
    factors: Factors
    geometry: TiltGeometry
    W: object
    data: ChannelData  # filtered EDS, raw HAADF, fitted r
    reference: Phantom
    regions: dict
    response_ratios: dict


def make_problem(cfg: StudyConfig, dose: float, factors: Factors, seed: int = 0) -> Problem:
    geom = TiltGeometry(np.asarray(cfg.angles_deg), cfg.n_pixels, cfg.pixel_nm)
    fine = core_shell_phantom(cfg.n_pixels * cfg.refine, cfg.pixel_nm / cfg.refine)
    acq = Acquisition(**{**asdict(cfg.acquisition), "eds_dose_scale": dose})
    sim = simulate_tilt_series(fine, geom, factors, acq, seed=seed)
    lines = sim.lines
    s = sim.series
    filt = {ln: gaussian_filter_stack(s.eds[ln], cfg.filter_sigma, "sinogram") for ln in lines}
    rr = estimate_response_ratios(s.haadf, filt)
    rr_raw = estimate_response_ratios(s.haadf, s.eds)
    theory = factors.response_ratios(haadf_dose=acq.haadf_dose, eds_dose=acq.eds_dose,
                                     solid_angle_sr=acq.solid_angle_sr, lines=lines)
    data = ChannelData(
        lines, np.stack([sinogram_to_columns(filt[ln]) for ln in lines]),
        sinogram_to_columns(s.haadf), rr.r,
    )
    ref = sim.phantom
    e = cfg.erode_px
    regions = {
        "particle": ref.regions["particle"],
        "core": binary_erosion(ref.regions["core"], iterations=e),
        "shell": binary_erosion(ref.regions["shell"], iterations=e),
    }
    rdict = {
        ln: {"fit": float(rr.r[i]), "theory": float(theory[i]),
             "fit_unfiltered": float(rr_raw.r[i]),
             "rel_error": float(rr.r[i] / theory[i] - 1)}
        for i, ln in enumerate(lines)
    }
    rdict["r2"] = float(rr.r2)
    rdict["r2_unfiltered"] = float(rr_raw.r2)
    return Problem(dose, sim, factors, geom, make_operator(geom), data, ref,
                   regions, rdict)


def evaluate(problem: Problem, maps: np.ndarray, factor: str) -> tuple[dict, dict]:
    """Score maps ``(k, n, n)`` of the lines against the phantom.

    Returns ``(metrics, arrays)``: SSIM-structure and scaled MSE of the maps against
    the partial densities, fraction-map SSIM and MSE, the MSE inside the particle
    (the phantom's region: independent of the mask), mean core / shell Au fraction
    (regions eroded by ``erode_px``), and the threshold chosen.
    """
    f = problem.factors
    lines = problem.data.lines
    els = [f[ln].element for ln in lines]
    q = f.f(lines) if factor == "f" else f.z(lines)
    comp = quantify(maps, q, f.atomic_weights(lines), lines, els)
    ref = problem.reference
    part = problem.regions["particle"]
    m: dict = {"ssim": {}, "mse_scaled": {}, "ssim_fraction": {}, "mse_fraction": {}}
    for i, el in enumerate(els):
        m["ssim"][el] = ssim_structure(maps[i], ref.mass[i])
        m["mse_scaled"][el] = mse_scaled(maps[i], ref.mass[i])
        m["ssim_fraction"][el] = ssim_structure(comp.weight[i], ref.weight[i])
        m["mse_fraction"][el] = mse(comp.weight[i], ref.weight[i])
    m["mse_fraction_inside"] = float(np.mean([mse(comp.weight[i], ref.weight[i], part) for i in range(len(els))]))
    au = els.index("Au")
    m["core_Au"] = float(comp.weight[au][problem.regions["core"]].mean())
    m["shell_Au"] = float(comp.weight[au][problem.regions["shell"]].mean())
    m["core_Au_full"] = float(comp.weight[au][ref.regions["core"]].mean())
    m["shell_Au_full"] = float(comp.weight[au][ref.regions["shell"]].mean())
    m["threshold"] = comp.threshold.as_dict()
    m["mask_dice"] = float(2 * np.sum(comp.mask & part) / (comp.mask.sum() + part.sum()))
    return m, {"maps": maps, "weight": comp.weight, "mask": comp.mask, "threshold": comp.threshold}


Candidate = dict  # {"params": {...}, "metrics": {...}}
Sweep = Callable[[Problem, StudyConfig, Callable], list]


def _volume(x: np.ndarray, n: int) -> np.ndarray:
    # (k, n_vox, 1) -> (k, n, n)
    return np.stack([columns_to_volume(c, n)[0] for c in x])


def sweep_eds_sirt(problem: Problem, cfg: StudyConfig, keep) -> list[Candidate]:
    """EDS-only SIRT: one run to max(n), scored at every n of the sweep."""
    res = get_method("eds_sirt")(problem.W, problem.data, n_iter=max(cfg.eds_n), snapshots=cfg.eds_n)
    out = []
    for n in cfg.eds_n:
        maps = _volume(res.snapshots[n], cfg.n_pixels)
        m, arrays = evaluate(problem, maps, res.factor)
        keep("eds_sirt", {"n": n}, arrays)
        out.append({"params": {"n": n}, "metrics": m})
    return out


def sweep_hebt_sirt(problem: Problem, cfg: StudyConfig, keep) -> list[Candidate]:
    """HEBT-SIRT: one run per alpha to max(n), scored at every n of the sweep."""
    out = []
    for alpha in cfg.alphas:
        res = get_method("hebt_sirt")(problem.W, problem.data, n_iter=max(cfg.hebt_n), alpha=alpha,
                                      snapshots=cfg.hebt_n)
        for n in cfg.hebt_n:
            maps = _volume(res.snapshots[n], cfg.n_pixels)
            m, arrays = evaluate(problem, maps, res.factor)
            keep("hebt_sirt", {"n": n, "alpha": alpha}, arrays)
            out.append({"params": {"n": n, "alpha": alpha}, "metrics": m})
    return out


# Methods scored in every dose of the sweep; other modules add theirs here.
SWEEPS: dict[str, Sweep] = {"eds_sirt": sweep_eds_sirt, "hebt_sirt": sweep_hebt_sirt}
# Automatic parameter choices without ground truth: method -> fn(problem, cfg) -> (params, maps, factor).
# A rule may read problem.data, problem.W, problem.geometry and problem.factors only, never
# problem.reference / problem.regions / problem.sim.phantom / problem.sim.noiseless.
AUTO: dict[str, Callable] = {}


def average(items: list):
    """Element-wise mean of equally-shaped nested dicts of numbers (across noise seeds)."""
    first = items[0]
    if isinstance(first, dict):
        return {k: average([it[k] for it in items]) for k in first}
    if isinstance(first, (int, float, np.floating)) and not isinstance(first, bool):
        return float(np.mean(items))
    return first


def average_candidates(per_seed: list[list[Candidate]]) -> list[Candidate]:
    """Candidates with metrics averaged over seeds (same parameter grid in every seed)."""
    out = []
    for group in zip(*per_seed):
        out.append({"params": group[0]["params"], "metrics": average([c["metrics"] for c in group])})
    return out


def best_of(candidates: list[Candidate]) -> dict:
    """The candidate with the lowest inside-particle weight-fraction MSE, flattened."""
    c = min(candidates, key=lambda c: c["metrics"]["mse_fraction_inside"])
    return {**c["params"], **_flat(c["metrics"])}


def _flat(m: dict) -> dict:
    out = {}
    for k, v in m.items():
        if isinstance(v, dict) and k != "threshold":
            out[k] = dict(v)
        else:
            out[k] = v
    return out


def haadf_only_map(problem: Problem, n_iter: int = 50) -> np.ndarray:
    """SIRT of the HAADF sinogram alone (the paper's Fig. 7)."""
    res = sirt(problem.W, problem.data.haadf, n_iter)
    return columns_to_volume(res.x, problem.geometry.n_grid)[0]


def run_problem(cfg: StudyConfig, dose: float, seed: int, keep_arrays: bool = False) -> dict:
    """One noise realisation at one dose: every method's sweep and automatic choice.

    A function of ``(cfg, dose, seed)`` alone (it builds its own factors, projector
    and data), so the problems of a study can run in any order, in any process,
    with the same result.

    Returns
    -------
    dict
        ``candidates`` (method -> sweep), ``auto`` (method -> {"params", "metrics"}),
        ``response_ratios``, ``eds_dose``, ``seconds``; with ``keep_arrays`` also
        ``problem`` (without its projector) and ``store`` (the arrays of every run,
        for the figures), and at the paper's dose ``haadf_map``.
    """
    _register_methods(cfg)
    t0 = time.perf_counter()
    problem = make_problem(cfg, dose, study_factors(cfg), seed)
    store: dict = {}

    def keep(method, params, arrays):
        if keep_arrays:
            store[(method, tuple(sorted(params.items())))] = arrays

    out: dict = {"dose": dose, "seed": seed, "candidates": {}, "auto": {},
                 "response_ratios": problem.response_ratios,
                 "eds_dose": problem.sim.series.metadata["eds_dose"]}
    for name in cfg.methods:
        out["candidates"][name] = SWEEPS[name](problem, cfg, keep)
        if name in AUTO:
            params, maps, factor = AUTO[name](problem, cfg)
            m, _ = evaluate(problem, maps, factor)
            out["auto"][name] = {"params": params, "metrics": m}
    if keep_arrays:
        if dose == 1.0:
            out["haadf_map"] = haadf_only_map(problem)
        problem.W = None  # rebuilt where needed; not worth sending between processes
        out["problem"] = problem
        out["store"] = store
    out["seconds"] = time.perf_counter() - t0
    return out


def _register_methods(cfg: StudyConfig) -> None:
    """Make every method of ``cfg.methods`` available in :data:`SWEEPS` (the regularised solvers live in
    :mod:`chemtomo.studies.solvers`, which registers its sweeps and rules)."""
    if any(m not in SWEEPS for m in cfg.methods):
        from . import solvers

        solvers.register()
    missing = [m for m in cfg.methods if m not in SWEEPS]
    if missing:
        raise ValueError(f"the phantom study has no sweep for method(s) {missing}; known: {sorted(SWEEPS)}")


def _init_worker() -> None:
    """A study worker process: one engine thread (the processes share the cores)."""
    import numba

    numba.set_num_threads(1)


def run_study(cfg: StudyConfig | None = None, progress: Callable[[str], None] | None = None,
              jobs: int | None = None) -> tuple[dict, dict]:
    """Run the whole study.

    Parameters
    ----------
    cfg : StudyConfig, optional
    progress : callable, optional
        Called with a line of text as the study advances.
    jobs : int, optional
        Processes to spread the (dose, seed) problems over (default: one per CPU
        core, at most the number of problems; 1 runs them in this process). The
        result does not depend on it: every problem is a function of its dose and
        seed alone and the engine's arithmetic does not depend on the threads.

    Returns
    -------
    metrics : dict
        Everything ``metrics.json`` holds (see the README).
    kept : dict
        Arrays for the figures: sinograms, phantom, maps of selected runs.
    """
    cfg = cfg or StudyConfig()
    say = progress or (lambda msg: None)
    _register_methods(cfg)
    t0 = time.perf_counter()
    factors = study_factors(cfg)
    metrics: dict = {"config": cfg.as_dict(), "factors": factors.as_dict(cfg.acquisition.solid_angle_sr),
                     "dose_sweep": {}}
    tasks = [(dose, seed) for dose in cfg.doses for seed in cfg.seeds]
    jobs = min(len(tasks), os.cpu_count() or 1) if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    say(f"{len(tasks)} problems ({len(cfg.doses)} doses x {len(cfg.seeds)} seeds), methods "
        f"{', '.join(cfg.methods)}, on {jobs} process{'es' if jobs > 1 else ''}")
    results: dict = {}

    def done(r):
        results[(r["dose"], r["seed"])] = r
        say(f"dose x{r['dose']:g}, seed {r['seed']}: done in {r['seconds']:.0f} s "
            f"({len(results)}/{len(tasks)})")

    first = cfg.seeds[0]
    if jobs == 1:
        for dose, seed in tasks:
            say(f"dose x{dose:g}, seed {seed}: running")
            done(run_problem(cfg, dose, seed, seed == first))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # numba's thread pools do not survive fork
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker) as pool:
            futs = [pool.submit(run_problem, cfg, dose, seed, seed == first) for dose, seed in tasks]
            for f in as_completed(futs):
                done(f.result())

    kept: dict = {"dose": {}}
    for dose in cfg.doses:
        dkey = f"{dose:g}"
        runs = [results[(dose, seed)] for seed in cfg.seeds]
        head = runs[0]
        kept["dose"][dkey] = {"problem": head["problem"], "store": head["store"]}
        if "haadf_map" in head:
            kept["haadf_map"] = head["haadf_map"]
        entry: dict = {"eds_dose": head["eds_dose"], "seeds": list(cfg.seeds),
                       "response_ratios": average([r["response_ratios"] for r in runs]), "methods": {}}
        for name in cfg.methods:
            cands = average_candidates([r["candidates"][name] for r in runs])
            mentry = {"best": best_of(cands), "sweep": cands}
            if name in head["auto"]:
                autos = [r["auto"][name] for r in runs]  # chosen per seed, from that seed's data alone
                mentry["auto"] = {"chosen": [a["params"] for a in autos],
                                  **_flat(average([a["metrics"] for a in autos]))}
            entry["methods"][name] = mentry
        metrics["dose_sweep"][dkey] = entry
    # the paper's dose: the headline entries
    main = metrics["dose_sweep"].get("1") or next(iter(metrics["dose_sweep"].values()))
    metrics["response_ratios"] = main["response_ratios"]
    metrics["methods"] = {k: {"best": v["best"], "sweep": v["sweep"], **({"auto": v["auto"]} if "auto" in v else {})}
                          for k, v in main["methods"].items()}
    metrics["acceptance"] = acceptance(metrics, cfg)
    if any(m not in ("eds_sirt", "hebt_sirt") for m in cfg.methods):
        from .solvers import solver_acceptance

        metrics["acceptance_solvers"] = solver_acceptance(metrics)
    metrics["seconds"] = time.perf_counter() - t0
    metrics["jobs"] = jobs
    return metrics, kept


def acceptance(metrics: dict, cfg: StudyConfig) -> dict:
    """The foundation issue's checks, evaluated on the measured numbers."""
    out = {}
    rr = metrics["response_ratios"]
    lines = [k for k in rr if isinstance(rr[k], dict)]
    out["r_within_2pct"] = bool(all(abs(rr[ln]["rel_error"]) <= 0.02 for ln in lines))
    out["r2_at_least_0.98"] = bool(rr["r2"] >= 0.98)
    tol = 0.02

    def ok(c):
        m = c["metrics"]
        return abs(m["core_Au"] - 0.8) <= tol and abs(m["shell_Au"] - 0.2) <= tol

    eds = [c for c in metrics["methods"]["eds_sirt"]["sweep"] if c["params"]["n"] >= 100]
    hebt = [c for c in metrics["methods"]["hebt_sirt"]["sweep"]
            if c["params"]["n"] >= 200 and c["params"]["alpha"] <= 0.8]
    out["eds_sirt_core_shell_within_0.02_all_n>=100"] = bool(eds and all(ok(c) for c in eds))
    out["hebt_sirt_core_shell_within_0.02_all_n>=200_alpha<=0.8"] = bool(hebt and all(ok(c) for c in hebt))
    return out
