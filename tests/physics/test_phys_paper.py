"""The paper's numbers, reproduced from first principles.

Reference: Y. Yuan et al., "Extraction of 3D quantitative maps using EDS-STEM
tomography and HAADF-EDS bimodal tomography", Ultramicroscopy (2020) 113166:
Table 2 (values the authors extracted from MC X-ray) and section 3.2.3
(z_Co = 9.49e4, z_Zn = 9.96e4, f_Co = 2.25, f_Zn = 1.84 b mol/g;
(f_Co M_Co)/(f_Zn M_Zn) = 1.10).

Tolerances: 1% for every Table 2 quantity (the issue's requirement; the
measured differences are <= 0.7%), 1% for z and f, +-0.01 for the ratio.
Au Ma's relative intensity is the documented exception (see
test_au_ma_relative_intensity_choice).
"""

import math

import pytest

from chemtomo.physics import TABLE2, compute_factors, paper_table2

TOL = 0.01


@pytest.fixture(scope="module")
def ours():
    agau = compute_factors(["Ag_La", "Au_Ma"], beam_kev=100.0, detector=0.96)
    cozn = compute_factors(["Co_Ka", "Zn_Ka"], beam_kev=80.0, detector=0.96)
    return {**dict(agau.items()), **dict(cozn.items())}


@pytest.mark.parametrize("line", ["Ag_La", "Au_Ma", "Co_Ka", "Zn_Ka"])
def test_table2_cross_sections_and_yields(ours, line):
    """Elastic, ionization cross-sections and fluorescence yields within 1% of Table 2."""
    _, beam, sela, sion, omega, _, _, _ = TABLE2[line]
    lf = ours[line]
    assert lf.beam_kev == beam
    assert lf.sigma_elastic_barn == pytest.approx(sela, rel=TOL)
    assert lf.sigma_ionization_barn == pytest.approx(sion, rel=TOL)
    assert lf.fluorescence_yield == pytest.approx(omega, rel=TOL)


@pytest.mark.parametrize("line", ["Ag_La", "Co_Ka", "Zn_Ka"])
def test_table2_relative_intensities(ours, line):
    """EADL line fractions match Table 2 within 1% for Ag La, Co Ka, Zn Ka."""
    assert ours[line].relative_intensity == pytest.approx(TABLE2[line][5], rel=TOL)


def test_au_ma_relative_intensity_choice(ours):
    """Au Ma: EADL's (M5-N6 + M5-N7)/all M5 radiative = 0.932; Table 2 says 0.999.

    chemtomo's default Ma is the EADL group (the Ma peak of a spectrum holds
    only M5-N6,7; Mz1 = M5-N3 at 1.66 keV and M5-O3 at 2.41 keV are separate
    peaks). Table 2's 0.999 is reproduced, within 0.1%, by the whole-vacancy
    line ``Au_M5`` (p = 1 by definition) and exactly by ``paper_table2``.
    """
    assert ours["Au_Ma"].relative_intensity == pytest.approx(0.932, abs=0.001)
    whole = compute_factors(["Au_M5"], beam_kev=100.0)["Au_M5"]
    assert whole.relative_intensity == 1.0
    assert whole.relative_intensity == pytest.approx(TABLE2["Au_Ma"][5], abs=0.0011)
    assert whole.sigma_ionization_barn == ours["Au_Ma"].sigma_ionization_barn
    assert paper_table2(["Au_Ma"])["Au_Ma"].relative_intensity == 0.999


def test_section_323_factors(ours):
    """z_Co, z_Zn, f_Co, f_Zn within 1% of section 3.2.3 with a flat efficiency of 0.96."""
    co, zn = ours["Co_Ka"], ours["Zn_Ka"]
    assert co.z_barn_mol_per_g == pytest.approx(9.49e4, rel=TOL)
    assert zn.z_barn_mol_per_g == pytest.approx(9.96e4, rel=TOL)
    assert co.f_barn_mol_per_g == pytest.approx(2.25, rel=TOL)
    assert zn.f_barn_mol_per_g == pytest.approx(1.84, rel=TOL)


def test_partial_cross_section_ratio(ours):
    """(f_Co M_Co)/(f_Zn M_Zn) = sigma_par ratio = 1.10 +- 0.01 (paper; measured 1.08)."""
    co, zn = ours["Co_Ka"], ours["Zn_Ka"]
    ratio = co.f_barn_mol_per_g * co.atomic_weight / (zn.f_barn_mol_per_g * zn.atomic_weight)
    assert ratio == pytest.approx(1.10, abs=0.01)
    # The same ratio through the partial cross-sections, for any solid angle.
    assert co.partial_cross_section_barn(0.7) / zn.partial_cross_section_barn(0.7) == pytest.approx(ratio)


def test_every_ingredient_has_a_source(ours):
    needed = {"atomic_weight", "sigma_elastic", "sigma_ionization", "fluorescence_yield",
              "relative_intensity", "detector_efficiency", "energy"}
    for lf in ours.values():
        assert needed <= set(lf.sources)
        assert all(isinstance(v, str) and v for v in lf.sources.values())
    assert "Browning" in ours["Co_Ka"].sources["sigma_elastic"]
    assert "Bote" in ours["Co_Ka"].sources["sigma_ionization"]
    assert "EADL" in ours["Co_Ka"].sources["fluorescence_yield"]


def test_line_energies_match_table_preset(ours):
    """Line energies (xraylib, EADL-weighted) within 10 eV of the preset's Ka1/La1/Ma1 values."""
    for line, lf in ours.items():
        assert lf.energy_kev == pytest.approx(TABLE2[line][7], abs=0.010)
        assert math.isfinite(lf.energy_kev)
