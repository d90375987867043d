"""The raw-series route of ``chemtomo reconstruct``: microscope files to result.h5, stacks and figures."""

from __future__ import annotations

import sys
from pathlib import Path

from ._args import (
    auto_grids,
    auto_methods,
    check_raw_values,
    method_params,
    parse_angle_range,
    parse_iterations,
    parse_pad,
)
from ._outputs import check_output, check_store

#: the raw route with a HAADF stack of its own (issue 16): not supported, what is instead
RAW_OWN_HAADF = (
    "a raw tilt series (positional files) takes the HAADF images stored in its spectrum-image files, at the EDS "
    "tilts; a separate HAADF stack (--haadf PATH, with or without --haadf-angles) beside raw files is not supported. "
    "A HAADF at tilts of its own is supported with preprocessed line stacks: --eds LINE=PATH ... --haadf PATH "
    "--haadf-angles FILE|stack; in Python, line maps from chemtomo.preprocess.load_line_maps can be aligned with "
    "such a stack by preprocess_tilt_series(eds, haadf, angles_deg, pixel_nm, haadf_angles_deg=...) (the HAADF "
    "aligned on its own tilts, the EDS tilts placed on it)")


def run_raw(args) -> int:
    """The experimental path: raw files -> result.h5, export/, figures/ in the --out folder."""
    from chemtomo.pipeline.experimental import run_experimental

    line_maps, preprocess, reconstruction, output = raw_options(args)
    exp = run_experimental(args.inputs[0] if len(args.inputs) == 1 else args.inputs, args.lines, args.out,
                           line_maps=line_maps, preprocess=preprocess, reconstruction=reconstruction, output=output,
                           progress=not args.quiet)
    report_raw(exp)
    return 0


def raw_options(args) -> tuple:
    """The four stages' options of a raw-series run from the command line.

    Parameters
    ----------
    args : argparse.Namespace
        ``chemtomo reconstruct`` arguments with raw inputs.

    Returns
    -------
    (LineMapOptions, PreprocessOptions, ReconstructionOptions, OutputOptions)

    Raises
    ------
    ValueError
        No ``--lines``, an ``.h5`` output name or an output folder that cannot be
        written (:func:`~chemtomo.cli._outputs.check_output`), a ``--store`` that
        must not be (:func:`~chemtomo.cli._outputs.check_store`), ``--compare-tomviz``
        without ``--tomviz-angles``, a value out of range (:func:`~chemtomo.cli._args.check_raw_values`),
        or a value an options class refuses.
    """
    from chemtomo.pipeline.options import DEFAULT_METHODS, OutputOptions, ReconstructionOptions
    from chemtomo.preprocess.raw import LineMapOptions
    from chemtomo.preprocess.series import PreprocessOptions
    from chemtomo.reconstruct import canonical_name

    if not args.lines:
        raise ValueError("give the X-ray lines to map with --lines (e.g. --lines Fe_Ka Si_Ka O_Ka)")
    if Path(args.out).suffix.lower() in (".h5", ".hdf5"):
        raise ValueError("a raw tilt series writes a folder (result.h5, export/, figures/): give --out FOLDER")
    check_output(args.out, kind="folder")
    check_output(Path(args.out) / "result.h5", inputs=args.inputs, overwrite=args.overwrite)
    check_raw_values(args)
    if args.compare_tomviz and not args.tomviz_angles:
        raise ValueError("--compare-tomviz needs --tomviz-angles=START:STOP:STEP (the file holds no angles)")
    exports = [e for e in args.export if e != "none"]
    engine = {k: v for k, v in (("scheduler", args.scheduler), ("store", args.store)) if v}
    if args.resume:
        engine["resume"] = True
    methods = [canonical_name(m) for m in (args.method or DEFAULT_METHODS)]
    if args.store is not None:  # one store per method when several run (run_experimental's names)
        st = Path(args.store)
        for s in ([st] if len(methods) == 1 or not str(st).strip() else
                  [st.with_name(f"{st.stem}-{m}{st.suffix}") for m in methods]):
            check_store(s, inputs=args.inputs, outputs=[args.out], resume=args.resume, overwrite=args.overwrite)
        if args.overwrite:
            engine["replace_store"] = True
    line_maps = LineMapOptions(angles_deg=args.angles, angle_source=args.angles_from, pixel_nm=args.pixel_nm,
                               haadf_title=args.haadf_signal,
                               line_method=args.line_method, integration_width=args.integration_width,
                               elements=args.elements, angles_unit=args.angles_unit)
    preprocess = PreprocessOptions(register=args.register, reference_line=args.reference_line, align=args.align,
                                   rotation=not args.no_rotation, offset=not args.no_axis_offset, bin_factor=args.bin,
                                   shadowing=None if args.shadowing == "none" else args.shadowing,
                                   pad=parse_pad(args.pad), filter_sigma=args.filter_sigma or None)
    absorption = raw_absorption(args)
    reconstruction = ReconstructionOptions(
        factors=args.factors, beam_kev=args.beam_kev, efficiency=args.efficiency, methods=methods,
        n_iter=parse_iterations(args.iterations), alpha=args.alpha, quantify_lines=args.quantify_lines,
        mask_method=args.mask, threshold=args.threshold, chunk_slices=args.chunk_slices or 32,
        engine_options=engine or None, auto=auto_methods(args, methods), method_options=method_params(args, methods),
        auto_grid=auto_grids(args.auto_grid, auto_methods(args, methods)),  # only the rules that run
        replicas=args.replicas or None, seed=args.seed, absorption=absorption)
    output = OutputOptions(export=exports, export_kinds=args.export_kinds, figures=not args.no_figures,
                           signals=None if args.signals == "none" else args.signals, map_units=args.map_units,
                           compare_tomviz=args.compare_tomviz,
                           tomviz_angles_deg=parse_angle_range(args.tomviz_angles) if args.tomviz_angles else None)
    return line_maps, preprocess, reconstruction, output


