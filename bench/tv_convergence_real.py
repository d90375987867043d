#!/usr/bin/env python
"""Fused-TV's convergence on the real example: how far 100-400 iterations are from the minimiser.

Issue 17 asks ``make real-example-tv`` for 90 s; fused-TV's rule and final solve take
about 125 s of it at 200 iterations, and the engine's iteration is near its arithmetic
bound, so the only way down is fewer iterations. This script measures whether fewer
iterations can give the same maps, on the problem the real example's rule solves.

It runs the real example's command (``make real-example-tv``'s arguments, fused-TV
alone) until fused-TV's rule is called, takes the rule's inputs (the 8 slices the rule
uses, raw counts, HAADF, response ratios, the volume's TV constants) and stops the
run. On those 8 slices with all rays (no folds), at ``--mu`` (default 0.0384, the
rule's choice on this series), it then measures:

1. a reference: ``--n-ref`` iterations (default 4000) at the default step balance, and
   its distance from a run of 3/4 as many iterations (how converged the reference is);
2. for every ``--thetas`` step balance (``aT``: adaptive started at ``T``) the relative
   L2 distance of the maps from the reference after 100, 200 and 400 iterations, overall
   and per line;
3. the same at the default theta from a per-line start (EDS SIRT maps in HAADF units,
   renormalised per pixel to the HAADF SIRT map) instead of the default start;
4. the error's spatial scale: the distance after a Gaussian smoothing of the
   difference (sigma 1, 2, 4 px), at 50, 100 and 200 iterations;
5. the HAADF's empty rays: the share of pixels no ray below 1-10 % of the HAADF
   maximum crosses (a support constraint's possible saving);
6. with ``--rule-trace``, the rule itself (5 candidates x 4 folds x 8 slices, 200
   iterations) with its choice every 10 iterations;
7. with ``--monitor-cost``, the CPU seconds of 100 iterations on the 8 slices copied to
   32 columns (a chunk of the final solve) with the objective and residuals evaluated
   every 10 iterations (``tv_solve``'s default before issue 17's fourth pass) against the
   last iteration only (its default now), alternated ``--repeat`` times, the maps
   checked equal bit for bit;
8. with ``--alloc-cost``, the CPU seconds and minor page faults (``resource.getrusage``) of
   ``--repeat`` runs of 100 iterations on the same 32 columns, monitored at the last
   iteration only (the default), after a 2-iteration warm-up call; ``--save-maps`` writes
   the last run's maps (``.npy``) and ``--check-maps`` compares them bit for bit with such
   a file (issue 17's buffer reuse: run it on the code before and after the change, one
   process per thread count, ``NUMBA_NUM_THREADS`` set). ``--inputs-cache`` pickles the
   rule's inputs so that later runs skip the example's line maps and preprocessing.

CPU seconds are per step (``time.process_time``, every thread).

    PYTHONPATH=src .venv/bin/python bench/tv_convergence_real.py --rule-trace   # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DATA = "../shared/data/ncem-idp-eds-tilt-series"
ARGS = ("--lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N "
        "--mask otsu --method fused_tv -n fused_tv=200 --auto fused_tv --auto-grid mu=0.015,0.03,0.06,0.12,0.24")


class _Captured(Exception):
    """Raised by the wrapped rule once its inputs are taken: stops the example's run."""


def rule_inputs(data: str, out: str) -> dict:
    """The real example's fused-TV rule inputs (``W``, ``counts``, ``mus`` and the rule's keywords)."""
    import chemtomo.reconstruct.methods as methods
    from chemtomo.cli import build_parser
    from chemtomo.cli._raw import raw_options
    from chemtomo.pipeline.experimental import run_experimental

    taken: dict = {}
    original = methods.cv_tv_weight

    def take(W, counts, model, mus, **kw):
        taken.update(W=W, counts=counts, model=model, mus=list(mus), kw=kw)
        raise _Captured

    methods.cv_tv_weight = take
    try:
        args = build_parser().parse_args(["reconstruct", data, *ARGS.split(), "--out", out])
        lo, po, ro, oo = raw_options(args)
        run_experimental(args.inputs[0], args.lines, args.out, line_maps=lo, preprocess=po, reconstruction=ro,
                         output=oo, progress=False)
    except _Captured:
        pass
    finally:
        methods.cv_tv_weight = original
    if not taken:
        raise RuntimeError("the example finished without calling fused-TV's rule")
    return taken


def _distance(x: np.ndarray, ref: np.ndarray) -> dict:
    """Relative L2 distance of maps ``(k, n_vox, m)`` from ``ref``, overall and per line."""
    return {"all": float(np.linalg.norm(x - ref) / np.linalg.norm(ref)),
            "per_line": [float(np.linalg.norm(x[a] - ref[a]) / np.linalg.norm(ref[a])) for a in range(len(x))]}


