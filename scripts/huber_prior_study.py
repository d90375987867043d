"""fused_huber against fused_tv on the specimen suite: oracle-best and automatic, 3-D coupling on and off.

Runs the benchmark's own case (:func:`chemtomo.studies.benchmark.run_case`: the best of a
grid sweep scored against the truth, and ``reconstruct_series(..., auto=True)``) for

- ``fused_tv`` (grid: mu),
- ``fused_huber`` with ``slice_coupling=True`` (3-D prior; grid: mu x huber),
- ``fused_huber`` with ``slice_coupling=False`` (the same prior slice by slice),

on each specimen and EDS dose, and prints one markdown table of the inside-particle
weight-fraction MSE (best and auto, with their parameters) and the mean of the first
element in the specimen's first region. Usage (the numbers of docs/solvers.md)::

    PYTHONPATH=src python scripts/huber_prior_study.py --specimens ternary_gradient --doses 1 0.1 0.01
        --mu 0.085 0.17 0.34 --huber 0.03 0.1 0.3 --out /tmp/huber_prior_study.json  (one line;
        the same for diffuse_alloy and core_shell)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, dose_key, run_case, score, sub_series, sweep

VARIANTS = {
    "fused_tv": ("fused_tv", {}),
    "fused_huber": ("fused_huber", {"slice_coupling": True}),
    "fused_huber_2d": ("fused_huber", {"slice_coupling": False}),
}


def best_only(series, factors, truth, method: str, cfg: BenchmarkConfig) -> dict:
    """The oracle-best half of :func:`~chemtomo.studies.benchmark.run_case`, no automatic run: best and sweep."""
    base = dict(cfg.params.get(method, {}))
    scored = []
    for c in sweep(series, factors, method, cfg.grid(method), base, mask_method=cfg.mask_method):
        s = score(truth, c["maps"], c["weight"], c["elements"])
        scored.append({**s, "params": {k: float(v) for k, v in c["params"].items()}})
    best = min(scored, key=lambda e: e["mse_fraction_inside"])
    nan = {"mse_fraction_inside": float("nan"), "params": {}, "region_means": best["region_means"]}
    return {"best": {**best, "params": {**base, **best["params"]}}, "auto": nan,
            "sweep": [{"params": e["params"], "mse_fraction_inside": e["mse_fraction_inside"]} for e in scored]}


def main(argv=None) -> dict:
    """Run the study; print the table; return the metrics."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specimens", nargs="+", default=["ternary_gradient", "diffuse_alloy", "core_shell"])
    ap.add_argument("--doses", nargs="+", type=float, default=[1.0, 0.1, 0.01])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--n", type=int, default=28, help="voxels across (the benchmark's default 28)")
    ap.add_argument("--n-slices", type=int, default=8)
    ap.add_argument("--mu", nargs="+", type=float, default=None, help="mu grid (default: the methods' own)")
    ap.add_argument("--huber", nargs="+", type=float, default=None, help="huber grid (default: fused_huber's own)")
    ap.add_argument("--best-only", nargs="*", default=["fused_huber_2d"], choices=list(VARIANTS),
                    help="variants run at their oracle-best only, no automatic run (default: fused_huber_2d)")
    ap.add_argument("--auto-slices", type=int, default=8, help="slices the automatic rules choose on (default 8)")
    ap.add_argument("--out", default=None, help="write the metrics here (JSON)")
    args = ap.parse_args(argv)
    grids = {}
    if args.mu:
        grids = {"fused_tv": {"mu": tuple(args.mu)}, "fused_huber": {"mu": tuple(args.mu)}}
    if args.huber:
        grids.setdefault("fused_huber", {})["huber"] = tuple(args.huber)
    base = BenchmarkConfig(specimens=tuple(args.specimens), doses=tuple(args.doses),
                           methods=("fused_tv", "fused_huber"), n=args.n, n_slices=args.n_slices, grids=grids,
                           auto_slices=args.auto_slices, label="huber_prior_study")
    a, b = base.slice_range()
    out: dict = {"config": base.as_dict(), "variants": {v: VARIANTS[v][1] for v in args.variants}, "suite": {}}
    rows = []
    for name in base.specimens:
        spec = make_specimen(name, base.n, base.oversampling, base.specimen_seed)
        truth = Truth.of(spec, (a, b))
        for dose in base.doses:
            sim = simulate_series(spec, np.asarray(base.angles_deg, float), dose_scale=dose, beam_kev=base.beam_kev,
                                  seed=base.noise_seed, elastic="auto")
            series = sub_series(sim.series, a, b)
            for v in args.variants:
                method, fixed = VARIANTS[v]
                cfg = dataclasses.replace(base, params={method: fixed})
                t0 = time.perf_counter()
                if v in args.best_only:
                    r = best_only(series, sim.factors, truth, method, cfg)
                else:
                    r = run_case(series, sim.factors, truth, method, cfg, reconstruct_series)
                r["seconds"] = time.perf_counter() - t0
                out["suite"].setdefault(name, {}).setdefault(dose_key(dose), {})[v] = r
                region = next(iter(truth.regions))
                el = truth.elements[0]
                rows.append((name, dose_key(dose), v, r["best"]["mse_fraction_inside"],
                             {k: r["best"]["params"][k] for k in ("mu", "huber") if k in r["best"]["params"]},
                             r["auto"]["mse_fraction_inside"],
                             {k: round(r["auto"]["params"][k], 3) for k in ("mu", "huber") if k in r["auto"]["params"]},
                             f"{region} {el}: {r['best']['region_means'][region][el]:.3f} / "
                             f"{r['auto']['region_means'][region][el]:.3f} "
                             f"(truth {r['best']['truth_region_means'][region][el]:.3f})", r["seconds"]))
                print(" | ".join(str(x) for x in rows[-1]), flush=True)
    print("\n| specimen | dose | variant | best MSE | best params | auto MSE | auto params | region mean best / auto "
          "| seconds |\n|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]:.2e} | {row[4]} | {row[5]:.2e} | {row[6]} | {row[7]} "
              f"| {row[8]:.0f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1, default=float)
    return out


if __name__ == "__main__":
    main()
