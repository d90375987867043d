"""Cost of the bootstrap uncertainty: R replicas against one reconstruction of the same slices (issue 15).

For each method, one process builds the benchmark's core-shell specimen (``--n`` voxels
across, ``--slices`` middle slices, 29 tilts, the paper's EDS dose), compiles every
kernel (a reconstruction and a 2-replica bootstrap first, not timed), then alternates,
``--repeat`` times:

- ``one``: ``reconstruct_series(series, factors, method, params)``: what a user runs
  (filter, response ratios, the solve, the ESF mask and the fractions);
- ``replicas``: ``bootstrap_uncertainty(..., replicas=R, result=<one's result>)``'s
  ``seconds["replicas"]``: drawing the replicas, their one stacked batched solve (the
  replicas are extra columns, ``R x n_slices`` slices) and their fractions and summaries.

The ratio is ``replicas / one`` (best of the repeats for each; the median ratio of the
pairs as well), on the same slices, in the same process, side by side, in wall time and in
the process's CPU time (user + system of all its threads: on a machine shared with other
work, wall times swing with the load, CPU times much less). The load average is recorded
before and after.

    python bench/uncertainty_cost.py                     # writes bench/results/uncertainty_cost.json
    python bench/uncertainty_cost.py --methods eds_sirt --repeat 1 --out /tmp/x.json   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "uncertainty_cost.json"
#: Parameters per method (EDS-SIRT and HEBT at the benchmark's automatic choice for this case, fused-TV default).
PARAMS = {"eds_sirt": {"n_iter": 500}, "hebt_sirt": {"n_iter": 500, "alpha": 0.3}, "fused_tv": {}}


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def measure(method: str, params: dict, series, factors, replicas: int, repeat: int) -> dict:
    """Alternate one reconstruction and ``replicas`` replicas ``repeat`` times; times and ratios."""
    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
    from chemtomo.pipeline.volume import reconstruct_series

    res = reconstruct_series(series, factors, method, params)  # compile, not timed
    bootstrap_uncertainty(series, factors, method, params, replicas=2, result=res)
    ones, reps, cpu_ones, cpu_reps = [], [], [], []
    for i in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = reconstruct_series(series, factors, method, params)
        ones.append(time.perf_counter() - t0)
        cpu_ones.append(time.process_time() - c0)
        c0 = time.process_time()
        u = bootstrap_uncertainty(series, factors, method, params, replicas=replicas, seed=i, result=res)
        cpu_reps.append(time.process_time() - c0)
        reps.append(float(u.seconds["replicas"]))
    ratios = [r / o for r, o in zip(reps, ones, strict=True)]
    return {"params": params, "one_seconds": ones, "replicas_seconds": reps,
            "one_cpu_seconds": cpu_ones, "replicas_cpu_seconds": cpu_reps,
            "ratio_best": min(reps) / min(ones), "ratio_median_of_pairs": float(np.median(ratios)),
            "cpu_ratio_best": min(cpu_reps) / min(cpu_ones),
            "columns_one": len(series.lines) * series.n_slices,
            "columns_replicas": replicas * len(series.lines) * series.n_slices}


def main(argv=None) -> dict:
    """Run the measurement and write the JSON (``--out``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=list(PARAMS))
    ap.add_argument("--replicas", type=int, default=20)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    from chemtomo.simulate.specimens import make_specimen, simulate_series
    from chemtomo.studies.benchmark import sub_series

    spec = make_specimen("core_shell", args.n, 2, 0)
    sim = simulate_series(spec, np.arange(-70.0, 70.1, 5.0), dose_scale=1.0, beam_kev=200.0, seed=0, elastic="auto")
    a = (args.n - args.slices) // 2
    series = sub_series(sim.series, a, a + args.slices)
    out = {"what": "bootstrap replicas against one reconstruction of the same slices, side by side",
           "specimen": "core_shell", "n": args.n, "slices": [a, a + args.slices], "tilts": len(sim.series.angles_deg),
           "replicas": args.replicas, "repeat": args.repeat, "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "load_before": load(), "methods": {}}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    for m in args.methods:
        out["methods"][m] = measure(m, dict(PARAMS.get(m, {})), series, sim.factors, args.replicas, args.repeat)
        r = out["methods"][m]
        print(f"{m}: one {min(r['one_seconds']):.2f} s, {args.replicas} replicas {min(r['replicas_seconds']):.2f} s, "
              f"ratio {r['ratio_best']:.2f} (median of pairs {r['ratio_median_of_pairs']:.2f}; CPU "
              f"{r['cpu_ratio_best']:.2f})", flush=True)
        out["load_after"] = load()
        tmp = path.with_suffix(path.suffix + ".tmp")  # written after each method: a partial run keeps its numbers
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(path)
    return out


if __name__ == "__main__":
    main()
