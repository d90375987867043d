"""Spectrum images to line maps (exSpy windows), rebinning, clipping."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.preprocess.linemaps import (
    background_windows,
    clip_negative,
    line_energy_kev,
    line_fwhm_kev,
    line_intensities,
    rebin,
    synthesize_spectrum_image,
)

ENERGY = (0.0, 0.01, 1100)  # 0-11 keV
# fraction of a Gaussian line inside +-1 FWHM (integration_width=2 FWHMs), bin-integrated: erf(2 sqrt(ln 2))
INSIDE = 0.9815


def _maps(shape=(6, 7)):
    y, x = np.indices(shape)
    return {"Fe_Ka": 30.0 + 3 * x, "Pt_La": 50.0 + 2 * y, "Si_Ka": np.full(shape, 40.0)}


def test_expected_counts_recovered_on_a_continuum():
    maps = _maps()
    si = synthesize_spectrum_image(maps, ENERGY, background_per_channel=0.5)
    out = line_intensities(si, list(maps), energy_axis=ENERGY[:2], beam_kev=200.0)
    for ln, m in maps.items():
        assert out[ln].dtype == np.float32 and out[ln].shape == m.shape
        np.testing.assert_allclose(out[ln], INSIDE * m, rtol=0.01)  # the flat continuum is removed
    fit = line_intensities(si, list(maps), method="fit", energy_axis=ENERGY[:2])
    for ln, m in maps.items():
        np.testing.assert_allclose(fit[ln], m, rtol=0.01)  # the whole line area


def test_fit_separates_overlapping_lines_windows_cannot():
    """Ga Ka (9.25 keV) lies 0.19 keV below Pt La, inside Pt La's integration window."""
    shape = (4, 5)
    maps = {"Pt_La": np.full(shape, 50.0), "Ga_Ka": np.full(shape, 40.0)}
    si = synthesize_spectrum_image(maps, ENERGY, background_per_channel=0.5)
    win = line_intensities(si, ["Pt_La", "Ga_Ka"], energy_axis=ENERGY[:2])
    assert win["Pt_La"].mean() > 1.1 * INSIDE * 50  # Ga counts taken for Pt
    fit = line_intensities(si, ["Pt_La", "Ga_Ka"], method="fit", energy_axis=ENERGY[:2])
    np.testing.assert_allclose(fit["Pt_La"], 50.0, rtol=0.01)
    np.testing.assert_allclose(fit["Ga_Ka"], 40.0, rtol=0.01)


def test_windows_avoid_neighbouring_lines():
    """Ga Ka sits 0.19 keV below Pt La: exSpy's default left window would lie on it."""
    import exspy

    s = exspy.signals.EDSTEMSpectrum(np.zeros((2, 2, ENERGY[2]), np.float32))
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = ENERGY[0], ENERGY[1], "keV"
    s.metadata.set_item("Sample.elements", ["Ga", "Pt", "Fe"])
    w = background_windows(s, ["Pt_La"])[0]
    ga = line_energy_kev("Ga_Ka")
    fw = line_fwhm_kev(ga)
    assert not (w[0] - fw < ga < w[1] + fw) and not (w[2] - fw < ga < w[3] + fw)
    default = s.estimate_background_windows(xray_lines=["Pt_La"])[0]
    assert default[0] - fw < ga < default[1] + fw  # exSpy's own window would have taken Ga for background


def test_signal_in_signal_out():
    import exspy

    si = synthesize_spectrum_image(_maps(), ENERGY)
    s = exspy.signals.EDSTEMSpectrum(si)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = ENERGY[0], ENERGY[1], "keV"
    for a in s.axes_manager.navigation_axes:
        a.units, a.scale = "nm", 3.0
    out = line_intensities(s, ["Fe_Ka"])
    im = out["Fe_Ka"]
    assert im.axes_manager.signal_dimension == 2 and im.data.shape == (6, 7)
    assert im.metadata.General.title == "Fe_Ka"
    assert im.axes_manager.signal_axes[0].scale == 3.0


def test_bad_lines():
    si = synthesize_spectrum_image(_maps(), ENERGY)
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        line_intensities(si, ["Xx_Ka"], energy_axis=ENERGY[:2])
    with pytest.raises(ValueError, match="named <Element>_<line>"):
        line_intensities(si, ["FeKa"], energy_axis=ENERGY[:2])
    with pytest.raises(ValueError, match="U_Ka .* outside the spectrum's energy range"):
        line_intensities(si, ["U_Ka"], energy_axis=ENERGY[:2])
    with pytest.raises(ValueError, match="needs energy_axis"):
        line_intensities(si, ["Fe_Ka"])
    with pytest.raises(ValueError, match="method must be"):
        line_intensities(si, ["Fe_Ka"], method="magic", energy_axis=ENERGY[:2])


def test_rebin_sums_counts_and_crops():
    a = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    b = rebin(a, 2)
    assert b.shape == (2, 2, 3)
    assert b[0, 0, 0] == a[0, :2, :2].sum()
    assert b.sum() == a[:, :4, :6].sum()
    with pytest.raises(ValueError, match="positive integer"):
        rebin(a, 1.5)


def test_rebin_signal_keeps_axes():
    from chemtomo.io.hspy import to_signal

    s = to_signal(np.ones((3, 8, 8)), [-10, 0, 10], 2.0, "Fe_Ka")
    b = rebin(s, 2)
    assert b.data.shape == (3, 4, 4) and b.axes_manager.signal_axes[0].scale == 4.0
    assert b.axes_manager.navigation_axes[0].size == 3 and b.data.sum() == 3 * 64


def test_clip_negative_reports():
    a = np.array([[[-1.0, 2.0], [3.0, -0.5]]], np.float32)
    b, info = clip_negative(a)
    assert b.min() == 0 and b.sum() == 5
    assert info["fraction_clipped"] == 0.5 and info["counts_clipped"] == 1.5


def test_poisson_counts_unbiased_in_the_mean():
    rng = np.random.default_rng(1)
    maps = {"Fe_Ka": np.full((20, 20), 5.0)}
    si = synthesize_spectrum_image(maps, ENERGY, background_per_channel=0.05, rng=rng)
    out = line_intensities(si, ["Fe_Ka"], energy_axis=ENERGY[:2])["Fe_Ka"]
    assert out.mean() == pytest.approx(INSIDE * 5.0, rel=0.08)
    assert (out < 0).any()  # single pixels go negative: kept here, clipped later
