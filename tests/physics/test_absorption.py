"""Absorption physics: detector geometry presets and validation, mass attenuation coefficients.

Published values (NIST SRD 126, Hubbell & Seltzer, "X-Ray Mass Attenuation
Coefficients", Table 3; https://www.nist.gov/pml/x-ray-mass-attenuation-coefficients):

- Si: 535.5 cm^2/g at 1.5 keV and 309.2 cm^2/g at 1.8389 keV (just below the K
  edge); Si Ka (1.740 keV) lies between, log-log interpolation gives 358.9 cm^2/g.
  Tolerance 2 % (the tables' interpolation and rounding).
- O: 4590 cm^2/g at 1.0 keV. NIST's table starts at 1 keV, so O Ka (0.525 keV,
  below the O K edge at 0.543 keV) is not tabulated there; it is checked here for
  the physics that makes O Ka escape: below O's own K edge, so O is far more
  transparent to its own line than just above the edge (a jump > 10x). The value
  itself (xraylib 1293 cm^2/g) is not checked against a published table here.
"""

import math

import numpy as np
import pytest

from chemtomo.physics.absorption import (
    DETECTOR_GEOMETRIES,
    DetectorGeometry,
    composition_mass_attenuation_cm2_g,
    line_energy_kev,
    linear_attenuation_per_nm,
    mass_attenuation_cm2_g,
)


def test_si_at_si_ka_against_nist():
    nist = 309.2 * (1.8389 / 1.740) ** (math.log(535.5 / 309.2) / math.log(1.8389 / 1.5))
    assert nist == pytest.approx(358.9, abs=0.2)
    assert line_energy_kev("Si_Ka") == pytest.approx(1.740, abs=0.002)
    assert mass_attenuation_cm2_g("Si", "Si_Ka") == pytest.approx(nist, rel=0.02)
    assert mass_attenuation_cm2_g(14, 1.5) == pytest.approx(535.5, rel=0.01)
    assert mass_attenuation_cm2_g("Si", 1.8389) == pytest.approx(309.2, rel=0.01)


def test_o_at_o_ka():
    assert mass_attenuation_cm2_g("O", 1.0) == pytest.approx(4590.0, rel=0.01)
    below = mass_attenuation_cm2_g("O", "O_Ka")  # 0.525 keV, below the K edge
    above = mass_attenuation_cm2_g("O", 0.560)
    assert line_energy_kev("O_Ka") == pytest.approx(0.525, abs=0.002)
    assert above > 10 * below
    assert 500 < below < 3000  # xraylib: 1293 cm^2/g


def test_composition_and_linear_coefficient():
    # SiO2 by mass: Si 0.4674, O 0.5326
    w = {"Si": 0.4674, "O": 0.5326}
    mix = composition_mass_attenuation_cm2_g(w, "O_Ka")
    parts = 0.4674 * mass_attenuation_cm2_g("Si", "O_Ka") + 0.5326 * mass_attenuation_cm2_g("O", "O_Ka")
    assert mix == pytest.approx(parts, rel=1e-12)
    mu = linear_attenuation_per_nm(2.2, w, "O_Ka")
    assert mu == pytest.approx(2.2 * mix * 1e-7, rel=1e-12)
    maps = linear_attenuation_per_nm(np.array([0.0, 2.2]), {"Si": np.array([0.0, 0.4674]),
                                                              "O": np.array([1.0, 0.5326])}, 0.5249)
    assert maps[0] == 0.0 and maps[1] == pytest.approx(mu, rel=1e-3)
    with pytest.raises(ValueError, match="density"):
        linear_attenuation_per_nm(-1.0, w, "O_Ka")
    with pytest.raises(ValueError, match="energy"):
        mass_attenuation_cm2_g("O", -2.0)
    with pytest.raises(ValueError, match="empty"):
        composition_mass_attenuation_cm2_g({}, 1.0)


def test_presets():
    sx = DetectorGeometry.preset("super-x")
    assert sx.n_detectors == 4 and sx.azimuth_deg == (45.0, 135.0, 225.0, 315.0)
    assert sx.total_solid_angle_sr == pytest.approx(0.7)
    np.testing.assert_allclose(sx.weights, 0.25)
    d = sx.directions_beam_frame()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    np.testing.assert_allclose(d.sum(axis=0)[:2], 0.0, atol=1e-12)  # symmetric about the optic axis
    assert set(DETECTOR_GEOMETRIES) >= {"super-x", "single"}
    one = sx.single(2)
    assert one.n_detectors == 1 and one.azimuth_deg == (225.0,)
    assert DetectorGeometry(20.0, [0.0, 90.0], 0.1).solid_angle_sr == (0.1, 0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"elevation_deg": 95.0}, "elevation_deg"),
    ({"solid_angle_sr": 0.0}, "solid_angle_sr"),
    ({"solid_angle_sr": float("nan")}, "solid_angle_sr"),
    ({"azimuth_deg": [0.0, 90.0, 180.0], "solid_angle_sr": [0.1, 0.1]}, "one value per detector"),
    ({"solid_angle_sr": [7.0, 7.0]}, "4 pi"),
])
def test_geometry_validation(kwargs, match):
    args = {"elevation_deg": 18.0, "azimuth_deg": 45.0, "solid_angle_sr": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        DetectorGeometry(**args)


def test_unknown_preset():
    with pytest.raises(ValueError, match="super-x"):
        DetectorGeometry.preset("superx")
