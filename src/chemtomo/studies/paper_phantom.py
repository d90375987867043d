"""The paper's phantom study (Yuan 2020, section 3.1), end to end, plus a dose sweep.

Simulate the core-shell Ag-Au slice, reconstruct it by EDS-only SIRT and by HEBT
over sweeps of the iteration count n and the HAADF weight alpha, quantify every
reconstruction (ESF mask, eqs 12 and 18), and score it against the phantom.
Every number lands in one dict (``metrics.json``); figures and the report are
drawn from that dict and the kept maps by :mod:`chemtomo.report`.

The simulated problem and its scoring live in :mod:`.problem`, every registered
method's sweep and automatic choice in :mod:`.solvers`; this module runs them over
the doses and noise seeds (``StudyConfig.methods``, by default every registered method).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from ..geometry import columns_to_volume
from ..reconstruct import get_method, sirt
from .phantom_uncertainty import bootstrap_core_shell
from .problem import (
    LINES,
    Candidate,
    Problem,
    StudyConfig,
    evaluate,
    make_problem,
    maps_of,
    method_data,
    raw_counts,
    study_factors,
)
from .solvers import auto_for, solver_acceptance, sweep_eds_sirt, sweep_for, sweep_hebt_sirt

__all__ = [
    "LINES", "Candidate", "Problem", "StudyConfig", "acceptance", "add_core_shell_se", "average",
    "average_candidates", "best_of",
    "evaluate", "haadf_only_map", "make_problem", "maps_of", "method_data", "raw_counts", "run_problem",
    "run_study", "study_factors", "sweep_eds_sirt", "sweep_hebt_sirt",
]


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
    for group in zip(*per_seed, strict=True):
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
    t0 = time.perf_counter()
    sweeps = {name: sweep_for(name) for name in cfg.methods}
    autos = {name: auto_for(name) for name in cfg.methods if get_method(name).default_grid}
    problem = make_problem(cfg, dose, study_factors(cfg), seed)
    store: dict = {}

    def keep(method, params, arrays):
        if keep_arrays:
            store[(method, tuple(sorted(params.items())))] = arrays

    out: dict = {"dose": dose, "seed": seed, "candidates": {}, "auto": {},
                 "response_ratios": problem.response_ratios,
                 "eds_dose": problem.sim.series.metadata["eds_dose"]}
    for name in cfg.methods:  # every method: its sweep, then its rule's choice from the data alone
        out["candidates"][name] = sweeps[name](problem, cfg, keep)
        if name in autos:
            params, maps, factor = autos[name](problem, cfg)
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
    for name in cfg.methods:  # an unknown or unsweepable method fails here, before any work
        sweep_for(name)
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
    if cfg.replicas:
        add_core_shell_se(metrics, kept, cfg, say)
    metrics["acceptance"] = acceptance(metrics, cfg)
    if any(m not in ("eds_sirt", "hebt_sirt") for m in cfg.methods):
        metrics["acceptance_solvers"] = solver_acceptance(metrics)
    metrics["seconds"] = time.perf_counter() - t0
    metrics["jobs"] = jobs
    return metrics, kept


def add_core_shell_se(metrics: dict, kept: dict, cfg: StudyConfig, say: Callable[[str], None]) -> None:
    """Add bootstrap standard errors to every headline method's best core / shell Au fraction (in place).

    The replicas are of the first noise seed's data at the headline dose, reconstructed
    at the method's best parameters (:func:`.phantom_uncertainty.bootstrap_core_shell`).
    ``best`` gains ``core_Au_se``, ``shell_Au_se`` and ``bootstrap`` (replicas, seed, the
    data's dose and noise seed, and that seed's own core / shell values); the existing
    numbers are not changed.
    """
    main = "1" if "1" in kept["dose"] else next(iter(kept["dose"]))
    problem = kept["dose"][main]["problem"]
    for name, v in metrics["methods"].items():
        t0 = time.perf_counter()
        b = bootstrap_core_shell(problem, cfg, name, v["best"], cfg.replicas, cfg.replica_seed)
        v["best"]["core_Au_se"] = b["core_Au_se"]
        v["best"]["shell_Au_se"] = b["shell_Au_se"]
        v["best"]["bootstrap"] = {"replicas": b["replicas"], "seed": b["seed"], "dose": float(main),
                                  "noise_seed": cfg.seeds[0], "core_Au": b["core_Au"], "shell_Au": b["shell_Au"],
                                  "seconds": round(time.perf_counter() - t0, 2)}
        say(f"{name}: core Au {v['best']['core_Au']:.4f} +- {b['core_Au_se']:.4f}, shell Au "
            f"{v['best']['shell_Au']:.4f} +- {b['shell_Au_se']:.4f} ({cfg.replicas} replicas, "
            f"{time.perf_counter() - t0:.1f} s)")


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
