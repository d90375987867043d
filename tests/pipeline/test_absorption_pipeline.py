"""Absorption-corrected reconstruction on the oxide-supported specimen (noiseless, small)."""

import numpy as np
import pytest

from chemtomo.pipeline.absorption import reconstruct_absorption_corrected
from chemtomo.simulate.absorption import simulate_series_absorbed
from chemtomo.simulate.specimens import make_specimen


@pytest.fixture(scope="module")
def corrected():
    sp = make_specimen("oxide_supported", n=16, oversampling=2, field_nm=300.0)
    sim = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 15.0), "super-x", noise=False, step_fraction=1.0)
    res = reconstruct_absorption_corrected(sim.series, sim.factors, "eds_sirt", n_iter=100, filter_sigma=None)
    return sp, res


def test_correction_recovers_the_light_elements(corrected):
    sp, res = corrected
    truth = sp.region_means()["support"]
    before = sp.region_means(np.asarray(res.uncorrected.composition.weight))["support"]
    after = sp.region_means(np.asarray(res.corrected.composition.weight))["support"]
    # measured: O 0.424 -> 0.468 (truth 0.471), Al 0.574 -> 0.530 (truth 0.529), 1 outer iteration
    # (the next one predicted to change the fractions by 0.002; twice that < tol 0.005)
    assert truth["O"] - before["O"] > 0.03
    assert abs(after["O"] - truth["O"]) < 0.01 and abs(after["Al"] - truth["Al"]) < 0.01
    assert res.converged and res.outer_iterations <= 3
    assert len(res.predicted_changes) == res.outer_iterations and 2 * res.predicted_changes[-1] < 0.005
    inside = sp.particle

    def mse(vr):
        return float(((np.asarray(vr.composition.weight) - sp.weight)[:, inside] ** 2).mean())

    assert mse(res.corrected) < 0.7 * mse(res.uncorrected)  # measured 0.0037 vs 0.0058 (the rest: resolution)
    assert set(res.transmissions) == set(res.corrected.lines)
    # the density estimated from the absolute maps: the support near corundum's 3.99 g/cm^3 (measured 3.92)
    assert res.density_g_cm3[sp.regions["support"]].mean() == pytest.approx(3.99, rel=0.05)


def test_predicted_stop_agrees_with_the_measured_one(corrected):
    """The measured rule makes the reconstruction the predicted rule only foresees; both agree within tol.

    The first corrected reconstruction is the same under both rules (same correction, same threshold);
    the measured rule's second one changes the fractions by about what was predicted (measured 0.0030
    against 0.0021 predicted) and less than tol. The HAADF volume is made once and reused.
    """
    sp, res = corrected
    sim = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 15.0), "super-x", noise=False, step_fraction=1.0)
    meas = reconstruct_absorption_corrected(sim.series, sim.factors, "eds_sirt", n_iter=100, filter_sigma=None,
                                            stop="measured")
    assert meas.changes[0] == pytest.approx(res.changes[0], rel=1e-6)
    assert meas.outer_iterations == res.outer_iterations + 1 and meas.converged
    assert meas.changes[-1] < 0.005 and meas.changes[-1] < 2 * res.predicted_changes[-1]
    assert meas.predicted_changes == [] and meas.parameters["stop"] == "measured"
    for r in (res, meas):
        assert r.corrected.haadf_volume is not None
        np.testing.assert_array_equal(r.corrected.haadf_volume, r.uncorrected.haadf_volume)
        assert r.corrected.parameters["haadf_volume"] == r.uncorrected.parameters["haadf_volume"]
    with pytest.raises(ValueError, match="stop"):
        reconstruct_absorption_corrected(sim.series, sim.factors, stop="confirm")


def test_refuses_bad_options(corrected):
    sp, res = corrected
    with pytest.raises(ValueError, match="tol"):
        reconstruct_absorption_corrected(None, None, tol=0.0)
    with pytest.raises(ValueError, match="max_outer"):
        reconstruct_absorption_corrected(None, None, max_outer=0)


def test_automatic_choice_is_made_once_and_kept(monkeypatch):
    import chemtomo.pipeline.volume as volume

    calls = []
    real = volume.choose_series_parameters

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(volume, "choose_series_parameters", counting)
    sp = make_specimen("oxide_supported", n=16, oversampling=2, field_nm=300.0)
    sim = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 15.0), "super-x", noise=False, step_fraction=1.0)
    res = reconstruct_absorption_corrected(sim.series, sim.factors, "eds_sirt", filter_sigma=None, auto=True,
                                           auto_grid={"n": [20, 50]}, max_outer=2)
    assert len(calls) == 1
    assert res.corrected.parameters["n_iter"] == res.uncorrected.parameters["n_iter"]
    assert "auto" not in res.corrected.parameters and "auto" in res.uncorrected.parameters


def test_bimodal_method_is_corrected_from_eds_only_estimates(corrected):
    """HEBT-SIRT's own maps carry almost no O Ka on absorbed data; the correction estimates from EDS-SIRT maps.

    Measured on a noisy 13-tilt series (-60..60 deg): support O uncorrected 0.002, corrected 0.371 in 3 outer
    iterations by the measured stop (truth 0.471; estimated from HEBT's own maps the first version moved it by
    less than 0.01). On the fixture's noiseless 9-tilt series HEBT-SIRT keeps O at 0 even after the correction
    (measured 0.001 -> 0.0006): not asserted here, stated in docs/absorption.md.
    """
    sp, _ = corrected
    sim = simulate_series_absorbed(sp, np.arange(-60.0, 61.0, 10.0), "super-x", 1.0, 200.0, 0, step_fraction=1.0,
                                   elastic="auto")
    res = reconstruct_absorption_corrected(sim.series, sim.factors, "hebt_sirt", filter_sigma=None)  # logs r_O = 0
    assert res.parameters["stop"] == "measured" and res.predicted_changes == []
    o = list(sp.elements).index("O")
    before, after = (float(np.asarray(r.composition.weight)[o][sp.regions["support"]].mean())
                     for r in (res.uncorrected, res.corrected))
    assert before < 0.05 and after - before > 0.25
