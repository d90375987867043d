"""The simulator's absorption: a direct ray march on the fine grid, independent of the plane sweep."""

import numpy as np
import pytest

from chemtomo.physics.absorption import DetectorGeometry
from chemtomo.projector.attenuated import path_integrals
from chemtomo.simulate.absorption import raymarch_transmissions, simulate_series_absorbed
from chemtomo.simulate.specimen_series import simulate_series
from chemtomo.simulate.specimens import make_specimen

MU = 0.02


def _sphere(n, R):
    c = (n - 1) / 2
    z, y, x = np.meshgrid(*(np.arange(n) - c,) * 3, indexing="ij")
    r = np.sqrt(z**2 + y**2 + x**2)
    return np.where(r <= R, MU, 0.0), np.stack([z, y, x], -1), r


def test_raymarch_matches_the_sphere_chord_and_the_sweep():
    mu, p, r = _sphere(31, 11.0)
    d = np.array([0.3, -0.5, 0.8])
    d /= np.linalg.norm(d)
    T = raymarch_transmissions(mu, 1.0, d[None], emitters=r < 9, step_fraction=0.25)[0]
    pd = p @ d
    chord = -pd + np.sqrt(np.maximum(pd**2 - r**2 + 11.0**2, 0))
    inside = r < 9
    tau = -np.log(T[inside])
    assert np.max(np.abs(tau - MU * chord[inside])) < MU * 1.0  # < 1 voxel of optical depth
    assert np.all(T[~inside] == 1.0)
    sweep = path_integrals(mu, d, (1.0, 1.0, 1.0))[inside]
    assert np.max(np.abs(tau - sweep)) < MU * 1.0


def test_simulated_absorption_lowers_light_element_counts():
    sp = make_specimen("oxide_supported", n=12, oversampling=2, field_nm=300.0)
    angles = [-45.0, 0.0, 45.0]
    sim = simulate_series_absorbed(sp, angles, "super-x", noise=False, step_fraction=1.0)
    plain = simulate_series(sp, angles, noise=False)
    kept = {ln: sim.noiseless.eds[ln].sum() / plain.noiseless.eds[ln].sum() for ln in sim.lines}
    assert 0.6 < kept["O_Ka"] < 0.9  # ~20 % of O Ka absorbed in a 300-nm field of Al2O3
    assert kept["Pt_La"] > 0.97 and kept["O_Ka"] < kept["Al_Ka"] < kept["Pt_La"]
    np.testing.assert_array_equal(sim.noiseless.haadf, plain.noiseless.haadf)
    assert sim.series.metadata["absorption"]["name"] == "super-x"


def test_no_matter_no_absorption():
    T = raymarch_transmissions(np.zeros((5, 5, 5)), 1.0, [[0.0, 0.6, 0.8]])
    assert np.all(T == 1.0)
    with pytest.raises(ValueError, match="step_fraction"):
        raymarch_transmissions(np.zeros((2, 2, 2)), 1.0, [[1.0, 0, 0]], step_fraction=0.0)
    assert DetectorGeometry.preset("single").n_detectors == 1
