r"""Held-out scores for the fused models' weight rule against the oracle's inside MSE (issue 13).

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
   - ``comp*HAADF``: ``comp`` with each held-out ray weighted by its measured HAADF over
     the largest (the particle region: rays through more particle count more);

   each choice made as the rule makes it (per ``huber`` the log-parabolic argmin over
   ``mu``, the ``huber`` with the lowest score, ``mu`` times ``K/(K-1)``);
3. solves on all the data at each score's choice and prints its inside MSE over the
   oracle's.

``--combine`` reads the cases' JSON files (and each one's ``.wide.json`` sibling, an
``--oracle-only`` run on more ``mu``, whose points join the oracle) and adds candidate (c):
the rule's ``mu`` times one factor, the geometric mean of ``oracle mu / chosen mu`` over the
*other* specimen's cases (leave one specimen out), solved at that point; for
``fused_huber`` also with ``huber`` 0.3 fixed, and with ``huber`` chosen by the ``mask``
score at the scaled ``mu`` (:func:`loso_points`). ``--oracle-only`` prints the inside MSE,
the MSE on the mask's particle voxels (``mse_fraction_on_mask``: without the voxels the
mask misses) and the union score at each point, and each one's argmin.

Run (one process at a time; about a minute per case for the scores, 1-2 for a 27-point
oracle, on a shared 2-core machine)::

    PYTHONPATH=src python scripts/tv_rule_scores.py --specimen core_shell --dose 1 --out /tmp/trs/cs1.json
    PYTHONPATH=src python scripts/tv_rule_scores.py --specimen core_shell --dose 1 --oracle-only --mu 0.68 0.96 \
        --out /tmp/trs/cs1.wide.json
    # the same two for core_shell 0.1 (cs01), diffuse_alloy 1 (da1) and 0.1 (da01); then
    PYTHONPATH=src python scripts/tv_rule_scores.py --combine /tmp/trs/{cs1,cs01,da1,da01}.json
    # fused_tv: --method fused_tv --mu 0.06 0.085 0.12 0.17 0.24 0.34 0.48 0.68 0.96 per case, then --combine
    # the masked-voxel score: --oracle-only --mu 0.06 0.085 0.12 0.17 0.24 0.34 0.48 0.68 0.96 per case
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
from chemtomo.quantify import ESF_EDGE_LEVEL, particle_mask, total_signal
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

SCORES = ("comp", "comp+H", "pois+H", "mask", "mask+H", "comp*HAADF")


def problem(name: str, dose: float):
    """``(cfg, truth, series, factors)`` of the quick suite's case."""
    cfg = BenchmarkConfig.quick()
    a, b = cfg.slice_range()
    spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
    sim = simulate_series(spec, np.asarray(cfg.angles_deg, float), dose_scale=dose, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    return cfg, Truth.of(spec, (a, b)), sub_series(sim.series, a, b), sim.factors


METRICS = ("mse_fraction_inside", "mse_fraction_on_mask", "mse_fraction_particle_or_mask")


def inside_mse(series, factors, truth, method: str, points: list[dict], metrics: dict | None = None,
               edge_level: float = ESF_EDGE_LEVEL, base: dict | None = None) -> list[float]:
    """The benchmark's inside MSE at each ``{"mu", "huber"}`` point (one full-data solve each).

    ``metrics``, when given, collects each of :data:`METRICS` per point (lists by name);
    ``edge_level``: the ESF mask's place on the particle-background step (``--edge-level``);
    ``base``: fixed parameters of the method (``--haadf-model-error``).
    """
    out = []
    for p in points:
        grid = {k: (v,) for k, v in p.items()}
        c = sweep(series, factors, method, grid, base=base, edge_level=edge_level)[0]
        sc = score(truth, c["maps"], c["weight"], c["elements"])
        out.append(sc["mse_fraction_inside"])
        if metrics is not None:
            for name in METRICS:
                metrics.setdefault(name, []).append(sc[name])
    return out


def cv_scores(series, factors, method: str, mus, hubers, n_iter: int = 100, base: dict | None = None) -> dict:
    """Every score of :data:`SCORES` per ``(huber, mu)``: ``{score: (H, L) array}``; ``base``: fixed parameters."""
    m = get_method(method)
    p0 = m.params(base or {})
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
            per = {"comp": heldout_deviance(b, pred, held), "pois": pois, "H": hres,
                   "compw": heldout_deviance(b, pred, held * np.maximum(h, 0) / float(h.max()))}
            per = {key: v.reshape(K, L, s).sum(axis=(0, 2)) for key, v in per.items()}
            if label:
                out["mask"][ih] = per["pois"]
                out["mask+H"][ih] = per["pois"] + per["H"]
            else:
                out["comp"][ih] = per["comp"]
                out["comp+H"][ih] = per["comp"] + per["H"]
                out["pois+H"][ih] = per["pois"] + per["H"]
                out["comp*HAADF"][ih] = per["compw"]
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
    base = None if args.haadf_model_error is None else {"haadf_model_error": args.haadf_model_error}
    hubers = [0.0] if args.method == "fused_tv" else list(args.huber)
    mus = list(args.mu)
    rule_mus = list(args.rule_mu) if args.rule_mu else (list(TV_MU_RULE_GRID) if args.method == "fused_tv"
                                                        else list(TV_MU_GRID))
    pts = [{"mu": mu} if args.method == "fused_tv" else {"mu": mu, "huber": hb} for hb in hubers for mu in mus]
    metrics: dict = {}
    if args.oracle_from:  # the oracle of an earlier run of the same case and grid
        prev = json.load(open(args.oracle_from))
        if prev["oracle_grid"] != pts:
            raise ValueError(f"{args.oracle_from} holds another oracle grid: {prev['oracle_grid']}")
        oracle = prev["oracle_mse"]
    else:
        oracle = inside_mse(series, factors, truth, args.method, pts, metrics, args.edge_level, base)
    print(f"{args.specimen} x{args.dose:g} oracle sweep done", flush=True)
    if args.oracle_only:
        out = {"oracle_grid": pts, "oracle_mse": oracle, "metrics": metrics}
        for i, p in enumerate(pts):
            print(f"  {p}: " + ", ".join(f"{name} {metrics[name][i]:.3e}" for name in METRICS))
        for name in METRICS:
            print(f"  argmin of {name}: {pts[int(np.argmin(metrics[name]))]}")
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)
        return out
    scores = cv_scores(series, factors, args.method, rule_mus, hubers, base=base)
    choices = {sc: rule_choice(rule_mus, hubers, v) for sc, v in scores.items()}
    for c in choices.values():
        if args.method == "fused_tv":
            c.pop("huber")
    chosen = inside_mse(series, factors, truth, args.method, list(choices.values()), edge_level=args.edge_level,
                        base=base)
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


