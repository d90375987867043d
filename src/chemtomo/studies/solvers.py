"""Every registered method in the phantom study: its sweep and its automatic choice.

For each method of :attr:`~.problem.StudyConfig.methods` (by default every registered
method) this module gives

- a *sweep* (:func:`sweep_for`): the method over the study's candidate grid, each
  candidate scored against the phantom (oracle-best = the candidate with the lowest
  inside-particle weight-fraction MSE). The built-ins have fast sweeps: SIRT methods
  run once to the largest ``n`` with snapshots, the regularised solvers solve every
  ``mu`` of the grid as columns of one batched solve; any other registered method is
  run at every point of its rule's grid (its ``default_grid``);
- an *automatic choice* (:func:`auto_for`): the parameters chosen from the measured
  data alone by the method's own rule (:func:`chemtomo.reconstruct.choose_parameters`,
  reading ``problem.data``, the raw counts ``problem.sim.series``, ``problem.W`` and
  ``problem.geometry``, never the phantom), then one reconstruction with them.

Methods that model the counts' noise (``raw_counts``) see the raw EDS counts; the
others keep the paper's Gaussian-filtered input.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np

from ..reconstruct import choose_parameters, get_method, method_names
from ..reconstruct.fused import tv_solve
from .problem import Candidate, Problem, StudyConfig, evaluate, maps_of, method_data, raw_counts

LABELS = {"eds_sirt": "EDS-SIRT", "hebt_sirt": "HEBT-SIRT", "ls_tv": "LS-TV", "poisson_tv": "Poisson-TV",
          "fused_tv": "Fused-TV"}

Sweep = Callable[[Problem, StudyConfig, Callable], list]
Auto = Callable[[Problem, StudyConfig], tuple]


def label(name: str) -> str:
    """A method's display name."""
    return LABELS.get(name, name)


def study_grid(name: str, cfg: StudyConfig) -> dict:
    """The candidates of ``name``'s rule in this study.

    The config's grids for the names it holds (``n`` of EDS-SIRT and HEBT,
    ``alpha``, ``mu``), the method's ``default_grid`` otherwise.
    """
    m = get_method(name)
    own = {"eds_sirt": {"n": cfg.eds_n}, "hebt_sirt": {"alpha": cfg.alphas, "n": cfg.hebt_n}}.get(name, {})
    if "mu" in m.default_grid:
        own = {**own, "mu": cfg.mu}
    return {k: tuple(own.get(k, v)) for k, v in m.default_grid.items()}


def _tv_base(m, cfg: StudyConfig):
    """The parameters a TV-weighted method starts from in the study (its iteration budget)."""
    return m.params({"n_iter": cfg.tv_n_iter}) if "mu" in m.default_grid else m.params()


# ----------------------------------------------------------------------------- sweeps

def sweep_eds_sirt(problem: Problem, cfg: StudyConfig, keep) -> list[Candidate]:
    """EDS-only SIRT: one run to max(n), scored at every n of the sweep."""
    res = get_method("eds_sirt")(problem.W, problem.data, n_iter=max(cfg.eds_n), snapshots=cfg.eds_n)
    out = []
    for n in cfg.eds_n:
        maps = maps_of(res.snapshots[n], cfg.n_pixels)
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
            maps = maps_of(res.snapshots[n], cfg.n_pixels)
            m, arrays = evaluate(problem, maps, res.factor)
            keep("hebt_sirt", {"n": n, "alpha": alpha}, arrays)
            out.append({"params": {"n": n, "alpha": alpha}, "metrics": m})
    return out


def _sweep_tv(name: str) -> Sweep:
    model = get_method(name).model

    def sweep(problem: Problem, cfg: StudyConfig, keep) -> list:
        mus = np.asarray(cfg.mu, float)
        t0 = time.perf_counter()
        res = tv_solve(problem.W, np.repeat(raw_counts(problem), mus.size, axis=2), model=model, mu=mus,
                       haadf=problem.data.haadf, r=problem.data.response_ratios, n_iter=cfg.tv_n_iter)
        seconds = time.perf_counter() - t0
        out = []
        for j, mu in enumerate(mus):
            m, arrays = evaluate(problem, maps_of(res.x[:, :, j], cfg.n_pixels), res.info["factor"])
            params = {"mu": float(mu), "n_iter": cfg.tv_n_iter}
            keep(name, params, arrays)
            m["lam"] = float(res.info["lam"][j])
            m["objective"] = float(res.info["objective"][-1, j])
            m["solve_seconds"] = seconds
            out.append({"params": params, "metrics": m})
        return out

    sweep.__name__ = f"sweep_{name}"
    sweep.__doc__ = f"{label(name)}: one batched solve over the mu grid ({model!r} model)."
    return sweep


