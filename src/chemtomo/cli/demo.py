"""`chemtomo demo`: the paper's phantom study, end to end, into a folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(sub):
    """Add the ``demo`` subcommand and its options to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``chemtomo`` subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    p = sub.add_parser("demo", help="run the paper's phantom study (figures, metrics.json, report.md)",
                       description="Simulate the paper's core-shell Ag-Au phantom, reconstruct it by "
                                   "EDS-SIRT and HEBT over sweeps of n and alpha and three EDS doses, "
                                   "quantify, score and report.")
    p.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    p.add_argument("--quick", action="store_true", help="reduced sweep for CI (under 2 minutes)")
    p.add_argument("--factors", choices=("physics", "paper"), default="physics",
                   help="factors from chemtomo.physics (default) or the paper's Table 2")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of noise seeds per dose (default: 3, or 1 with --quick)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="processes for the (dose, seed) problems (default: one per core; same result)")
    p.add_argument("--replicas", type=int, default=None,
                   help="bootstrap replicas for the SE of each method's best core / shell Au (default: 20, or 10 "
                        "with --quick; 0: none)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="methods to run (default: eds_sirt hebt_sirt ls_tv poisson_tv fused_tv)")
    return p


def run(args) -> int:
    """Run ``chemtomo demo``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code (0).
    """
    from chemtomo.reconstruct import canonical_name
    from chemtomo.report.phantom_report import draw_figures, write_metrics, write_report
    from chemtomo.studies.paper_phantom import StudyConfig, run_study

    cfg = StudyConfig.quick() if args.quick else StudyConfig()
    cfg.factors = args.factors
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    if n_seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {n_seeds}")
    cfg.seeds = tuple(range(n_seeds))
    if args.replicas is not None:
        if args.replicas < 0 or args.replicas == 1:
            raise ValueError(f"--replicas must be 0 (no bootstrap) or >= 2, got {args.replicas}")
        cfg.replicas = args.replicas
    if args.methods:
        cfg.methods = tuple(canonical_name(m) for m in args.methods)
    out = Path(args.out)
    t0 = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    say(f"phantom study -> {out} ({'quick' if args.quick else 'full'}, factors: {cfg.factors}, seeds: {n_seeds})")
    metrics, kept = run_study(cfg, say, jobs=args.jobs)
    say("drawing figures")
    figs = draw_figures(metrics, kept, out)
    write_metrics(metrics, out)
    report = write_report(metrics, out, figs)
    say(f"wrote {report}, {out / 'metrics.json'} and {len(figs)} figures")
    for k, v in {**metrics["acceptance"], **metrics.get("acceptance_solvers", {})}.items():
        say(f"{'PASS' if v else 'FAIL'} {k}")
    return 0
