"""Physics: per-line factors f_A, z_A from published models. A leaf: knows nothing of images.

Entry point: :func:`compute_factors`. Models and data sources (see docs/physics.md):

- elastic scattering: Browning (1991) fit of Mott total cross-sections up to
  100 keV, a Mott-corrected relativistic screened Rutherford total above (fitted
  to ELSEPA / NIST SRD 64), or a screened-Rutherford cross-section restricted to
  a HAADF detector's angles;
- inner-shell ionization: Bote et al. (2009), K, L1-L3, M1-M5, Z 1-99;
- fluorescence yields and line fractions: EADL (Perkins et al. 1991);
- atomic weights: NIST; line energies and mass attenuation: xraylib;
- detector efficiency: flat value or a window/contact/dead-layer/crystal model.

The paper's Table 2 stays available as :func:`paper_table2` for exact reproduction.
"""

from .absorption import DetectorGeometry, linear_attenuation_per_nm, mass_attenuation_cm2_g  # noqa: F401
from .compute import ELASTIC_MODELS, PAPER_HAADF_MRAD, compute_factors
from .detector import DETECTOR_EFFICIENCY, DETECTOR_PRESETS, DetectorModel, FlatEfficiency, Layer, resolve_detector
from .elastic import browning1991_barn, screened_rutherford_barn, screened_rutherford_mott_barn
from .elements import atomic_number, atomic_weight
from .factors import AVOGADRO, BARN_CM2, Factors, LineFactors
from .ionization import bote2009_barn, ionization_energy_kev, vacancy_cross_section_barn
from .presets import TABLE2, paper_table2
from .transitions import LINES, LineInfo, line_info

__all__ = [
    "AVOGADRO",
    "BARN_CM2",
    "DETECTOR_EFFICIENCY",
    "DETECTOR_PRESETS",
    "DetectorModel",
    "ELASTIC_MODELS",
    "Factors",
    "FlatEfficiency",
    "LINES",
    "Layer",
    "LineFactors",
    "LineInfo",
    "PAPER_HAADF_MRAD",
    "TABLE2",
    "atomic_number",
    "atomic_weight",
    "bote2009_barn",
    "browning1991_barn",
    "compute_factors",
    "ionization_energy_kev",
    "line_info",
    "paper_table2",
    "resolve_detector",
    "screened_rutherford_barn",
    "screened_rutherford_mott_barn",
    "vacancy_cross_section_barn",
]
