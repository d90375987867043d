"""compute_factors: options, the result object, and clear errors at the edge."""

import json
import math

import numpy as np
import pytest

from chemtomo.physics import (
    PAPER_HAADF_MRAD,
    DetectorModel,
    Factors,
    Layer,
    compute_factors,
    line_info,
    screened_rutherford_mott_barn,
)


@pytest.fixture(scope="module")
def cozn():
    return compute_factors(["Co_Ka", "Zn_Ka"], beam_kev=80.0, detector=0.96)


def test_result_object(cozn):
    assert isinstance(cozn, Factors)
    assert cozn.lines == ["Co_Ka", "Zn_Ka"]
    assert cozn.elements == ["Co", "Zn"]
    co = cozn["Co_Ka"]
    assert co.f_barn_mol_per_g == pytest.approx(
        co.sigma_ionization_barn * co.fluorescence_yield * co.relative_intensity * 0.96 / co.atomic_weight)
    assert co.z_barn_mol_per_g == pytest.approx(co.sigma_elastic_barn / co.atomic_weight)
    assert co.energy_kev == pytest.approx(line_info("Co_Ka").energy_kev)


def test_as_dict_is_json_ready(cozn):
    d = cozn.as_dict(solid_angle_sr=0.7)
    text = json.dumps(d)
    assert "Co_Ka" in json.loads(text)
    for key in ("atomic_weight", "sigma_elastic_barn", "sigma_ionization_barn", "fluorescence_yield",
                "relative_intensity", "detector_efficiency", "f_barn_mol_per_g", "z_barn_mol_per_g",
                "partial_cross_section_barn", "sources"):
        assert key in d["Zn_Ka"]
    co = cozn["Co_Ka"]
    assert d["Co_Ka"]["partial_cross_section_barn"] == pytest.approx(
        co.f_barn_mol_per_g * 0.7 / (4 * math.pi) * co.atomic_weight)


def test_response_ratios_eq16(cozn):
    """r_A = D_H z_A / (D_E (Omega/4 pi) f_A), eq 16 with N_A cancelled."""
    r = cozn.response_ratios(haadf_dose=1e5, eds_dose=3.121e8, solid_angle_sr=0.7)
    expected = [1e5 * cozn[x].z_barn_mol_per_g / (3.121e8 * 0.7 / (4 * math.pi) * cozn[x].f_barn_mol_per_g)
                for x in cozn]
    assert r == pytest.approx(expected)
    with pytest.raises(ValueError, match="solid angle"):
        cozn.response_ratios(haadf_dose=1.0, eds_dose=1.0)


def test_solid_angle_from_parameter_or_detector():
    fac = compute_factors(["Co_Ka"], beam_kev=80.0, solid_angle_sr=0.9)
    assert fac["Co_Ka"].partial_cross_section_barn() == pytest.approx(
        fac["Co_Ka"].f_barn_mol_per_g * 0.9 / (4 * math.pi) * fac["Co_Ka"].atomic_weight)
    model = DetectorModel("mine", contact=(Layer("Al", 0.03),), solid_angle_sr=0.7)
    assert compute_factors(["Co_Ka"], beam_kev=80.0, detector=model)["Co_Ka"].solid_angle_sr == 0.7
    with pytest.raises(ValueError, match="needs a solid angle"):
        compute_factors(["Co_Ka"], beam_kev=80.0)["Co_Ka"].partial_cross_section_barn()


def test_physical_detector_depends_on_energy():
    fac = compute_factors(["Au_Ma", "Ag_La", "Co_Ka"], beam_kev=100.0, detector="be-window-sili")
    eps = [fac[x].detector_efficiency for x in fac]
    assert eps[0] < eps[1] < eps[2] < 1
    assert "be-window-sili" in fac["Au_Ma"].sources["detector_efficiency"]


def test_haadf_option():
    total = compute_factors(["Au_Ma"], beam_kev=100.0)["Au_Ma"]
    haadf = compute_factors(["Au_Ma"], beam_kev=100.0, elastic="screened_rutherford",
                            haadf_mrad=PAPER_HAADF_MRAD)["Au_Ma"]
    assert 0.1 < haadf.sigma_elastic_barn / total.sigma_elastic_barn < 0.3
    assert "94-611 mrad" in haadf.sources["sigma_elastic"]
    assert haadf.f_barn_mol_per_g == total.f_barn_mol_per_g


def test_coster_kronig_option():
    direct = compute_factors(["Ag_La"], beam_kev=100.0)["Ag_La"]
    ck = compute_factors(["Ag_La"], beam_kev=100.0, coster_kronig=True)["Ag_La"]
    assert ck.sigma_ionization_barn > direct.sigma_ionization_barn
    assert "Coster-Kronig" in ck.sources["sigma_ionization"]
    assert "direct ionization" in direct.sources["sigma_ionization"]


