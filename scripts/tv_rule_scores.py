"""Held-out scores for the fused models' weight rule against the oracle's inside MSE (issue 13).

For each case of the quick suite (``BenchmarkConfig.quick()``: n = 24, the 8 middle
slices, 29 tilts at +-70 degrees, 200 kV, noise seed 0) and a fused method
(``fused_huber`` or ``fused_tv``, their defaults otherwise), this script

1. sweeps the oracle grid (``TV_MU_GRID`` x ``HUBER_GRID``) on all the data and scores each
   point's inside-particle weight-fraction MSE as the benchmark does (ESF mask);
2. runs the rule's cross-validation solves (:func:`~chemtomo.reconstruct.autoparam.cv_tv_weight`'s
   batched layout: 4 folds of rays, every ``mu`` of the grid as columns, once per ``huber``,
   the run's iteration budget 100) and scores the training maps on the held-out rays by
   several scores:

   - ``comp``: the current rule, the composition deviance of the EDS counts;
   - ``comp+H``: plus the HAADF's held-out residual squared, whitened by the model's
     ``s_H`` (``haadf_model_error`` of the mean HAADF), as in the model;
   - ``pois+H``: the Poisson deviance of the EDS counts (totals as well as ratios) plus
     the HAADF term: twice the model's held-out negative log-likelihood;
   - ``mask``: the Poisson deviance of the EDS counts predicted by the maps *inside the
     particle mask* the quantification would draw on them (ESF on the total signal; the
     maps zeroed outside): a mask that misses particle voxels under-predicts the rays
     through them;
   - ``mask+H``: ``mask`` plus the HAADF term of the same masked maps;

   each choice made as the rule makes it (per ``huber`` the log-parabolic argmin over
   ``mu``, the ``huber`` with the lowest score, ``mu`` times ``K/(K-1)``);
3. solves on all the data at each score's choice and prints its inside MSE over the
   oracle's.

``--combine`` reads the cases' JSON files and adds the candidate (c): the current rule's
``mu`` times one factor, the geometric mean of ``oracle mu / chosen mu`` over the *other*
specimen's cases (leave one specimen out), solved at that point (``huber`` the rule's).

Run (one process per case; about 6-10 minutes each on a shared 2-core machine)::

    PYTHONPATH=src python scripts/tv_rule_scores.py --specimen core_shell --dose 1 --out /tmp/trs/cs1.json
    # the same for core_shell 0.1, diffuse_alloy 1 and 0.1; then
    PYTHONPATH=src python scripts/tv_rule_scores.py --combine /tmp/trs/*.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from chemtomo.geometry import columns_to_volume, sinogram_to_columns
from chemtomo.preprocess import FILTER_SIGMA_PX, gaussian_filter_stack
from chemtomo.projector import make_modality_operator
from chemtomo.projector.base import DTYPE
from chemtomo.projector.batched import default_group
from chemtomo.quantify import particle_mask, total_signal
from chemtomo.reconstruct import ChannelData, estimate_response_ratios, get_method
from chemtomo.reconstruct.autoparam import _log_parabola_min
from chemtomo.reconstruct.fused import tv_solve
from chemtomo.reconstruct.heldout import (
    DEFAULT_FOLDS,
    DEFAULT_SEED,
    heldout_deviance,
    poisson_deviance,
    ray_folds,
    training_masks,
)
from chemtomo.reconstruct.methods import HUBER_GRID, TV_MU_GRID, TV_MU_RULE_GRID
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, score, sub_series, sweep

SCORES = ("comp", "comp+H", "pois+H", "mask", "mask+H")


def problem(name: str, dose: float):
    """``(cfg, truth, series, factors)`` of the quick suite's case."""
    cfg = BenchmarkConfig.quick()
    a, b = cfg.slice_range()
    spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
    sim = simulate_series(spec, np.asarray(cfg.angles_deg, float), dose_scale=dose, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    return cfg, Truth.of(spec, (a, b)), sub_series(sim.series, a, b), sim.factors


def inside_mse(series, factors, truth, method: str, points: list[dict]) -> list[float]:
    """The benchmark's inside MSE at each ``{"mu", "huber"}`` point (one full-data solve each)."""
    out = []
    for p in points:
        grid = {k: (v,) for k, v in p.items()}
        c = sweep(series, factors, method, grid)[0]
        out.append(score(truth, c["maps"], c["weight"], c["elements"])["mse_fraction_inside"])
    return out


def cv_scores(series, factors, method: str, mus, hubers, n_iter: int = 100) -> dict:
    """Every score of :data:`SCORES` per ``(huber, mu)``: ``{score: (H, L) array}``."""
    m = get_method(method)
    p0 = m.params({})
    lines = series.lines
    prepared = dataclasses.replace(
        series, eds={k: gaussian_filter_stack(v, FILTER_SIGMA_PX, "image") for k, v in series.eds.items()},
        metadata=dict(series.metadata))
    r = estimate_response_ratios(prepared.haadf, {ln: prepared.eds[ln] for ln in lines}).r
    geom = series.geometry()
    W = make_modality_operator(geom, None, "batched", group=default_group())
    counts = np.stack([sinogram_to_columns(series.eds[ln]) for ln in lines]).astype(DTYPE)  # (k, nr, s)
    haadf = sinogram_to_columns(series.haadf).astype(DTYPE)  # (nr, s)

    constants = m.setup(W, ChannelData(list(lines), counts, haadf, r), p0)
    k, n_rays, s = counts.shape
    mus = np.sort(np.asarray(mus, np.float64))
    masks = training_masks(ray_folds(n_rays, DEFAULT_FOLDS, DEFAULT_SEED))
    K, L = masks.shape[1], mus.size
    col_mask = np.repeat(masks, L * s, axis=1)
    col_mu = np.tile(np.repeat(mus, s), K)
    b = np.tile(counts, (1, 1, K * L))
    h = np.tile(haadf, (1, K * L))
    held = 1.0 - col_mask
    eps = p0.haadf_model_error
    var_h = (eps * float(constants["hbar"])) ** 2 + p0.haadf_gain * np.maximum(h, 0)
    n_vox, n_grid = W.shape[1], geom.n_grid
    zq = factors.z(lines)
    out = {sc: np.zeros((len(hubers), L)) for sc in SCORES}
    for ih, hub in enumerate(hubers):
        prior = {} if method == "fused_tv" else m.prior_options(p0.replace(huber=float(hub)), s)
        res = tv_solve(W, b, model="fused", mu=col_mu, haadf=h, r=r, ray_mask=col_mask, constants=constants,
                       n_iter=n_iter, coupled=p0.coupled, theta=p0.theta, **p0.model_options(), **prior)
        xb = res.x.reshape(k, n_vox, K * L * s)  # X^b_A
        # the quantification's mask on each fold's and mu's training maps (all its slices together)
        mask = np.zeros((n_vox, K * L * s), DTYPE)
        for j in range(K * L):
            cols = slice(j * s, (j + 1) * s)
            maps = np.stack([columns_to_volume(xb[a, :, cols], n_grid) for a in range(k)])
            tot = total_signal(maps, zq)
            try:
                mk, _ = particle_mask(tot, "esf")
            except ValueError:
                mk, _ = particle_mask(tot, "otsu")
            mask[:, cols] = np.asarray(mk, DTYPE).reshape(s, -1).T
        for label, x in (("", xb), ("mask", xb * mask[None])):
            pred = np.stack([W.forward(np.ascontiguousarray(x[a])) / r[a] for a in range(k)])
            ph = W.forward(np.ascontiguousarray(x.sum(axis=0)))
            hres = (held * (h - ph) ** 2 / var_h).sum(axis=0)
            pois = (poisson_deviance(b, pred).sum(axis=0) * held).sum(axis=0)
            per = {"comp": heldout_deviance(b, pred, held), "pois": pois, "H": hres}
            per = {key: v.reshape(K, L, s).sum(axis=(0, 2)) for key, v in per.items()}
            if label:
                out["mask"][ih] = per["pois"]
                out["mask+H"][ih] = per["pois"] + per["H"]
            else:
                out["comp"][ih] = per["comp"]
                out["comp+H"][ih] = per["comp"] + per["H"]
                out["pois+H"][ih] = per["pois"] + per["H"]
    return {sc: v.tolist() for sc, v in out.items()}


def rule_choice(mus, hubers, scores) -> dict:
    """The rule's choice on a ``(H, L)`` score table: per huber the log-parabolic mu, the best huber, x K/(K-1)."""
    sc = np.asarray(scores)
    ih = int(np.argmin(sc.min(axis=1)))
    mu_cv = _log_parabola_min(np.asarray(mus, float), sc[ih])
    K = DEFAULT_FOLDS
    return {"mu": float(mu_cv * K / (K - 1)), "huber": float(hubers[ih])}


def run_case(args) -> dict:
    """One case: oracle sweep, CV scores, the choices and their inside MSE."""
    cfg, truth, series, factors = problem(args.specimen, args.dose)
    hubers = [0.0] if args.method == "fused_tv" else list(args.huber)
    mus = list(args.mu)
    rule_mus = list(args.rule_mu) if args.rule_mu else (list(TV_MU_RULE_GRID) if args.method == "fused_tv"
                                                        else list(TV_MU_GRID))
    pts = [{"mu": mu} if args.method == "fused_tv" else {"mu": mu, "huber": hb} for hb in hubers for mu in mus]
    oracle = inside_mse(series, factors, truth, args.method, pts)
    print(f"{args.specimen} x{args.dose:g} oracle sweep done", flush=True)
    scores = cv_scores(series, factors, args.method, rule_mus, hubers)
    choices = {sc: rule_choice(rule_mus, hubers, v) for sc, v in scores.items()}
    for c in choices.values():
        if args.method == "fused_tv":
            c.pop("huber")
    chosen = inside_mse(series, factors, truth, args.method, list(choices.values()))
    ib = int(np.argmin(oracle))
    out = {"specimen": args.specimen, "dose": args.dose, "method": args.method, "oracle_grid": pts,
           "oracle_mse": oracle, "best": {**pts[ib], "mse": oracle[ib]}, "rule_mus": rule_mus,
           "hubers": hubers, "scores": scores,
           "choices": {sc: {**c, "mse": v, "ratio": v / oracle[ib]}
                       for (sc, c), v in zip(choices.items(), chosen, strict=True)}}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    print_table([out])
    return out


def _fmt(c: dict) -> str:
    return f"{c['mu']:.3g}" + (f"/{c['huber']:g}" if "huber" in c else "")


def print_table(cases: list[dict], extra: dict | None = None) -> None:
    """One markdown row per case: the oracle, and each score's choice with its inside MSE over the oracle's."""
    names = list(cases[0]["choices"]) + list((extra or {}).get(_key(cases[0]), {}))
    print("\n| case | oracle mu/huber (MSE) | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for c in cases:
        ch = {**c["choices"], **(extra or {}).get(_key(c), {})}
        cells = [f"{_fmt(ch[n])}: {ch[n]['ratio']:.2f}" for n in names]
        print(f"| {c['specimen']} x{c['dose']:g} | {_fmt(c['best'])} ({c['best']['mse']:.2e}) | "
              + " | ".join(cells) + " |")


def _key(c: dict) -> str:
    return f"{c['specimen']}:{c['dose']:g}"


def combine(paths: list[str]) -> None:
    """Candidate (c) by leave-one-specimen-out: the current choice times the other specimen's mean ratio."""
    cases = [json.load(open(p)) for p in paths]
    extra = {}
    for c in cases:
        others = [o for o in cases if o["specimen"] != c["specimen"]]
        factor = float(np.exp(np.mean([np.log(o["best"]["mu"] / o["choices"]["comp"]["mu"]) for o in others])))
        point = {k: v for k, v in c["choices"]["comp"].items() if k in ("mu", "huber")}
        point["mu"] *= factor
        _, truth, series, factors = problem(c["specimen"], c["dose"])
        v = inside_mse(series, factors, truth, c["method"], [point])[0]
        extra[_key(c)] = {"comp x LOSO": {**point, "mse": v, "ratio": v / c["best"]["mse"]}}
        print(f"{_key(c)}: factor {factor:.3f} -> {point} inside MSE {v:.3e}", flush=True)
    print_table(cases, extra)


def main(argv=None) -> None:
    """Parse the arguments; run one case or combine."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specimen", default="diffuse_alloy")
    ap.add_argument("--dose", type=float, default=1.0)
    ap.add_argument("--method", default="fused_huber", choices=["fused_huber", "fused_tv"])
    ap.add_argument("--mu", nargs="+", type=float, default=list(TV_MU_GRID), help="the oracle's mu grid")
    ap.add_argument("--rule-mu", nargs="+", type=float, default=None, help="the rule's mu grid (the method's)")
    ap.add_argument("--huber", nargs="+", type=float, default=list(HUBER_GRID))
    ap.add_argument("--out", default=None)
    ap.add_argument("--combine", nargs="+", default=None, help="cases' JSON files: the LOSO factor and one table")
    args = ap.parse_args(argv)
    if args.combine:
        combine(args.combine)
    else:
        run_case(args)


if __name__ == "__main__":
    main()
