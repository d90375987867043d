#!/usr/bin/env python
"""Why EDS-SIRT's iteration count is chosen by the discrepancy principle, not by cross-validation.

(The rule in use adds a model-error floor, :mod:`chemtomo.reconstruct.stopping`; its column
shows it is the classic rule's choice, or close, on the phantom.)

On the paper's phantom at the three doses of the study and three noise seeds, this
compares, for EDS-only SIRT, the iteration count that minimises the inside-particle
weight-fraction MSE (the oracle, which needs the phantom) with the counts chosen from
the data alone by 4-fold cross-validation on held-out rays and by the discrepancy
principle, and prints the MSE of each choice relative to the oracle's. The numbers
quoted in docs/solvers.md come from this script:

    .venv/bin/python scripts/sirt_stopping_rules.py            # table on stdout (about 1 minute)
    .venv/bin/python scripts/sirt_stopping_rules.py --json out.json
"""

from __future__ import annotations

import argparse
import json

from chemtomo.reconstruct import get_method
from chemtomo.reconstruct.autoparam import cv_sirt_iterations, discrepancy_sirt_iterations
from chemtomo.reconstruct.stopping import floor_discrepancy_sirt_iterations
from chemtomo.studies import paper_phantom as pp
from chemtomo.studies.solvers import raw_counts

GRID = (10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 300, 500)


def main() -> int:
    """Compare the CV and discrepancy stopping rules of EDS-SIRT with the oracle n; prints a table, exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    cfg = pp.StudyConfig()
    factors = pp.study_factors(cfg)
    rows = []
    print("| dose | seed | oracle n | CV n (MSE / oracle) | discrepancy n (MSE / oracle) | "
          "with floor n (MSE / oracle) |")
    print("|---|---|---|---|---|---|")
    for dose in cfg.doses:
        for seed in range(args.seeds):
            pr = pp.make_problem(cfg, dose, factors, seed)
            res = get_method("eds_sirt")(pr.W, pr.data, n_iter=max(GRID), snapshots=GRID)
            mse = {n: pp.evaluate(pr, pp.maps_of(res.snapshots[n], cfg.n_pixels), "f")[0]["mse_fraction_inside"]
                   for n in GRID}
            oracle = min(mse, key=mse.get)
            raw = raw_counts(pr)
            cv = cv_sirt_iterations(pr.W, raw, GRID, n_tilts=pr.geometry.n_tilts, n_pixels=pr.geometry.n_pixels,
                                    filter_sigma=cfg.filter_sigma, filter_axes="sinogram").params["n"]
            dp_res = discrepancy_sirt_iterations(pr.W, raw, GRID, data=pr.data.eds)
            dp = dp_res.params["n"]
            fl = floor_discrepancy_sirt_iterations(pr.W, raw, GRID, data=pr.data.eds).params["n"]
            row = {"dose": dose, "seed": seed, "oracle_n": oracle, "oracle_mse": mse[oracle],
                   "cv_n": cv, "cv_ratio": mse[cv] / mse[oracle], "discrepancy_n": dp,
                   "discrepancy_ratio": mse[dp] / mse[oracle], "floor_n": fl, "floor_ratio": mse[fl] / mse[oracle],
                   "deviance_ratios": [float(v) for v in dp_res.scores], "mse": [mse[n] for n in GRID]}
            rows.append(row)
            print(f"| {dose:g} | {seed} | {oracle} | {cv} ({row['cv_ratio']:.2f}) | "
                  f"{dp} ({row['discrepancy_ratio']:.2f}) | {fl} ({row['floor_ratio']:.2f}) |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"grid": GRID, "rows": rows}, fh, indent=1)
    worst = {k: max(r[k] for r in rows) for k in ("cv_ratio", "discrepancy_ratio", "floor_ratio")}
    print(f"\nworst over all doses and seeds: CV {worst['cv_ratio']:.2f}, "
          f"discrepancy {worst['discrepancy_ratio']:.2f}, with floor {worst['floor_ratio']:.2f} "
          "x the oracle's weight-fraction MSE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