def _per_line_start(W, counts, haadf, r, n_sirt: int = 30) -> np.ndarray:
    """EDS SIRT per line in HAADF units, renormalised per pixel to the HAADF SIRT map."""
    from chemtomo.reconstruct.sirt import sirt

    k, n_rays, m = counts.shape
    b = np.ascontiguousarray(counts.transpose(1, 0, 2).reshape(n_rays, k * m)).astype(np.float32)
    xe = np.maximum(sirt(W, b, n_sirt).x.reshape(-1, k, m).transpose(1, 0, 2), 0)
    xe = xe * np.asarray(r, np.float32)[:, None, None]
    h = np.maximum(sirt(W.modality("haadf"), np.ascontiguousarray(haadf), n_sirt).x, 0)
    return np.ascontiguousarray((xe / np.maximum(xe.sum(0, keepdims=True), 1e-30) * h[None]).astype(np.float32))


def main(argv=None) -> dict:
    """Run the measurements (module docstring) and write ``bench/results/<--out>``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA, help="the .bcf series (default: %(default)s)")
    p.add_argument("--mu", type=float, default=0.0384)
    p.add_argument("--n-ref", type=int, default=4000)
    p.add_argument("--thetas", default="0.5,1,2,4,8,a2", help="step balances (aT: adaptive from T)")
    p.add_argument("--rule-trace", action="store_true", help="also run the rule with its choice every 10 iterations")
    p.add_argument("--monitor-cost", action="store_true", help="time the objective's monitoring (item 7)")
    p.add_argument("--only-monitor-cost", action="store_true", help="item 7 alone")
    p.add_argument("--alloc-cost", action="store_true", help="item 8 alone: CPU seconds and page faults")
    p.add_argument("--save-maps", default=None, help="item 8: write the last run's maps to this .npy")
    p.add_argument("--check-maps", default=None, help="item 8: compare the maps with this .npy, bit for bit")
    p.add_argument("--inputs-cache", default=None, help="pickle of the rule's inputs (written when missing)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="tv_convergence_real.json")
    a = p.parse_args(argv)
    from scipy.ndimage import gaussian_filter

    from chemtomo.reconstruct.autoparam import cv_tv_weight
    from chemtomo.reconstruct.fused import tv_solve

    got = _cached_inputs(a.data, a.inputs_cache)
    W, counts, haadf, r, kw = solve_inputs(got)
    theta_default = kw.pop("theta", None)
    k, n_rays, m = counts.shape
    out: dict = {"mu": a.mu, "n_ref": a.n_ref, "slices": m, "lines": k, "n_rays": n_rays, "n_vox": W.shape[1],
                 "load_start": os.getloadavg()[0]}

    def solve(n, theta=theta_default, adaptive=None, x0=None, snaps=()):
        t = time.process_time()
        res = tv_solve(W, counts, model="fused", mu=a.mu, haadf=haadf, r=r, n_iter=n, theta=theta,
                       adaptive=adaptive, x0=x0, snapshots=snaps, **kw)
        return res, time.process_time() - t

    if a.alloc_cost:
        out["alloc_cost"] = alloc_cost(W, counts, haadf, r, kw, a.mu, a.repeat, a.save_maps, a.check_maps)
        print("alloc cost", out["alloc_cost"], flush=True)
        return _write(out, a.out)
    if a.monitor_cost or a.only_monitor_cost:
        out["monitor_cost"] = monitor_cost(W, counts, haadf, r, kw, a.mu, a.repeat)
        print("monitor cost", out["monitor_cost"], flush=True)
    if a.only_monitor_cost:
        return _write(out, a.out)
    ref, t_ref = solve(a.n_ref)
    ref_x = ref.x
    short, _ = solve(3 * a.n_ref // 4)
    out["reference"] = {"cpu_s": t_ref, "distance_of_three_quarters": _distance(short.x, ref_x)["all"]}
    print("reference", out["reference"], flush=True)

    out["thetas"] = {}
    for spec in a.thetas.split(","):
        adaptive = spec.startswith("a")
        theta = float(spec[1:] if adaptive else spec)
        res, t = solve(400, theta, adaptive, snaps=(100, 200))
        row = {str(i): _distance(x, ref_x) for i, x in res.snapshots.items()}
        row["400"] = _distance(res.x, ref_x)
        out["thetas"][spec] = {"cpu_s_400": t, "distance": row}
        print("theta", spec, {i: round(v["all"], 3) for i, v in row.items()}, flush=True)

    start = _per_line_start(W, counts, haadf, r)
    res, t = solve(400, x0=start, snaps=(100, 200))
    out["per_line_start"] = {str(i): _distance(x, ref_x)["all"] for i, x in [*res.snapshots.items(), (400, res.x)]}
    print("per-line start", out["per_line_start"], flush=True)

    res, _ = solve(200, snaps=(50, 100))
    n = int(round(W.shape[1] ** 0.5))
    scale = {}
    for i, x in [*res.snapshots.items(), (200, res.x)]:
        e = (x - ref_x).reshape(k, n, n, m)
        norm = np.linalg.norm(ref_x)
        scale[str(i)] = {"sigma_0": float(np.linalg.norm(e) / norm),
                         **{f"sigma_{s}": float(np.linalg.norm(gaussian_filter(e, (0, s, s, 0))) / norm)
                            for s in (1, 2, 4)}}
    out["error_scale"] = scale
    print("error scale", scale, flush=True)

    WH = W.modality("haadf")
    support = {}
    for frac in (0.01, 0.05, 0.1):
        empty = (haadf < frac * haadf.max()).astype(np.float32)
        support[str(frac)] = float((WH.adjoint(np.ascontiguousarray(empty)) <= 1e-6).mean())
    out["support_fraction"] = support

    if a.rule_trace:
        rk = {k_: v for k_, v in got["kw"].items() if k_ not in ("choice_tol", "check_every")}
        t = time.process_time()
        cv = cv_tv_weight(W, counts, got["model"], got["mus"], choice_tol=1e-12, check_every=10, **rk)
        out["rule"] = {"cpu_s": time.process_time() - t, "mu": cv.params["mu"], "checks": cv.info["checks"],
                       "note": "checks: [iteration, log-parabolic argmin before the K/(K-1) factor]"}
        print("rule", out["rule"], flush=True)
    return _write(out, a.out)


def monitor_cost(W, counts, haadf, r, kw, mu: float, repeat: int) -> dict:
    """CPU seconds of 100 iterations on 32 columns, monitored every 10 iterations against once (item 7)."""
    from chemtomo.reconstruct.fused import tv_solve

    C = np.tile(counts, (1, 1, 4))
    H = np.tile(haadf, (1, 4))
    tv_solve(W, C, model="fused", mu=mu, haadf=H, r=r, n_iter=2, **kw)  # compile, warm the caches
    cpu: dict = {"every_10": [], "last_only": []}
    maps = {}
    for _ in range(repeat):
        for key, every in (("every_10", 10), ("last_only", None)):
            t = time.process_time()
            maps[key] = tv_solve(W, C, model="fused", mu=mu, haadf=H, r=r, n_iter=100, monitor_every=every, **kw).x
            cpu[key].append(time.process_time() - t)
    return {**cpu, "columns": C.shape[2], "iterations": 100, "threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
            "ratio_of_medians": float(np.median(cpu["last_only"]) / np.median(cpu["every_10"])),
            "same_bits": bool(np.array_equal(maps["every_10"], maps["last_only"]))}


def solve_inputs(got: dict, drop=("n_iter",)):
    """``(W, counts, haadf, r, kw)``: :func:`_cached_inputs`' dict for one solve, ``kw`` without ``drop``."""
    kw = dict(got["kw"])
    haadf, r = kw.pop("haadf"), kw.pop("r")
    for key in drop:
        kw.pop(key, None)
    return got["W"], got["counts"], haadf, r, kw


