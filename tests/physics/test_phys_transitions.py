"""Fluorescence yields and line fractions (EADL) against an independent extraction of EADL."""

import pytest

from chemtomo.physics import LINES, line_info
from chemtomo.physics.transitions import emission_probabilities, fluorescence_yield

# K-shell fluorescence yields: total K radiative transition probability of EADL97
# (Perkins et al. 1991 data, as redistributed by LLNL), as extracted
# independently of pyxray by the fisx / PyMca project (V. A. Solé), file
# fisx_data/EADL97_KShellRadiativeRates.dat, column TOTAL.
EADL_OMEGA_K = {
    6: 1.6820880e-03,
    13: 3.7148324e-02,
    20: 1.6027856e-01,
    27: 3.6872688e-01,
    30: 4.6587240e-01,
    40: 7.2718047e-01,
    47: 8.3257010e-01,
    50: 8.6251054e-01,
    74: 9.5386045e-01,
    79: 9.5899997e-01,
}

# Same file: K-L2 and K-L3 probabilities, for Ka fractions.
EADL_KL2_KL3 = {27: (1.1122000e-01, 2.1747000e-01), 79: (2.8009100e-01, 4.7657100e-01)}


@pytest.mark.parametrize("z, omega", sorted(EADL_OMEGA_K.items()))
def test_k_fluorescence_yield_across_z(z, omega):
    """omega_K within 0.1% of fisx's EADL97 extraction, C to Au."""
    assert fluorescence_yield(z, "K") == pytest.approx(omega, rel=1e-3)


@pytest.mark.parametrize("z", sorted(EADL_KL2_KL3))
def test_ka_fraction_from_independent_extraction(z):
    kl2, kl3 = EADL_KL2_KL3[z]
    symbol = {27: "Co", 79: "Au"}[z]
    assert line_info(f"{symbol}_Ka").relative_intensity == pytest.approx((kl2 + kl3) / EADL_OMEGA_K[z], rel=1e-3)
    assert line_info(f"{symbol}_Ka1").relative_intensity == pytest.approx(kl3 / EADL_OMEGA_K[z], rel=1e-3)


def test_k_groups_partition_the_vacancy():
    """Ka + Kb + Kb2 cover all K radiative decays of Au (K-O and K-L1 aside, < 1%)."""
    total = sum(line_info(f"Au_{x}").relative_intensity for x in ("Ka", "Kb", "Kb2"))
    assert 0.99 < total <= 1.0 + 1e-12


def test_probabilities_are_per_vacancy():
    """Every vacancy's radiative probabilities sum to at most 1 (the rest is Auger / CK)."""
    for z in (6, 29, 47, 79):
        probs = emission_probabilities(z)
        for vacancy in {v for v, _ in probs}:
            assert 0 < sum(p for (v, _), p in probs.items() if v == vacancy) <= 1
        assert 0 < fluorescence_yield(z, "K") <= 1
        assert 0 <= fluorescence_yield(z, "L3") <= 1


def test_whole_vacancy_line():
    info = line_info("Au_M5")
    assert info.relative_intensity == 1.0
    assert info.fluorescence_yield == line_info("Au_Ma").fluorescence_yield
    assert set(info.transitions) >= {"M5-N6", "M5-N7", "M5-N3"}


def test_every_line_definition_is_one_vacancy():
    for d in LINES.values():
        assert d.vacancy in ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
        assert d.description


@pytest.mark.parametrize(
    "line, error, match",
    [
        ("Xx_Ka", ValueError, "unknown element 'Xx'"),
        ("co_Ka", ValueError, "did you mean 'Co'"),
        ("Co_Kq", KeyError, "unknown line 'Kq'"),
        ("CoKa", ValueError, "<Element>_<Line>"),
        ("Co_Ka_2", ValueError, "<Element>_<Line>"),
        ("Na_Kb", ValueError, "Na has no Kb line"),
        ("H_Ka", ValueError, "H has no Ka line"),
        ("Fe_Ma", ValueError, "Fe has no Ma line"),
    ],
)
def test_clear_errors(line, error, match):
    with pytest.raises(error, match=match):
        line_info(line)
