"""Bote et al. (2009) ionization cross-sections against independent reference values."""

import numpy as np
import pytest

from chemtomo.physics import bote2009_barn, ionization_energy_kev, vacancy_cross_section_barn
from chemtomo.physics.ionization import SUBSHELLS, bote_parameters

# Reference values computed with xion.f, Bote & Salvat's own Fortran program
# distributed with the ADNDT paper, as quoted in the test suite of NIST's
# independent Julia implementation (N. W. M. Ritchie, BoteSalvatICX.jl,
# test/xione.jl): (Z, subshell index 1=K..9=M5, energy eV, sigma cm^2).
XION_F = [
    (12, 4, 7.71792e01, 3.85315e-18),
    (12, 4, 1.29569e04, 1.24124e-18),
    (12, 4, 5.78762e06, 1.30393e-19),
    (23, 2, 2.90068e08, 5.64142e-21),
    (23, 2, 1.53993e04, 2.63509e-20),
    (45, 7, 6.68344e08, 1.62343e-20),
    (45, 7, 1.22321e03, 2.11571e-19),
    (67, 1, 1.63117e05, 1.36404e-23),
    (78, 9, 2.98538e03, 2.02808e-20),
    (99, 3, 1.00000e09, 1.39024e-22),
    (99, 3, 2.66073e04, 3.85171e-24),
    (1, 1, 6.87860e02, 1.57729e-17),
]


@pytest.mark.parametrize("z, shell, energy_ev, sigma_cm2", XION_F)
def test_against_xion_f(z, shell, energy_ev, sigma_cm2):
    """Within 0.05% of Bote & Salvat's xion.f over Z 1-99, K to M5, 77 eV to 1 GeV.

    The reference values carry 6 significant digits; measured agreement is
    better than 1e-5 except Es L2 near threshold (8e-5).
    """
    ours = bote2009_barn(z, SUBSHELLS[shell - 1], energy_ev / 1000.0) * 1e-24
    assert ours == pytest.approx(sigma_cm2, rel=5e-4)


def test_ionization_energies_against_botesalvaticx():
    """Bote's U_i as listed by BoteSalvatICX.jl's tests (Ho M5, La L3, Mo K), within 1 eV."""
    assert ionization_energy_kev(67, "M5") * 1000 == pytest.approx(1.36386e3, abs=1.0)
    assert ionization_energy_kev(57, "L3") * 1000 == pytest.approx(5.48366e3, abs=1.0)
    assert ionization_energy_kev(42, "K") * 1000 == pytest.approx(1.99691e4, abs=1.0)


def test_subshell_availability_matches_bote():
    """Bote's tables: H has K only; Na gains L1; Mg L1-L3; As (Z=33) and up all nine subshells."""
    with pytest.raises(ValueError, match="no L1 subshell"):
        bote_parameters(1, "L1")
    bote_parameters(11, "L1")
    bote_parameters(12, "L3")
    with pytest.raises(ValueError, match="no M1 subshell"):
        bote_parameters(12, "M1")
    for z in range(33, 100):
        assert all(bote_parameters(z, s) for s in SUBSHELLS)


@pytest.mark.parametrize("element, shell",
                         [("C", "K"), ("Cu", "K"), ("Cu", "L3"), ("Au", "L3"), ("Au", "M5"), ("U", "M4")])
def test_low_and_high_energy_branches_join_at_u16(element, shell):
    """The two fitted branches agree within 0.1% at overvoltage U = 16."""
    edge = ionization_energy_kev(element, shell)
    below = bote2009_barn(element, shell, 16 * edge * (1 - 1e-9))
    above = bote2009_barn(element, shell, 16 * edge * (1 + 1e-9))
    assert above == pytest.approx(below, rel=1e-3)


def test_zero_at_and_below_threshold_and_vectorised():
    edge = ionization_energy_kev("Co", "K")
    sig = bote2009_barn("Co", "K", np.array([edge * 0.5, edge, edge * 1.5, 80.0]))
    assert sig[0] == 0 and sig[1] == 0 and sig[2] > 0
    assert sig[3] == pytest.approx(bote2009_barn("Co", "K", 80.0))


def test_coster_kronig_increases_l3_and_m5_only():
    """CK transfer moves vacancies up the shell: L3, M5 grow, K and L1 unchanged (off by default)."""
    direct = vacancy_cross_section_barn("Ag", "L3", 100.0)
    ck = vacancy_cross_section_barn("Ag", "L3", 100.0, coster_kronig=True)
    assert direct == bote2009_barn("Ag", "L3", 100.0)
    assert 1.05 < ck / direct < 1.6
    assert vacancy_cross_section_barn("Au", "M5", 100.0, coster_kronig=True) > bote2009_barn("Au", "M5", 100.0)
    assert vacancy_cross_section_barn("Ag", "L1", 100.0, coster_kronig=True) == bote2009_barn("Ag", "L1", 100.0)
    assert vacancy_cross_section_barn("Co", "K", 80.0, coster_kronig=True) == bote2009_barn("Co", "K", 80.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="beam_kev"):
        bote2009_barn("Co", "K", -1.0)
    with pytest.raises(ValueError, match="1 GeV"):
        bote2009_barn("Co", "K", 2e6)
    with pytest.raises(ValueError, match="unknown subshell"):
        bote2009_barn("Co", "N1", 80.0)
    with pytest.raises(ValueError, match="unknown element"):
        bote2009_barn("Qq", "K", 80.0)
    with pytest.raises(ValueError, match="outside the supported range"):
        bote2009_barn(100, "K", 80.0)
