#!/usr/bin/env python
"""Fused-TV's iteration with the TV term run from the primal iterates (``pdhg(fuse_tv=...)``), before / after.

Issue 17: ``make real-example-tv``'s time is fused-TV iterations (the rule and the final
solve). ``pdhg(fuse_tv=True)`` (the default) runs the TV term without its gradient fields
(:mod:`chemtomo.reconstruct._pdhg_tv`): ``K xbar = 2 c D x - c D x_prev`` formed inside the
dual step (:func:`~chemtomo.reconstruct._pdhg_kernels.dual_tv_extrap`) and ``c D^T y`` inside
the primal step (:func:`~chemtomo.reconstruct._pdhg_kernels.primal_step_tv`), in place of
six passes (``D x_new``, its scaling, the extrapolation, the dual step, ``D^T y``, its
scaling; the primal step's own pass is kept): the same float32 operations in the same
order, so the same bits. And the batched engine projects the channel blocks in place when
their width is a multiple of its block width (``BatchedOperator.in_place_channels``: no packed
copy of the unknown before the forward projection or after the adjoint; the same bits). This
script solves the real example's rule slices
(``bench/tv_convergence_real.py``'s inputs: 8 slices of 172^2, 5 lines and the HAADF, the
volume's constants) copied to ``--columns`` columns for ``--n-iter`` iterations at
``--mu``, with both off (the baseline: the code before) and both on, alternated ``--repeat`` times in one
process after a compiling call of each, on numba's threads as set by the environment
(``NUMBA_NUM_THREADS=1``: one thread, as each of the two solves at once in the real
example). It reports wall and CPU seconds per column-iteration, the ratios (after / before)
of the best and of the mean of each, and the largest map difference (0: the same bits).
``--rule-check`` also runs the automatic rule (``cv_tv_weight``, the real example's grid,
``--rule-iter`` iterations) both ways and compares the scores and the choice.
``--passes`` also times the TV passes alone on the same sizes (``k`` lines and the
HAADF's image rows, ``--columns`` columns; random iterates): the six separate passes against
the two fused kernels, best of ``--pass-repeat``, each after a 64 MB write that evicts the
caches (a solve's arrays do not stay cached between passes). Results go to
``bench/results/<--out>``.

    NUMBA_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/tv_fused_passes.py --inputs-cache /tmp/rule_inputs.pkl \
        --repeat 5 --n-iter 40 --rule-check --passes
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import numpy as np
from tv_convergence_real import DATA, _cached_inputs, solve_inputs

RESULTS = Path(__file__).resolve().parent / "results"
GRID = (0.015, 0.03, 0.06, 0.12, 0.24)


def tv_passes(k: int, ny: int, nx: int, m: int, repeat: int) -> dict:
    """Best seconds of the TV term's separate passes and of the fused kernels (``--passes``), cache evicted."""
    from chemtomo.reconstruct import _pdhg_kernels as pk
    from chemtomo.reconstruct import _tv_kernels as tk

    rng = np.random.default_rng(0)
    x = (0.1 * rng.random((k, ny, nx, m))).astype(np.float32)
    xp = (x + 0.01 * rng.random((k, ny, nx, m))).astype(np.float32)
    y0 = (0.01 * rng.random((k, 2, ny, nx, m))).astype(np.float32)
    a = rng.random((k, ny, nx, m)).astype(np.float32)
    tau = rng.random((k, ny, nx, m)).astype(np.float32)
    sig = rng.random((k, 2, ny, nx, 1)).astype(np.float32)
    r = np.full(m, 0.05, np.float32)
    c = np.float32(0.7)
    gx, go, adj, out = np.empty_like(y0), np.empty_like(y0), np.empty_like(x), np.empty_like(x)
    rows = lambda v: v.reshape(v.shape[:-2] + (-1,))  # noqa: E731
    flat = lambda v: v.reshape(-1, m)  # noqa: E731
    evict = np.ones(2**24, np.float32)

    def dual_separate(y):  # D x_new and its scaling (the forward), the extrapolation, the dual step
        tk.gradient(x, gx)
        np.multiply(gx, c, out=gx)
        pk.extrapolate(flat(go), flat(gx))
        pk.dual_tv(go, sig, y, r, True, y)

    def dual_fused(y):
        pk.dual_tv_extrap(rows(x), rows(xp), c, False, np.ascontiguousarray(sig[..., 0]), rows(y), r, True, rows(y))

    def primal_separate(y):
        tk.gradient_adjoint(y, adj)
        np.multiply(adj, c, out=adj)
        pk.primal_step2(flat(x), flat(a), flat(adj), flat(tau), True, flat(out))

    def primal_fused(y):
        pk.primal_step_tv(rows(x), rows(a), rows(y), c, rows(tau), m, True, rows(out))

    got = {}
    for name, fn in (("dual_separate", dual_separate), ("dual_fused", dual_fused),
                     ("primal_separate", primal_separate), ("primal_fused", primal_fused)):
        times = []
        for _ in range(repeat + 1):
            tk.gradient(xp, go)
            go *= c
            y = y0.copy()
            evict += 1
            t = time.perf_counter()
            fn(y)
            times.append(time.perf_counter() - t)
        got[name] = min(times[1:])
    return {"seconds": got, "ratio_dual": got["dual_fused"] / got["dual_separate"],
            "ratio_primal": got["primal_fused"] / got["primal_separate"],
            "ratio_both": (got["dual_fused"] + got["primal_fused"]) / (got["dual_separate"] + got["primal_separate"])}


