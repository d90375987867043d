"""Factor tables: a user's table (Table-2 style) from JSON or CSV, and the one resolution of a factor specification."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from ..physics import DETECTOR_EFFICIENCY, Factors, LineFactors

REQUIRED = ("element", "atomic_weight", "sigma_elastic_barn", "sigma_ionization_barn",
            "fluorescence_yield", "relative_intensity", "detector_efficiency")


def read_factor_table(path, beam_kev: float = float("nan")) -> Factors:
    """Read per-line factors from a JSON object keyed by line, or a CSV with a ``line`` column.

    Every line needs: ``element, atomic_weight (g/mol), sigma_elastic_barn, sigma_ionization_barn,
    fluorescence_yield, relative_intensity, detector_efficiency``; ``beam_kev`` and ``energy_kev``
    are optional. The output of ``chemtomo factors --json`` is such a table.

    Every error names the file: unreadable or malformed JSON/CSV, a missing
    column, a non-numeric, non-positive or non-finite value, a fraction
    (fluorescence yield, relative intensity, detector efficiency) beyond 1.

    Parameters
    ----------
    path : str or Path
        A ``.json`` or ``.csv`` table.
    beam_kev : float
        The beam energy (keV) of lines whose row gives none (default NaN: unknown).

    Returns
    -------
    Factors
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no factor table at {path}")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON factor table ({exc}); the output of "
                             "'chemtomo factors --json' is one") from None
        if not isinstance(rows, dict):
            raise ValueError(f"{path}: a JSON factor table is an object keyed by line name")
    elif path.suffix.lower() == ".csv":
        try:
            with open(path, newline="") as fh:
                rows = {r["line"]: r for r in csv.DictReader(fh)}
        except KeyError:
            raise ValueError(f"{path}: a CSV factor table needs a 'line' column (and {list(REQUIRED)})") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a readable CSV factor table ({exc})") from None
    else:
        raise ValueError(f"{path}: factor tables are .json or .csv, got {path.suffix!r}")
    out = []
    for line, r in rows.items():
        if not isinstance(r, dict):
            raise ValueError(f"{path}: line {line!r} is {r!r}, not an object of factors {list(REQUIRED)}")
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValueError(f"{path}: line {line!r} lacks {missing}; every line needs {list(REQUIRED)}")
        try:
            vals = {k: float(r[k]) for k in REQUIRED if k != "element"}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: line {line!r} has a non-numeric value ({exc})") from None
        bad = [k for k, v in vals.items() if not v > 0]
        if bad:
            raise ValueError(f"{path}: line {line!r}: {bad} must be positive, got "
                             f"{ {k: r[k] for k in bad} }")
        try:
            out.append(LineFactors(
                line=line, element=str(r["element"]), beam_kev=float(r.get("beam_kev", beam_kev)),
                energy_kev=float(r.get("energy_kev", "nan")), sources={"all": f"user table {path.name}"}, **vals,
            ))
        except (TypeError, ValueError) as exc:  # a fraction beyond 1, a non-numeric beam energy ...
            raise ValueError(f"{path}: {exc}") from None
    if not out:
        raise ValueError(f"{path}: the factor table holds no line")
    return Factors(out)


def resolve_factors(factors, lines: Sequence[str], beam_kev: float | None,
                    efficiency: float = DETECTOR_EFFICIENCY) -> Factors:
    """The factors of ``lines`` from ``"physics"``, ``"paper"``, a table file, or a :class:`Factors`.

    The one resolution of a factor specification, for the raw and the stack
    routes of ``chemtomo reconstruct`` alike: a table (a file or a
    :class:`Factors`) must hold every line, and only ``lines`` are kept, in
    their order.

    Parameters
    ----------
    factors : {"physics", "paper"}, path, Factors or None
        ``"physics"`` (or None): computed at ``beam_kev``
        (:func:`chemtomo.physics.compute_factors`); ``"paper"``: the paper's
        Table 2 (:func:`chemtomo.physics.paper_table2`); a path: a JSON/CSV
        table (:func:`read_factor_table`); a :class:`Factors`: used as given.
    lines : sequence of str
        The X-ray lines to reconstruct.
    beam_kev : float or None
        Beam energy (keV), needed by ``"physics"``.
    efficiency : float
        Flat detector efficiency (0..1) for ``"physics"`` and ``"paper"``
        (default :data:`chemtomo.physics.DETECTOR_EFFICIENCY`, 0.96).

    Returns
    -------
    Factors
        One entry per line of ``lines``.

    Raises
    ------
    KeyError
        A table without some of ``lines`` (the message lists what it holds).
    ValueError
        ``"physics"`` without a beam energy; a malformed table.
    FileNotFoundError
        No table at the path.
    """
    if isinstance(factors, Factors):
        missing = [ln for ln in lines if ln not in factors]
        if missing:
            raise KeyError(f"the factor table has no line(s) {missing}; it holds {list(factors)}")
        return factors.subset(lines)
    if factors in (None, "physics"):
        from ..physics import compute_factors

        if beam_kev is None:
            raise ValueError("the beam energy is not in the files' metadata: give beam_kev (CLI --beam-kev)")
        return compute_factors(list(lines), beam_kev=float(beam_kev), detector=efficiency)
    if factors == "paper":
        from ..physics import paper_table2

        return paper_table2(list(lines), detector_efficiency=efficiency)
    table = read_factor_table(factors)
    missing = [ln for ln in lines if ln not in table]
    if missing:
        raise KeyError(f"the factor table {factors} has no line(s) {missing}; it holds {list(table)}")
    return table.subset(lines)
