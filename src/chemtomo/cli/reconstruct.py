"""`chemtomo reconstruct`: a tilt series to quantified maps in one HDF5 result.

Two kinds of input:

- a raw tilt series as microscopes write it (positional: a folder, or one
  file per tilt; Bruker .bcf, Velox .emd, HyperSpy .hspy spectrum images)
  with ``--lines``: the whole experimental path of
  :func:`chemtomo.pipeline.experimental.run_experimental` (line maps,
  registration, alignment, EDS-SIRT and HEBT, quantification, stacks and
  figures into the ``--out`` folder); with ``--absorption`` every method runs
  inside the absorption correction (:mod:`chemtomo.pipeline.raw_absorption`);
- preprocessed per-line stacks (``--eds LINE=PATH``, ``--haadf PATH``,
  ``.hspy`` with the tilt as navigation axis): one method, one result file;
  with ``--absorption single|super-x`` the method runs inside the absorption
  correction's outer loop (:func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`)
  and the file holds the corrected maps, plus ``/absorption``; with
  ``--haadf-angles FILE|stack`` the HAADF has tilts of its own (:func:`haadf_angles`);
- a HAADF (or ADF) stack alone (``--haadf PATH``, no ``--eds``): its volume by
  ``--method sirt`` (default) or ``tv`` (:func:`run_haadf`), written as ``/haadf``.

One module over 500 lines on purpose: the three routes share one parser, and
which option applies to which route is checked here in one place (the checks
themselves live in :mod:`chemtomo.cli._args`, the outputs in
:mod:`chemtomo.cli._outputs`, the raw route in :mod:`chemtomo.cli._raw`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._absorption import (
    ABSORPTION_OPTIONS,
    FROM_FILE,
    absorption_default,
    absorption_options,
    add_detector_arguments,
    file_detectors,
    print_absorption,
)
from ._args import (
    _defaults_text,
    auto_grids,
    auto_methods,
    check_dependent_options,
    given_options,
    grid_names,
    interval_option,
    method_params,
    refuse_options,
)
from ._outputs import check_output, check_store
from ._raw import run_raw, theory_line

#: options only the raw route (positional tilt files) takes: refused with --eds/--haadf stacks
RAW_ONLY = ("--lines", "--angles-from", "--bin", "--register", "--reference-line", "--align", "--no-rotation",
            "--no-axis-offset", "--shadowing", "--pad", "--quantify-lines", "--line-method", "--elements",
            "--integration-width", "--no-figures", "--compare-tomviz", "--tomviz-angles")
#: options only the stack routes (--eds/--haadf) take: refused with a raw tilt series
STACK_ONLY = ("--tilt-axis", "--jackknife", "--bias", "--interval", "--haadf-angles")
#: options a HAADF-only run (--haadf without --eds) does not take: EDS maps, quantification, store
HAADF_REFUSED = ("--mask", "--threshold", "--factors", "--beam-kev", "--efficiency", "--filter-sigma", "--alpha",
                 "--auto", "--auto-grid", "--store", "--resume", "--replicas", "--interval",
                 "--haadf-angles") + ABSORPTION_OPTIONS


def add_parser(sub):
    """The ``reconstruct`` subcommand; its help reads the methods and their defaults from the registry."""
    from chemtomo.physics import DETECTOR_EFFICIENCY
    from chemtomo.physics.absorption import DETECTOR_GEOMETRIES
    from chemtomo.pipeline.options import DEFAULT_METHODS as DEFAULT_RAW_METHODS
    from chemtomo.pipeline.options import MASK_METHODS
    from chemtomo.pipeline.volume import DEFAULT_METHOD
    from chemtomo.preprocess import FILTER_SIGMA_PX
    from chemtomo.reconstruct import get_method, method_names

    names = method_names()
    p = sub.add_parser(
        "reconstruct", help="reconstruct and quantify a tilt series into an HDF5 result",
        description="Reconstruct a raw spectrum-image tilt series (folder or files: .bcf, .emd, .hspy; with "
                    "--lines) or HAADF + per-line EDS stacks (--eds/--haadf .hspy) by EDS-only SIRT and/or HEBT, "
                    "quantify inside the ESF particle mask, and write one HDF5 result (raw input: plus TIFF/MRC "
                    "stacks and figures).")
    p.add_argument("inputs", nargs="*", metavar="RAW",
                   help="raw tilt series: a folder of tilt files, or the files (one per tilt)")
    p.add_argument("--lines", nargs="+", metavar="LINE", help="X-ray lines to map from raw input, e.g. Fe_Ka Pt_La")
    p.add_argument("--eds", action="append", default=[], metavar="LINE=PATH",
                   help="an EDS line stack, e.g. Ag_La=eds_Ag_La.hspy (repeat per line)")
    p.add_argument("--haadf", metavar="PATH",
                   help=f"the HAADF stack (needed by {', '.join(n for n in names if get_method(n).needs_haadf)}); "
                        "alone (no --eds): reconstruct the HAADF volume, --method sirt (default) or tv")
    p.add_argument("--angles", type=float, nargs="+", metavar="DEG",
                   help="tilt angles, overriding the files' (raw input: one per file, in the files' order)")
    p.add_argument("--angles-unit", choices=("deg", "rad"),
                   help="the unit of the tilt angles, given (--angles) or read from the files, on every route: rad "
                        "converts them to degrees; deg accepts a set within +-1.6 (default: degrees, and a set "
                        "that looks like radians is refused)")
    p.add_argument("--angles-from", choices=("auto", "metadata", "filename"), default="auto",
                   help="raw input: where tilt angles come from (default auto: metadata, else file names)")
    p.add_argument("--haadf-angles", metavar="FILE|stack",
                   help="the HAADF at tilts of its own (many HAADF tilts, few EDS): a text file of its angles "
                        "(one per line, degrees), or 'stack' for the angles the --haadf stack states; default: the "
                        "HAADF shares the EDS stacks' angles")
    p.add_argument("--pixel-nm", type=float, help="pixel size (nm), overriding the files'")
    p.add_argument("--haadf-signal", metavar="NAME",
                   help="the image to use as HAADF, by title or detector (e.g. DF-S): only an image named HAADF "
                        "is taken otherwise")
    p.add_argument("--tilt-axis", default="auto", metavar="auto|rows|columns|DEG",
                   help="stacks: the tilt axis runs along image rows (y; chemtomo, IMOD) or columns (x; etspy), or "
                        "DEG: rotate the images by DEG degrees to bring it along y; default auto: the rotation "
                        "estimated from the data (projection invariance) and corrected, else the file's convention")
    p.add_argument("--method", nargs="+", metavar="METHOD",
                   help=f"{' | '.join(names)} (hyphens work too: fused-tv; default {DEFAULT_METHOD}; raw input: "
                        f"{' '.join(DEFAULT_RAW_METHODS)}; --haadf alone: sirt | tv, default sirt)")
    p.add_argument("--iterations", "-n", nargs="+", metavar="N|METHOD=N",
                   help="iterations, for every method or per method, e.g. -n 100 fused_tv=300 ("
                        f"{_defaults_text('n_iter')})")
    p.add_argument("--alpha", type=float,
                   help=f"HAADF weight in [0, 1) of the methods that have one ({_defaults_text('alpha')})")
    p.add_argument("--mu", type=float,
                   help=f"dimensionless TV weight of the regularised solvers ({_defaults_text('mu')}; see --auto)")
    p.add_argument("--param", action="append", default=[], metavar="[METHOD.]NAME=VALUE",
                   help="any parameter of the methods run (repeatable): NAME=VALUE for every method that has NAME, "
                        "METHOD.NAME=VALUE for one, e.g. --param fused_tv.haadf_model_error=0.02; "
                        "VALUE: a number, true/false or none. Parameters: " + "; ".join(
                            f"{n}: {', '.join(f'{k}={v}' for k, v in get_method(n).Params.defaults().items())}"
                            for n in names))
    p.add_argument("--auto", nargs="*", metavar="METHOD",
                   help="choose the parameters from the data (EDS-SIRT n by the discrepancy principle, HEBT alpha "
                        "and n and the TV weight by cross-validation on held-out rays) on the slices with the most "
                        "counts, for every method or for the METHODs named; the choice is recorded in the result")
    p.add_argument("--auto-grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="candidates of the automatic rules, e.g. --auto-grid mu=0.02,0.04,0.08 "
                        f"({', '.join(grid_names())}; repeatable; each method takes the names of its rule)")
    p.add_argument("--filter-sigma", type=float, default=FILTER_SIGMA_PX,
                   help=f"Gaussian filter of EDS images, px (0: none; default {FILTER_SIGMA_PX})")
    p.add_argument("--mask", choices=MASK_METHODS, default="esf",
                   help="particle mask method (default esf; otsu: two-class Otsu; multiotsu: the lowest "
                        "three-class Otsu threshold, which keeps a light support beside a heavy particle)")
    p.add_argument("--threshold", type=float, help="fixed mask threshold instead of --mask")
    p.add_argument("--factors", default="physics",
                   help="'physics' (computed), 'paper' (Table 2), or a .json/.csv factor table")
    p.add_argument("--beam-kev", type=float, help="beam energy (keV), if not in the files' metadata")
    p.add_argument("--efficiency", type=float, default=DETECTOR_EFFICIENCY,
                   help=f"flat detector efficiency (default {DETECTOR_EFFICIENCY})")
    p.add_argument("--chunk-slices", type=int, help="slices per batched solve (bounds memory; raw input: 32)")
    from chemtomo.reconstruct.bootstrap import BIAS_SCALES, INTERVAL_METHODS

    u = p.add_argument_group("uncertainty (parametric bootstrap of the counts; --jackknife, --bias, --interval: "
                             "stacks only)")
    u.add_argument("--replicas", type=int, metavar="N",
                   help="also reconstruct N >= 2 Poisson replicas of the counts and write the per-voxel and region "
                        "standard errors and 90%% intervals (/uncertainty in the result; a raw series: every method "
                        "bootstrapped, the primary one written; replicas of the unfiltered line maps)")
    u.add_argument("--jackknife", action="store_true",
                   help="with --replicas: also the leave-one-tilt-out spread (one reconstruction per tilt)")
    u.add_argument("--bias", action="store_true",
                   help="with --replicas: also estimate the bias (the fitted model's expected counts reconstructed "
                        "like a replica) and widen the intervals by its size (docs/uncertainty.md)")
    u.add_argument("--interval", choices=INTERVAL_METHODS, metavar="{" + ",".join(INTERVAL_METHODS) + "}",
                   help="with --replicas: how the 90%% intervals are made (default percentile, or bias_widened with "
                        "--bias; the bias_* ones need --bias; bias_scaled needs a method with a calibrated scale: "
                        + ", ".join(f"{k} {v:g}" for k, v in BIAS_SCALES.items()) + "; docs/uncertainty.md)")
    u.add_argument("--seed", type=int, default=0, help="seed of the replicas (default 0)")
    a = p.add_argument_group("X-ray absorption in the specimen (issue 14; stacks and raw input)")
    a.add_argument("--absorption", choices=("none", FROM_FILE, *DETECTOR_GEOMETRIES), default="none",
                   help="correct the EDS counts for absorption on the way to these detectors (nominal geometries: "
                        + "; ".join(f"{k}: take-off {v[0][0]:g} deg, {len(v[0])} detector(s), "
                                    f"{sum(v[2]):g} sr" for k, v in DETECTOR_GEOMETRIES.items())
                        + f"; {FROM_FILE}: the detectors the --eds files' (raw input: the first tilt file's) "
                          "metadata state"
                        + ") by an outer loop around --method; the corrected maps are the result, the uncorrected "
                          "fractions and the transmissions go to /absorption (default none)")
    a.add_argument("--density", type=float, metavar="G_CM3",
                   help="density inside the particle mask (g/cm^3) for --absorption; default: estimated from the "
                        "absolute maps and the series' dose each iteration (raw input: line maps are not absolute, "
                        "default 3.0, docs/experimental.md)")
    a.add_argument("--absorption-tol", type=float, metavar="TOL",
                   help=f"stop the outer loop when the weight fractions change less than this (default "
                        f"{absorption_default('tol')})")
    a.add_argument("--absorption-max-outer", type=int, metavar="N",
                   help=f"most corrected reconstructions (default {absorption_default('max_outer')})")
    add_detector_arguments(a)
    g = p.add_argument_group("raw input: preprocessing and outputs")
    g.add_argument("--bin", type=int, default=2, help="sum-bin images by this factor after alignment (default 2)")
    g.add_argument("--register", choices=("xcorr", "com", "none"), default="xcorr",
                   help="HAADF-to-EDS registration per tilt (default xcorr; com as the paper)")
    g.add_argument("--reference-line", metavar="LINE",
                   help="EDS map the HAADF is registered to (default: the sum of the lines)")
    g.add_argument("--align", choices=("xcorr", "xcorr-stretch", "com", "none"), default="xcorr",
                   help="tilt-series shifts: cross-correlation (xcorr-stretch: cosine-stretched, for slabs and "
                        "lamellae), centre of mass (isolated particles), or none (default xcorr)")
    g.add_argument("--no-rotation", action="store_true", help="do not estimate the tilt-axis rotation")
    g.add_argument("--no-axis-offset", action="store_true", help="do not estimate the tilt-axis offset")
    g.add_argument("--shadowing", choices=("mean", "max", "first", "slab", "none"), default="mean",
                   help="normalise each tilt's total counts per line to a common value (default mean, as the "
                        "paper; slab: of total x cos(tilt), for a slab wider than the field of view)")
    g.add_argument("--pad", default="auto", metavar="PX|auto",
                   help="pad images across the tilt axis by repeating edge columns (binned px; default auto: "
                        "enough for a specimen wider than the field at the highest tilt; 0: none)")
    g.add_argument("--quantify-lines", nargs="+", metavar="LINE",
                   help="lines to quantify (default all; others are reconstructed but not quantified)")
    g.add_argument("--line-method", choices=("windows", "fit"), default="windows",
                   help="line intensities: exSpy background windows (default) or a local least-squares fit that "
                        "separates overlapping lines")
    g.add_argument("--elements", nargs="+", metavar="EL",
                   help="elements of the specimen whose lines background windows avoid and the fit models "
                        "(default: the files' Sample.elements)")
    g.add_argument("--integration-width", type=float, default=2.0,
                   help="line integration window in FWHMs (default 2)")
    g.add_argument("--export", nargs="+", choices=("tiff", "ome-tiff", "mrc", "none"), default=["tiff"],
                   help="volume stacks per element for tomviz/napari/ImageJ/Fiji, with the voxel size, in export/ "
                        "(default tiff)")
    g.add_argument("--export-kinds", nargs="+", choices=("maps", "weight", "atomic", "mask", "haadf"),
                   default=["maps", "weight"], help="which volumes to export (default maps weight)")
    g.add_argument("--signals", choices=("hspy", "zspy", "none"), default="none",
                   help="also write every volume as a HyperSpy signal in signals/ (hs.load opens them; default none)")
    g.add_argument("--map-units", choices=("per_nm", "per_pixel"), default="per_nm",
                   help="maps in the exports and signals per nm of beam path (chemtomo, default) or per voxel "
                        "(ASTRA/etspy/tomviz SIRT: times the voxel size); result.h5 is always per nm and says so")
    g.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    g.add_argument("--compare-tomviz", metavar="JSON", help="compare the shifts with a tomviz alignment file")
    g.add_argument("--tomviz-angles", metavar="START:STOP:STEP",
                   help="angles of every entry of the tomviz file, e.g. --tomviz-angles=-50:50:5")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="where chunks run: a Dask scheduler address (tcp://host:8786) or scheduler file, 'local[:N]' "
                        "for a LocalCluster of N workers; default $CHEMTOMO_SCHEDULER, else in this process")
    p.add_argument("--store", metavar="PATH",
                   help="write maps chunk by chunk to this Zarr store, a folder (resumable); an existing one needs "
                        "--resume (continue it) or --overwrite (start afresh)")
    p.add_argument("--resume", action="store_true", help="continue the run in --store, skipping verified chunks")
    p.add_argument("--out", required=True,
                   help="result file (.h5) or folder (writes result.h5 inside; raw input: a folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file that is not a chemtomo result (an existing chemtomo result "
                        "is replaced without it, as re-running a command replaces its own output; any other file "
                        "is refused unless this is given, so that a mistyped name cannot destroy unrelated data); "
                        "also replace an existing --store folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(_default_of=p.get_default)
    return p


def parse_eds(items: list[str]) -> dict[str, str]:
    """The ``--eds LINE=PATH`` items as ``{line: path}``, in the order given.

    Raises
    ------
    ValueError
        An item without ``=``, or a line given twice.
    """
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--eds takes LINE=PATH (e.g. Ag_La=eds.hspy), got {it!r}")
        line, path = it.split("=", 1)
        if line in out:
            raise ValueError(f"line {line!r} given twice with --eds")
        out[line] = path
    return out


def out_path(out: str) -> Path:
    """The result file for ``--out``: the path itself if it ends in ``.h5``/``.hdf5``, else ``out/result.h5``."""
    p = Path(out)
    return p if p.suffix.lower() in (".h5", ".hdf5") else p / "result.h5"


def run(args) -> int:
    """Run ``chemtomo reconstruct`` on a raw tilt series (:func:`run_raw`) or on stacks (:func:`run_stacks`).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code (0).

    Raises
    ------
    ValueError
        An empty ``--out``; both raw inputs and ``--eds``/``--haadf`` stacks
        given; an option of the stack routes (:data:`STACK_ONLY`) with raw
        inputs, or one of the raw route (:data:`RAW_ONLY`) with stacks; an option
        without the one it depends on (:func:`~chemtomo.cli._args.check_dependent_options`).
    """
    if not str(args.out).strip():
        raise ValueError("--out is empty: give a result file (.h5) or a folder")
    if args.jackknife and not args.replicas:
        raise ValueError("--jackknife needs --replicas N (the bootstrap it adds to)")
    if args.bias and not args.replicas:
        raise ValueError("--bias needs --replicas N (the bootstrap it adds to)")
    if getattr(args, "interval", None) and not args.replicas:
        raise ValueError(f"--interval {args.interval} needs --replicas N (the bootstrap whose intervals it makes)")
    if args.inputs:
        if args.haadf or getattr(args, "haadf_angles", None):
            from ._raw import RAW_OWN_HAADF

            raise ValueError(RAW_OWN_HAADF)
        if args.eds:
            raise ValueError("give either a raw tilt series (positional) or --eds/--haadf stacks, not both")
        refuse_options(args, STACK_ONLY, "a raw tilt series (positional inputs)",
                       "--eds/--haadf stacks (a raw series' tilt-axis direction is estimated by its alignment, "
                       "--no-rotation keeps the images' own; the raw route's bootstrap (--replicas) has no "
                       "jackknife or bias)")
        check_dependent_options(args, "raw")
        return run_raw(args)
    if args.lines:
        raise ValueError("--lines applies to a raw tilt series: give its folder or files as positional arguments")
    refuse_options(args, RAW_ONLY, "--eds/--haadf stacks",
                   "a raw tilt series (positional folder or files with --lines)")
    check_dependent_options(args, "haadf" if args.haadf and not args.eds else "stacks")
    return run_stacks(args)


def run_stacks(args) -> int:
    """The stack path: ``--eds LINE=PATH`` (and ``--haadf``) stacks -> one method's result file.

    Writes the result (``--out``), and the exported stacks and signals beside
    it when asked; on a failure none of them is left behind.

    Parameters
    ----------
    args : argparse.Namespace
        ``chemtomo reconstruct`` arguments with ``--eds`` stacks.

    Returns
    -------
    int
        The exit code (0).

    Raises
    ------
    ValueError
        No ``--eds`` stacks (nor ``--haadf`` alone), or more than one ``--method``;
        a bad absorption option (:func:`~chemtomo.cli._absorption.absorption_options`).
    """
    from chemtomo.io import provenance
    from chemtomo.io.factors import resolve_factors
    from chemtomo.io.hspy import read_tilt_series
    from chemtomo.pipeline import reconstruct_series
    from chemtomo.pipeline.volume import DEFAULT_METHOD

    eds = parse_eds(args.eds)
    if not eds and args.haadf:
        return run_haadf(args)
    if not eds:
        raise ValueError("give a raw tilt series (folder or files) with --lines, stacks with --eds LINE=PATH, "
                         "or a HAADF stack alone with --haadf PATH")
    methods = args.method or [DEFAULT_METHOD]
    if len(methods) != 1:
        raise ValueError("with --eds stacks give one --method (raw input reconstructs several)")
    from chemtomo.reconstruct import get_method

    method = get_method(methods[0]).name
    params = method_params(args, [method])[method]
    absorption = absorption_options(args)
    interval_method = interval_option(args, method)
    inputs = list(eds.values()) + ([args.haadf] if args.haadf else [])
    path = check_output(out_path(args.out), inputs=inputs, overwrite=args.overwrite)
    if args.store is not None:
        check_store(args.store, inputs=inputs, outputs=[path], resume=args.resume, overwrite=args.overwrite)
    series = read_tilt_series(eds, args.haadf, args.angles, args.pixel_nm, tilt_axis=args.tilt_axis,
                              haadf_signal=args.haadf_signal, haadf_angles_deg=haadf_angles(args),
                              angles_unit=args.angles_unit)
    beam = args.beam_kev if args.beam_kev is not None else series.metadata.get("beam_kev")
    factors = resolve_factors(args.factors, series.lines, beam, args.efficiency)
    absorption = file_detectors(absorption, series, args)
    run_kwargs = dict(
        filter_sigma=args.filter_sigma, mask_method=args.mask, threshold=args.threshold,
        chunk_slices=args.chunk_slices, progress=not args.quiet,
        scheduler=args.scheduler, store=args.store, resume=args.resume,
        **({"replace_store": True} if args.store and args.overwrite else {}),
        auto=method in auto_methods(args, [method]), auto_grid=(auto_grids(args.auto_grid, [method]) or {}).get(method),
    )
    absorbed = None
    if absorption is None:
        result = reconstruct_series(series, factors, method, params, **run_kwargs)
    else:
        from chemtomo.pipeline.absorption import reconstruct_absorption_corrected

        absorbed = reconstruct_absorption_corrected(series, factors, method, **absorption, params=params,
                                                    **run_kwargs)
        result = absorbed.corrected
    unc = None
    if args.replicas:
        from chemtomo.pipeline.uncertainty import bootstrap_uncertainty

        unc = bootstrap_uncertainty(series, factors, method, params, replicas=args.replicas, seed=args.seed,
                                    jackknife=args.jackknife, result=result, filter_sigma=args.filter_sigma,
                                    bias=args.bias, interval_method=interval_method,
                                    mask_method=args.mask, threshold=args.threshold, chunk_slices=args.chunk_slices,
                                    scheduler=args.scheduler)
    prov = provenance(inputs, factors_spec=args.factors)
    written = write_outputs(args, result, path, method, prov, args.export_kinds, uncertainty=unc,
                            absorption=absorbed)
    if result.response_ratios is not None:
        rr = result.response_ratios
        print("response ratios: " + ", ".join(f"{ln} {r:.4g}" for ln, r in zip(rr.lines, rr.r, strict=True))
              + f" (R^2 {rr.r2:.4f})", file=sys.stderr)
        print("  " + theory_line(rr, factors), file=sys.stderr)
    if "auto" in result.parameters:
        a = result.parameters["auto"]
        cost = f"; {a['seconds']:.1f} s" if "seconds" in a else ""
        print(f"chosen from the data: {a['params']} ({a['rule']}; slices {a['slices'][0]}:{a['slices'][1]}{cost})",
              file=sys.stderr)
    th = result.composition.threshold
    print(f"mask: {th.method} threshold {th.value:.4g}, volume fraction {th.volume_fraction:.3f}, "
          f"stability {th.stability:.3f}", file=sys.stderr)
    if absorbed is not None:
        print_absorption(absorbed)
    if unc is not None:
        print(f"weight fractions, value +- bootstrap se ({unc.replicas} replicas, {100 * unc.interval:g}% "
              f"{unc.bootstrap.weight.method} intervals): "
              + "; ".join(f"{r['region']} {r['element']} {r['value']:.4f} +- {r['se']:.4f} "
                          f"[{r['low']:.4f}, {r['high']:.4f}]" for r in unc.table("weight")), file=sys.stderr)
    print(f"wrote {path}" + (f" (+ {len(written)} stacks/signals)" if written else ""), file=sys.stderr)
    return 0


def write_outputs(args, result, path: Path, method: str, prov: dict, kinds, uncertainty=None,
                  absorption=None) -> list[Path]:
    """Write the stacks (``--export``), signals (``--signals``) and the result file of a stack run.

    Stacks and signals first, the result last: on a failure none of them is left behind,
    nor the folders this write created.

    Parameters
    ----------
    args : argparse.Namespace
    result : VolumeResult
    path : Path
        The result file.
    method : str
        Prefix of the stacks' and signals' names.
    prov : dict
        Provenance.
    kinds : list of str
        Volumes to export.
    uncertainty : Uncertainty, optional
        The bootstrap of the run (``--replicas``): written to ``/uncertainty`` and as
        standard-error signals.
    absorption : AbsorptionResult, optional
        The absorption correction whose corrected reconstruction is ``result``
        (``--absorption``): written to ``/absorption``.

    Returns
    -------
    list of Path
        The stacks and signals written.
    """
    import contextlib
    import shutil

    from chemtomo.io import export_result_volumes, write_result, write_result_signals

    written: list[Path] = []
    new_folders = [f for f in (path.parent / "export", path.parent / "signals", path.parent, *path.parent.parents)
                   if not f.exists()]  # deepest first
    try:
        exports = [e for e in args.export if e != "none"]
        if exports:
            written += export_result_volumes(result, path.parent / "export", exports, kinds,
                                             map_units=args.map_units, prefix=f"{method}_")
        if args.signals != "none":
            written += write_result_signals(result if uncertainty is None else uncertainty, path.parent / "signals",
                                            format=args.signals, map_units=args.map_units, provenance=prov,
                                            prefix=f"{method}_")
        write_result(path, result, prov, uncertainty=uncertainty, absorption=absorption)
    except BaseException:
        for p in written:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for f in new_folders:  # the folders this write created, if nothing else is in them
            with contextlib.suppress(OSError):
                f.rmdir()
        raise
    return written


def haadf_angles(args):
    """``--haadf-angles``: None (one tilt set), ``"file"`` (the HAADF stack's own), or the angles of a file.

    Raises
    ------
    ValueError
        ``--haadf-angles`` without ``--haadf``; a file that does not hold angles.
    """
    value = getattr(args, "haadf_angles", None)
    if value is None:
        return None
    if not args.haadf:
        raise ValueError("--haadf-angles gives the HAADF's own tilt angles: it needs --haadf PATH")
    if value == "stack":
        return "file"
    from chemtomo.io.stacks import read_angle_file

    return read_angle_file(value)


def haadf_refusals(args) -> list[str]:
    """The options given that a HAADF-only run does not take (EDS, quantification, store), as flags."""
    return given_options(args, HAADF_REFUSED)


def run_haadf(args) -> int:
    """The HAADF-only path: ``--haadf PATH`` with no ``--eds`` -> a result file holding ``/haadf``.

    ``--method sirt`` (default) or ``tv`` (least squares + TV); ``-n``, ``--mu`` and
    ``--param NAME=VALUE`` set the engine's parameters (``eds_sirt``'s or ``ls_tv``'s).
    The volume is per nm of beam path, as the maps (``--map-units per_pixel`` for the
    exports and signals in ASTRA's convention).

    Parameters
    ----------
    args : argparse.Namespace
        ``chemtomo reconstruct`` arguments with ``--haadf`` and no ``--eds``.

    Returns
    -------
    int
        The exit code (0).

    Raises
    ------
    ValueError
        More than one ``--method`` or one other than sirt/tv, an option that applies to
        EDS or quantification only (``--mask``, ``--factors``, ...), ``--store``, or
        export kinds other than ``haadf``.
    """
    from chemtomo.io import provenance
    from chemtomo.io.hspy import read_tilt_series
    from chemtomo.pipeline.haadf import haadf_engine, reconstruct_haadf

    methods = args.method or ["sirt"]
    if len(methods) != 1:
        raise ValueError(f"a HAADF-only run takes one --method (sirt or tv), got {methods}")
    engine = haadf_engine(methods[0])
    refused = haadf_refusals(args)
    if refused:
        raise ValueError(f"{', '.join(refused)} apply to EDS maps and their quantification (or a store); a "
                         "HAADF-only run (--haadf without --eds) does not take them")
    default_kinds = ["maps", "weight"]
    kinds = ["haadf"] if list(args.export_kinds) == default_kinds else list(args.export_kinds)
    if kinds != ["haadf"]:
        raise ValueError(f"a HAADF-only run exports only the HAADF volume (--export-kinds haadf), got {kinds}")
    params = method_params(args, [engine])[engine]
    path = check_output(out_path(args.out), inputs=[args.haadf], overwrite=args.overwrite)
    series = read_tilt_series({}, args.haadf, args.angles, args.pixel_nm, tilt_axis=args.tilt_axis,
                              haadf_signal=args.haadf_signal, angles_unit=args.angles_unit)
    result = reconstruct_haadf(series, engine, params, chunk_slices=args.chunk_slices, progress=not args.quiet,
                               scheduler=args.scheduler)
    prov = provenance([args.haadf])
    name = result.parameters["method"]
    written = write_outputs(args, result, path, name, prov, kinds)
    vol = result.haadf_volume
    print(f"{name}: HAADF volume {vol.shape[0]} x {vol.shape[1]} x {vol.shape[2]} voxels of "
          f"{result.geometry.grid_pixel_nm:.4g} nm ({result.parameters['n_iter']} iterations), per nm of beam path",
          file=sys.stderr)
    print(f"wrote {path}" + (f" (+ {len(written)} stacks/signals)" if written else ""), file=sys.stderr)
    return 0
