"""``chemtomo factors``: every ingredient of f_A and z_A for some X-ray lines.

Examples::

    chemtomo factors Co_Ka Zn_Ka --beam-kev 80
    chemtomo factors Ag_La Au_Ma --beam-kev 100 --json
    chemtomo factors Co_Ka Zn_Ka --beam-kev 80 --detector windowless-sdd --solid-angle-sr 0.7
    chemtomo factors Ag_La Au_Ma --beam-kev 100 --haadf-mrad 94 611
    chemtomo factors Ag_La Au_Ma --preset paper-table2
    chemtomo factors Fe_Ka Pt_La --beam-kev 200 --solid-angle-sr 0.7 --format exspy
"""

from __future__ import annotations

import argparse
import json
import math

from chemtomo.physics import DETECTOR_EFFICIENCY, DETECTOR_PRESETS, Factors, compute_factors, paper_table2

FULL_SPHERE_SR = 4 * math.pi

_ROWS = (
    # key, label, format
    ("element", "element", "{}"),
    ("atomic_weight", "M (g/mol)", "{:.5g}"),
    ("beam_kev", "beam (keV)", "{:g}"),
    ("energy_kev", "line energy (keV)", "{:.4g}"),
    ("sigma_elastic_barn", "sigma_ela (barn)", "{:.4g}"),
    ("sigma_ionization_barn", "sigma_ion (barn)", "{:.4g}"),
    ("fluorescence_yield", "omega", "{:.4g}"),
    ("relative_intensity", "p", "{:.4g}"),
    ("detector_efficiency", "eps", "{:.4g}"),
    ("f_barn_mol_per_g", "f = sigma_ion omega p eps / M (b mol/g)", "{:.4g}"),
    ("z_barn_mol_per_g", "z = sigma_ela / M (b mol/g)", "{:.4g}"),
    ("solid_angle_sr", "Omega (sr)", "{:.4g}"),
    ("partial_cross_section_barn", "sigma_par = f (Omega/4pi) M (barn)", "{:.4g}"),
    ("response_ratio", "r = (D_H/D_E) z / ((Omega/4pi) f)", "{:.4g}"),
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``factors`` subcommand and its options to ``subparsers``.

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
        "factors",
        help="physical factors f_A, z_A, partial cross-sections for X-ray lines",
        description=(
            "Compute every ingredient of the quantification factors f_A (eq 7) and z_A (eq 14) "
            "of Yuan et al. 2020 from published models (Browning 1991, Bote et al. 2009, EADL), "
            "with the source of each."
        ),
        epilog=(
            "Line names: <Element>_<Line>, lines Ka Ka1 Ka2 Kb Kb2 La La1 La2 Lb1 Lb2 Lb3 Lb4 Lg1 "
            "Lg3 Ll Ln Ma Mb Mg Mz, or a whole vacancy (K, L1..L3, M1..M5). "
            f"Detector presets: {', '.join(DETECTOR_PRESETS)}."
        ),
    )
    p.add_argument("lines", nargs="+", metavar="LINE", help="X-ray lines, e.g. Co_Ka Zn_Ka")
    p.add_argument("--beam-kev", type=float, default=None,
                   help="incident electron energy (keV); required unless --preset")
    p.add_argument("--json", action="store_true", help="print a JSON object keyed by line name (= --format json)")
    p.add_argument("--format", choices=("table", "json", "exspy"), default=None,
                   help="table (default), json, or exspy: k-factors (CL), zeta factors (kg/m^2) and partial "
                        "cross-sections (barn) for exSpy's quantification (zeta and cross-sections need "
                        "--solid-angle-sr)")
    det = p.add_mutually_exclusive_group()
    det.add_argument("--efficiency", type=float, default=None, metavar="EPS",
                     help=f"flat detector efficiency in (0, 1] (default {DETECTOR_EFFICIENCY}, "
                          "the paper's implied value)")
    det.add_argument("--detector", choices=sorted(DETECTOR_PRESETS), default=None,
                     help="physical detector model (window, contact, dead layer, Si crystal)")
    p.add_argument("--elastic", choices=("auto", "browning1991", "screened-rutherford",
                                         "screened-rutherford-mott"), default=None,
                   help="elastic model: auto (default: Browning 1991 total up to 100 keV, the "
                        "Mott-corrected screened-Rutherford total above), browning1991, "
                        "screened-rutherford-mott, or screened Rutherford (default when "
                        "--haadf-mrad is given)")
    p.add_argument("--haadf-mrad", type=float, nargs=2, metavar=("INNER", "OUTER"), default=None,
                   help="restrict the elastic cross-section to a HAADF detector's angles (mrad), "
                        "e.g. 94 611 as in the paper (screened Rutherford)")
    p.add_argument("--coster-kronig", action="store_true",
                   help="add Coster-Kronig transfer to L and M ionization (default: direct, as Table 2)")
    p.add_argument("--solid-angle-sr", type=float, default=None,
                   help="EDS solid angle (sr) for sigma_par and r (default: 4 pi, the full sphere)")
    p.add_argument("--dose-ratio", type=float, default=1.0,
                   help="HAADF to EDS electron dose ratio D_H/D_E for the response ratio r (default 1)")
    p.add_argument("--preset", choices=("paper-table2",), default=None,
                   help="print the paper's Table 2 values instead of computing them")
    return p


