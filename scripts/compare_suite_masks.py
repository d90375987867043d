#!/usr/bin/env python
r"""Two specimen-suite runs side by side: inside MSE and mask of every entry, the entries that changed.

With ``--summary`` also each case's automatic results over 1.2x their best and the best automatic
method against EDS-SIRT's automatic result (the issue's checks), before and after.

Reads two ``metrics.json`` of ``chemtomo benchmark --study suite`` (``suite.<specimen>.<dose>.methods.
<method>.best|auto``) and prints, per entry, the inside-particle weight-fraction MSE, the particle
voxels the mask misses and the mask's label in each, marking the entries whose MSE or mask
changed. The numbers of docs/solvers.md ("Mask fallback when the ESF fit fails") come from:

    git archive 99675f9 src | tar -x -C /tmp/base   # the code before the fallback changed
    nice -n 19 env NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=/tmp/base/src .venv/bin/python -m chemtomo \
        benchmark --study suite --specimens oxide_supported --out /tmp/before
    nice -n 19 env NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python -m chemtomo \
        benchmark --study suite --specimens oxide_supported --out /tmp/after
    .venv/bin/python scripts/compare_suite_masks.py /tmp/before/metrics.json /tmp/after/metrics.json
"""

from __future__ import annotations

import argparse
import json


def entries(metrics: dict) -> dict:
    """``(specimen, dose, method, "best"|"auto") -> (mse inside, particle missed, mask)``."""
    out = {}
    for spec, doses in metrics["suite"].items():
        for dose, case in doses.items():
            for method, e in case["methods"].items():
                for which in ("best", "auto"):
                    r = e[which]
                    out[(spec, dose, method, which)] = (r["mse_fraction_inside"], r["particle_missed_by_mask"],
                                                        r.get("mask", ""))
    return out


def summary(metrics: dict) -> dict:
    """``(specimen, dose) -> (methods over 1.2x auto/best, best automatic method, its MSE, over EDS-SIRT's auto)``."""
    out = {}
    for spec, doses in metrics["suite"].items():
        for dose, case in doses.items():
            m = case["methods"]
            auto = {k: e["auto"]["mse_fraction_inside"] for k, e in m.items()}
            over = sorted(k for k, e in m.items() if auto[k] > 1.2 * e["best"]["mse_fraction_inside"])
            top = min(auto, key=auto.get)
            out[(spec, dose)] = (over, top, auto[top], auto[top] / auto["eds_sirt"] if "eds_sirt" in auto else None)
    return out


def print_summary(a: dict, b: dict) -> None:
    """Per case: the methods whose automatic result is over 1.2x their best; the best automatic method."""
    sa, sb = summary(a), summary(b)
    print("\n| specimen | dose | auto over 1.2x best: before | after | best auto: before | after "
          "| over EDS-SIRT auto: before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(set(sa) & set(sb)):
        (oa, ta, va, ra), (ob, tb, vb, rb) = sa[key], sb[key]
        print(f"| {' | '.join(key)} | {', '.join(oa) or '-'} | {', '.join(ob) or '-'} | {ta} {va:.3g} | {tb} {vb:.3g} "
              f"| {ra:.2f} | {rb:.2f} |")
    for name, s in (("before", sa), ("after", sb)):
        n_over = sum(len(v[0]) for v in s.values())
        ratios = sorted(v[3] for v in s.values())
        print(f"{name}: {n_over} automatic results over 1.2x their best; best auto over EDS-SIRT auto: median "
              f"{ratios[len(ratios) // 2]:.2f}, max {ratios[-1]:.2f}, {sum(r > 0.5 for r in ratios)} cases over 1/2")


def main() -> int:
    """Print the table; exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="metrics.json of the first run")
    p.add_argument("after", help="metrics.json of the second run")
    p.add_argument("--changed", action="store_true", help="print only the entries that changed")
    p.add_argument("--summary", action="store_true", help="also the summary per case (auto over best, best auto)")
    args = p.parse_args()
    with open(args.before) as f:
        run_a = json.load(f)
    with open(args.after) as f:
        run_b = json.load(f)
    a, b = entries(run_a), entries(run_b)
    print("| specimen | dose | method | which | inside MSE before | after | missed before | after | mask before "
          "| mask after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    n_changed = n_worse = 0
    for key in sorted(set(a) & set(b)):
        (ma, pa, ka), (mb, pb, kb) = a[key], b[key]
        changed = ma != mb or ka != kb
        n_changed += changed
        n_worse += mb > ma
        if changed or not args.changed:
            mark = "**" if changed else ""
            print(f"| {' | '.join(key)} | {mark}{ma:.3g}{mark} | {mark}{mb:.3g}{mark} | {pa:.3f} | {pb:.3f} | {ka} "
                  f"| {kb} |")
    print(f"\n{n_changed} of {len(set(a) & set(b))} entries changed; {n_worse} with a larger inside MSE")
    if args.summary:
        print_summary(run_a, run_b)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
