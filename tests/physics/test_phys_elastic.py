"""Elastic cross-sections: Browning (1991) and the screened-Rutherford HAADF option."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from chemtomo.physics import (
    browning1991_barn,
    screened_rutherford_barn,
    screened_rutherford_mott_barn,
)
from chemtomo.physics.elastic import BOHR_RADIUS_CM, ELECTRON_REST_KEV, HBAR_C_KEV_CM

CLASSICAL_ELECTRON_RADIUS_CM = 2.8179403262e-13  # CODATA 2018


def test_browning_trends_and_vectorisation():
    e = np.array([10.0, 30.0, 100.0])
    s = browning1991_barn("Au", e)
    assert np.all(np.diff(s) < 0)
    assert browning1991_barn("Ag", 100.0) < browning1991_barn("Au", 100.0)
    assert s[2] == pytest.approx(browning1991_barn(79, 100.0))


def test_browning_1991_not_1994():
    """The 1991 form (4.7e-18 prefactor) reproduces Table 2 (1.98e7 b for Au at 100 keV).

    Browning's 1994 form (3.0e-18) would give ~40-60% more.
    """
    assert browning1991_barn("Au", 100.0) == pytest.approx(1.98e7, rel=1e-3)


def _rutherford_dsdo_cm2(z, e_kev, theta):
    """Relativistic Rutherford dsigma/dOmega = (Z r_e mc^2 / (2 p v))^2 / sin^4(theta/2)."""
    pc = math.sqrt(e_kev * (e_kev + 2 * ELECTRON_REST_KEV))
    beta = pc / (e_kev + ELECTRON_REST_KEV)
    return (z * CLASSICAL_ELECTRON_RADIUS_CM * ELECTRON_REST_KEV / (2 * pc * beta)) ** 2 / math.sin(theta / 2) ** 4


@pytest.mark.parametrize("z, e_kev", [(79, 100.0), (27, 80.0), (6, 300.0)])
def test_screened_rutherford_tends_to_rutherford_at_large_angles(z, e_kev):
    """At 0.5 rad screening is negligible: dsigma/dOmega matches relativistic Rutherford within 0.1%.

    The reference is the textbook formula, with independent constants (r_e instead of a0).
    """
    t1, t2 = 0.4999, 0.5001
    sigma = screened_rutherford_barn(z, e_kev, t1 * 1000, t2 * 1000) * 1e-24
    dsdo = sigma / (2 * math.pi * (math.cos(t1) - math.cos(t2)))
    assert dsdo == pytest.approx(_rutherford_dsdo_cm2(z, e_kev, 0.5), rel=1e-3)


def test_screened_rutherford_integral_matches_quadrature():
    """The closed-form angular integral equals numerical quadrature of the differential form."""
    z, e = 47, 100.0
    pc = math.sqrt(e * (e + 2 * ELECTRON_REST_KEV))
    k = pc / HBAR_C_KEV_CM
    gamma = 1 + e / ELECTRON_REST_KEV
    inv_r2 = (0.885 * BOHR_RADIUS_CM * z ** (-1 / 3)) ** -2

    def integrand(theta):
        q2 = 4 * k * k * math.sin(theta / 2) ** 2
        return 2 * math.pi * math.sin(theta) * 4 * gamma ** 2 * z ** 2 / (BOHR_RADIUS_CM ** 2 * (q2 + inv_r2) ** 2)

    numeric, _ = quad(integrand, 0.094, 0.611, limit=200)
    assert screened_rutherford_barn(z, e, 94.0, 611.0) * 1e-24 == pytest.approx(numeric, rel=1e-6)


def test_angular_ranges_add_up():
    total = screened_rutherford_barn("Zn", 80.0)
    parts = (screened_rutherford_barn("Zn", 80.0, 0.0, 94.0)
             + screened_rutherford_barn("Zn", 80.0, 94.0, 611.0)
             + screened_rutherford_barn("Zn", 80.0, 611.0, 1000 * math.pi))
    assert parts == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("element, e_kev", [("Ag", 100.0), ("Au", 100.0), ("Co", 80.0), ("Zn", 80.0)])
def test_haadf_range_is_a_fraction_of_the_total(element, e_kev):
    """94-611 mrad holds 1/8 to 1/4 of Browning's total (the notes' "about 1/6").

    The screened-Rutherford total is within 20% of Browning's Mott fit at 80-100 keV.
    """
    haadf = screened_rutherford_barn(element, e_kev, 94.0, 611.0)
    total = browning1991_barn(element, e_kev)
    assert 0.12 < haadf / total < 0.25
    assert screened_rutherford_barn(element, e_kev) == pytest.approx(total, rel=0.2)


@pytest.mark.parametrize("inner, outer", [(-1.0, 100.0), (100.0, 50.0), (10.0, 4000.0), (float("nan"), 1.0)])
def test_bad_angles(inner, outer):
    with pytest.raises(ValueError, match="detector angles"):
        screened_rutherford_barn("Au", 100.0, inner, outer)


@pytest.mark.parametrize("beam", [0.0, -5.0, float("inf")])
def test_bad_beam(beam):
    with pytest.raises(ValueError, match="beam_kev"):
        browning1991_barn("Au", beam)
    with pytest.raises(ValueError, match="beam_kev"):
        screened_rutherford_barn("Au", beam)


# --- Mott-corrected screened Rutherford, the default above 100 keV -----------------------------
#
# Reference: total elastic cross-sections (cm^2) of free atoms from Dirac partial-wave
# calculations with ELSEPA (F. Salvat, A. Jablonski, C. J. Powell, Comput. Phys. Commun. 165
# (2005) 157), run with the options of the NIST Electron Elastic-Scattering Cross-Section
# Database (SRD 64: Dirac-Fock electron density, Furness-McCarthy exchange, Fermi nuclear
# charge distribution, no absorption or polarisation), as tabulated in the public
# repository mhyounis/wiscobolt, "Physics data/Electron elastic/ELSEPA/<Z>/tcstable.dat"
# (ELSEPA 2020, column ECS; inputs <Z>.in in the same folder). The model was fitted to
# the 60-100 keV values only; 200 and 300 keV are outside the fit.
ELSEPA_CM2 = {
    # Z: {E keV: sigma}
    8: {60: 1.37481e-18, 80: 1.08581e-18, 100: 9.12509e-19, 200: 5.68016e-19, 300: 4.55368e-19},
    13: {60: 2.86918e-18, 80: 2.27163e-18, 100: 1.91194e-18, 200: 1.19374e-18, 300: 9.58173e-19},
    29: {60: 8.63585e-18, 80: 6.94487e-18, 100: 5.90160e-18, 200: 3.75703e-18, 300: 3.03538e-18},
    47: {60: 1.84497e-17, 80: 1.51102e-17, 100: 1.29982e-17, 200: 8.50708e-18, 300: 6.94277e-18},
    79: {60: 2.83798e-17, 80: 2.38733e-17, 100: 2.09354e-17, 200: 1.43910e-17, 300: 1.19877e-17},
}

#: Stated tolerance per element at 200 and 300 keV (relative): O, Al, Au agree within 1.6%,
#: Cu is 4% high and Ag 10% low (atomic shell structure that a smooth Z^b factor cannot follow).
MOTT_TOL = {8: 0.02, 13: 0.02, 29: 0.05, 47: 0.11, 79: 0.02}


@pytest.mark.parametrize("z", sorted(ELSEPA_CM2))
@pytest.mark.parametrize("e_kev", [200, 300])
def test_mott_model_matches_partial_wave_totals_at_200_and_300_kev(z, e_kev):
    ref_barn = ELSEPA_CM2[z][e_kev] / 1e-24
    assert screened_rutherford_mott_barn(z, float(e_kev)) == pytest.approx(ref_barn, rel=MOTT_TOL[z])


@pytest.mark.parametrize("z", sorted(ELSEPA_CM2))
def test_mott_model_in_its_fit_range(z):
    """60-100 keV (the fitted range): within 8% for every element (Cu at 60 keV is the worst)."""
    for e_kev in (60, 80, 100):
        ref = ELSEPA_CM2[z][e_kev] / 1e-24
        assert screened_rutherford_mott_barn(z, float(e_kev)) == pytest.approx(ref, rel=0.08)


@pytest.mark.parametrize("z", sorted(ELSEPA_CM2))
def test_browning_extrapolation_fails_at_300_kev(z):
    """Why the default changes above 100 keV: at 300 keV both simple totals fall below partial-wave ones.

    Browning extrapolated to 300 keV is 39-53% below the partial-wave totals, the uncorrected
    Born/Thomas-Fermi total 14-41% below.
    """
    ref = ELSEPA_CM2[z][300] / 1e-24
    assert 0.45 < browning1991_barn(z, 300.0) / ref < 0.62
    assert 0.58 < screened_rutherford_barn(z, 300.0) / ref < 0.87


# The jump at the 100 keV switch (Browning below, the Mott-corrected model above), stated:
# the model over Browning at 100 keV. Browning's fit is itself 5-24% below ELSEPA at 100 keV.
JUMP_AT_100_KEV = {8: 1.100, 13: 1.178, 29: 1.260, 47: 1.225, 79: 1.062}


@pytest.mark.parametrize("z", sorted(JUMP_AT_100_KEV))
def test_jump_at_the_100_kev_switch_is_the_stated_one(z):
    jump = screened_rutherford_mott_barn(z, 100.0) / browning1991_barn(z, 100.0)
    assert jump == pytest.approx(JUMP_AT_100_KEV[z], rel=0.005)


def test_mott_model_is_smooth_and_vectorised():
    e = np.linspace(50.0, 1000.0, 200)
    for z in (6, 14, 47, 78, 79, 92):
        s = screened_rutherford_mott_barn(z, e)
        assert np.all(np.isfinite(s)) and np.all(s > 0)
        assert np.all(np.diff(s) < 0)
        assert s[0] == pytest.approx(screened_rutherford_mott_barn(z, 50.0))
    assert screened_rutherford_mott_barn("Au", 300.0) == screened_rutherford_mott_barn(79, 300.0)


@pytest.mark.parametrize("beam", [10.0, 49.9, 1001.0])
def test_mott_model_range(beam):
    with pytest.raises(ValueError, match=r"\[50, 1000\] keV"):
        screened_rutherford_mott_barn("Au", beam)
