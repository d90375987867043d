"""`chemtomo reconstruct`: a tilt series to quantified maps in one HDF5 result."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser(
        "reconstruct", help="reconstruct and quantify a tilt series into an HDF5 result",
        description="Reconstruct HAADF + per-line EDS stacks (.hspy, tilt as navigation axis) by EDS-only "
                    "SIRT or HEBT, quantify inside the ESF particle mask, and write one HDF5 result.")
    p.add_argument("--eds", action="append", default=[], metavar="LINE=PATH",
                   help="an EDS line stack, e.g. Ag_La=eds_Ag_La.hspy (repeat per line)")
    p.add_argument("--haadf", metavar="PATH", help="the HAADF stack (needed by hebt_sirt)")
    p.add_argument("--angles", type=float, nargs="+", metavar="DEG", help="tilt angles, overriding the files'")
    p.add_argument("--pixel-nm", type=float, help="pixel size (nm), overriding the files'")
    p.add_argument("--method", default="hebt_sirt", help="eds_sirt | hebt_sirt | ... (default hebt_sirt)")
    p.add_argument("--iterations", "-n", type=int, default=100, help="iterations (default 100)")
    p.add_argument("--alpha", type=float, default=0.8, help="HAADF weight in [0, 1) for HEBT (default 0.8)")
    p.add_argument("--filter-sigma", type=float, default=0.8, help="Gaussian filter of EDS images, px (0: none)")
    p.add_argument("--mask", choices=("esf", "otsu"), default="esf", help="particle mask method (default esf)")
    p.add_argument("--threshold", type=float, help="fixed mask threshold instead of --mask")
    p.add_argument("--factors", default="physics",
                   help="'physics' (computed), 'paper' (Table 2), or a .json/.csv factor table")
    p.add_argument("--beam-kev", type=float, help="beam energy (keV), if not in the files' metadata")
    p.add_argument("--efficiency", type=float, default=0.96, help="flat detector efficiency (default 0.96)")
    p.add_argument("--chunk-slices", type=int, help="slices per batched solve (bounds memory)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="where chunks run: a Dask scheduler address (tcp://host:8786) or scheduler file, 'local[:N]' "
                        "for a LocalCluster of N workers; default $CHEMTOMO_SCHEDULER, else in this process")
    p.add_argument("--store", metavar="PATH", help="write maps chunk by chunk to this Zarr store (resumable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --store, skipping verified chunks")
    p.add_argument("--out", required=True, help="result file (.h5) or folder (writes result.h5 inside)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_eds(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--eds takes LINE=PATH (e.g. Ag_La=eds.hspy), got {it!r}")
        line, path = it.split("=", 1)
        if line in out:
            raise ValueError(f"line {line!r} given twice with --eds")
        out[line] = path
    return out


def resolve_factors(spec: str, lines: list[str], beam_kev: float | None, efficiency: float):
    if spec == "paper":
        from chemtomo.physics import paper_table2

        return paper_table2(lines, detector_efficiency=efficiency)
    if spec == "physics":
        from chemtomo.physics import compute_factors

        if beam_kev is None:
            raise ValueError("the beam energy is not in the files' metadata: give --beam-kev")
        return compute_factors(lines, beam_kev=beam_kev, detector=efficiency)
    from chemtomo.io.factors import read_factor_table

    return read_factor_table(spec)


def out_path(out: str) -> Path:
    p = Path(out)
    return p if p.suffix.lower() in (".h5", ".hdf5") else p / "result.h5"


def run(args) -> int:
    from chemtomo.io import provenance, write_result
    from chemtomo.io.hspy import read_tilt_series
    from chemtomo.pipeline import reconstruct_series

    eds = parse_eds(args.eds)
    if not eds:
        raise ValueError("give at least one EDS line with --eds LINE=PATH")
    series = read_tilt_series(eds, args.haadf, args.angles, args.pixel_nm)
    beam = args.beam_kev if args.beam_kev is not None else series.metadata.get("beam_kev")
    factors = resolve_factors(args.factors, series.lines, beam, args.efficiency)
    method = args.method.replace("-", "_")
    result = reconstruct_series(
        series, factors, method=method, n_iter=args.iterations, alpha=args.alpha,
        filter_sigma=args.filter_sigma, mask_method=args.mask, threshold=args.threshold,
        chunk_slices=args.chunk_slices, progress=not args.quiet,
        scheduler=args.scheduler, store=args.store, resume=args.resume,
    )
    inputs = list(eds.values()) + ([args.haadf] if args.haadf else [])
    path = write_result(out_path(args.out), result, provenance(inputs, factors_spec=args.factors))
    if result.response_ratios is not None:
        rr = result.response_ratios
        print("response ratios: " + ", ".join(f"{ln} {r:.4g}" for ln, r in zip(rr.lines, rr.r))
              + f" (R^2 {rr.r2:.4f})", file=sys.stderr)
    th = result.composition.threshold
    print(f"mask: {th.method} threshold {th.value:.4g}, volume fraction {th.volume_fraction:.3f}, "
          f"stability {th.stability:.3f}", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0