def _cached_inputs(data: str, cache: str | None) -> dict:
    """:func:`rule_inputs`, read from (or written to) the pickle ``cache`` when given."""
    import pickle

    if cache is not None and Path(cache).exists():
        with open(cache, "rb") as f:
            return pickle.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        got = rule_inputs(data, tmp)
    if cache is not None:
        with open(cache, "wb") as f:
            pickle.dump(got, f)
    return got


def alloc_cost(W, counts, haadf, r, kw, mu: float, repeat: int, save_maps: str | None = None,
               check_maps: str | None = None) -> dict:
    """CPU seconds and minor page faults of 100 iterations on 32 columns, ``repeat`` times (item 8)."""
    import resource

    from chemtomo.reconstruct.fused import tv_solve

    C = np.tile(counts, (1, 1, 4))
    H = np.tile(haadf, (1, 4))
    tv_solve(W, C, model="fused", mu=mu, haadf=H, r=r, n_iter=2, **kw)  # compile, warm the caches
    rows = []
    x = None
    for _ in range(repeat):
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.process_time()
        x = tv_solve(W, C, model="fused", mu=mu, haadf=H, r=r, n_iter=100, **kw).x
        cpu = time.process_time() - t
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"cpu_s": cpu, "user_s": u1.ru_utime - u0.ru_utime, "sys_s": u1.ru_stime - u0.ru_stime,
                     "minor_faults": u1.ru_minflt - u0.ru_minflt, "load": os.getloadavg()[0]})
    out = {"runs": rows, "columns": C.shape[2], "iterations": 100,
           "threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
           "median_cpu_s": float(np.median([q["cpu_s"] for q in rows])),
           "median_minor_faults": float(np.median([q["minor_faults"] for q in rows]))}
    if save_maps is not None:
        np.save(save_maps, x)
    if check_maps is not None:
        out["same_bits_as"] = {"file": check_maps, "equal": bool(np.array_equal(np.load(check_maps), x))}
    return out


def _write(out: dict, name: str) -> dict:
    """Write ``out`` to ``bench/results/name`` (temporary name, then rename)."""
    out["load_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / (name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(RESULTS / name)
    return out


if __name__ == "__main__":
    main()
