#!/usr/bin/env python
"""Independent solves on threads: the real example's TV rule one group at a time against two at once.

Issue 17: one fused-TV solve keeps 2 cores only ~1.3 busy (its iteration is a chain of
short memory-bound parallel passes with a barrier each), so the rule's column groups and a
volume's chunks now run two at once on Python threads, each with one numba thread
(:func:`chemtomo.projector.map_threads`). This script measures that on the problem the
real example's rule solves (``bench/tv_convergence_real.py``'s inputs: 8 slices, 5 lines
and the HAADF, the volume's TV constants): ``cv_tv_weight`` (batched schedule, 5
candidates x 4 folds x 8 slices = 160 columns, ``--n-iter`` iterations) with its groups
one at a time on numba's threads (the baseline: ``concurrent_workers`` patched to 1) and
two at once (the default), alternated ``--repeat`` times in one process. It reports wall
and CPU seconds of each, the best of each and their ratio, and checks that the scores
and the choice are the same bits. Results go to ``bench/results/<--out>``.

    PYTHONPATH=src .venv/bin/python bench/solve_threads.py --inputs-cache /tmp/rule_inputs.pkl   # ~4 min
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from tv_convergence_real import DATA, _cached_inputs

RESULTS = Path(__file__).resolve().parent / "results"
GRID = (0.015, 0.03, 0.06, 0.12, 0.24)


def main(argv=None) -> dict:
    """Run the comparison (module docstring) and write ``bench/results/<--out>``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--inputs-cache", default=None, help="pickle of the rule's inputs (written when missing)")
    p.add_argument("--n-iter", type=int, default=60)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", default="solve_threads.json")
    a = p.parse_args(argv)
    import numba

    import chemtomo.reconstruct.autoparam as ap
    from chemtomo.projector import concurrent_workers

    got = _cached_inputs(a.data, a.inputs_cache)
    W, counts = got["W"], got["counts"]
    kw = {k: v for k, v in got["kw"].items() if k not in ("n_iter", "choice_tol", "check_every")}
    modes = {"one_at_a_time": lambda n_tasks=None: 1, "two_at_once": concurrent_workers}
    runs: dict = {m: [] for m in modes}
    results = {}
    ap.cv_tv_weight(W, counts, "fused", GRID, n_iter=2, **kw)  # compile
    for _ in range(a.repeat):
        for name, fn in modes.items():
            ap.concurrent_workers = fn
            t, c = time.perf_counter(), time.process_time()
            res = ap.cv_tv_weight(W, counts, "fused", GRID, n_iter=a.n_iter, **kw)
            runs[name].append({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                               "load": os.getloadavg()[0]})
            results[name] = res
            print(name, runs[name][-1], res.params, flush=True)
    ap.concurrent_workers = concurrent_workers
    base, new = results["one_at_a_time"], results["two_at_once"]
    best = {m: min(r["wall_s"] for r in v) for m, v in runs.items()}
    out = {
        "columns": int(counts.shape[2]) * 4 * len(GRID), "n_iter": a.n_iter, "numba_threads": numba.get_num_threads(),
        "workers": concurrent_workers(), "threading_layer": numba.threading_layer(), "runs": runs,
        "best_wall_s": best, "ratio_two_at_once_over_one": best["two_at_once"] / best["one_at_a_time"],
        "same_bits": bool(np.array_equal(base.scores, new.scores) and base.params == new.params),
        "choice": new.params,
    }
    print({k: out[k] for k in ("best_wall_s", "ratio_two_at_once_over_one", "same_bits")}, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / a.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
