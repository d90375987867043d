"""HEBT: response ratios, the stacked system, and input checks."""

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.physics import paper_table2
from chemtomo.projector import make_operator
from chemtomo.reconstruct import estimate_response_ratios, hebt_data, hebt_operator, hebt_sirt, sirt
from chemtomo.simulate import Acquisition, core_shell_phantom, simulate_tilt_series


@pytest.fixture(scope="module")
def noiseless():
    geom = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 40, 3.6)
    fine = core_shell_phantom(40 * 2, 1.8)
    factors = paper_table2()
    acq = Acquisition()
    return simulate_tilt_series(fine, geom, factors, acq, noise=False), factors, acq, geom


def test_response_ratios_recovered_from_noiseless_data(noiseless):
    """r_A fitted on noiseless sinograms equals D_H z_A / (D_e Omega/4pi f_A) to 1e-6 relative."""
    sim, factors, acq, _ = noiseless
    rr = estimate_response_ratios(sim.noiseless.haadf, sim.noiseless.eds)
    theory = factors.response_ratios(haadf_dose=acq.haadf_dose, eds_dose=acq.eds_dose,
                                     solid_angle_sr=acq.solid_angle_sr, lines=sim.lines)
    np.testing.assert_allclose(rr.r, theory, rtol=1e-6)
    assert rr.r2 > 1 - 1e-9


def test_response_ratios_r2_drops_with_a_wrong_model(rng):
    a, b = rng.random(500), rng.random(500)
    h = 2 * a + 3 * b + rng.normal(0, 0.5, 500)
    rr = estimate_response_ratios(h, {"A": a, "B": b})
    assert 0.2 < rr.r2 < 0.95
    np.testing.assert_allclose(rr.r, [2, 3], atol=0.3)


def test_response_ratios_nonnegative(rng):
    a, b = rng.random(300), rng.random(300)
    rr = estimate_response_ratios(a - 0.5 * b, {"A": a, "B": b})
    assert np.all(rr.r >= 0)
    with pytest.raises(ValueError, match="same grid"):
        estimate_response_ratios(a, {"A": a[:10]})


def test_hebt_alpha_zero_is_eds_sirt_in_haadf_units(noiseless):
    """With alpha = 0 the stacked system is EDS-only SIRT on r_A I_A: X^b_A = r_A X_A."""
    sim, _, _, geom = noiseless
    W = make_operator(geom)
    from chemtomo.geometry import sinogram_to_columns

    eds = [sinogram_to_columns(sim.series.eds[ln]) for ln in sim.lines]
    h = sinogram_to_columns(sim.series.haadf)
    r = np.array([500.0, 700.0])
    xb = hebt_sirt(W, h, eds, r, 0.0, 30).x.reshape(2, geom.n_voxels, 1)
    for i in range(2):
        xe = sirt(W, eds[i], 30).x
        np.testing.assert_allclose(xb[i], r[i] * xe, rtol=2e-4, atol=1e-3 * np.abs(r[i] * xe).max())


def test_hebt_noiseless_consistent_data_fits_both_terms(noiseless):
    """On noiseless data with exact r_A, HEBT's maps reproduce the EDS and the HAADF data."""
    sim, factors, acq, geom = noiseless
    from chemtomo.geometry import sinogram_to_columns

    W = make_operator(geom)
    eds = [sinogram_to_columns(sim.noiseless.eds[ln]) for ln in sim.lines]
    h = sinogram_to_columns(sim.noiseless.haadf)
    r = factors.response_ratios(haadf_dose=acq.haadf_dose, eds_dose=acq.eds_dose,
                                solid_angle_sr=acq.solid_angle_sr, lines=sim.lines)
    xb = hebt_sirt(W, h, eds, r, 0.8, 300).x.reshape(2, geom.n_voxels, 1)
    hh = sum(W.forward(xb[i]) for i in range(2))
    assert np.linalg.norm(hh - h) / np.linalg.norm(h) < 0.03
    for i in range(2):
        assert np.linalg.norm(W.forward(xb[i]) - r[i] * eds[i]) / np.linalg.norm(r[i] * eds[i]) < 0.06


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5])
def test_alpha_outside_range_rejected(alpha, small_geom):
    W = make_operator(small_geom)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hebt_operator(W, 2, alpha)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hebt_data(np.ones((small_geom.n_rays, 1)), [np.ones((small_geom.n_rays, 1))], [1.0], alpha)