def _sweep_grid(name: str) -> Sweep:
    m = get_method(name)

    def sweep(problem: Problem, cfg: StudyConfig, keep) -> list:
        grid = study_grid(name, cfg)
        out = []
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values, strict=True))
            res = m(problem.W, method_data(problem, m), m.apply_choice(_tv_base(m, cfg), point))
            mt, arrays = evaluate(problem, maps_of(res.maps, cfg.n_pixels), res.factor)
            keep(name, point, arrays)
            out.append({"params": point, "metrics": mt})
        return out

    sweep.__name__ = f"sweep_{name}"
    sweep.__doc__ = f"{label(name)}: one run at every point of its rule's grid."
    return sweep


_FAST_SWEEPS = {"eds_sirt": sweep_eds_sirt, "hebt_sirt": sweep_hebt_sirt}


def sweep_for(name: str) -> Sweep:
    """The study's sweep of the registered method ``name``.

    Raises
    ------
    ValueError
        The method has no candidate grid (no automatic rule) to sweep.
    """
    m = get_method(name)
    if m.name in _FAST_SWEEPS:
        return _FAST_SWEEPS[m.name]
    if getattr(m, "model", None) is not None and set(m.default_grid) == {"mu"}:
        return _sweep_tv(m.name)
    if not m.default_grid:
        with_grid = [n for n in method_names() if get_method(n).default_grid]
        raise ValueError(f"the phantom study cannot sweep method {name!r}: it has no candidate grid "
                         f"(default_grid); methods with one: {with_grid}")
    return _sweep_grid(m.name)


# ----------------------------------------------------------------------------- automatic choices

def auto_for(name: str) -> Auto:
    """``auto(problem, cfg) -> (params, maps, factor)``: ``name``'s rule on the data, then one run."""
    m = get_method(name)

    def auto(problem: Problem, cfg: StudyConfig):
        t0 = time.perf_counter()
        geom = problem.geometry
        choice = choose_parameters(
            m.name, problem.W, raw_counts(problem), data=problem.data.eds, haadf=problem.data.haadf,
            r=problem.data.response_ratios, n_tilts=geom.n_tilts, n_pixels=geom.n_pixels,
            filter_sigma=cfg.filter_sigma, filter_axes="sinogram", grid=study_grid(m.name, cfg),
            n_iter=cfg.tv_n_iter)
        chosen = dict(choice.params)
        res = m(problem.W, method_data(problem, m), m.apply_choice(_tv_base(m, cfg), chosen))
        if "mu" in m.default_grid:
            chosen = {"mu": round(chosen["mu"], 5), "mu_cv": round(choice.info["mu_cv"], 5),
                      "n_iter": cfg.tv_n_iter}
        params = {**chosen, "rule": choice.rule, "seconds": round(time.perf_counter() - t0, 2)}
        return params, maps_of(res.maps[:, :, 0], cfg.n_pixels), res.factor

    auto.__name__ = f"auto_{name}"
    auto.__doc__ = f"{label(name)}: parameters by :func:`choose_parameters`, then one reconstruction."
    return auto


# ----------------------------------------------------------------------------- acceptance

def solver_acceptance(metrics: dict) -> dict:
    """Issue 6's targets evaluated on the measured numbers."""
    out = {}
    ds = metrics["dose_sweep"]
    tv = [n for n in method_names() if getattr(get_method(n), "model", None) is not None]
    new = [m for m in tv if all(m in e["methods"] for e in ds.values())]
    ratios = {}
    for dose, e in ds.items():
        ref = e["methods"]["eds_sirt"]["best"]["mse_fraction_inside"]
        ratios[dose] = min(e["methods"][m]["best"]["mse_fraction_inside"] for m in new) / ref if new else np.nan
    out["best_new_solver_at_most_quarter_of_eds_sirt_every_dose"] = bool(
        new and all(r <= 0.25 for r in ratios.values()))
    ok_auto = True
    for e in ds.values():
        for _, m in e["methods"].items():
            if "auto" in m and m["auto"]["mse_fraction_inside"] > 1.2 * m["best"]["mse_fraction_inside"]:
                ok_auto = False
    out["auto_within_20pct_of_best_every_method_and_dose"] = ok_auto
    main = ds.get("1")
    if main is not None and new:
        good = all(abs(main["methods"][m]["best"]["core_Au"] - 0.8) <= 0.02
                   and abs(main["methods"][m]["best"]["shell_Au"] - 0.2) <= 0.02 for m in new)
        out["new_solvers_core_shell_within_0.02_at_paper_dose"] = bool(good)
    return out
