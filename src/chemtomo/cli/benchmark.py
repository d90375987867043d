"""`chemtomo benchmark`: every method on the specimen suite, the tilt-sets and absorption studies."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(sub):
    """Register ``benchmark`` on the ``sub`` subparsers."""
    from chemtomo.quantify import ESF_EDGE_LEVEL

    p = sub.add_parser("benchmark", help="run every method on the specimen suite (metrics.json, report.md, figure)",
                       description="Simulate the specimen suite (issue 13) at three EDS doses, run every "
                                   "registered method at its oracle-best and its automatic parameters, "
                                   "score inside-particle weight fractions, region means, SSIM and time.")
    p.add_argument("--study", choices=("all", "suite", "tilt_sets", "absorption"), default="all",
                   help="what to run: the specimen suite, the tilt-sets study (dense HAADF, sparse EDS, "
                        "+-70 and +-40 degrees; issue 16), the absorption study (oxide_supported in a 300 nm "
                        "field, fused-TV then EDS-SIRT, uncorrected and corrected; issue 14), or all three (default)")
    p.add_argument("--out", default="results/benchmark", help="output folder (default: results/benchmark)")
    p.add_argument("--quick", action="store_true",
                   help="2 specimens, 2 doses, EDS-SIRT, HEBT and fused-TV on coarse grids, n=24, 8 slices; "
                        "tilt sets 11x71, 71x71, 11x11 over +-70 at dose 1, EDS-SIRT and fused-TV, 4 slices "
                        "(a few minutes); absorption: oxide_supported, n=16, 13 tilts, EDS-SIRT")
    p.add_argument("--specimens", nargs="+", metavar="NAME",
                   help="specimens of the suite to run (default: the whole suite; the tilt-sets study uses "
                        "core_shell; with --study absorption, the absorption study's, default oxide_supported)")
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
    p.add_argument("--peers", nargs="+", metavar="PEER", choices=("svmbir",),
                   help="specimen suite: peers run beside the methods on the same series, quantified the same way, "
                        "oracle-tuned over their regularisation and at their own automatic setting, with a column "
                        "'chemtomo best-auto vs svmbir best' (default none; needs pip install -e \".[bench-peers]\")")
    p.add_argument("--mask-edge-level", type=float, default=None, metavar="Q",
                   help="specimen suite: the ESF mask's threshold at this fraction of the fitted particle-background "
                        f"step (default {ESF_EDGE_LEVEL:g}; 0.5 its centre; lower keeps half-filled edge voxels)")
    _add_uncertainty_args(p)
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


def _run_absorption(args, metrics: dict, reconstruct_series, say) -> None:
    """Add the absorption study's ``absorption`` (and its config, slices, seconds) to ``metrics``."""
    from dataclasses import replace

    from chemtomo.pipeline.absorption import reconstruct_absorption_corrected
    from chemtomo.studies.absorption import AbsorptionStudyConfig, run_absorption_study

    acfg = AbsorptionStudyConfig.quick() if args.quick else AbsorptionStudyConfig.full()
    changes = {}
    if args.doses:
        changes["dose"] = float(args.doses[0])
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.n is not None:
        changes["n"] = args.n
    if args.specimens and args.study == "absorption":
        changes["specimens"] = tuple(args.specimens)
    acfg = replace(acfg, **changes) if changes else acfg  # validated again
    say(f"absorption -> {', '.join(acfg.specimens)} in a {acfg.field_nm:g} nm field ({acfg.label}: n={acfg.n}, "
        f"{len(acfg.angles_deg)} tilts, dose x{acfg.dose:g}, methods {', '.join(acfg.methods)}, detectors "
        f"{acfg.detectors})")
    metrics.update(run_absorption_study(acfg, reconstruct_series, reconstruct_absorption_corrected, say))


def run(args) -> int:
    """Run the benchmark's studies and write their files into ``args.out``."""
    from dataclasses import replace

    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.report.benchmark import write_benchmark
    from chemtomo.studies.benchmark import BenchmarkConfig, run_benchmark
    from chemtomo.studies.tilt_sets import TiltSetsConfig, run_tilt_sets

    suite = args.study in ("all", "suite")
    tilt = args.study in ("all", "tilt_sets")
    absorb = args.study in ("all", "absorption")
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
    if args.peers:
        from chemtomo.studies.peers import require_peers

        if not suite:
            raise ValueError(f"--peers runs beside the specimen suite; --study {args.study} does not run it")
        require_peers(args.peers)  # refused before any work when a peer is not installed
        changes["peers"] = tuple(args.peers)
    if args.mask_edge_level is not None:
        if not suite:
            raise ValueError(f"--mask-edge-level sets the specimen suite's mask; --study {args.study} does not run it")
        changes["mask_edge_level"] = args.mask_edge_level
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

    if args.uncertainty_only:
        from chemtomo.report.benchmark import write_uncertainty_study

        say(f"uncertainty calibration -> {out} ({cfg.label}: {len(cfg.specimens)} specimens, methods "
            f"{', '.join(cfg.methods)}, n={cfg.n}, slices {cfg.slice_range()})")
        metrics = {"config": cfg.as_dict()}
        _run_uncertainty(args, cfg, metrics, reconstruct_series, say)
        files = write_uncertainty_study(metrics, out)
        say(f"wrote {', '.join(str(f) for f in files)}")
        return 0
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
    if absorb:
        _run_absorption(args, metrics, reconstruct_series, say)
    if suite:
        _run_uncertainty(args, cfg, metrics, reconstruct_series, say)
    files = write_benchmark(metrics, out)
    say(f"wrote {', '.join(str(f) for f in files)}")
    acc = {**metrics.get("summary", {}).get("acceptance", {}),
           **metrics.get("tilt_sets_summary", {}).get("acceptance", {}),
           **metrics.get("absorption_summary", {}).get("acceptance", {})}
    for k, v in acc.items():
        say(f"{'PASS' if v else 'FAIL'} {k}")
    return 0
