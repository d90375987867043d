"""Elements: symbols, atomic numbers and atomic weights.

Atomic weights are the NIST "Atomic Weights and Isotopic Compositions" values
(Coursey et al. 2015) as packaged by pyxray; elements without a standard atomic
weight (Tc, Pm, Po-Ac, Np-Es) fall back to EADL's value (Perkins et al. 1991),
the mass number of a long-lived isotope, and say so in their source.
"""

from __future__ import annotations

from functools import cache

import pyxray

__all__ = ["MAX_Z", "SYMBOLS", "atomic_number", "atomic_weight", "symbol"]

#: Highest atomic number the package supports (Bote et al. 2009 stop at einsteinium).
MAX_Z = 99

# Chemical symbols, index = Z (index 0 unused). Written out so that parsing a
# user's symbol never depends on a database lookup.
SYMBOLS = (
    "",
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr",
    "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb",
    "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es",
)
_Z_OF = {s: z for z, s in enumerate(SYMBOLS) if s}

WEIGHT_SOURCE = "NIST atomic weights (Coursey et al. 2015, via pyxray)"
WEIGHT_FALLBACK_SOURCE = (
    "EADL (Perkins et al. 1991, via pyxray): mass number of a long-lived isotope; "
    "the element has no standard atomic weight"
)


def atomic_number(element: str | int) -> int:
    """Atomic number of ``element`` (symbol, case as written: ``"Co"``; or Z).

    Raises
    ------
    ValueError
        If the symbol is unknown or Z is outside 1-99.
    """
    if isinstance(element, bool):
        raise ValueError(f"element must be a chemical symbol or an atomic number, got {element!r}")
    if isinstance(element, int):
        if not 1 <= element <= MAX_Z:
            raise ValueError(f"atomic number {element} is outside the supported range 1-{MAX_Z}")
        return element
    if not isinstance(element, str):
        raise ValueError(f"element must be a chemical symbol or an atomic number, got {element!r}")
    try:
        return _Z_OF[element]
    except KeyError:
        hint = ""
        if element.capitalize() in _Z_OF:
            hint = f" (did you mean {element.capitalize()!r}?)"
        raise ValueError(
            f"unknown element {element!r}{hint}; expected a chemical symbol of Z 1-{MAX_Z} "
            "such as 'Co' or 'Au'"
        ) from None


def symbol(element: str | int) -> str:
    """Chemical symbol of ``element`` (symbol or Z)."""
    return SYMBOLS[atomic_number(element)]


@cache
def _weight(z: int) -> tuple[float, str]:
    try:
        return float(pyxray.element_atomic_weight(z, reference="coursey2015")), WEIGHT_SOURCE
    except pyxray.NotFound:
        return float(pyxray.element_atomic_weight(z, reference="perkins1991")), WEIGHT_FALLBACK_SOURCE


def atomic_weight(element: str | int) -> float:
    """Atomic weight (g/mol) of ``element``; see :func:`atomic_weight_source`."""
    return _weight(atomic_number(element))[0]


def atomic_weight_source(element: str | int) -> str:
    """Where :func:`atomic_weight` takes the value for ``element`` from."""
    return _weight(atomic_number(element))[1]
