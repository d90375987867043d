"""The forward model: analytical counts, dose scaling, Poisson statistics."""

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.physics import AVOGADRO, BARN_CM2, paper_table2
from chemtomo.simulate import Acquisition, core_shell_phantom, mixture_density, simulate_tilt_series
from chemtomo.simulate.phantom import DENSITY_G_CM3


def test_mixture_density_rule():
    rho = mixture_density({"Ag": 0.2, "Au": 0.8})
    assert rho == pytest.approx(1 / (0.2 / 10.49 + 0.8 / 19.30))
    with pytest.raises(KeyError, match="no density"):
        mixture_density({"Xx": 1.0})


def test_paper_dose():
    """100 pA for 0.5 s is 3.121e8 electrons per position (Yuan 2020, section 3.1.1)."""
    assert Acquisition().eds_dose == pytest.approx(3.121e8, rel=1e-3)


def _uniform_disk_sim(noise, dose_scale=1.0, seed=0):
    geom = TiltGeometry([0.0, 30.0], 64, 2.0)
    # a single-composition disk: core == shell
    comp = {"Ag": 0.5, "Au": 0.5}
    fine = core_shell_phantom(64 * 4, 0.5, shell=comp, core=comp, outer_semi_axes_nm=(40.0, 40.0))
    return simulate_tilt_series(fine, geom, paper_table2(), Acquisition(eds_dose_scale=dose_scale),
                                seed=seed, noise=noise), geom, comp


def test_central_ray_counts_match_thin_film_formula():
    """Through the centre of a disk of radius R the path is 2R: I = D (Omega/4pi) N_A f C rho 2R (eq 4)."""
    sim, geom, comp = _uniform_disk_sim(noise=False)
    acq = Acquisition()
    rho = mixture_density(comp)
    f = paper_table2()
    path_cm = 2 * 40.0e-7
    for line in sim.lines:
        lf = f[line]
        expect = acq.eds_dose * acq.solid_angle_sr / (4 * np.pi) * AVOGADRO * lf.f_barn_mol_per_g * BARN_CM2 \
            * comp[lf.element] * rho * path_cm
        centre = sim.noiseless.eds[line][0, 0, 31:33].mean()  # the two bins either side of the axis
        assert centre == pytest.approx(expect, rel=0.01)
    z = sum(f[ln].z_barn_mol_per_g * comp[f[ln].element] for ln in sim.lines)
    expect_h = acq.haadf_dose * AVOGADRO * z * BARN_CM2 * rho * path_cm
    assert sim.noiseless.haadf[0, 0, 31:33].mean() == pytest.approx(expect_h, rel=0.01)


def test_counts_scale_linearly_with_dose():
    a, _, _ = _uniform_disk_sim(noise=False)
    b, _, _ = _uniform_disk_sim(noise=False, dose_scale=0.1)
    for ln in a.lines:
        np.testing.assert_allclose(b.noiseless.eds[ln], 0.1 * a.noiseless.eds[ln], rtol=1e-5)
    np.testing.assert_allclose(b.noiseless.haadf, a.noiseless.haadf)


def test_poisson_noise_statistics_and_seed():
    a, _, _ = _uniform_disk_sim(noise=True, seed=1)
    b, _, _ = _uniform_disk_sim(noise=True, seed=1)
    c, _, _ = _uniform_disk_sim(noise=True, seed=2)
    ln = a.lines[0]
    np.testing.assert_array_equal(a.series.eds[ln], b.series.eds[ln])
    assert not np.array_equal(a.series.eds[ln], c.series.eds[ln])
    assert np.all(a.series.eds[ln] == np.round(a.series.eds[ln]))
    # standardised residuals of Poisson counts: mean 0, variance 1 (800 samples over 10 seeds;
    # the standard error of the std is ~0.025, tolerance 0.1)
    z = []
    for seed in range(10):
        s, _, _ = _uniform_disk_sim(noise=True, seed=seed)
        m = s.noiseless.eds[ln]
        sel = m > 50
        z.append((s.series.eds[ln][sel] - m[sel]) / np.sqrt(m[sel]))
    z = np.concatenate(z)
    assert z.size >= 500
    assert np.std(z) == pytest.approx(1.0, abs=0.1)
    assert np.mean(z) == pytest.approx(0.0, abs=0.15)


def test_phantom_regions_and_compositions():
    ph = core_shell_phantom(97, 1.5)
    i_au = ph.elements.index("Au")
    assert np.allclose(ph.weight[i_au][ph.regions["core"]], 0.8)
    assert np.allclose(ph.weight[i_au][ph.regions["shell"]], 0.2)
    assert np.all(ph.weight[:, ~ph.regions["particle"]] == 0)
    assert set(DENSITY_G_CM3) >= {"Ag", "Au"}
    with pytest.raises(ValueError, match="sum to 1"):
        core_shell_phantom(32, 1.0, shell={"Ag": 0.5, "Au": 0.6})


def test_simulation_rejects_mismatched_grids():
    geom = TiltGeometry([0.0, 10.0], 30, 1.5)
    fine = core_shell_phantom(100, 0.375)
    with pytest.raises(ValueError, match="multiple"):
        simulate_tilt_series(fine, geom, paper_table2())
    with pytest.raises(KeyError, match="no X-ray line"):
        simulate_tilt_series(core_shell_phantom(120, 0.375), geom, paper_table2(["Ag_La"]))
