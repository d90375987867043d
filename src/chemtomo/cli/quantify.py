"""``chemtomo quantify``: one spectrum or spectrum image quantified with the tomography's physics.

Examples::

    chemtomo quantify test_TEM.bcf --lines Cu_Ka O_Ka Pd_La Ti_Ka
    chemtomo quantify spectrum.msa --lines Fe_Ka Pt_La --beam-kev 200 --out fe_pt.json
    chemtomo quantify map.emd --lines Ca_Ka Cu_Ka --out table.csv --maps maps/ --bin 2
"""

from __future__ import annotations

import argparse
import json

from chemtomo.physics import DETECTOR_PRESETS
from chemtomo.pipeline.spectrum import INTENSITY_METHODS, quantify_spectrum, write_maps, write_table


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``quantify`` subcommand and its options to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``chemtomo`` subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    p = subparsers.add_parser(
        "quantify",
        help="weight and atomic fractions of one EDS spectrum or spectrum image (thin film)",
        description=(
            "Quantify one EDS spectrum or spectrum image (any file RosettaSciIO/exSpy reads: .msa, .bcf, "
            ".emd, .hspy, JEOL .pts/.ASW) with the thin-film model and factors of the tomography: "
            "C_A = (I_A/f_A) / sum_B (I_B/f_B), I_A the background-subtracted line intensity. Prints the "
            "whole acquisition's composition; --out writes it as CSV/JSON, --maps the per-pixel maps."
        ),
    )
    p.add_argument("spectrum", metavar="SPECTRUM", help="the spectrum or spectrum-image file")
    p.add_argument("--lines", nargs="+", metavar="LINE", default=None,
                   help="X-ray lines, e.g. Cu_Ka Pd_La (default: the file's Sample.xray_lines)")
    p.add_argument("--beam-kev", type=float, default=None,
                   help="beam energy (keV); default: the file's Acquisition_instrument.TEM/SEM.beam_energy")
    p.add_argument("--factors", default="physics", metavar="physics|paper|TABLE",
                   help="factors: computed (physics, default), the paper's Table 2, or a JSON/CSV table "
                        "(the output of 'chemtomo factors --json')")
    det = p.add_mutually_exclusive_group()
    det.add_argument("--efficiency", type=float, default=None, metavar="EPS",
                     help="flat detector efficiency in (0, 1] (default 0.96)")
    det.add_argument("--detector", choices=sorted(DETECTOR_PRESETS), default=None,
                     help="physical detector model for the efficiency (with --factors physics)")
    p.add_argument("--solid-angle-sr", type=float, default=None,
                   help="EDS solid angle (sr) for the partial cross-sections in the JSON table (default: the "
                        "file's, Velox only; fractions do not need it)")
    p.add_argument("--intensity", choices=INTENSITY_METHODS, default="windows",
                   help="line intensities: exSpy's background windows (default) or a local fit that "
                        "separates overlapping lines")
    p.add_argument("--bin", type=int, default=1, metavar="N", help="sum-bin a spectrum image's pixels N x N first")
    p.add_argument("--signal", type=int, default=None, metavar="INDEX",
                   help="which EDS signal of the file (when it holds several)")
    p.add_argument("--out", default=None, metavar="TABLE", help="write the table to TABLE (.csv or .json)")
    p.add_argument("--maps", default=None, metavar="FOLDER",
                   help="write per-pixel intensity, weight and atomic maps (.hspy) of a spectrum image here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run(args) -> int:
    """Run ``chemtomo quantify``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code (0).
    """
    from . import UserError

    if args.out is not None and not str(args.out).lower().endswith((".csv", ".json")):
        raise UserError(f"--out {args.out}: the table is written as .csv or .json")
    eff = args.detector if args.detector is not None else args.efficiency
    comp = quantify_spectrum(args.spectrum, args.lines, args.factors, beam_kev=args.beam_kev, efficiency=eff,
                             intensity=args.intensity, bin_factor=args.bin, signal_index=args.signal,
                             solid_angle_sr=args.solid_angle_sr)
    if args.maps is not None and not comp.is_image:
        raise UserError(f"--maps: {args.spectrum} is a single spectrum, not a spectrum image; drop --maps")
    rows = comp.table()
    if args.json:
        print(json.dumps({"rows": rows, "source": comp.source}, indent=2, default=float))
    else:
        what = (f"spectrum image {comp.intensities.shape[2]} x {comp.intensities.shape[1]} px, summed"
                if comp.is_image else "spectrum")
        print(f"{args.spectrum} ({what}; beam {comp.source['beam_kev']:g} keV; thin film, "
              f"intensities by {comp.source['intensity_method']})")
        print(f"{'line':<8} {'counts':>12} {'f (b mol/g)':>12} {'weight':>8} {'atomic':>8}")
        for r in rows:
            print(f"{r['line']:<8} {r['intensity_counts']:>12.6g} {r['f_barn_mol_per_g']:>12.4g} "
                  f"{r['weight_fraction']:>8.4f} {r['atomic_fraction']:>8.4f}")
    if args.out is not None:
        write_table(comp, args.out)
    if args.maps is not None:
        for p in write_maps(comp, args.maps):
            print(f"wrote {p}")
    return 0
