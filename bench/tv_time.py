"""Fused-TV's convergence per step balance theta on the phantom: how many iterations to the answer.

For each dose, the paper's core-shell slice (``chemtomo.studies.problem``, seed 0, raw
counts and the HAADF, as the study's fused-TV sees them) is solved at ``mu`` (default
0.17, the study's best) with a long reference run (``--n-ref`` iterations at
``--theta-ref``), then with every ``--thetas`` value to ``max(--iterations)``, keeping
snapshots. Reported per theta and snapshot: the relative L2 distance of the maps from
the reference, the inside-particle weight-fraction MSE (``evaluate``) and its ratio to
the reference's, and the CPU seconds of the run (one process; compare ratios, not
seconds, on a shared machine). A ``--thetas`` entry ``aT`` is the adaptive step balance
(``tv_solve(adaptive=True)``: residual balancing) started at ``T``.

``--per-iteration`` instead measures the CPU seconds of one solve with PDHG's compiled
element-wise passes against the numpy ones (``pdhg(compiled=...)``, the same iterates bit
for bit, checked), alternating the two ``--reps`` times, on ``--columns`` copies of the
dose-1 slice.

    python bench/tv_time.py --json      # writes bench/results/tv_time-phantom.json
    python bench/tv_time.py --json --thetas 2,0.35,a2 --out tv_time-adaptive.json
    python bench/tv_time.py --json --per-iteration --columns 32 --out tv_time-compiled.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import chemtomo.reconstruct.fused as fused
from chemtomo.reconstruct import get_method
from chemtomo.reconstruct.fused import tv_solve
from chemtomo.studies.problem import StudyConfig, evaluate, make_problem, maps_of, method_data, study_factors

RESULTS = Path(__file__).resolve().parent / "results"


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run(doses, thetas, iterations, n_ref: int, theta_ref: float, mu: float, save=None) -> dict:
    """The convergence table (see the module docstring) as a dict; ``save(partial)`` after every dose."""
    cfg = StudyConfig()
    factors = study_factors(cfg)
    method = get_method("fused_tv")
    out = {"mu": mu, "n_ref": n_ref, "theta_ref": theta_ref, "iterations": list(iterations),
           "load_start": _load(), "doses": {}}
    for dose in doses:
        prob = make_problem(cfg, dose, factors, seed=0)
        d = method_data(prob, method)
        kw = dict(model="fused", mu=mu, haadf=d.haadf, r=d.response_ratios, coupled=True, monitor_every=10)

        def score(x, prob=prob):
            return evaluate(prob, maps_of(x, cfg.n_pixels), "z")[0]["mse_fraction_inside"]

        t = time.process_time()
        ref = tv_solve(prob.W, d.eds, n_iter=n_ref, theta=theta_ref, **kw).x
        rec = {"reference": {"cpu_s": time.process_time() - t, "mse_inside": score(ref)}, "thetas": {}}
        for th in thetas:
            adaptive = str(th).startswith("a")
            t = time.process_time()
            res = tv_solve(prob.W, d.eds, n_iter=max(iterations), theta=float(str(th).lstrip("a")),
                           adaptive=adaptive, snapshots=iterations, **kw)
            cpu = time.process_time() - t
            rows = []
            for it in iterations:
                x = res.snapshots[it]
                rows.append({"iteration": it,
                             "rel_distance": float(np.linalg.norm(x - ref) / np.linalg.norm(ref)),
                             "mse_inside": score(x)})
            rec["thetas"][str(th)] = {"cpu_s": cpu, "snapshots": rows}
            if adaptive:
                rec["thetas"][str(th)]["theta_history"] = {
                    int(i): float(v) / res.info["constants"]["scale"]
                    for i, v in zip(res.info["iterations"], res.info["theta_history"][:, 0], strict=True)}
            print(f"dose {dose} theta {th}: " + ", ".join(
                f"{r['iteration']}: {r['rel_distance']:.2e} ({r['mse_inside'] / rec['reference']['mse_inside']:.3f})"
                for r in rows), flush=True)
        out["doses"][str(dose)] = rec
        if save is not None:
            save(out)
    out["load_end"] = _load()
    return out


def per_iteration(columns: int, n_iter: int, reps: int) -> dict:
    """CPU seconds of one fused-TV solve with PDHG's compiled passes and with the numpy ones, alternated."""
    cfg = StudyConfig()
    prob = make_problem(cfg, 1.0, study_factors(cfg), seed=0)
    d = method_data(prob, get_method("fused_tv"))
    eds = np.repeat(d.eds, columns, axis=2)
    haadf = np.repeat(d.haadf, columns, axis=1)
    kw = dict(model="fused", mu=0.17, haadf=haadf, r=d.response_ratios, coupled=True, n_iter=n_iter)
    x0 = tv_solve(prob.W, eds, **{**kw, "n_iter": 1}).x  # compiles both paths' kernels once
    original = fused.pdhg
    cpu: dict[str, list[float]] = {"numpy": [], "compiled": []}
    maps = {}
    try:
        for _ in range(reps):
            for name in cpu:
                fused.pdhg = functools.partial(original, compiled=name == "compiled")
                t = time.process_time()
                maps[name] = tv_solve(prob.W, eds, x0=x0, **kw).x
                cpu[name].append(time.process_time() - t)
    finally:
        fused.pdhg = original
    out = {"columns": columns, "n_iter": n_iter, "cpu_s": cpu, "load_start": _load(),
           "bitwise_equal": bool(np.array_equal(maps["numpy"], maps["compiled"]))}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doses", default="1,0.1,0.01")
    ap.add_argument("--thetas", default="0.25,0.35,0.5,1,2")
    ap.add_argument("--iterations", default="50,100,150,200,300")
    ap.add_argument("--n-ref", type=int, default=3000)
    ap.add_argument("--theta-ref", type=float, default=0.35)
    ap.add_argument("--mu", type=float, default=0.17)
    ap.add_argument("--json", action="store_true", help="write the results to bench/results/ (--out)")
    ap.add_argument("--out", default="tv_time-phantom.json", help="file name in bench/results/")
    ap.add_argument("--per-iteration", action="store_true", help="compiled against numpy passes (see above)")
    ap.add_argument("--columns", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    command = "python bench/tv_time.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def save(partial):
        if a.json:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / a.out).write_text(json.dumps({**partial, "command": command}, indent=1))

    if a.per_iteration:
        save(per_iteration(a.columns, max(int(v) for v in a.iterations.split(",")), a.reps))
        return 0
    thetas = [v if v.startswith("a") else float(v) for v in a.thetas.split(",")]
    save(run([float(v) for v in a.doses.split(",")], thetas,
             [int(v) for v in a.iterations.split(",")], a.n_ref, a.theta_ref, a.mu, save))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
