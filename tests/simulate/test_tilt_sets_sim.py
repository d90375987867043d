"""Specimen tilt series with a tilt set per modality (issue 16): angles, counts against simulate_series, seeds."""

import numpy as np
import pytest

from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.simulate.tilt_sets import simulate_specimen_tilt_sets, tilt_set_angles

# z_A's elastic model may warn about extrapolating beyond 100 keV (200 kV here): let it.
pytestmark = pytest.mark.filterwarnings("ignore:.*extrapolat")

N = 12


@pytest.fixture(scope="module")
def spec():
    return make_specimen("core_shell", N, 2, 0)


def test_angles_even_and_eds_on_haadf():
    eds, haadf = tilt_set_angles(70, 11, 71)
    np.testing.assert_allclose(haadf, np.arange(-70.0, 70.1, 2.0), atol=1e-9)
    np.testing.assert_allclose(eds, np.arange(-70.0, 70.1, 14.0), atol=1e-9)  # 14 deg = 7 HAADF steps
    assert set(eds) <= set(haadf)
    # 7 EDS tilts over +-40 on 71 HAADF tilts: on the HAADF set, within half a HAADF step of even spacing
    eds, haadf = tilt_set_angles(40, 7, 71)
    assert eds.size == 7 and set(eds) <= set(haadf)
    np.testing.assert_allclose(eds, np.linspace(-40, 40, 7), atol=0.5 * 80 / 70 + 1e-9)
    eds, haadf = tilt_set_angles(40, 7, 71, eds_on_haadf=False)
    np.testing.assert_allclose(eds, np.linspace(-40, 40, 7), atol=1e-9)


@pytest.mark.parametrize("args, match", [((95, 11, 71), "range_deg"), ((70, 2, 71), "n_eds"),
                                         ((70, 11, 2.5), "n_haadf"), ((70, 31, 11), "cannot place")])
def test_angles_refuse(args, match):
    with pytest.raises(ValueError, match=match):
        tilt_set_angles(*args)


def test_counts_are_simulate_series_at_each_modalitys_angles(spec):
    """Expected counts: the EDS at its angles and the HAADF at its own equal simulate_series at those angles."""
    eds_deg, haadf_deg = np.array([-60.0, 0.0, 35.0]), np.array([-70.0, -35.0, 0.0, 20.0, 70.0])
    sim = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 0.1, noise=False, elastic="auto")
    e = simulate_series(spec, eds_deg, 0.1, seed=None, noise=False, elastic="auto").noiseless
    h = simulate_series(spec, haadf_deg, 0.1, seed=None, noise=False, elastic="auto").noiseless
    np.testing.assert_array_equal(sim.eds_angles_deg, eds_deg)
    np.testing.assert_array_equal(sim.haadf_angles_deg, haadf_deg)
    assert sim.lines == e.lines
    for ln in sim.lines:
        assert sim.eds[ln].shape == (3, N, N)
        np.testing.assert_allclose(sim.eds[ln], e.eds[ln], rtol=1e-5, atol=1e-6 * float(e.eds[ln].max()))
    assert sim.haadf.shape == (5, N, N)
    np.testing.assert_allclose(sim.haadf, h.haadf, rtol=1e-5, atol=1e-6 * float(h.haadf.max()))
    assert sim.metadata["eds_dose"] == pytest.approx(e.metadata["eds_dose"])
    assert sim.metadata["haadf_angles_deg"] == haadf_deg.tolist()


def test_noise_is_poisson_and_deterministic_by_seed(spec):
    eds_deg, haadf_deg = tilt_set_angles(70, 5, 9)
    a = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, seed=3, elastic="auto")
    b = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, seed=3, elastic="auto")
    c = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, seed=4, elastic="auto")
    mean = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, noise=False, elastic="auto")
    for ln in a.lines:
        np.testing.assert_array_equal(a.eds[ln], b.eds[ln])
        assert not np.array_equal(a.eds[ln], c.eds[ln])
        assert np.all(a.eds[ln] == np.round(a.eds[ln]))
        # Poisson: the sum of the counts within 5 sigma of the sum of the means
        m = float(mean.eds[ln].sum())
        assert abs(float(a.eds[ln].sum()) - m) < 5 * np.sqrt(m)
    np.testing.assert_array_equal(a.haadf, b.haadf)
    assert a.metadata["seed"] == 3 and a.metadata["noise"] == "poisson"


def test_series_shared_and_own_angles(spec):
    """Equal sets give a one-set series; different sets give the HAADF its own angles; slices cut every stack."""
    eds_deg, haadf_deg = tilt_set_angles(70, 5, 5)
    s = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, elastic="auto").series((4, 7))
    assert s.haadf.shape == (5, 3, N) and s.eds[s.lines[0]].shape == (5, 3, N)
    assert getattr(s, "haadf_angles_deg", None) is None
    assert s.metadata["slices"] == [4, 7]
    eds_deg, haadf_deg = tilt_set_angles(70, 5, 9)
    sim = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, 1.0, elastic="auto")
    s = sim.series()
    np.testing.assert_array_equal(s.angles_deg, eds_deg)
    np.testing.assert_array_equal(s.haadf_angles_deg, haadf_deg)
    assert s.haadf.shape == (9, N, N) and s.eds[s.lines[0]].shape == (5, N, N)
    np.testing.assert_array_equal(s.haadf, sim.haadf)
    with pytest.raises(ValueError, match="slices"):
        sim.series((5, 5))