def _merge_wider(c: dict, path: str) -> dict:
    """Add the oracle points of ``path``'s ``.wide.json`` sibling (an ``--oracle-only`` run), if any."""
    wide = path.replace(".json", ".wide.json")
    try:
        w = json.load(open(wide))
    except FileNotFoundError:
        return c
    c["oracle_grid"] += w["oracle_grid"]
    c["oracle_mse"] += w["oracle_mse"]
    ib = int(np.argmin(c["oracle_mse"]))
    c["best"] = {**c["oracle_grid"][ib], "mse": c["oracle_mse"][ib]}
    for ch in c["choices"].values():
        ch["ratio"] = ch["mse"] / c["best"]["mse"]
    return c


def _interp_log(mus, values, mu: float) -> float:
    """``values`` (on the grid ``mus``) at ``mu``, linear in ``log mu`` (clamped to the grid)."""
    lm = np.log(np.asarray(mus, float))
    return float(np.interp(np.clip(np.log(mu), lm[0], lm[-1]), lm, values))


def loso_points(c: dict, others: list[dict]) -> dict:
    """Candidate (c)'s points: the rule's mu times the other specimen's geometric-mean ``oracle / chosen`` ratio.

    - ``comp x f``: the rule's (mu, huber), mu scaled;
    - ``comp@0.3 x f``: the rule's mu at ``huber = 0.3`` (the default), scaled, huber 0.3;
    - ``comp x f, huber by mask``: the scaled mu of ``comp x f``, the huber whose ``mask`` score is
      lowest at that mu's training weight (``mu (K-1)/K``, interpolated in ``log mu``).
    """
    K = DEFAULT_FOLDS
    out = {}
    f = float(np.exp(np.mean([np.log(o["best"]["mu"] / o["choices"]["comp"]["mu"]) for o in others])))
    pt = {"mu": c["choices"]["comp"]["mu"] * f}
    if "huber" in c["choices"]["comp"]:
        pt["huber"] = c["choices"]["comp"]["huber"]
    out[f"comp x f ({f:.2f})"] = pt
    if "huber" not in pt:
        return out

    def at03(o):
        ih = o["hubers"].index(0.3)
        return _log_parabola_min(np.asarray(o["rule_mus"], float), np.asarray(o["scores"]["comp"][ih])) * K / (K - 1)

    f3 = float(np.exp(np.mean([np.log(o["best"]["mu"] / at03(o)) for o in others])))
    out[f"comp@0.3 x f ({f3:.2f})"] = {"mu": at03(c) * f3, "huber": 0.3}
    mask = np.asarray(c["scores"]["mask"])
    h_by = [_interp_log(c["rule_mus"], mask[i], pt["mu"] * (K - 1) / K) for i in range(len(c["hubers"]))]
    out[f"comp x f ({f:.2f}), huber by mask"] = {"mu": pt["mu"], "huber": float(c["hubers"][int(np.argmin(h_by))])}
    return out


