#!/usr/bin/env python
"""A result's figures on one process against two: the real example's ``chemtomo show`` work.

Issue 17: the outputs of ``make real-example-tv`` are mostly its figures (about 9 s on one
core for 3 methods x 5 lines of a 128^3 volume: orthoslice grids of 60 axes, the 3-D
rendering). :func:`chemtomo.report.volume.draw_result_figures` can hand figures to a helper
process (a fresh interpreter that reads the file and draws from the front of the list while
the caller draws from the back). This script alternates ``processes=1`` (the baseline) and
``processes=2`` ``--repeat`` times in one process on a result file, reports the wall seconds
of each, the best of each and their ratio, and checks that the PNGs are the same bytes.
Results go to ``bench/results/<--out>``.

    make real-example-tv     # writes results/ncem-idp-tv/result.h5
    PYTHONPATH=src .venv/bin/python bench/figures.py results/ncem-idp-tv/result.h5   # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> dict:
    """Run the comparison (module docstring) and write ``bench/results/<--out>``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", help="a chemtomo result file (result.h5)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="figures.json")
    a = p.parse_args(argv)
    from chemtomo.report.volume import draw_result_figures

    runs: dict = {"one_process": [], "two_processes": []}
    pngs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        draw_result_figures(a.result, Path(tmp) / "warm", processes=1)  # fonts and caches, as a second run has
        for r in range(a.repeat):
            for name, n in (("one_process", 1), ("two_processes", 2)):
                folder = Path(tmp) / f"{name}-{r}"
                t = time.perf_counter()
                paths = draw_result_figures(a.result, folder, processes=n)
                runs[name].append(time.perf_counter() - t)
                got = {q.name: q.read_bytes() for q in paths}
                pngs.setdefault(name, got)
                if got != pngs[name] or got != pngs["one_process"]:
                    raise SystemExit(f"{name}, repeat {r}: the figures differ from the one-process run's")
    best = {k: min(v) for k, v in runs.items()}
    out = {"result": str(a.result), "figures": sorted(pngs["one_process"]), "cores": len(os.sched_getaffinity(0)),
           "wall_s": runs, "best_wall_s": best, "ratio_two_over_one": best["two_processes"] / best["one_process"],
           "same_bytes": True}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("best_wall_s", "ratio_two_over_one")}))
    return out


if __name__ == "__main__":
    main()