def raw_absorption(args) -> dict | None:
    """The raw route's absorption options from ``--absorption`` and its flags, the detectors resolved early.

    With ``--absorption file`` the first tilt file's metadata is read now, so that a
    fact it lacks (and no flag gives) fails before the long work.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    dict or None
        :attr:`ReconstructionOptions.absorption <chemtomo.pipeline.options.ReconstructionOptions>`.

    Raises
    ------
    ValueError
        See :func:`~chemtomo.cli._absorption.absorption_options`; a detector fact
        neither in the files nor given.
    """
    from ._absorption import FROM_FILE, absorption_options

    absorption = absorption_options(args)
    if absorption is None or absorption["detectors"] != FROM_FILE:
        return absorption
    from chemtomo.io.detector_meta import DetectorFacts
    from chemtomo.pipeline.raw_absorption import file_detector_facts

    facts = DetectorFacts.from_dict(file_detector_facts(args.inputs if len(args.inputs) > 1 else args.inputs[0]))
    geometry = facts.geometry(elevation_deg=args.eds_elevation_deg, azimuth_deg=args.eds_azimuth_deg,
                              solid_angle_sr=args.solid_angle_sr, where="the tilt files")
    return {**absorption, "detectors": geometry}


def report_absorption(exp) -> None:
    """Print each method's absorption correction (outer loop, mean fractions before and after) to stderr."""
    for m, a in exp.absorption.items():
        r = a.record
        print(f"{m}: absorption ({r['detectors'].get('name')}; density {r['density_source']}): "
              f"{a.outer_iterations} outer iteration(s), converged {r['converged']} (fraction changes "
              + ", ".join(f"{c:.4g}" for c in r["changes"]) + f"; tol {r['tol']:g}; {a.seconds:.1f} s)",
              file=sys.stderr)
        print("  mean weight fraction in both masks, uncorrected -> corrected: " + ", ".join(
            f"{el} {b:.4f} -> {c:.4f}" for el, (b, c) in a.particle_means().items()), file=sys.stderr)