def _factors(args) -> tuple[Factors, float]:
    efficiency = DETECTOR_EFFICIENCY if args.efficiency is None else args.efficiency
    solid_angle = FULL_SPHERE_SR if args.solid_angle_sr is None else args.solid_angle_sr
    if args.preset == "paper-table2":
        if args.detector is not None or args.haadf_mrad is not None or args.elastic or args.coster_kronig:
            raise ValueError("--preset paper-table2 takes only --efficiency and --solid-angle-sr")
        fac = paper_table2(args.lines, detector_efficiency=efficiency)
        if args.beam_kev is not None:
            for lf in fac.values():
                if lf.beam_kev != args.beam_kev:
                    raise ValueError(
                        f"{lf.line} is given at {lf.beam_kev:g} keV in Table 2, not {args.beam_kev:g} keV; "
                        "drop --beam-kev with --preset paper-table2"
                    )
        return fac, solid_angle
    if args.beam_kev is None:
        raise ValueError("--beam-kev is required (the incident electron energy in keV)")
    elastic = args.elastic or ("screened-rutherford" if args.haadf_mrad else "auto")
    fac = compute_factors(
        args.lines,
        beam_kev=args.beam_kev,
        detector=args.detector if args.detector is not None else efficiency,
        elastic=elastic.replace("-", "_"),
        haadf_mrad=tuple(args.haadf_mrad) if args.haadf_mrad else None,
        coster_kronig=args.coster_kronig,
        solid_angle_sr=args.solid_angle_sr,
    )
    return fac, solid_angle


def _records(fac: Factors, solid_angle_sr: float, dose_ratio: float) -> dict:
    if not (math.isfinite(dose_ratio) and dose_ratio > 0):
        raise ValueError(f"--dose-ratio must be > 0, got {dose_ratio}")
    out = {}
    for name, lf in fac.items():
        omega = lf.solid_angle_sr if lf.solid_angle_sr is not None else solid_angle_sr
        d = lf.as_dict(omega)
        d["haadf_to_eds_dose_ratio"] = dose_ratio
        d["response_ratio"] = float(fac.response_ratios(
            haadf_dose=dose_ratio, eds_dose=1.0, solid_angle_sr=omega, lines=[name])[0])
        sources = dict(d["sources"])
        if lf.solid_angle_sr is None:
            sources["solid_angle"] = (
                f"{omega:g} sr (--solid-angle-sr)" if omega != FULL_SPHERE_SR
                else "4 pi sr: full sphere (no solid angle given)"
            )
        sources["response_ratio"] = "eq 16 of Yuan et al. 2020 with the factors above"
        d["sources"] = sources
        out[name] = d
    return out


def _table(records: dict) -> str:
    names = list(records)
    label_w = max(len(label) for _, label, _ in _ROWS)
    cells = {
        key: [fmt.format(records[n][key]) if records[n].get(key) is not None else "-" for n in names]
        for key, _, fmt in _ROWS
    }
    col_w = [max(len(n), *(len(cells[k][i]) for k, _, _ in _ROWS)) for i, n in enumerate(names)]
    lines = ["  ".join([" " * label_w] + [n.rjust(w) for n, w in zip(names, col_w, strict=True)])]
    for key, label, _ in _ROWS:
        lines.append("  ".join([label.ljust(label_w)] + [c.rjust(w) for c, w in zip(cells[key], col_w, strict=True)]))
    lines.append("")
    lines.append("sources:")
    keys = list(next(iter(records.values()))["sources"])
    for key in keys:
        values = [records[n]["sources"].get(key, "-") for n in names]
        if len(set(values)) == 1:
            lines.append(f"  {key}: {values[0]}")
        else:
            lines.append(f"  {key}:")
            lines.extend(f"    {n}: {v}" for n, v in zip(names, values, strict=True))
    return "\n".join(lines)


def run(args) -> int:
    """Run ``chemtomo factors``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code (0); the factors are printed as a table or JSON.
    """
    fmt = args.format or ("json" if args.json else "table")
    if args.json and fmt != "json":
        raise ValueError(f"--json and --format {fmt} disagree; give one")
    fac, solid_angle = _factors(args)
    if fmt == "exspy":
        from chemtomo.io.factors import exspy_factors

        print(json.dumps(exspy_factors(fac, args.solid_angle_sr), indent=2))
        return 0
    records = _records(fac, solid_angle, args.dose_ratio)
    if fmt == "json":
        print(json.dumps(records, indent=2))
    else:
        print(_table(records))
    return 0
