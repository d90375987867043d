"""Factor tables: a user's table (Table-2 style) from JSON or CSV, and the one resolution of a factor specification."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ..physics import AVOGADRO, DETECTOR_EFFICIENCY, Factors, LineFactors

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


EXSPY_METHODS = ("CL", "zeta", "cross_section")


def exspy_factors(factors: Factors, solid_angle_sr: float | None = None) -> dict:
    """The factors in the form exSpy's ``quantification(intensities, method, factors)`` takes.

    From the thin-film model ``I_A = D_e N_A (Omega/4 pi) f_A C_A rho t``:

    - ``CL`` (Cliff-Lorimer, weight fractions ``C_A ∝ k_A I_A``): ``k_A = f_1 / f_A``,
      relative to the first line (k = 1);
    - ``zeta`` (kg/m², ``rho t C_A = zeta_A I_A / D_e`` with the dose ``D_e`` in
      electrons): ``zeta_A = 1 / (N_A (Omega/4 pi) f_A)``, f_A converted from
      barn mol/g to m² mol/kg;
    - ``cross_section`` (barn, atoms ``N_A = I_A / (sigma_A D_e)`` with the dose
      per area): the partial cross-section ``sigma_A = f_A (Omega/4 pi) M_A``.

    The zeta factors and cross-sections are absolute and need the detector's
    solid angle; without one they are left out (``None``) and ``missing`` says
    which fact is needed. The lists follow the order of ``factors``: give exSpy
    the intensities in the same order (``s.get_lines_intensity(xray_lines=lines)``).

    Parameters
    ----------
    factors : Factors
    solid_angle_sr : float, optional
        EDS solid angle (sr); default: the lines' own (all equal), if known.

    Returns
    -------
    dict
        ``lines``, ``elements``, ``solid_angle_sr``, ``beam_kev``,
        ``factors`` (``method -> list or None``), ``units``, ``composition``
        (what each method returns), ``missing`` and ``usage``: JSON-ready.
    """
    lines = factors.lines
    f = factors.f()
    omegas = {factors[x].solid_angle_sr for x in lines}
    if solid_angle_sr is None and len(omegas) == 1:
        solid_angle_sr = next(iter(omegas))
    if solid_angle_sr is not None and not 0 < solid_angle_sr <= 4 * math.pi:
        raise ValueError(f"solid_angle_sr must be in (0, 4 pi] sr, got {solid_angle_sr!r}")
    out = {
        "format": "chemtomo factors for exSpy quantification",
        "lines": lines, "elements": factors.elements,
        "beam_kev": [factors[x].beam_kev for x in lines],
        "solid_angle_sr": solid_angle_sr,
        "factors": {"CL": (f[0] / f).tolist(), "zeta": None, "cross_section": None},
        "units": {"CL": "1 (relative to the first line)", "zeta": "kg/m^2", "cross_section": "barn"},
        "composition": {"CL": "weight", "zeta": "weight (and mass thickness in kg/m^2)",
                        "cross_section": "atomic (and atoms per pixel)"},
        "missing": None,
        "usage": "s.quantification(intensities, method=M, factors=doc['factors'][M]) with intensities in the "
                 "order of doc['lines']",
    }
    if solid_angle_sr is None:
        out["missing"] = ("zeta factors and cross-sections need the EDS solid angle (sr): give --solid-angle-sr "
                          "(Python: solid_angle_sr=)")
        return out
    frac = solid_angle_sr / (4 * math.pi)
    # f in barn mol/g = 1e-28 m^2 mol / 1e-3 kg = 1e-25 m^2 mol/kg
    out["factors"]["zeta"] = (1.0 / (AVOGADRO * frac * f * 1e-25)).tolist()
    out["factors"]["cross_section"] = (f * frac * factors.atomic_weights()).tolist()
    return out
