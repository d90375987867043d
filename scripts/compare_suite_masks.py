#!/usr/bin/env python
r"""Two specimen-suite runs side by side: inside MSE and mask of every entry, the entries that changed.

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


def main() -> int:
    """Print the table; exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="metrics.json of the first run")
    p.add_argument("after", help="metrics.json of the second run")
    p.add_argument("--changed", action="store_true", help="print only the entries that changed")
    args = p.parse_args()
    with open(args.before) as f:
        a = entries(json.load(f))
    with open(args.after) as f:
        b = entries(json.load(f))
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
