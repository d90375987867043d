"""X-ray lines: groups of radiative transitions that fill one vacancy (EADL).

A *line* here is a named group of radiative transitions that all fill a vacancy
in the same subshell (the line's *vacancy*); each transition is named by the
subshell the electron comes from (its *donor*). For a line of element A:

- fluorescence yield omega = sum of the EADL radiative transition
  probabilities of the vacancy (each probability is per vacancy, radiative and
  non-radiative together summing to 1);
- relative intensity p = (sum over the line's transitions) / omega.

The transition probabilities are those of the LLNL Evaluated Atomic Data
Library (EADL; Perkins et al. 1991), read through pyxray
(``reference="perkins1991"``). Line energies are xraylib's (``LineEnergy``),
averaged over the group with the EADL probabilities as weights.

Line groups (Siegbahn name: vacancy <- donors, IUPAC):

==========  =======  ===================  ====================================
line        vacancy  donors               Siegbahn lines in the group
==========  =======  ===================  ====================================
Ka          K        L2, L3               Ka1 + Ka2
Ka1         K        L3                   Ka1
Ka2         K        L2                   Ka2
Kb          K        M2, M3, M4, M5       Kb1 + Kb3 + Kb5
Kb2         K        N2, N3, N4, N5       Kb2 + Kb4
La          L3       M4, M5               La1 + La2
La1         L3       M5                   La1
La2         L3       M4                   La2
Lb2         L3       N4, N5               Lb2 + Lb15
Ll          L3       M1                   Ll
Lb1         L2       M4                   Lb1
Lg1         L2       N4                   Lg1
Ln          L2       M1                   Ln
Lb3         L1       M3                   Lb3
Lb4         L1       M2                   Lb4
Lg3         L1       N3                   Lg3
Ma          M5       N6, N7               Ma1 + Ma2
Mz          M5       N3                   Mz1 (Mz2, M4-N2, is not included)
Mb          M4       N6                   Mb
Mg          M3       N5                   Mg
K, L1..M5   itself   every donor          all radiative decays of the vacancy
==========  =======  ===================  ====================================

The last row names whole-vacancy "lines" (``Au_M5``): p = 1 by definition. It
is the convention the paper's Table 2 appears to use for Au Ma (p = 0.999),
whereas the Ma group above gives p = 0.932 for Au (EADL); see docs/physics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

import pyxray

from .elements import SYMBOLS, atomic_number

__all__ = [
    "LINES",
    "LineDefinition",
    "LineInfo",
    "emission_probabilities",
    "fluorescence_yield",
    "line_info",
    "parse_line",
]

EADL_SOURCE = "EADL, Perkins et al. 1991 (UCRL-50400 vol. 30), via pyxray 'perkins1991'"
ENERGY_SOURCE = "xraylib LineEnergy"

_SUBSHELL_ORDER = (
    "K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5",
    "N1", "N2", "N3", "N4", "N5", "N6", "N7",
    "O1", "O2", "O3", "O4", "O5", "O6", "O7", "O8", "O9",
    "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "Q1", "Q2", "Q3",
)
VACANCIES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


@dataclass(frozen=True)
class LineDefinition:
    """A named group of transitions filling one vacancy.

    Attributes
    ----------
    name : str
        Siegbahn-style name used in line names (``Ka`` in ``Co_Ka``).
    vacancy : str
        IUPAC subshell of the vacancy the group fills.
    donors : tuple of str or None
        IUPAC subshells the electrons come from; None means every donor (the
        whole-vacancy line).
    description : str
        Siegbahn lines in the group.
    """

    name: str
    vacancy: str
    donors: tuple[str, ...] | None
    description: str


_DEFS = (
    LineDefinition("Ka", "K", ("L2", "L3"), "Ka1 + Ka2 (K-L3 + K-L2)"),
    LineDefinition("Ka1", "K", ("L3",), "Ka1 (K-L3)"),
    LineDefinition("Ka2", "K", ("L2",), "Ka2 (K-L2)"),
    LineDefinition("Kb", "K", ("M2", "M3", "M4", "M5"), "Kb1 + Kb3 + Kb5 (K-M3, K-M2, K-M4,5)"),
    LineDefinition("Kb2", "K", ("N2", "N3", "N4", "N5"), "Kb2 + Kb4 (K-N2,3, K-N4,5)"),
    LineDefinition("La", "L3", ("M4", "M5"), "La1 + La2 (L3-M5 + L3-M4)"),
    LineDefinition("La1", "L3", ("M5",), "La1 (L3-M5)"),
    LineDefinition("La2", "L3", ("M4",), "La2 (L3-M4)"),
    LineDefinition("Lb2", "L3", ("N4", "N5"), "Lb2 + Lb15 (L3-N5 + L3-N4)"),
    LineDefinition("Ll", "L3", ("M1",), "Ll (L3-M1)"),
    LineDefinition("Lb1", "L2", ("M4",), "Lb1 (L2-M4)"),
    LineDefinition("Lg1", "L2", ("N4",), "Lg1 (L2-N4)"),
    LineDefinition("Ln", "L2", ("M1",), "Ln (L2-M1)"),
    LineDefinition("Lb3", "L1", ("M3",), "Lb3 (L1-M3)"),
    LineDefinition("Lb4", "L1", ("M2",), "Lb4 (L1-M2)"),
    LineDefinition("Lg3", "L1", ("N3",), "Lg3 (L1-N3)"),
    LineDefinition("Ma", "M5", ("N6", "N7"), "Ma1 + Ma2 (M5-N7 + M5-N6)"),
    LineDefinition("Mz", "M5", ("N3",), "Mz1 (M5-N3)"),
    LineDefinition("Mb", "M4", ("N6",), "Mb (M4-N6)"),
    LineDefinition("Mg", "M3", ("N5",), "Mg (M3-N5)"),
) + tuple(
    LineDefinition(v, v, None, f"all radiative decays of a {v} vacancy") for v in VACANCIES
)

#: Every line group the package knows, by name.
LINES: dict[str, LineDefinition] = {d.name: d for d in _DEFS}


def parse_line(line: str) -> tuple[str, LineDefinition]:
    """Split ``"Co_Ka"`` into the element symbol and the line definition.

    Raises
    ------
    ValueError
        If ``line`` is not ``<Element>_<Line>`` or the element is unknown.
    KeyError
        If the line name is not one of :data:`LINES`.
    """
    if not isinstance(line, str) or line.count("_") != 1:
        raise ValueError(
            f"line {line!r} is not of the form <Element>_<Line>, e.g. 'Co_Ka', 'Ag_La', 'Au_Ma'"
        )
    element, name = line.split("_")
    z = atomic_number(element)
    if name not in LINES:
        raise KeyError(
            f"unknown line {name!r} in {line!r}; known lines: {', '.join(LINES)}"
        )
    return SYMBOLS[z], LINES[name]


@cache
def emission_probabilities(element: str | int) -> Mapping[tuple[str, str], float]:
    """EADL radiative transition probabilities of ``element``.

    Returns
    -------
    Mapping
        ``(vacancy, donor) -> probability per vacancy`` (IUPAC subshells), read-only.
    """
    z = atomic_number(element)
    out: dict[tuple[str, str], float] = {}
    try:
        transitions = pyxray.element_xray_transitions(z, reference="perkins1991")
    except pyxray.NotFound:
        return MappingProxyType(out)
    for tr in transitions:
        try:
            p = pyxray.xray_transition_probability(z, tr, reference="perkins1991")
        except pyxray.NotFound:
            continue
        vacancy = pyxray.atomic_subshell_notation(tr.destination_subshell, "iupac")
        donor = pyxray.atomic_subshell_notation(tr.source_subshell, "iupac")
        if p > 0:
            out[(vacancy, donor)] = float(p)
    return MappingProxyType(out)


def fluorescence_yield(element: str | int, vacancy: str) -> float:
    """Fluorescence yield of a ``vacancy`` of ``element``: EADL radiative sum."""
    if vacancy not in VACANCIES:
        raise ValueError(f"unknown vacancy {vacancy!r}; expected one of {', '.join(VACANCIES)}")
    return sum(p for (v, _), p in emission_probabilities(element).items() if v == vacancy)


@dataclass(frozen=True)
class LineInfo:
    """Everything the package knows about one X-ray line of one element.

    Attributes
    ----------
    line : str
        ``<Element>_<Line>``.
    element : str
    z : int
    definition : LineDefinition
    transitions : dict
        ``"K-L3" -> EADL probability per vacancy`` for the transitions in the group.
    fluorescence_yield : float
        Radiative fraction of the vacancy's decays (EADL).
    relative_intensity : float
        The group's share of the vacancy's radiative decays.
    energy_kev : float
        Probability-weighted mean line energy (keV).
    sources : dict
    """

    line: str
    element: str
    z: int
    definition: LineDefinition
    transitions: Mapping[str, float]
    fluorescence_yield: float
    relative_intensity: float
    energy_kev: float
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def vacancy(self) -> str:
        """The subshell whose vacancy the line's transitions fill (``"K"``, ``"L3"``, ...)."""
        return self.definition.vacancy


