"""EDS-SIRT's stopping rule with a model-error floor (issue 13): the target, and a case with model error."""

from __future__ import annotations

import numpy as np
import pytest

from chemtomo.geometry import columns_to_volume, sinogram_to_columns
from chemtomo.preprocess import FILTER_SIGMA_PX, gaussian_filter_stack
from chemtomo.projector import make_modality_operator
from chemtomo.quantify import weight_fractions
from chemtomo.reconstruct import ChannelData, get_method
from chemtomo.reconstruct.autoparam import discrepancy_sirt_iterations
from chemtomo.reconstruct.stopping import FLOOR_TOL, floor_discrepancy_sirt_iterations, floor_target
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import sub_series


def test_floor_target_is_classic_without_a_floor():
    """A curve levelled off below 1 (the late iterations fit the noise) keeps the classic target 1."""
    assert floor_target([3.0, 1.5, 1.02, 0.97, 0.95], floor_tol=0.03) == (1.0, False)
    assert floor_target([3.0, 1.5, 1.02, 0.99, 0.98], floor_tol=0.03) == (pytest.approx(1.01), True)


def test_floor_target_follows_a_levelled_floor():
    """A curve levelled off above 1: the target is its minimum plus the tolerance."""
    target, floor = floor_target([2.0, 1.4, 1.30, 1.28, 1.275], floor_tol=0.03)
    assert floor and target == pytest.approx(1.305)


def test_floor_target_ignores_a_curve_still_falling():
    """Still falling by more than the tolerance at the grid's end: the classic target 1 (more iterations fit signal)."""
    assert floor_target([4.0, 3.0, 2.0, 1.5], floor_tol=0.03) == (1.0, False)
    assert floor_target([4.0, 3.0, 0.99, 0.9], floor_tol=0.03) == (1.0, False)


@pytest.mark.parametrize("bad", [[], [1.0, np.nan], [[1.0, 2.0]]])
def test_floor_target_rejects_bad_curves(bad):
    with pytest.raises(ValueError, match="ratios"):
        floor_target(bad)


def test_floor_target_rejects_a_negative_tolerance():
    with pytest.raises(ValueError, match="floor_tol"):
        floor_target([1.2, 1.1], floor_tol=-0.1)


GRID = (5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500)


@pytest.fixture(scope="module")
def model_error_case():
    """The suite's core-shell particle projected on a 2x finer grid, 1/10 of the paper's dose, Gaussian-filtered.

    Reconstructed on the coarse grid, the data are not the model's: the deviance keeps
    a floor above the noise's expectation.
    """
    n = 20
    spec = make_specimen("core_shell", n, 2, 0)
    angles = np.arange(-70.0, 70.1, 5.0)
    sim = simulate_series(spec, angles, dose_scale=0.1, beam_kev=200.0, seed=0, elastic="auto")
    a, b = n // 2 - 3, n // 2 + 3
    series = sub_series(sim.series, a, b)
    lines = series.lines
    raw = np.stack([sinogram_to_columns(series.eds[ln]) for ln in lines])
    filt = np.stack([sinogram_to_columns(gaussian_filter_stack(series.eds[ln], FILTER_SIGMA_PX, "image"))
                     for ln in lines])
    W = make_modality_operator(series.geometry(), None, "batched")
    return spec, sim, series, W, raw, filt, (a, b)


def _fraction_mse(spec, sim, series, maps, sl):
    """Weight-fraction MSE on the truth's particle, without a segmentation mask (independent of the rule)."""
    a, b = sl
    elements = [sim.factors[ln].element for ln in series.lines]
    w = weight_fractions(maps, sim.factors.f(series.lines))
    order = [elements.index(el) for el in spec.elements]
    truth = spec.weight[:, a:b]
    particle = spec.particle[a:b]
    return float(np.mean([np.mean((w[i] - truth[j])[particle] ** 2) for j, i in enumerate(order)]))


def test_floor_rule_on_a_case_with_model_error(model_error_case):
    """The classic rule runs to the grid's end; the floor rule stops within 1.2x of the oracle's error.

    The oracle: the grid point with the lowest weight-fraction MSE on the truth's particle
    (no mask, so the score is the reconstruction's, not a segmentation's).
    """
    spec, sim, series, W, raw, filt, sl = model_error_case
    classic = discrepancy_sirt_iterations(W, raw, GRID, data=filt)
    assert not classic.info["reached"] and classic.params["n"] == GRID[-1]
    assert min(classic.scores) > 1.0 + FLOOR_TOL  # the model-error floor
    chosen = floor_discrepancy_sirt_iterations(W, raw, GRID, data=filt)
    assert chosen.info["floor"] and chosen.params["n"] < GRID[-1]
    m = get_method("eds_sirt")
    res = m.solve(W, ChannelData(list(series.lines), filt, None, None), m.params({"n_iter": GRID[-1]}),
                  snapshots=GRID)
    n_grid = series.geometry().n_grid
    errs = {}
    for n in GRID:
        cols = res.snapshots[n] if n in res.snapshots else res.maps
        maps = np.stack([columns_to_volume(c, n_grid) for c in cols])
        errs[n] = _fraction_mse(spec, sim, series, maps, sl)
    oracle = min(errs.values())
    assert errs[chosen.params["n"]] <= 1.2 * oracle, (chosen.params, errs)
    assert errs[GRID[-1]] > errs[chosen.params["n"]]  # the floor rule improves on the classic one here
