"""Named factor presets: the paper's Table 2 for exact reproduction.

Yuan et al., Ultramicroscopy 2020, Table 2 (values extracted from MC X-ray).
The table gives no detector efficiency or atomic weight; the efficiency is a
parameter here (the paper's f_Co and f_Zn imply a flat 0.96, see
PHYSICS-NOTES), atomic weights are IUPAC standard values.
"""

from __future__ import annotations

from collections.abc import Iterable

from .detector import DETECTOR_EFFICIENCY
from .factors import Factors, LineFactors

# line: (element, beam_kev, sigma_ela (barn), sigma_ion (barn), omega, p, M (g/mol), E (keV))
TABLE2 = {
    "Ag_La": ("Ag", 100.0, 9.90e6, 2.44e3, 0.057, 0.816, 107.8682, 2.984),
    "Au_Ma": ("Au", 100.0, 1.98e7, 7.46e3, 0.030, 0.999, 196.966570, 2.123),
    "Co_Ka": ("Co", 80.0, 5.59e6, 420.0, 0.369, 0.891, 58.933194, 6.930),
    "Zn_Ka": ("Zn", 80.0, 6.51e6, 302.0, 0.466, 0.890, 65.38, 8.637),
}

_SOURCE = "Yuan et al. 2020, Table 2 (MC X-ray)"


def paper_table2(lines: Iterable[str] = ("Ag_La", "Au_Ma"),
                 detector_efficiency: float = DETECTOR_EFFICIENCY) -> Factors:
    """The paper's Table 2 as :class:`Factors`.

    Parameters
    ----------
    lines : iterable of str
        Any of ``Ag_La``, ``Au_Ma``, ``Co_Ka``, ``Zn_Ka``.
    detector_efficiency : float
        Flat detector efficiency applied to every line (the table gives none).
    """
    if not 0 < detector_efficiency <= 1:
        raise ValueError(f"detector_efficiency must be in (0, 1], got {detector_efficiency}")
    out = []
    for line in lines:
        if line not in TABLE2:
            raise KeyError(
                f"line {line!r} is not in the paper's Table 2 (has {sorted(TABLE2)}); "
                "use chemtomo.physics.compute_factors for other lines"
            )
        el, e0, sela, sion, w, p, m, energy = TABLE2[line]
        out.append(LineFactors(
            line=line, element=el, atomic_weight=m, sigma_elastic_barn=sela,
            sigma_ionization_barn=sion, fluorescence_yield=w, relative_intensity=p,
            detector_efficiency=detector_efficiency, beam_kev=e0, energy_kev=energy,
            sources={
                "sigma_elastic": _SOURCE, "sigma_ionization": _SOURCE,
                "fluorescence_yield": _SOURCE, "relative_intensity": _SOURCE,
                "detector_efficiency": "flat value (parameter)",
                "atomic_weight": "IUPAC standard atomic weight",
            },
        ))
    return Factors(out)
