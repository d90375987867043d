"""The least-squares line fit: blocked products against a per-pixel reference, and the energy cut it allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

from chemtomo.preprocess import linemaps
from chemtomo.preprocess.linemaps import (
    FIT_BLOCK_PIXELS,
    fit_cutoff_kev,
    fit_line_intensities,
    interfering_lines,
    line_energy_kev,
    line_fwhm_kev,
    line_intensities,
    synthesize_spectrum_image,
)

ENERGY = (0.0, 0.01, 2000)  # 0-20 keV
LINES = ["Mg_Ka", "Fe_Ka", "Pt_La"]
ELEMENTS = ["Mg", "Fe", "Pt", "Ga", "Al", "Ni"]  # Ga Ka under Pt La, Al Ka beside Mg Ka
NCEM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ncem-idp-eds-tilt-series"


def _signal(data, energy=ENERGY):
    import exspy

    s = exspy.signals.EDSTEMSpectrum(data)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = energy[0], energy[1], "keV"
    return s


def _cube(shape, rng):
    """A Poisson spectrum image holding the lines and their interferers, varying over the pixels."""
    y, x = np.indices(shape)
    maps = {"Mg_Ka": 20.0 + x % 7, "Al_Ka": 5.0 + y % 3, "Fe_Ka": 30.0 + (x + y) % 11,
            "Pt_La": 60.0 + y % 5, "Ga_Ka": 10.0 + x % 4, "Ni_Ka": 8.0 + 0 * x}
    return synthesize_spectrum_image(maps, ENERGY, background_per_channel=0.3, rng=rng)


def _per_pixel_reference(data, line, elements, fwhm_mnka_ev=130.0, half_width_fwhm=4.0):
    """The line's area at each pixel by its own least-squares solve (numpy lstsq), pixel by pixel.

    The model written out here independently: a bin-integrated Gaussian per line
    of the elements within the region (1.5 FWHMs beyond it), a constant and a
    linear background.
    """
    e = ENERGY[0] + ENERGY[1] * np.arange(data.shape[-1])
    e0 = line_energy_kev(line)
    w = line_fwhm_kev(e0, fwhm_mnka_ev)
    sel = np.abs(e - e0) <= half_width_fwhm * w
    es = e[sel]
    names = [line] + [n for n, en in interfering_lines(sorted(elements), (e[0], e[-1]))
                      if n != line and es[0] - 1.5 * line_fwhm_kev(en, fwhm_mnka_ev) < en
                      < es[-1] + 1.5 * line_fwhm_kev(en, fwhm_mnka_ev)]
    cols = []
    for n in names:
        en = line_energy_kev(n)
        sig = line_fwhm_kev(en, fwhm_mnka_ev) / (2 * np.sqrt(2 * np.log(2)))
        lo, hi = es - ENERGY[1] / 2, es + ENERGY[1] / 2
        cols.append(0.5 * (erf((hi - en) / (np.sqrt(2) * sig)) - erf((lo - en) / (np.sqrt(2) * sig))))
    cols += [np.ones_like(es), (es - e0) / (es[-1] - es[0])]
    A = np.stack(cols, axis=1)
    spectra = data[..., sel].reshape(-1, sel.sum()).astype(np.float64)
    out = np.array([np.linalg.lstsq(A, sp, rcond=None)[0][0] for sp in spectra])
    return out.reshape(data.shape[:-1])


def test_blocked_fit_equals_a_per_pixel_least_squares_solve():
    """More pixels than a block (and a ragged last block): each pixel's area as its own lstsq gives it.

    Tolerance: 1e-9 of the largest area (pinv and lstsq of the same full-rank
    design agree to rounding, ~1e-13; the float32 output rounds at 6e-8 relative).
    """
    shape = (37, 61)  # 2257 pixels: two whole blocks and a partial one
    assert shape[0] * shape[1] > 2 * FIT_BLOCK_PIXELS
    data = _cube(shape, np.random.default_rng(3))
    fit = fit_line_intensities(_signal(data), LINES, ELEMENTS)
    for ln in LINES:
        ref = _per_pixel_reference(data, ln, ELEMENTS)
        assert fit[ln].dtype == np.float32 and fit[ln].shape == shape
        np.testing.assert_allclose(fit[ln], ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())


def test_blocked_fit_is_the_whole_matrix_product_to_one_float32_ulp(monkeypatch):
    """Blocks of any size give the one-product result (float64 sums in another order: at most 1 ulp of float32)."""
    shape = (23, 29)
    data = _cube(shape, np.random.default_rng(4))
    s = _signal(data)
    whole = fit_line_intensities(s, LINES, ELEMENTS)  # 667 pixels: one block
    for block in (1, 7, 100):
        monkeypatch.setattr(linemaps, "FIT_BLOCK_PIXELS", block)
        blocked = fit_line_intensities(s, LINES, ELEMENTS)
        for ln in LINES:
            np.testing.assert_array_max_ulp(blocked[ln], whole[ln], maxulp=1)


def test_fit_of_a_spectrum_cut_at_fit_cutoff_equals_the_whole_spectrum():
    """The cut keeps every channel and every interferer the fits use: the same maps, bit for bit."""
    data = _cube((6, 5), np.random.default_rng(5))
    for fwhm in (130.0, 180.0):
        cut_kev = fit_cutoff_kev(LINES, fwhm)
        assert line_energy_kev("Pt_La") + 4 * line_fwhm_kev(line_energy_kev("Pt_La"), fwhm) < cut_kev < 12.5
        n = int(np.floor((cut_kev - ENERGY[0]) / ENERGY[1]))
        whole = fit_line_intensities(_signal(data), LINES, ELEMENTS, fwhm_mnka_ev=fwhm)
        cut = fit_line_intensities(_signal(np.ascontiguousarray(data[..., :n])), LINES, ELEMENTS, fwhm_mnka_ev=fwhm)
        for ln in LINES:
            np.testing.assert_array_equal(cut[ln], whole[ln])


def test_fit_of_a_signal_returns_maps_with_the_signals_axes_or_arrays():
    data = _cube((4, 6), np.random.default_rng(6))
    s = _signal(data.astype(np.float32))
    s.metadata.set_item("Sample.elements", ELEMENTS)
    sigs = line_intensities(s, LINES, method="fit")
    arrs = line_intensities(s, LINES, method="fit", arrays=True)
    template = s.sum(-1).T  # what the maps were made from before (the whole cube summed)
    for ln in LINES:
        im = sigs[ln]
        assert im.metadata.General.title == ln
        assert im.axes_manager.signal_shape == template.axes_manager.signal_shape == (6, 4)
        assert [a.name for a in im.axes_manager.signal_axes] == [a.name for a in template.axes_manager.signal_axes]
        np.testing.assert_array_equal(im.data, arrs[ln])
        assert arrs[ln].dtype == np.float32 and arrs[ln].shape == (4, 6)


@pytest.mark.shared_data
def test_real_bcf_line_maps_with_the_energy_cut_equal_the_whole_spectra(monkeypatch):
    """Three real .bcf tilts: the fit's maps from spectra cut at fit_cutoff_kev equal those from the whole 20 keV."""
    if not NCEM.is_dir():
        pytest.skip(f"shared dataset not found at {NCEM.resolve()} (../shared/data absent)")
    from chemtomo.io.microscope import open_tilt_series
    from chemtomo.preprocess import raw as raw_module
    from chemtomo.preprocess.raw import load_line_maps

    files = [NCEM / f"{a}.bcf" for a in (-5, 0, 5)]
    lines = ["O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka", "Pt_La"]
    els = ["O", "Mg", "Si", "Fe", "Pt", "Ga", "Al", "Na", "S", "C", "Cu", "N"]
    raw = open_tilt_series(files, progress=False)
    cut = load_line_maps(raw, lines, line_method="fit", elements=els, progress=False)
    assert raw.read(1, cutoff_kev=fit_cutoff_kev(lines)).spectrum_image.data.shape[-1] < 1200  # 2048 whole
    monkeypatch.setattr(raw_module, "fit_cutoff_kev", lambda *a, **k: 1e3)  # beyond the axis: no cut
    whole = load_line_maps(raw, lines, line_method="fit", elements=els, progress=False)
    for ln in lines:
        np.testing.assert_array_equal(cut.eds[ln], whole.eds[ln])
    np.testing.assert_array_equal(cut.haadf, whole.haadf)
