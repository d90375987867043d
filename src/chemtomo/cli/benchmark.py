"""`chemtomo benchmark`: every method on the specimen suite and the tilt-sets study, oracle and automatic."""

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
    p.add_argument("--study", choices=("all", "suite", "tilt_sets"), default="all",
                   help="what to run: the specimen suite, the tilt-sets study (dense HAADF, sparse EDS, "
                        "+-70 and +-40 degrees; issue 16), or both (default)")
    p.add_argument("--out", default="results/benchmark", help="output folder (default: results/benchmark)")
    p.add_argument("--quick", action="store_true",
                   help="2 specimens, 2 doses, EDS-SIRT, HEBT and fused-TV on coarse grids, n=24, 8 slices; "
                        "tilt sets 11x71, 71x71, 11x11 over +-70 at dose 1, EDS-SIRT and fused-TV, 4 slices "
                        "(a few minutes)")
    p.add_argument("--specimens", nargs="+", metavar="NAME",
                   help="specimens of the suite to run (default: the whole suite; the tilt-sets study uses "
                        "core_shell)")
    p.add_argument("--doses", nargs="+", type=float, metavar="X", help="EDS doses, x the paper's (default 1 0.1 0.01)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="methods to run (default: every registered method with an automatic rule)")
    p.add_argument("--n", type=int, default=None, help="voxels across the field (default 28; --quick 24)")
    p.add_argument("--slices", type=int, default=None,
                   help="slices through the middle to reconstruct, 0 for all (default 8; --quick tilt sets 4)")
    p.add_argument("--ranges", nargs="+", type=float, metavar="DEG",
                   help="tilt-sets study: tilt ranges +-DEG (default 70 40; --quick 70)")
    p.add_argument("--cells", nargs="+", metavar="ExH",
                   help="tilt-sets study: EDS x HAADF tilt counts, e.g. 11x71 71x71 11x11 (default: EDS 7, 11, "
                        "16, 31 with HAADF 31, 71, 141, and 71x71, 11x11)")
    return p


def _cells(values) -> tuple:
    """``["11x71", ...]`` -> ``((11, 71), ...)``; ValueError naming a malformed one."""
    out = []
    for v in values:
        try:
            e, h = (int(x) for x in v.lower().split("x"))
        except ValueError:
            raise ValueError(f"--cells takes EDSxHAADF tilt counts such as 11x71, got {v!r}") from None
        out.append((e, h))
    return tuple(out)


def run(args) -> int:
    """Run the benchmark's studies and write their files into ``args.out``."""
    from dataclasses import replace

    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.report.benchmark import write_benchmark
    from chemtomo.studies.benchmark import BenchmarkConfig, run_benchmark
    from chemtomo.studies.tilt_sets import TiltSetsConfig, run_tilt_sets

    suite = args.study in ("all", "suite")
    tilt = args.study in ("all", "tilt_sets")
    cfg = BenchmarkConfig.quick() if args.quick else BenchmarkConfig()
    tcfg = TiltSetsConfig.quick() if args.quick else TiltSetsConfig()
    changes = {}
    if args.doses:
        changes["doses"] = tuple(args.doses)
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.n is not None:
        changes["n"] = args.n
    if args.slices is not None:
        changes["n_slices"] = args.slices or None
    tchanges = dict(changes)
    if args.specimens:
        changes["specimens"] = tuple(args.specimens)
    if args.ranges:
        tchanges["ranges_deg"] = tuple(args.ranges)
    if args.cells:
        tchanges["cells"] = _cells(args.cells)
    if "n" in tchanges and "n_slices" not in tchanges and tcfg.n_slices and tcfg.n_slices > tchanges["n"]:
        tchanges["n_slices"] = None
    # validated again
    cfg = replace(cfg, **changes) if changes and suite else cfg
    tcfg = replace(tcfg, **tchanges) if tchanges and tilt else tcfg
    out = Path(args.out)
    t0 = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    metrics: dict = {}
    if suite:
        say(f"benchmark -> {out} ({cfg.label}: {len(cfg.specimens)} specimens, {len(cfg.doses)} doses, "
            f"methods {', '.join(cfg.methods)}, n={cfg.n}, slices {cfg.slice_range()})")
        metrics.update(run_benchmark(cfg, reconstruct_series, say))
    if tilt:
        say(f"tilt sets -> {out} ({tcfg.label}: {tcfg.specimen}, ranges {list(tcfg.ranges_deg)}, doses "
            f"{list(tcfg.doses)}, cells {tcfg.as_dict()['cells']}, methods {', '.join(tcfg.methods)}, n={tcfg.n}, "
            f"slices {tcfg.slice_range()})")
        metrics.update(run_tilt_sets(tcfg, reconstruct_series, say))
    files = write_benchmark(metrics, out)
    say(f"wrote {', '.join(str(f) for f in files)}")
    acc = {**metrics.get("summary", {}).get("acceptance", {}),
           **metrics.get("tilt_sets_summary", {}).get("acceptance", {})}
    for k, v in acc.items():
        say(f"{'PASS' if v else 'FAIL'} {k}")
    return 0
