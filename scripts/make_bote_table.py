#!/usr/bin/env python
"""Generate chemtomo's Bote-Salvat ionization table from the NIST EPQ data files.

Reads the three files of the NIST EPQ library (DTSA-II) that carry the fitted
parameters of Bote et al. (2009)::

    SalvatXionA.csv   Z, then a1..a5 per subshell      (low-energy fit, U <= 16)
    SalvatXionB.csv   Z, then B, A_nlj, g1..g4 per subshell  (high-energy fit, U > 16)
    xionUis.csv       Z, then U_i (eV) per subshell    (Bote's ionization energies)

(subshells in the order K, L1, L2, L3, M1, M2, M3, M4, M5, as many as the element
has) and writes one long table, one row per (Z, subshell), to
``src/chemtomo/physics/data/bote2009_ionization.csv``. Numbers are copied as
text, unchanged. The NIST notice and the citation go in the file header and in
``NOTICE-bote2009.txt`` beside it.

Usage::

    python scripts/make_bote_table.py [--source ../shared/data/bote2009] [--check]

``--check`` regenerates in memory and exits 1 if the committed table differs.

Reference
---------
D. Bote, F. Salvat, A. Jablonski, C. J. Powell, "Cross sections for ionization of
K, L and M shells of atoms by impact of electrons and positrons with energies up
to 1 GeV: Analytical formulas", At. Data Nucl. Data Tables 95 (2009) 871-909.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "bote2009"
OUT_DIR = REPO / "src" / "chemtomo" / "physics" / "data"
OUT_TABLE = OUT_DIR / "bote2009_ionization.csv"
OUT_NOTICE = OUT_DIR / "NOTICE-bote2009.txt"

SUBSHELLS = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
COLUMNS = (
    "Z", "subshell", "ionization_energy_eV",
    "a1", "a2", "a3", "a4", "a5",
    "B", "A_nlj", "g1", "g2", "g3", "g4",
)

CITATION = (
    "D. Bote, F. Salvat, A. Jablonski, C. J. Powell, Cross sections for ionization of "
    "K, L and M shells of atoms by impact of electrons and positrons with energies up "
    "to 1 GeV: Analytical formulas, Atomic Data and Nuclear Data Tables 95 (2009) 871-909, "
    "doi:10.1016/j.adt.2009.08.001"
)
NIST_NOTICE = (
    "This software was developed by employees of the National Institute of Standards and "
    "Technology (NIST), an agency of the Federal Government. Pursuant to title 17 United "
    "States Code Section 105, works of NIST employees are not subject to copyright "
    "protection in the United States and are considered to be in the public domain. "
    "Permission to freely use, copy, modify, and distribute this software and its "
    "documentation without fee is hereby granted, provided that this notice and "
    "disclaimer of warranty appears in all copies. THE SOFTWARE IS PROVIDED 'AS IS' "
    "WITHOUT ANY WARRANTY OF ANY KIND."
)
PROVENANCE = (
    "Parameters taken unchanged from the public-domain NIST EPQ library (DTSA-II), files "
    "SalvatXion/SalvatXionA.csv, SalvatXionB.csv and xionUis.csv; rearranged to one row "
    "per (Z, subshell) by chemtomo's scripts/make_bote_table.py."
)


def _read_rows(path: Path) -> dict[int, list[str]]:
    rows: dict[int, list[str]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        z = int(fields[0])
        if z in rows:
            raise ValueError(f"{path.name}:{lineno}: Z={z} appears twice")
        rows[z] = fields[1:]
    return rows


def build_table(source: Path) -> str:
    """Return the text of the package's table, built from the three EPQ files."""
    a_rows = _read_rows(source / "SalvatXionA.csv")
    b_rows = _read_rows(source / "SalvatXionB.csv")
    u_rows = _read_rows(source / "xionUis.csv")
    if not (a_rows.keys() == b_rows.keys() == u_rows.keys()):
        raise ValueError("the three files do not list the same elements")
    lines = [
        "# Bote-Salvat analytical inner-shell ionization cross-sections (electron impact): fitted parameters",
        f"# Reference: {CITATION}",
        f"# Source: {PROVENANCE}",
        f"# NIST notice: {NIST_NOTICE}",
        "# Columns: Z; subshell; ionization_energy_eV = Bote's U_i (eV); a1..a5 = low-energy fit "
        "(overvoltage U <= 16); B, A_nlj, g1..g4 = high-energy fit (U > 16). Formulas: "
        "chemtomo.physics.ionization.",
        ",".join(COLUMNS),
    ]
    for z in sorted(a_rows):
        a, b, u = a_rows[z], b_rows[z], u_rows[z]
        n = len(u)
        if len(a) != 5 * n or len(b) != 6 * n or n > len(SUBSHELLS):
            raise ValueError(f"Z={z}: inconsistent field counts ({len(a)}, {len(b)}, {len(u)})")
        for i in range(n):
            row = [str(z), SUBSHELLS[i], u[i], *a[5 * i:5 * i + 5], *b[6 * i:6 * i + 6]]
            lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def build_notice() -> str:
    """The NOTICE text kept beside the table: reference, provenance and the NIST EPQ notice."""
    return (
        "Bote-Salvat ionization parameters (bote2009_ionization.csv)\n\n"
        f"Reference:\n  {CITATION}\n  (see also D. Bote and F. Salvat, Phys. Rev. A 77 (2008) 042701)\n\n"
        f"Provenance:\n  {PROVENANCE}\n\n"
        f"Notice of the NIST EPQ library, kept with every copy:\n  {NIST_NOTICE}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Write the Bote-Salvat table and its notice from the EPQ files (``--check``: compare only); the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help=f"folder with the three EPQ files (default {DEFAULT_SOURCE})")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the committed files differ")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"source folder {args.source} does not exist")
    table, notice = build_table(args.source), build_notice()
    if args.check:
        ok = OUT_TABLE.read_text() == table and OUT_NOTICE.read_text() == notice
        print("up to date" if ok else "differs: rerun scripts/make_bote_table.py")
        return 0 if ok else 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in ((OUT_TABLE, table), (OUT_NOTICE, notice)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
