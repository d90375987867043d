"""Elastic cross-sections: Browning (1991) and the screened-Rutherford HAADF option."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from chemtomo.physics import browning1991_barn, screened_rutherford_barn
from chemtomo.physics.elastic import BOHR_RADIUS_CM, ELECTRON_REST_KEV, HBAR_C_KEV_CM

CLASSICAL_ELECTRON_RADIUS_CM = 2.8179403262e-13  # CODATA 2018


def test_browning_trends_and_vectorisation():
    e = np.array([10.0, 30.0, 100.0])
    s = browning1991_barn("Au", e)
    assert np.all(np.diff(s) < 0)
    assert browning1991_barn("Ag", 100.0) < browning1991_barn("Au", 100.0)
    assert s[2] == pytest.approx(browning1991_barn(79, 100.0))


def test_browning_1991_not_1994():
    """The 1991 form (4.7e-18 prefactor) reproduces Table 2 (1.98e7 b for Au at 100 keV);
    Browning's 1994 form (3.0e-18) would give ~40-60% more."""
    assert browning1991_barn("Au", 100.0) == pytest.approx(1.98e7, rel=1e-3)


def _rutherford_dsdo_cm2(z, e_kev, theta):
    """Relativistic Rutherford dsigma/dOmega = (Z r_e mc^2 / (2 p v))^2 / sin^4(theta/2)."""
    pc = math.sqrt(e_kev * (e_kev + 2 * ELECTRON_REST_KEV))
    beta = pc / (e_kev + ELECTRON_REST_KEV)
    return (z * CLASSICAL_ELECTRON_RADIUS_CM * ELECTRON_REST_KEV / (2 * pc * beta)) ** 2 / math.sin(theta / 2) ** 4


@pytest.mark.parametrize("z, e_kev", [(79, 100.0), (27, 80.0), (6, 300.0)])
def test_screened_rutherford_tends_to_rutherford_at_large_angles(z, e_kev):
    """At 0.5 rad screening is negligible: dsigma/dOmega matches the textbook
    relativistic Rutherford formula (independent constants: r_e instead of a0) within 0.1%."""
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
    """94-611 mrad holds 1/8 to 1/4 of Browning's total (the notes' "about 1/6");
    the screened-Rutherford total is within 20% of Browning's Mott fit at 80-100 keV."""
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