def test_against_theory_is_relative_and_names_its_reference():
    """r_A proportional to z_A / f_A gives 1 for every line, whatever the common factor; errors name the fix."""
    from chemtomo.physics import compute_factors
    from chemtomo.reconstruct import ResponseRatios

    lines = ["O_Ka", "Al_Ka", "Pt_La"]
    fac = compute_factors(lines, 200.0)
    theory = fac.z(lines) / fac.f(lines)
    rr = ResponseRatios(tuple(lines), 37.5 * theory * np.array([1.0, 2.0, 1.0]), 0.9, 100)
    c = rr.against_theory(fac)
    assert c["reference"] == lines[int(np.argmax(rr.r))]
    np.testing.assert_allclose(c["fitted_over_theory"], [1.0, 2.0, 1.0] if c["reference"] != "Al_Ka"
                               else [0.5, 1.0, 0.5], rtol=1e-12)
    np.testing.assert_allclose(rr.against_theory(fac, "O_Ka")["fitted_over_theory"], [1.0, 2.0, 1.0], rtol=1e-12)
    with pytest.raises(ValueError, match="one of the fitted lines"):
        rr.against_theory(fac, "Cu_Ka")
    with pytest.raises(ValueError, match="r_A > 0"):
        ResponseRatios(tuple(lines), np.array([0.0, 1.0, 2.0]), 0.9, 100).against_theory(fac, "O_Ka")


def test_fitted_response_ratios_match_the_theory_that_made_the_data():
    """A suite specimen projected on its finer grid: the NNLS fit recovers eq 16's ratios.

    The simulator draws HAADF and EDS from the same projections with z_A and f_A (no
    reconstruction model involved): noiseless, the fit equals the theory to float32
    rounding (1e-4). With Poisson counts at 1/10 of the paper's dose the noise in the
    regressors (errors in variables) biases the fit: measured 2.45 and 1.52 for O and Al
    relative to Pt on the raw counts; the image-plane filter HEBT fits on must bring the
    worst line closer to 1.
    """
    from chemtomo.preprocess import FILTER_SIGMA_PX, gaussian_filter_stack
    from chemtomo.simulate.specimens import make_specimen, simulate_series

    spec = make_specimen("ternary_gradient", 16, 2, 0)
    angles = np.arange(-60.0, 61.0, 15.0)
    clean = simulate_series(spec, angles, noise=False, elastic="auto")
    s = clean.series
    c = estimate_response_ratios(s.haadf, {ln: s.eds[ln] for ln in s.lines}).against_theory(clean.factors)
    np.testing.assert_allclose(c["fitted_over_theory"], 1.0, rtol=1e-4)
    s = simulate_series(spec, angles, dose_scale=0.1, seed=3, elastic="auto").series

    def worst(f):
        rr = estimate_response_ratios(f(s.haadf), {ln: f(s.eds[ln]) for ln in s.lines})
        return np.max(np.abs(np.log(rr.against_theory(clean.factors)["fitted_over_theory"])))

    raw, filtered = worst(lambda a: a), worst(lambda a: gaussian_filter_stack(a, FILTER_SIGMA_PX))
    assert raw > np.log(1.1)  # the bias is there to be reduced
    assert filtered < raw


def test_noise_corrected_fit_removes_the_attenuation_of_noisy_regressors():
    """Errors in variables: Poisson noise in the EDS regressors shrinks least squares' r_A; the correction does not.

    Two correlated lines (``b = (a + u) / 2``) with a noiseless HAADF ``2 a + 5 b``. With
    Poisson counts of mean 20-200 per sample, least squares' ratios are off by more than 5 %;
    with ``noise_energy = sum(counts)`` (the Poisson variance's unbiased estimate) both
    ratios are within 3 % of the truth (their spread over seeds of 20000 samples: about 1 %).
    """
    rng = np.random.default_rng(7)
    a = rng.uniform(20, 200, 20000)
    b = 0.5 * a + 0.5 * rng.uniform(20, 200, 20000)
    h = 2.0 * a + 5.0 * b
    na, nb = rng.poisson(a).astype(float), rng.poisson(b).astype(float)
    ols = estimate_response_ratios(h, {"A": na, "B": nb})
    eiv = estimate_response_ratios(h, {"A": na, "B": nb}, noise_energy=[na.sum(), nb.sum()])
    assert np.max(np.abs(ols.r / [2.0, 5.0] - 1)) > 0.05
    np.testing.assert_allclose(eiv.r, [2.0, 5.0], rtol=0.03)
    assert "errors in variables" in eiv.basis and "errors" not in ols.basis
    # no noise: the correction changes nothing
    clean = estimate_response_ratios(h, {"A": a, "B": b}, noise_energy=[1e-9 * a.sum(), 1e-9 * b.sum()])
    np.testing.assert_allclose(clean.r, [2.0, 5.0], rtol=1e-6)


