"""Detector efficiency: an independent efficiency curve, presets, and errors."""

import math

import numpy as np
import pytest

from chemtomo.physics import DETECTOR_PRESETS, DetectorModel, FlatEfficiency, Layer, resolve_detector

# Mass attenuation coefficients mu/rho (cm^2/g) from NIST SRD 126 (J. H. Hubbell and
# S. M. Seltzer, "Tables of X-Ray Mass Attenuation Coefficients and Mass
# Energy-Absorption Coefficients", NISTIR 5632, Table 3: Be Z=4, Si Z=14).
NIST_BE = {1.5: 179.7, 2.0: 74.69, 3.0: 21.27, 4.0: 8.685, 5.0: 4.369, 6.0: 2.527,
           8.0: 1.124, 10.0: 0.6466, 15.0: 0.3070, 20.0: 0.2251}
NIST_SI = {1.5: 535.5, 2.0: 2777.0, 3.0: 978.4, 4.0: 452.9, 5.0: 245.0, 6.0: 147.0,
           8.0: 64.68, 10.0: 33.89, 15.0: 10.34, 20.0: 4.464}
RHO_BE, RHO_SI = 1.848, 2.33  # g/cm^3


def _reference_curve(be_um: float, si_um: float) -> dict[float, float]:
    """eps(E) = exp(-mu_Be rho t_Be) (1 - exp(-mu_Si rho t_Si)) from the NIST values."""
    return {
        e: math.exp(-NIST_BE[e] * RHO_BE * be_um * 1e-4) * (1 - math.exp(-NIST_SI[e] * RHO_SI * si_um * 1e-4))
        for e in NIST_BE
    }


@pytest.mark.parametrize("be_um, si_um", [(8.0, 3000.0), (0.0, 450.0), (25.0, 450.0)])
def test_efficiency_curve_against_nist_attenuation(be_um, si_um):
    """Be-window Si(Li) and bare SDD curves within 0.5% of the NIST SRD 126 reference curve, 1.5-20 keV.

    Covers the low-energy window cut-off (Be 8 um: 0.77 at 1.5 keV) and the
    high-energy fall-off of a 450 um crystal (0.37 at 20 keV).
    """
    window = (Layer("Be", be_um, RHO_BE),) if be_um else ()
    model = DetectorModel("reference", window=window, crystal_thickness_um=si_um)
    ref = _reference_curve(be_um, si_um)
    energies = np.array(sorted(ref))
    ours = model.efficiency(energies)
    np.testing.assert_allclose(ours, [ref[e] for e in energies], rtol=5e-3)


def test_presets_are_physical():
    energies = np.array([0.5, 1.0, 2.0, 5.0, 8.0, 10.0, 20.0])
    for name, model in DETECTOR_PRESETS.items():
        eps = model.efficiency(energies)
        assert np.all((eps > 0) & (eps <= 1)), name
        assert name in model.describe()
    windowless = DETECTOR_PRESETS["windowless-sdd"].efficiency(np.array([2.1, 3.0, 6.9, 8.6]))
    assert np.all(windowless > 0.95)
    be = DETECTOR_PRESETS["be-window-sili"]
    assert be.efficiency(0.5) < 0.01 < be.efficiency(1.0) < be.efficiency(2.0) < be.efficiency(8.0)
    # A window and grid cost efficiency at every energy.
    assert np.all(DETECTOR_PRESETS["si3n4-window-sdd"].efficiency(energies)
                  < DETECTOR_PRESETS["windowless-sdd"].efficiency(energies))


def test_flat_and_resolution():
    flat = resolve_detector(0.96)
    assert isinstance(flat, FlatEfficiency)
    assert flat.efficiency(2.0) == 0.96
    np.testing.assert_array_equal(flat.efficiency(np.array([1.0, 9.0])), [0.96, 0.96])
    assert resolve_detector("windowless-sdd") is DETECTOR_PRESETS["windowless-sdd"]
    model = DetectorModel("mine", window=(Layer("Si3N4", 0.05),), solid_angle_sr=0.9)
    assert resolve_detector(model) is model


def test_layer_densities():
    assert Layer("Al", 1.0).density_g_cm3 == pytest.approx(2.6989, rel=1e-3)
    assert Layer("Si3N4", 0.04).formula == "Si3N4"
    assert Layer("C8H8", 1.0, density_g_cm3=1.11).density_g_cm3 == 1.11


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Layer("Be", -8.0), "thickness_um of layer 'Be' must be a finite number >= 0"),
        (lambda: Layer("Be", float("nan")), "thickness_um"),
        (lambda: Layer("C8H8", 1.0), "give density_g_cm3"),
        (lambda: Layer("Qz9", 1.0, density_g_cm3=1.0), "not a chemical formula"),
        (lambda: Layer("Al", 1.0, density_g_cm3=-2.0), "density_g_cm3"),
        (lambda: DetectorModel("x", dead_layer_um=-0.1), "dead_layer_um must be"),
        (lambda: DetectorModel("x", crystal_thickness_um=-450.0), "crystal_thickness_um must be"),
        (lambda: DetectorModel("x", crystal_thickness_um=0.0), "crystal_thickness_um must be > 0"),
        (lambda: DetectorModel("x", grid_open_fraction=1.2), "grid_open_fraction"),
        (lambda: DetectorModel("x", solid_angle_sr=20.0), "solid_angle_sr"),
        (lambda: FlatEfficiency(0.0), r"\(0, 1\]"),
        (lambda: FlatEfficiency(1.5), r"\(0, 1\]"),
        (lambda: resolve_detector(True), "detector must be"),
        (lambda: resolve_detector(object()), "detector must be"),
        (lambda: DETECTOR_PRESETS["windowless-sdd"].efficiency(-1.0), "energy_kev"),
    ],
)
def test_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_preset():
    with pytest.raises(KeyError, match="unknown detector preset 'superx'"):
        resolve_detector("superx")