def main(argv=None) -> dict:
    """Run the comparison (module docstring) and write ``bench/results/<--out>``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--inputs-cache", default=None, help="pickle of the rule's inputs (written when missing)")
    p.add_argument("--columns", type=int, default=32)
    p.add_argument("--n-iter", type=int, default=60)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--mu", type=float, default=0.0384)
    p.add_argument("--rule-check", action="store_true")
    p.add_argument("--rule-iter", type=int, default=20)
    p.add_argument("--passes", action="store_true")
    p.add_argument("--pass-repeat", type=int, default=7)
    p.add_argument("--out", default="tv_fused_passes.json")
    a = p.parse_args(argv)
    import numba

    import chemtomo.reconstruct.autoparam as ap
    import chemtomo.reconstruct.fused as fused
    from chemtomo.reconstruct.pdhg import pdhg

    got = _cached_inputs(a.data, a.inputs_cache)
    W, counts, haadf, r, kw = solve_inputs(got, ("n_iter", "choice_tol", "check_every"))
    reps = -(-a.columns // counts.shape[2])
    C = np.tile(counts, (1, 1, reps))[:, :, :a.columns]
    H = np.tile(haadf, (1, reps))[:, :a.columns]
    from chemtomo.projector import BatchedOperator

    # before: the TV term's separate passes and the packed copies of the unknown; after: both changes
    modes = {"separate": False, "fused": True}

    def use(fuse):
        fused.pdhg = functools.partial(pdhg, fuse_tv=fuse)
        BatchedOperator.in_place_channels = fuse
    runs: dict = {name: [] for name in modes}
    maps = {}

    def solve(n_iter):
        return fused.tv_solve(W, C, model="fused", mu=a.mu, haadf=H, r=r, n_iter=n_iter, **kw).x

    try:
        for fuse in modes.values():  # compile, warm the buffers
            use(fuse)
            solve(2)
        for _ in range(a.repeat):
            for name, fuse in modes.items():
                use(fuse)
                t, c = time.perf_counter(), time.process_time()
                maps[name] = solve(a.n_iter)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                ci = a.columns * a.n_iter
                runs[name].append({"wall_s": wall, "cpu_s": cpu, "wall_ms_per_column_iteration": 1e3 * wall / ci,
                                   "cpu_ms_per_column_iteration": 1e3 * cpu / ci, "load": os.getloadavg()[0]})
                print(name, runs[name][-1], flush=True)
        rule = None
        if a.rule_check:
            rkw = {k: v for k, v in got["kw"].items() if k not in ("n_iter", "choice_tol", "check_every")}
            res = {}
            for name, fuse in modes.items():
                use(fuse)
                res[name] = ap.cv_tv_weight(W, counts, "fused", GRID, n_iter=a.rule_iter, **rkw)
            rule = {"n_iter": a.rule_iter, "choice": {n: v.params for n, v in res.items()},
                    "same_scores": bool(np.array_equal(res["separate"].scores, res["fused"].scores)),
                    "same_choice": res["separate"].params == res["fused"].params}
            print("rule", rule, flush=True)
    finally:
        fused.pdhg = pdhg
        BatchedOperator.in_place_channels = True
    passes = None
    if a.passes:
        ny, nx = (int(round(np.sqrt(W.shape[1]))),) * 2
        passes = tv_passes(counts.shape[0], ny, nx, a.columns, a.pass_repeat)
        print("passes", passes, flush=True)
    best = {name: min(q["wall_s"] for q in v) for name, v in runs.items()}
    best_cpu = {name: min(q["cpu_s"] for q in v) for name, v in runs.items()}
    mean = {name: float(np.mean([q["wall_s"] for q in v])) for name, v in runs.items()}
    diff = float(np.max(np.abs(maps["fused"] - maps["separate"])))
    out = {
        "columns": a.columns, "n_iter": a.n_iter, "mu": a.mu, "numba_threads": numba.get_num_threads(),
        "runs": runs, "best_wall_s": best, "best_cpu_s": best_cpu,
        "ratio_wall_fused_over_separate": best["fused"] / best["separate"],
        "ratio_cpu_fused_over_separate": best_cpu["fused"] / best_cpu["separate"],
        "mean_wall_s": mean, "ratio_mean_wall_fused_over_separate": mean["fused"] / mean["separate"],
        "max_abs_map_difference": diff, "max_abs_map": float(np.max(np.abs(maps["separate"]))),
        "same_bits": bool(np.array_equal(maps["fused"], maps["separate"])), "rule": rule, "passes": passes,
    }
    print({k: out[k] for k in ("best_wall_s", "ratio_wall_fused_over_separate", "ratio_cpu_fused_over_separate",
                               "ratio_mean_wall_fused_over_separate", "same_bits")}, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / a.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