def test_noise_correction_leaves_an_unresolved_direction_to_least_squares():
    """Two lines in a fixed ratio (a stoichiometric support) carry no signal in their difference.

    Corrected in every direction, the normal matrix is near-singular along that difference
    (the whitened eigenvalue is near 1) and the split between the two lines is noise
    amplified without bound: one of them gets r_A = 0 here. Below the ramp (``EIV_RAMP``) the
    direction keeps least squares' normal matrix: Al and O stay within 15 % of their truth
    (1 and 1) and Pt, well determined, is corrected to within 1 % (least squares: 9.03 for 10,
    with Al and O at 2.4-2.6).
    """
    rng = np.random.default_rng(3)
    t = rng.uniform(2, 12, 20000)
    al, o = 0.4 * t, 0.6 * t  # fixed Al:O
    pt = rng.uniform(0, 30, 20000)
    h = 1.0 * al + 1.0 * o + 10.0 * pt
    n = {k: rng.poisson(v).astype(float) for k, v in (("Al", al), ("O", o), ("Pt", pt))}
    energy = [n[k].sum() for k in n]
    ols = estimate_response_ratios(h, n)
    eiv = estimate_response_ratios(h, n, noise_energy=energy)
    every = estimate_response_ratios(h, n, noise_energy=energy, ramp=(1.0001, 1.0001))
    assert abs(ols.r[2] / 10.0 - 1) > 0.05 and np.all(ols.r[:2] > 2)
    np.testing.assert_allclose(eiv.r[:2], [1.0, 1.0], rtol=0.15)
    np.testing.assert_allclose(eiv.r[2], 10.0, rtol=0.01)
    assert min(every.r[:2]) == 0.0
    for bad in ((1.0, 2.0), (2.0, 1.5)):
        with pytest.raises(ValueError, match="ramp"):
            estimate_response_ratios(h, n, noise_energy=energy, ramp=bad)
    with pytest.raises(ValueError, match="noise_energy"):
        estimate_response_ratios(h, n, noise_energy=energy[:2])


def test_gaussian_filter_variance_matches_the_filtered_noise():
    """The propagated variance of filtered independent Poisson samples against 400 Monte Carlo draws (5 %)."""
    from chemtomo.preprocess import gaussian_filter_stack, gaussian_filter_variance

    rng = np.random.default_rng(11)
    mean = rng.uniform(5, 50, (3, 12, 16))
    draws = np.stack([gaussian_filter_stack(rng.poisson(mean).astype(np.float32), 0.8, "image") for _ in range(400)])
    pred = gaussian_filter_variance(mean, 0.8, "image")
    ratio = draws.var(axis=0, ddof=1).sum() / pred.sum()
    assert abs(ratio - 1) < 0.05
    # the sinogram axes filter the tilt and pixel axes
    assert gaussian_filter_variance(mean, 0.8, "sinogram").shape == mean.shape
    np.testing.assert_array_equal(gaussian_filter_variance(mean, 0.0, "image"), mean)


def test_pipeline_fit_recovers_the_ternary_particles_ratios():
    """The pipeline's fit on a suite specimen whose lines are nearly collinear (Pd's fraction is constant).

    Least squares of the unfiltered HAADF on the filtered counts is off by 1.35x (Pd at the
    paper's dose) and 1.60x (Pd at 1/10) relative to Pt on this case (n = 24, every slice,
    noise seed 1). :func:`chemtomo.preprocess.fit_response_ratios` (measured 0.98x and
    1.33x) must bring the worst line within 5 % at the paper's dose and within 40 % at 1/10,
    its log error at most 70 % of least squares' (measured 8 % and 60 %). At 1/10 the weakest direction's whitened
    eigenvalue is 1.85, on the ramp (``EIV_RAMP``): only 70 % of its noise energy is removed.
    """
    from chemtomo.preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack
    from chemtomo.simulate.specimens import make_specimen, simulate_series

    spec = make_specimen("ternary_gradient", 24, 2, 0)
    for dose, tol in ((1.0, 1.05), (0.1, 1.4)):
        sim = simulate_series(spec, np.arange(-70.0, 70.1, 5.0), dose_scale=dose, seed=1, elastic="auto")
        s = sim.series
        filt = {ln: gaussian_filter_stack(s.eds[ln], FILTER_SIGMA_PX, "image") for ln in s.lines}

        def worst(rr, sim=sim):
            return np.max(np.abs(np.log(rr.against_theory(sim.factors)["fitted_over_theory"])))

        before = worst(estimate_response_ratios(s.haadf, filt))
        after = worst(fit_response_ratios(s.haadf, filt, s.eds, FILTER_SIGMA_PX, "image", 1.0))
        assert before > np.log(1.3)
        assert after < np.log(tol)
        assert after < 0.7 * before
