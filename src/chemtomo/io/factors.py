"""A user's factor table (Table-2 style) from JSON or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..physics import Factors, LineFactors

REQUIRED = ("element", "atomic_weight", "sigma_elastic_barn", "sigma_ionization_barn",
            "fluorescence_yield", "relative_intensity", "detector_efficiency")


def read_factor_table(path, beam_kev: float = float("nan")) -> Factors:
    """Read per-line factors from a JSON object keyed by line, or a CSV with a ``line`` column.

    Every line needs: ``element, atomic_weight (g/mol), sigma_elastic_barn, sigma_ionization_barn,
    fluorescence_yield, relative_intensity, detector_efficiency``; ``beam_kev`` and ``energy_kev``
    are optional. The output of ``chemtomo factors --json`` is such a table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no factor table at {path}")
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, dict):
            raise ValueError(f"{path}: a JSON factor table is an object keyed by line name")
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = {r["line"]: r for r in csv.DictReader(fh)}
    else:
        raise ValueError(f"{path}: factor tables are .json or .csv, got {path.suffix!r}")
    out = []
    for line, r in rows.items():
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValueError(f"{path}: line {line!r} lacks {missing}; every line needs {list(REQUIRED)}")
        try:
            vals = {k: float(r[k]) for k in REQUIRED if k != "element"}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: line {line!r} has a non-numeric value ({exc})") from None
        bad = [k for k, v in vals.items() if not v > 0]
        if bad:
            raise ValueError(f"{path}: line {line!r}: {bad} must be positive")
        out.append(LineFactors(
            line=line, element=str(r["element"]), beam_kev=float(r.get("beam_kev", beam_kev)),
            energy_kev=float(r.get("energy_kev", "nan")), sources={"all": f"user table {path.name}"}, **vals,
        ))
    return Factors(out)
