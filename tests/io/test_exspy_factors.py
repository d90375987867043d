"""``chemtomo factors --format exspy``: exSpy's quantification with chemtomo's factors, the round trip.

Reference: line intensities made here from a known composition, mass thickness and dose by the
thin-film model written out (atoms per area times the partial cross-section sigma_ion omega p eps
Omega/4pi, multiplied from the factors' ingredients); exSpy's CL, zeta and cross-section
quantifications with the exported factors must return that composition (and mass thickness, atom
counts), and equal chemtomo's own quantification of the same intensities.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chemtomo.cli import main
from chemtomo.io.factors import exspy_factors
from chemtomo.physics import AVOGADRO, compute_factors
from chemtomo.pipeline.spectrum import quantify_intensities

exspy = pytest.importorskip("exspy")

LINES = ["Fe_Ka", "Cu_Ka", "Pt_La"]
BEAM_KEV = 200.0
OMEGA_SR = 0.7
CURRENT_NA, LIVE_S, PIXEL_NM = 0.5, 0.02, 2.0
E_CHARGE = 1.602176634e-19  # C


def _truth(shape=(3, 4)):
    rng = np.random.default_rng(11)
    w = rng.uniform(0.1, 1.0, size=(3, *shape))
    w /= w.sum(axis=0)
    rho_t_kg_m2 = rng.uniform(0.5e-4, 2e-4, size=shape)  # 10 g/cm3 x 5-20 nm
    return w, rho_t_kg_m2


def _intensities(fac, w, rho_t):
    """I_A = D_e (rho t C_A / M_A) N_A sigma_A, sigma_A = sigma_ion omega p eps Omega/4pi (m^2)."""
    dose = CURRENT_NA * 1e-9 * LIVE_S / E_CHARGE
    out = []
    for i, ln in enumerate(LINES):
        lf = fac[ln]
        sigma_m2 = (lf.sigma_ionization_barn * 1e-28 * lf.fluorescence_yield * lf.relative_intensity
                    * lf.detector_efficiency * OMEGA_SR / (4 * math.pi))
        atoms_per_m2 = rho_t * w[i] / (lf.atomic_weight * 1e-3) * AVOGADRO
        out.append(dose * atoms_per_m2 * sigma_m2)
    return np.array(out)


def _exspy_intensity_signals(intens):
    """The exSpy intensity signals of a spectrum image (3 x 4 px), their data replaced by ``intens``."""
    from chemtomo.preprocess.linemaps import synthesize_spectrum_image

    data = synthesize_spectrum_image({ln: np.full(intens.shape[1:], 100.0) for ln in LINES}, (0.0, 0.01, 2048))
    s = exspy.signals.EDSTEMSpectrum(data)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = 0.0, 0.01, "keV"
    for a in s.axes_manager.navigation_axes:
        a.scale, a.units = PIXEL_NM, "nm"
    s.set_microscope_parameters(beam_energy=BEAM_KEV, beam_current=CURRENT_NA, live_time=LIVE_S)
    ims = s.get_lines_intensity(xray_lines=LINES, integration_windows=2.0)
    assert [im.metadata.Sample.xray_lines[0] for im in ims] == LINES
    for im, d in zip(ims, intens, strict=True):
        im.data = d.astype(np.float64)
    return s, ims


def test_exspy_round_trip_cl_zeta_cross_section():
    """With chemtomo's factors exSpy returns the true composition and chemtomo's fractions (rtol 1e-9)."""
    fac = compute_factors(LINES, beam_kev=BEAM_KEV, detector=0.96)
    doc = exspy_factors(fac, OMEGA_SR)
    w, rho_t = _truth()
    intens = _intensities(fac, w, rho_t)
    ours_w, ours_a = quantify_intensities(intens, fac)
    np.testing.assert_allclose(ours_w, w, rtol=1e-9)
    s, ims = _exspy_intensity_signals(intens)

    cl = s.quantification(ims, method="CL", factors=doc["factors"]["CL"], composition_units="weight",
                          navigation_mask=None)
    np.testing.assert_allclose(np.stack([c.data for c in cl]) / 100, ours_w, rtol=1e-9)

    zeta, mass_thickness = s.quantification(ims, method="zeta", factors=doc["factors"]["zeta"],
                                            composition_units="weight", navigation_mask=None)
    np.testing.assert_allclose(np.stack([c.data for c in zeta]) / 100, ours_w, rtol=1e-9)
    np.testing.assert_allclose(mass_thickness.data, rho_t, rtol=1e-9)

    xs, atoms = s.quantification(ims, method="cross_section", factors=doc["factors"]["cross_section"],
                                 composition_units="atomic", navigation_mask=None)
    np.testing.assert_allclose(np.stack([c.data for c in xs]) / 100, ours_a, rtol=1e-9)
    m = fac.atomic_weights()[:, None, None] * 1e-3
    true_atoms = rho_t * w / m * AVOGADRO * (PIXEL_NM * 1e-9) ** 2
    np.testing.assert_allclose(np.stack([a.data for a in atoms]), true_atoms, rtol=1e-9)


def test_exspy_factors_without_solid_angle_and_cli(capsys):
    """Without a solid angle only the k-factors (relative) are given, and ``missing`` names the flag."""
    fac = compute_factors(LINES, beam_kev=BEAM_KEV, detector=0.96)
    doc = exspy_factors(fac)
    f = fac.f()
    np.testing.assert_allclose(doc["factors"]["CL"], f[0] / f, rtol=1e-12)
    assert doc["factors"]["zeta"] is None and "--solid-angle-sr" in doc["missing"]
    with pytest.raises(ValueError, match="solid_angle_sr"):
        exspy_factors(fac, 20.0)
    assert main(["factors", *LINES, "--beam-kev", "200", "--solid-angle-sr", "0.7", "--format", "exspy"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["lines"] == LINES
    np.testing.assert_allclose(cli["factors"]["zeta"], exspy_factors(fac, 0.7)["factors"]["zeta"], rtol=1e-12)
    assert main(["factors", *LINES, "--beam-kev", "200", "--json", "--format", "exspy"]) == 2