def combine(paths: list[str]) -> None:
    """Candidate (c) by leave-one-specimen-out (:func:`loso_points`), each solved; one table."""
    cases = [_merge_wider(json.load(open(p)), p) for p in paths]
    extra = {}
    for c in cases:
        points = loso_points(c, [o for o in cases if o["specimen"] != c["specimen"]])
        _, truth, series, factors = problem(c["specimen"], c["dose"])
        vals = inside_mse(series, factors, truth, c["method"], list(points.values()))
        extra[_key(c)] = {}
        for (name, pt), v in zip(points.items(), vals, strict=True):
            print(f"{_key(c)}: {name} -> {pt} inside MSE {v:.3e} ({v / c['best']['mse']:.2f}x the oracle)",
                  flush=True)
            extra[_key(c)][name.split(" (")[0] + name.split(")")[-1]] = {**pt, "mse": v, "ratio": v / c["best"]["mse"]}
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
    ap.add_argument("--edge-level", type=float, default=ESF_EDGE_LEVEL,
                    help=f"the scores' ESF mask at this fraction of the particle-background step (default "
                         f"{ESF_EDGE_LEVEL:g}, chemtomo.quantify.ESF_EDGE_LEVEL; the 'mask' score of the rule's "
                         f"training maps always uses that default)")
    ap.add_argument("--haadf-model-error", type=float, default=None, metavar="EPS",
                    help="the fused model's HAADF model error, fixed for the oracle and the rule (default: the "
                         "method's)")
    ap.add_argument("--oracle-only", action="store_true", help="only the oracle sweep (e.g. a wider --mu grid)")
    ap.add_argument("--oracle-from", default=None, help="take the oracle sweep from this JSON (same case and grid)")
    ap.add_argument("--combine", nargs="+", default=None, help="cases' JSON files: the LOSO factor and one table")
    args = ap.parse_args(argv)
    if args.combine:
        combine(args.combine)
    else:
        run_case(args)


if __name__ == "__main__":
    main()