def _available_lines(z: int) -> list[str]:
    probs = emission_probabilities(z)
    out = []
    for d in LINES.values():
        if any(v == d.vacancy and (d.donors is None or s in d.donors) for v, s in probs):
            out.append(d.name)
    return out


def _energy_kev(z: int, vacancy: str, donor: str) -> float:
    import xraylib

    macro = getattr(xraylib, f"{vacancy}{donor}_LINE", None)
    if macro is not None:
        try:
            return float(xraylib.LineEnergy(z, macro))
        except ValueError:
            pass
    return float("nan")


@cache
def line_info(line: str) -> LineInfo:
    """Fluorescence yield, relative intensity and energy of ``line`` (EADL).

    Parameters
    ----------
    line : str
        ``<Element>_<Line>``, e.g. ``"Co_Ka"``; the line names are those of
        :data:`LINES` (see the module docstring for each group).

    Returns
    -------
    LineInfo

    Raises
    ------
    ValueError
        Malformed name, unknown element, or a line the element does not have
        (no radiative transition of the group in EADL).
    KeyError
        Unknown line name.

    Examples
    --------
    >>> info = line_info("Co_Ka")
    >>> round(info.fluorescence_yield, 3), round(info.relative_intensity, 3)
    (0.369, 0.891)
    """
    element, d = parse_line(line)
    z = atomic_number(element)
    probs = emission_probabilities(z)
    vacancy_probs = {s: p for (v, s), p in probs.items() if v == d.vacancy}
    group = {s: p for s, p in vacancy_probs.items() if d.donors is None or s in d.donors}
    if not group:
        available = _available_lines(z)
        raise ValueError(
            f"{element} has no {d.name} line ({d.description}): EADL lists no such radiative "
            f"transition for Z={z}; lines {element} has: {', '.join(available) or 'none'}"
        )
    omega = sum(vacancy_probs.values())
    in_group = sum(group.values())
    order = {s: i for i, s in enumerate(_SUBSHELL_ORDER)}
    donors = sorted(group, key=lambda s: order.get(s, 99))
    energies = {s: _energy_kev(z, d.vacancy, s) for s in donors}
    known = {s: e for s, e in energies.items() if e == e}
    if known:
        weight = sum(group[s] for s in known)
        energy = sum(group[s] * e for s, e in known.items()) / weight
        energy_source = f"{ENERGY_SOURCE}, EADL-weighted mean of {', '.join(f'{d.vacancy}-{s}' for s in known)}"
    else:
        energy = float(pyxray.xray_transition_energy_eV(z, pyxray.xray_transition(
            pyxray.atomic_subshell(donors[0]), pyxray.atomic_subshell(d.vacancy)),
            reference="perkins1991")) / 1000.0
        energy_source = "EADL (Perkins et al. 1991, via pyxray) transition energy"
    group_text = " + ".join(f"{d.vacancy}-{s}" for s in donors)
    return LineInfo(
        line=f"{element}_{d.name}",
        element=element,
        z=z,
        definition=d,
        transitions=MappingProxyType({f"{d.vacancy}-{s}": group[s] for s in donors}),
        fluorescence_yield=omega,
        relative_intensity=in_group / omega,
        energy_kev=energy,
        sources=MappingProxyType({
            "fluorescence_yield": f"{EADL_SOURCE}: sum of the {d.vacancy} vacancy's radiative "
                                  "transition probabilities",
            "relative_intensity": f"{EADL_SOURCE}: ({group_text}) / all {d.vacancy} radiative",
            "energy": energy_source,
        }),
    )