def test_browning_extrapolation_is_reported():
    """Forced Browning above its 1-100 keV fit says so (the default no longer extrapolates)."""
    fac = compute_factors(["Au_Ma"], beam_kev=300.0, elastic="browning1991")
    assert "extrapolated" in fac["Au_Ma"].sources["sigma_elastic"]
    assert "extrapolated" not in compute_factors(["Au_Ma"], beam_kev=100.0)["Au_Ma"].sources["sigma_elastic"]


LINES_200_300 = ["Ag_La", "Au_Ma", "Pt_Ma", "Si_Ka", "O_Ka"]


@pytest.mark.parametrize("beam_kev", [60.0, 80.0, 100.0])
def test_default_is_browning_in_its_range(beam_kev):
    """elastic='auto' (the default) is Browning 1991 up to 100 keV: the same numbers and source."""
    auto = compute_factors(LINES_200_300, beam_kev=beam_kev)
    browning = compute_factors(LINES_200_300, beam_kev=beam_kev, elastic="browning1991")
    for line in LINES_200_300:
        assert auto[line].sigma_elastic_barn == browning[line].sigma_elastic_barn
        assert auto[line].sources["sigma_elastic"] == browning[line].sources["sigma_elastic"]
        assert auto[line].sources["sigma_elastic"].startswith("Browning 1991")


@pytest.mark.parametrize("beam_kev", [200.0, 300.0])
def test_default_above_100_kev_is_the_mott_model_and_says_so(beam_kev):
    fac = compute_factors(LINES_200_300, beam_kev=beam_kev)
    forced = compute_factors(LINES_200_300, beam_kev=beam_kev, elastic="screened_rutherford_mott")
    for line in LINES_200_300:
        source = fac[line].sources["sigma_elastic"]
        assert source.startswith("screened_rutherford_mott")
        assert "elastic='auto'" in source and "extrapolated" not in source
        assert fac[line].sigma_elastic_barn == forced[line].sigma_elastic_barn
        assert fac[line].sigma_elastic_barn == screened_rutherford_mott_barn(fac[line].element, beam_kev)
    # z_A rises against the extrapolated Browning values (by 1.3-1.9x at 200-300 keV)
    old = compute_factors(LINES_200_300, beam_kev=beam_kev, elastic="browning1991")
    ratio = fac.z() / old.z()
    assert np.all((ratio > 1.3) & (ratio < 2.0))


def test_mott_model_rejects_haadf_range():
    with pytest.raises(ValueError, match="total elastic"):
        compute_factors(["Au_Ma"], beam_kev=300.0, elastic="screened_rutherford_mott", haadf_mrad=(94, 611))
    with pytest.raises(ValueError, match="total elastic"):
        compute_factors(["Au_Ma"], beam_kev=300.0, haadf_mrad=(94, 611))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(lines=["Xx_Ka"], beam_kev=80.0), ValueError, "unknown element 'Xx'"),
        (dict(lines=["Co_Kz"], beam_kev=80.0), KeyError, "unknown line 'Kz'"),
        (dict(lines=["Co_Ka"], beam_kev=7.0), ValueError, "below the Co K ionization energy 7.681 keV"),
        (dict(lines=["Au_La"], beam_kev=11.0), ValueError, "below the Au L3 ionization energy"),
        (dict(lines=["Ne_La"], beam_kev=80.0), ValueError, "Ne has no La line"),
        (dict(lines=["Co_Ka"], beam_kev=-80.0), ValueError, "beam_kev"),
        (dict(lines=["Co_Ka"], beam_kev=float("nan")), ValueError, "beam_kev"),
        (dict(lines=["Co_Ka"], beam_kev="80"), ValueError, "beam_kev must be a number"),
        (dict(lines=[], beam_kev=80.0), ValueError, "lines is empty"),
        (dict(lines="Co_Ka", beam_kev=80.0), ValueError, "list of line names"),
        (dict(lines=["Co_Ka", "Co_Ka"], beam_kev=80.0), ValueError, "repeat"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, detector=1.3), ValueError, r"\(0, 1\]"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, detector="nope"), KeyError, "unknown detector preset"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, elastic="mott"), ValueError, "elastic must be one of"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, haadf_mrad=(94, 611)), ValueError, "total elastic"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, elastic="screened_rutherford", haadf_mrad=(611, 94)),
         ValueError, "detector angles"),
        (dict(lines=["Co_Ka"], beam_kev=80.0, solid_angle_sr=-1.0), ValueError, "solid_angle_sr"),
    ],
)
def test_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_factors(**kwargs)


def test_negative_thickness_detector_is_rejected_before_use():
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        compute_factors(["Co_Ka"], beam_kev=80.0,
                        detector=DetectorModel("bad", window=(Layer("Be", -8.0),)))
