"""`chemtomo benchmark`: every method on the specimen suite, oracle-best and automatic, into a folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(sub):
    """Register ``benchmark`` on the ``sub`` subparsers."""
    p = sub.add_parser("benchmark", help="run every method on the specimen suite (metrics.json, report.md, figure)",
                       description="Simulate the specimen suite (issue 13) at three EDS doses, run every "
                                   "registered method at its oracle-best and its automatic parameters, "
                                   "score inside-particle weight fractions, region means, SSIM and time.")
    p.add_argument("--out", default="results/benchmark", help="output folder (default: results/benchmark)")
    p.add_argument("--quick", action="store_true",
                   help="2 specimens, 2 doses, EDS-SIRT, HEBT and fused-TV on coarse grids, n=24, 8 slices "
                        "(a few minutes)")
    p.add_argument("--specimens", nargs="+", metavar="NAME", help="specimens to run (default: the whole suite)")
    p.add_argument("--doses", nargs="+", type=float, metavar="X", help="EDS doses, x the paper's (default 1 0.1 0.01)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="methods to run (default: every registered method with an automatic rule)")
    p.add_argument("--n", type=int, default=None, help="voxels across the field (default 28; --quick 24)")
    p.add_argument("--slices", type=int, default=None,
                   help="slices through the middle to reconstruct, 0 for all (default 8)")
    _add_uncertainty_args(p)
    return p


# ----------------------------------------------------------------------------- the uncertainty study (issue 15)

def _add_uncertainty_args(p) -> None:
    """The calibration study's options."""
    g = p.add_argument_group("uncertainty calibration (issue 15)")
    g.add_argument("--uncertainty-seeds", type=int, default=None, metavar="N",
                   help="noise realisations per specimen and method for the bootstrap's calibration "
                        "(default 16; --quick 4; 0: no study). Each costs one reconstruction and the replicas: "
                        "on 2 shared cores about 20 s (EDS-SIRT), 60 s (HEBT), 150 s (fused-TV) at n=24, 8 slices")
    g.add_argument("--uncertainty-replicas", type=int, default=None, metavar="R",
                   help="bootstrap replicas per realisation (default 20; --quick 10)")
    g.add_argument("--uncertainty-dose", type=float, default=None, metavar="X",
                   help="EDS dose of the study, x the paper's (default 1)")
    g.add_argument("--uncertainty-haadf-sigma", choices=("poisson", "estimate"), default=None,
                   help="the bootstrap's HAADF noise: sqrt(counts) per pixel (default; the simulated images are "
                        "counts) or one level estimated from the images")
    g.add_argument("--uncertainty-only", action="store_true",
                   help="run only the calibration (each method's parameters then from its automatic rule run "
                        "once per specimen): metrics.json holds config and uncertainty, report.md its table")


def _run_uncertainty(args, cfg, metrics: dict, reconstruct_series, say) -> None:
    """Add the calibration study's ``uncertainty`` (and ``uncertainty_config``) to ``metrics``."""
    from dataclasses import asdict, replace

    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
    from chemtomo.studies.calibration import UncertaintyStudyConfig, run_uncertainty_study

    ucfg = UncertaintyStudyConfig.quick() if args.quick else UncertaintyStudyConfig()
    changes = {k: v for k, v in (("seeds", args.uncertainty_seeds), ("replicas", args.uncertainty_replicas),
                                 ("dose", args.uncertainty_dose), ("haadf_sigma", args.uncertainty_haadf_sigma))
               if v is not None}
    ucfg = replace(ucfg, **changes)  # validated again
    if not ucfg.seeds:
        return
    say(f"uncertainty calibration: {ucfg.seeds} realisations x {ucfg.replicas} replicas at dose x{ucfg.dose:g}")
    metrics["uncertainty"] = run_uncertainty_study(cfg, ucfg, reconstruct_series, bootstrap_uncertainty,
                                                   metrics.get("suite"), say)
    metrics["uncertainty_config"] = asdict(ucfg)


def run(args) -> int:
    """Run the benchmark and write its files into ``args.out``."""
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.report.benchmark import write_benchmark
    from chemtomo.studies.benchmark import BenchmarkConfig, run_benchmark

    cfg = BenchmarkConfig.quick() if args.quick else BenchmarkConfig()
    changes = {}
    if args.specimens:
        changes["specimens"] = tuple(args.specimens)
    if args.doses:
        changes["doses"] = tuple(args.doses)
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.n is not None:
        changes["n"] = args.n
    if args.slices is not None:
        changes["n_slices"] = args.slices or None
    if changes:
        from dataclasses import replace

        cfg = replace(cfg, **changes)  # validated again
    out = Path(args.out)
    t0 = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    say(f"benchmark -> {out} ({cfg.label}: {len(cfg.specimens)} specimens, {len(cfg.doses)} doses, "
        f"methods {', '.join(cfg.methods)}, n={cfg.n}, slices {cfg.slice_range()})")
    if args.uncertainty_only:
        from chemtomo.report.benchmark import write_uncertainty_study

        metrics = {"config": cfg.as_dict()}
        _run_uncertainty(args, cfg, metrics, reconstruct_series, say)
        files = write_uncertainty_study(metrics, out)
        say(f"wrote {', '.join(str(f) for f in files)}")
        return 0
    metrics = run_benchmark(cfg, reconstruct_series, say)
    _run_uncertainty(args, cfg, metrics, reconstruct_series, say)
    files = write_benchmark(metrics, out)
    say(f"wrote {', '.join(str(f) for f in files)}")
    for k, v in metrics["summary"]["acceptance"].items():
        say(f"{'PASS' if v else 'FAIL'} {k}")
    return 0