def theory_line(rr, factors) -> str:
    """One line: the fitted ``r_A`` over the theory's, relative to the best-determined line (HEBT's check).

    Parameters
    ----------
    rr : chemtomo.reconstruct.ResponseRatios
    factors : chemtomo.physics.Factors

    Returns
    -------
    str
    """
    try:
        c = rr.against_theory(factors)
    except ValueError as exc:  # every fitted r_A is 0: nothing to compare
        return f"r_A against theory: {exc}"
    return (f"r_A / theory, each relative to {c['reference']} (1 = the thin-film model's HAADF): "
            + ", ".join(f"{ln} {v:.3g}" for ln, v in zip(c["lines"], c["fitted_over_theory"], strict=True)))


def report_raw(exp) -> None:
    """Print a raw-series run's summary (series, alignment, notes, masks, r_A, fractions, time) to stderr."""
    err = sys.stderr
    pre = exp.pre
    s = pre.series
    print(f"tilt series: {s.angles_deg.size} tilts {s.angles_deg.min():g}..{s.angles_deg.max():g} deg, "
          f"{s.shape[1]} slices x {s.shape[2]} pixels of {s.pixel_nm:.3g} nm (bin {pre.bin_factor})", file=err)
    al = pre.alignment
    print(f"alignment ({al.method}): shifts up to {abs(al.shifts_px).max():.1f} raw px, tilt-axis rotation "
          f"{al.rotation_deg:.2f} deg, offset {al.axis_offset_px:.1f} raw px", file=err)
    for note in pre.notes:
        print(f"note: {note}", file=err)
    print("negative counts clipped after background subtraction (pixels, share of the total): " + ", ".join(
        f"{ln} {c['fraction_clipped']:.0%}, {c['counts_clipped'] / max(c['total_counts'], 1e-12):.1%}"
        for ln, c in pre.clipped.items()), file=err)
    if exp.tomviz is not None:
        d = ", ".join(f"{a:g}:{v:.1f}"
                      for a, v in zip(exp.tomviz["angles_deg"], exp.tomviz["distance_px"], strict=True))
        print(f"shifts vs tomviz (raw px per tilt): {d}; RMS {exp.tomviz['rms_px']:.2f}, "
              f"max {exp.tomviz['max_px']:.2f}", file=err)
    for m, res in exp.results.items():
        th = res.composition.threshold
        line = f"{m}: mask {th.method} threshold {th.value:.4g}, volume fraction {th.volume_fraction:.3f}"
        if "auto" in res.parameters:
            line += f"; chosen {res.parameters['auto']['params']}"
        if res.response_ratios is not None:
            rr = res.response_ratios
            line += ("; r_A " + ", ".join(f"{ln} {r:.4g}" for ln, r in zip(rr.lines, rr.r, strict=True))
                     + f" (R^2 {rr.r2:.4f})")
        print(line, file=err)
        if res.response_ratios is not None:
            print("  " + theory_line(res.response_ratios, exp.factors), file=err)
        inside = res.composition.mask
        unc = exp.uncertainty.get(m)
        if unc is not None:
            print(f"  mean weight fraction in the mask, value +- bootstrap se ({unc.replicas} replicas): " + ", ".join(
                f"{r['element']} {r['value']:.4f} +- {r['se']:.2g}" for r in unc.table("weight")
                if r["region"] == "particle"), file=err)
        elif inside.any():
            print("  mean weight fraction in the mask: " + ", ".join(
                f"{el} {float(res.composition.weight[i][inside].mean()):.3f}" for i, el in enumerate(res.elements)),
                file=err)
    report_absorption(exp)
    t = exp.timings_s
    print("time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()), file=err)
    print(f"wrote {exp.paths['result']} (+ {len(exp.paths['export'])} stacks, {len(exp.paths['figures'])} figures)",
          file=err)
