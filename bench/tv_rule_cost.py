"""The automatic TV weight's cost and choice: the batched rule against the continuation rule.

On the paper's phantom (the slice ``chemtomo simulate`` writes, seed 0) at each dose:
both rules' chosen ``mu`` (fused_tv, the default grid, 300 iterations), the inside
weight-fraction MSE of the final solve at each choice, the oracle (the best final
solve over a fine ``mu`` grid), and the cost of the rule against one solve of the
volume in column-iterations (load-independent).

``chemtomo simulate --slices S`` repeats one noisy slice ``S`` times, so the rule's
``auto_slices`` columns are copies of one slice: the rules are run here on one slice
(their choice is the same on ``s`` copies: every column is solved and scored alike
and the score is their sum) and the cost scaled to ``auto_slices`` copies; a volume of
``--slices`` slices costs ``slices x n_iter``. ``--cpu`` also measures the CPU seconds
(``resource.getrusage``, this process) per column-iteration of a solve at the batch
widths ``--cpu-widths`` (the difference of a ``--cpu-iters`` and a quarter as long solve,
after a warm-up call; the rest is the fixed cost per solve) (the continuation rule's 32 columns, the
volume's 64, the batched rule's 224), at the first dose: whether a narrower batch costs
more per column.

Usage::

    PYTHONPATH=$PWD/src python bench/tv_rule_cost.py --out bench/results/tv_rule_cost.json [--cpu]
    PYTHONPATH=$PWD/src python bench/tv_rule_cost.py --specimen diffuse_alloy --doses 1 0.1
    PYTHONPATH=$PWD/src python bench/tv_rule_cost.py --no-continuation --grids 0.06,0.12,0.24,0.48 0.07,0.14,0.28

(``--grids``: the batched rule also on coarser candidate grids; ``mse_over_batched`` is the
final MSE at a rule's choice over the batched rule's on the default grid.)

(``--specimen``: a specimen of the suite, :mod:`chemtomo.simulate.specimens`, instead of the phantom.)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

from chemtomo.reconstruct import get_method
from chemtomo.reconstruct.autoparam import cv_tv_weight
from chemtomo.reconstruct.fused import tv_solve
from chemtomo.studies.problem import StudyConfig, evaluate, make_problem, maps_of, method_data, study_factors


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def phantom_case(dose: float):
    """``(W, data, constants, params, score)`` of the phantom at ``dose``; ``score(maps)`` the inside MSE."""
    cfg = StudyConfig()
    problem = make_problem(cfg, dose, study_factors(cfg), seed=0)
    m = get_method("fused_tv")
    data = method_data(problem, m)

    def score(x):
        return evaluate(problem, maps_of(x, cfg.n_pixels), "z")[0]["mse_fraction_inside"]

    return problem.W, data, score


def specimen_case(name: str, dose: float, n: int = 28):
    """As :func:`phantom_case` for a specimen of the suite: the benchmark's 8 middle slices of ``n``."""
    from chemtomo.geometry import columns_to_volume, sinogram_to_columns
    from chemtomo.preprocess import FILTER_SIGMA_PX, gaussian_filter_stack
    from chemtomo.projector import make_operator
    from chemtomo.reconstruct import ChannelData, estimate_response_ratios
    from chemtomo.simulate.specimen_series import simulate_series
    from chemtomo.simulate.specimens import make_specimen
    from chemtomo.studies.benchmark import BenchmarkConfig, Truth, quantify_maps, sub_series
    from chemtomo.studies.benchmark import score as bench_score

    cfg = BenchmarkConfig(specimens=(name,), doses=(dose,), methods=("fused_tv",), n=n)
    a, b = cfg.slice_range()
    spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = Truth.of(spec, (a, b))
    sim = simulate_series(spec, np.asarray(cfg.angles_deg, float), dose_scale=dose, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    series = sub_series(sim.series, a, b)
    lines = series.lines
    filt = {ln: gaussian_filter_stack(series.eds[ln], FILTER_SIGMA_PX, "image") for ln in lines}
    r = estimate_response_ratios(series.haadf, filt).r
    geom = series.geometry()
    data = ChannelData(list(lines), np.stack([sinogram_to_columns(series.eds[ln]) for ln in lines]),
                       sinogram_to_columns(series.haadf), r)
    elements = [sim.factors[ln].element for ln in lines]

    def score(x):
        maps = np.stack([columns_to_volume(c, geom.n_grid) for c in x]).astype(np.float32)
        weight, _ = quantify_maps(maps, sim.factors, lines, "z", cfg.mask_method)
        return bench_score(truth, maps, weight, elements)["mse_fraction_inside"]

    return make_operator(geom), data, score


def rule(W, data, constants, p, schedule, copies=1, mus=None, **kw):
    """The fused-TV rule on ``copies`` copies of the data's columns; ``(CVResult, cpu seconds)``.

    ``mus``: the candidate grid (default: fused_tv's ``default_grid``).
    """
    eds = np.tile(np.asarray(data.eds, np.float32), (1, 1, copies))
    haadf = np.tile(np.asarray(data.haadf, np.float32).reshape(data.haadf.shape[0], -1), (1, copies))
    t = cpu_seconds()
    mus = get_method("fused_tv").default_grid["mu"] if mus is None else mus
    cv = cv_tv_weight(W, eds, "fused", mus, haadf=haadf,
                      r=data.response_ratios, constants=constants, coupled=p.coupled, theta=p.theta,
                      n_iter=p.n_iter, schedule=schedule, **p.model_options(), **kw)
    return cv, cpu_seconds() - t


def final_mse(W, data, constants, p, mus, score):
    """Inside weight-fraction MSE of the final solve at each of ``mus`` (one batched solve of all the slices)."""
    mus = np.asarray(mus, float)
    s = data.eds.shape[2]
    eds = np.tile(np.asarray(data.eds, np.float32), (1, 1, mus.size))  # columns: mu-major, then slice
    haadf = np.tile(np.asarray(data.haadf, np.float32).reshape(data.haadf.shape[0], -1), (1, mus.size))
    res = tv_solve(W, eds, model="fused", mu=np.repeat(mus, s), haadf=haadf, r=data.response_ratios,
                   constants=constants, n_iter=p.n_iter, coupled=p.coupled, theta=p.theta, **p.model_options())
    return [float(score(res.x[:, :, j * s:(j + 1) * s])) for j in range(mus.size)]


def main(argv=None) -> int:
    """Run the comparison and write the JSON (and a Markdown table on stdout)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doses", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    ap.add_argument("--n-iter", type=int, default=300)
    ap.add_argument("--slices", type=int, default=64, help="slices of the volume (one solve's cost)")
    ap.add_argument("--auto-slices", type=int, default=8, help="slices the rule chooses on")
    ap.add_argument("--warm", type=int, nargs="+", default=[None],
                    help="warm_iterations of the continuation rule to measure (default: the rule's)")
    ap.add_argument("--grids", nargs="*", default=[],
                    help="further candidate grids of the batched rule, each comma-separated (e.g. 0.06,0.12,0.24,0.48)")
    ap.add_argument("--no-continuation", action="store_true", help="only the batched rule(s)")
    ap.add_argument("--specimen", default=None, help="a suite specimen instead of the phantom")
    ap.add_argument("--cpu", action="store_true",
                    help="also measure CPU seconds per column-iteration of one solve at --cpu-widths columns")
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU measurement (no rules)")
    ap.add_argument("--cpu-widths", type=int, nargs="+", default=[32, 64, 224])
    ap.add_argument("--cpu-iters", type=int, default=80)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    m = get_method("fused_tv")
    p = m.params({"n_iter": a.n_iter})
    one_solve = a.slices * a.n_iter
    fine = np.geomspace(0.03, 1.2, 17)  # factor 2^(1/3) apart
    rows = []
    for dose in [] if a.cpu_only else a.doses:
        W, data, score = phantom_case(dose) if a.specimen is None else specimen_case(a.specimen, dose)
        constants = m.setup(W, data, p)
        runs = {"batched": rule(W, data, constants, p, "batched")}
        for g in a.grids:
            runs[f"batched_{g}"] = rule(W, data, constants, p, "batched", mus=[float(v) for v in g.split(",")])
        for w in [] if a.no_continuation else a.warm:
            runs[f"continuation{'' if w is None else f'_w{w}'}"] = rule(
                W, data, constants, p, "continuation", **({} if w is None else {"warm_iterations": w}))
        chosen = [cv.params["mu"] for cv, _ in runs.values()]
        mse = final_mse(W, data, constants, p, list(fine) + chosen, score)
        oracle = int(np.argmin(mse[:fine.size]))
        row = {"dose": dose, "oracle_mu": float(fine[oracle]), "oracle_mse": mse[oracle],
               "fine_mu": fine.tolist(), "fine_mse": mse[:fine.size], "rules": {}}
        for (name, (cv, _)), mu, e in zip(runs.items(), chosen, mse[fine.size:], strict=True):
            s = data.eds.shape[2]
            colit = cv.info["column_iterations"] // s * a.auto_slices
            row["rules"][name] = {"mu": mu, "mu_cv": cv.info["mu_cv"], "mse": e, "mse_over_oracle": e / mse[oracle],
                                  "mse_over_batched": e / mse[fine.size], "grid": [float(g["mu"]) for g in cv.grid],
                                  "column_iterations": colit, "rule_over_one_solve": colit / one_solve,
                                  "auto_over_one_solve": 1 + colit / one_solve,
                                  "scores": [float(v) for v in cv.scores], "info": {
                                      k: v for k, v in cv.info.items() if isinstance(v, (int, float, str, list))}}
        rows.append(row)
        print(json.dumps({"dose": dose, **{k: (v["mu"], round(v["mse_over_oracle"], 3), v["auto_over_one_solve"])
                                           for k, v in row["rules"].items()}}), file=sys.stderr, flush=True)
    out = {"specimen": a.specimen or "phantom", "n_iter": a.n_iter, "slices": a.slices,
           "auto_slices": a.auto_slices, "rows": rows}
    if a.cpu or a.cpu_only:
        # CPU seconds per column-iteration of a fused-TV solve at the batch widths the rules and the volume use
        W, data, score = phantom_case(a.doses[0]) if a.specimen is None else specimen_case(a.specimen, a.doses[0])
        constants = m.setup(W, data, p)
        cpu = {}

        def run(width, n_iter):
            copies = -(-width // data.eds.shape[2])
            eds = np.tile(np.asarray(data.eds, np.float32), (1, 1, copies))[:, :, :width]
            haadf = np.tile(np.asarray(data.haadf, np.float32).reshape(data.haadf.shape[0], -1), (1, copies))
            t = cpu_seconds()
            tv_solve(W, eds, model="fused", mu=p.mu, haadf=haadf[:, :width], r=data.response_ratios,
                     constants=constants, n_iter=n_iter, coupled=p.coupled, theta=p.theta, **p.model_options())
            return cpu_seconds() - t

        run(8, 5)  # warm-up: the kernels' first call (numba cache load) is not the rule's cost
        for width in a.cpu_widths:
            short, long = run(width, a.cpu_iters // 4), run(width, a.cpu_iters)
            per = (long - short) / (width * (a.cpu_iters - a.cpu_iters // 4))
            key = str(width) if str(width) not in cpu else f"{width} (again)"
            cpu[key] = {"cpu_s_short": short, "cpu_s_long": long, "iters": [a.cpu_iters // 4, a.cpu_iters],
                        "cpu_us_per_column_iteration": 1e6 * per,
                        "cpu_s_fixed_per_solve": short - per * width * (a.cpu_iters // 4)}
        out["cpu"] = cpu
        print(json.dumps(cpu), file=sys.stderr)
    print("| dose | rule | mu | final MSE / oracle | rule column-iterations | auto / one solve |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for name, v in row["rules"].items():
            print(f"| {row['dose']:g} | {name} | {v['mu']:.4g} | {v['mse_over_oracle']:.3f} | "
                  f"{v['column_iterations']} | {v['auto_over_one_solve']:.2f}x |")
        print(f"| {row['dose']:g} | oracle (fine grid) | {row['oracle_mu']:.4g} | 1.000 | | |")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
