"""Parameters from the data alone: Poisson statistics, folds, leakage, and the rules on small problems."""

import numpy as np
import pytest
from scipy.stats import multinomial

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import make_operator
from chemtomo.reconstruct.autoparam import choose_parameters, cv_sirt_iterations, discrepancy_sirt_iterations
from chemtomo.reconstruct.heldout import (
    composition_deviance,
    expected_deviance,
    filter_training,
    heldout_deviance,
    poisson_deviance,
    ray_folds,
    training_masks,
)


def test_expected_deviance_against_monte_carlo():
    """E[D] for b ~ Poisson(mu): the exact sum (mu < 30) and the asymptotic series, against sampling.

    400 000 draws per mean (standard error of the mean deviance below 0.5 %).
    """
    rng = np.random.default_rng(0)
    mu = np.array([0.05, 0.5, 2.0, 8.0, 29.0, 31.0, 200.0])
    b = rng.poisson(mu, size=(400_000, mu.size))
    mc = poisson_deviance(b, mu).mean(axis=0)
    np.testing.assert_allclose(expected_deviance(mu), mc, rtol=0.01)


def test_composition_deviance_is_the_multinomial_likelihood_ratio():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 30, (3, 5, 1)).astype(float)
    counts[:, 0, 0] = [4, 0, 9]
    shares = rng.random((3, 5, 1)) + 0.1
    got = composition_deviance(counts, shares)[:, 0]
    for i in range(5):
        n = int(counts[:, i, 0].sum())
        p = shares[:, i, 0] / shares[:, i, 0].sum()
        sat = counts[:, i, 0] / max(n, 1)
        want = 2 * (multinomial.logpmf(counts[:, i, 0], n, sat) - multinomial.logpmf(counts[:, i, 0], n, p))
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-9)
    # blind to the total intensity: predictions scaled per ray score the same
    np.testing.assert_allclose(composition_deviance(counts, 7.0 * shares), composition_deviance(counts, shares))


def test_folds_are_balanced_and_deterministic():
    f = ray_folds(103, 4, seed=3)
    assert np.array_equal(f, ray_folds(103, 4, seed=3))
    assert sorted(np.bincount(f)) == [25, 26, 26, 26]
    m = training_masks(f)
    assert m.shape == (103, 4) and np.all(m.sum(axis=1) == 3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        ray_folds(10, 1)


def test_training_filter_does_not_see_held_out_counts():
    """Changing the counts on a fold's held-out rays leaves that fold's training data unchanged."""
    rng = np.random.default_rng(4)
    n_tilts, n_pix, s = 9, 12, 2
    counts = rng.poisson(20, (2, n_tilts * n_pix, s)).astype(np.float32)
    masks = training_masks(ray_folds(n_tilts * n_pix, 4, seed=5))
    a = filter_training(counts, masks, n_tilts, n_pix, 0.8)
    held = masks[:, 0] == 0
    changed = counts.copy()
    changed[:, held] += 1000
    b = filter_training(changed, masks, n_tilts, n_pix, 0.8)
    np.testing.assert_array_equal(a[:, :, :s], b[:, :, :s])  # fold 0
    assert not np.array_equal(a[:, :, s:], b[:, :, s:])  # the other folds train on those rays


@pytest.fixture(scope="module")
def disk():
    """A 2-line core-shell disk, 32 px, 31 tilts, and its expected counts (about 10 per ray at most)."""
    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 32, 1.0)
    W = make_operator(g)
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(yy, xx)
    core, shell = r < 6, (r >= 6) & (r < 12)
    X = np.stack([0.3 * core + 1.0 * shell, 0.8 * core + 0.2 * shell]).reshape(2, -1, 1).astype(np.float32)
    return g, W, X, np.stack([W.forward(X[i]) for i in range(2)])


def test_discrepancy_rule_stops_early_on_noisy_counts_and_runs_on_without_noise(disk):
    g, W, X, mean = disk
    grid = (5, 10, 20, 50, 100, 200, 400)
    noisy = np.random.default_rng(8).poisson(0.5 * mean).astype(np.float32)
    low = discrepancy_sirt_iterations(W, noisy, grid)
    assert low.info["reached"] and low.params["n"] < 200
    assert low.scores[grid.index(low.params["n"])] <= 1 < low.scores[max(grid.index(low.params["n"]) - 1, 0)] \
        or low.params["n"] == grid[0]
    # noiseless "counts" scaled up: the fit never reaches the Poisson noise level -> the largest n
    exact = discrepancy_sirt_iterations(W, 1000 * mean, grid)
    assert not exact.info["reached"] and exact.params["n"] == 400
    with pytest.raises(ValueError, match="noise_factor"):
        discrepancy_sirt_iterations(W, noisy, grid, noise_factor=0)


def test_cross_validation_prefers_an_interior_iteration_count_on_noisy_counts(disk):
    """Semi-convergence: with few counts, neither the first nor the last n of the grid predicts best."""
    g, W, X, mean = disk
    noisy = np.random.default_rng(9).poisson(0.3 * np.repeat(mean, 2, axis=2)).astype(np.float32)
    cv = cv_sirt_iterations(W, noisy, (2, 5, 10, 20, 50, 200, 800), n_tilts=g.n_tilts, n_pixels=g.n_pixels,
                            filter_sigma=0.0)
    assert cv.params["n"] not in (2, 800)
    assert cv.scores.shape == (7,) and np.argmin(cv.scores) == [2, 5, 10, 20, 50, 200, 800].index(cv.params["n"])


def test_tv_weight_by_cv_is_near_the_oracle_on_a_small_problem(disk):
    """The CV-chosen mu gives a map error within 1.5x of the best over the grid (oracle: the phantom)."""
    from chemtomo.reconstruct.fused import tv_solve

    g, W, X, mean = disk
    noisy = np.random.default_rng(10).poisson(2.0 * mean).astype(np.float32)
    mus = (0.03, 0.06, 0.12, 0.24, 0.48, 0.96)
    choice = choose_parameters("poisson_tv", W, noisy, grid={"mu": mus}, n_iter=150)
    assert mus[0] <= choice.info["mu_cv"] <= mus[-1]
    sweep = tv_solve(W, np.repeat(noisy, len(mus) + 1, axis=2), model="poisson",
                     mu=np.array([*mus, choice.params["mu"]]), n_iter=150)
    err = np.linalg.norm(sweep.x - 2.0 * X, axis=(0, 1))
    assert err[-1] <= 1.5 * err[:-1].min()


def test_heldout_deviance_single_line_is_poisson():
    b = np.array([[[3.0], [0.0], [5.0]]])
    mu = np.array([[[2.0], [1.0], [5.0]]])
    held = np.array([[1.0], [0.0], [1.0]])
    assert heldout_deviance(b, mu, held)[0] == pytest.approx(poisson_deviance(3.0, 2.0))


def test_choose_parameters_errors(disk):
    g, W, X, mean = disk
    with pytest.raises(ValueError, match="no automatic parameter rule"):
        choose_parameters("magic", W, mean)
    with pytest.raises(ValueError, match="needs the HAADF"):
        choose_parameters("fused_tv", W, mean)
    with pytest.raises(ValueError, match="n_tilts and n_pixels"):
        choose_parameters("hebt_sirt", W, mean, haadf=mean.sum(axis=0), r=[1.0, 1.0])


def test_tv_rule_stopping_on_the_choice(disk):
    """The batched TV rule's stopping rule on the choice: off by default, and its checks and cost reported.

    choice_tol = 0 runs the whole budget; with a tolerance, the solve stops once the choice has
    settled inside the grid.
    """
    from chemtomo.reconstruct.autoparam import cv_tv_weight

    g, W, X, mean = disk
    noisy = np.random.default_rng(10).poisson(2.0 * mean).astype(np.float32)
    mus = (0.06, 0.12, 0.24, 0.48)
    # the stopping rule is the batched schedule's (the default; named here as the continuation schedule refuses it)
    full = cv_tv_weight(W, noisy, "poisson", mus, n_iter=120, choice_tol=0.0, schedule="batched")
    assert full.info["iterations"] == 120 and full.info["checks"] == []
    early = cv_tv_weight(W, noisy, "poisson", mus, n_iter=120, choice_tol=0.5, check_every=10, schedule="batched")
    its = [c[0] for c in early.info["checks"]]
    assert its == list(range(10, 10 * len(its) + 1, 10))
    assert early.info["iterations"] <= 120 and early.info["column_iterations"] == early.info["iterations"] * 4 * 4
    if early.info["iterations"] < 120:
        m = [c[1] for c in early.info["checks"][-3:]]
        assert max(abs(np.log(m[1] / m[0])), abs(np.log(m[2] / m[1]))) <= np.log(1.5)
    with pytest.raises(ValueError, match="choice_tol"):
        cv_tv_weight(W, noisy, "poisson", mus, n_iter=10, choice_tol=-1)


def test_tv_rule_continuation_matches_the_batched_rule_and_reports_its_cost(disk):
    """The continuation schedule (the grid as a warm-started path) chooses as the batched rule does.

    On the disk at low dose (2 slices, 4 folds, 5 weights a factor 2 apart, 150 iterations) its
    choice is within a factor 1.25 (a third of the grid's spacing) of the batched rule's, at
    half its cost: 150 iterations at the largest weight, then 50 per weight from its
    neighbour, each over the 4 folds x 2 slices; ``column_iterations`` counts exactly those.
    """
    from chemtomo.reconstruct.autoparam import cv_tv_weight

    g, W, X, mean = disk
    noisy = np.random.default_rng(10).poisson(2.0 * np.repeat(mean, 2, axis=2)).astype(np.float32)
    mus = (0.03, 0.06, 0.12, 0.24, 0.48)
    old = cv_tv_weight(W, noisy, "poisson", mus, n_iter=150, schedule="batched")
    new = cv_tv_weight(W, noisy, "poisson", mus, n_iter=150, schedule="continuation")
    assert new.info["schedule"] == "continuation" and new.info["warm_iterations"] == 50
    assert new.info["path_iterations"] == [150, 50, 50, 50, 50]
    assert new.info["iterations"] == 350 and new.info["column_iterations"] == 350 * 4 * 2
    assert old.info["column_iterations"] == 150 * 4 * 5 * 2
    assert abs(np.log(new.params["mu"] / old.params["mu"])) <= np.log(1.25)
    assert np.all(np.isfinite(new.scores)) and new.scores.shape == (5,)
    short = cv_tv_weight(W, noisy, "poisson", mus, n_iter=150, schedule="continuation", warm_iterations=7)
    assert short.info["path_iterations"] == [150, 7, 7, 7, 7]
    with pytest.raises(ValueError, match="schedule"):
        cv_tv_weight(W, noisy, "poisson", mus, n_iter=10, schedule="path")
    with pytest.raises(ValueError, match="choice_tol"):
        cv_tv_weight(W, noisy, "poisson", mus, n_iter=10, schedule="continuation", choice_tol=0.02)


def test_tv_path_resumes_a_solve_at_the_same_weight(disk):
    """A path that repeats one weight continues the first solve.

    100 then 60 warm iterations land where 160 iterations in one solve do (within a tenth of
    what those last 60 iterations move the maps), and every point is reported.
    """
    from chemtomo.reconstruct.fused import tv_constants, tv_solve
    from chemtomo.reconstruct.tvpath import tv_path

    g, W, X, mean = disk
    noisy = np.random.default_rng(11).poisson(2.0 * mean).astype(np.float32)
    c = tv_constants(W, noisy, "poisson")
    seen = []

    def keep(j, mu, res):
        seen.append((j, mu, res.x.copy()))

    done = tv_path(W, noisy, [0.2, 0.2], n_iter=100, warm_iterations=60, on_point=keep, model="poisson",
                   constants=c)
    assert done == [100, 60] and [(j, mu) for j, mu, _ in seen] == [(0, 0.2), (1, 0.2)]
    one = tv_solve(W, noisy, model="poisson", mu=0.2, n_iter=160, constants=c).x
    np.testing.assert_array_equal(seen[0][2], tv_solve(W, noisy, model="poisson", mu=0.2, n_iter=100,
                                                        constants=c).x)
    assert np.linalg.norm(seen[1][2] - one) < 0.1 * np.linalg.norm(seen[0][2] - one)
    stop = tv_path(W, noisy, [0.4, 0.2, 0.1], n_iter=20, warm_iterations=5, on_point=lambda j, mu, r: j == 1,
                   model="poisson", constants=c)
    assert stop == [20, 5]
    with pytest.raises(ValueError, match="sets"):
        tv_path(W, noisy, [0.2], n_iter=5, warm_iterations=5, model="poisson", mu=0.1)
    with pytest.raises(ValueError, match="mus"):
        tv_path(W, noisy, [], n_iter=5, warm_iterations=5, model="poisson")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("prior", [{}, {"prior": "huber", "huber_delta": 0.3, "slice_block": 3}])
def test_tv_rule_column_groups_give_the_bits_of_one_solve(disk, monkeypatch, prior, workers):
    """The batched rule's columns solved in small groups: the same scores and choice, bit for bit.

    The columns (folds x candidates x slices) are independent problems, or blocks of coupled
    slices with a prior across slices, so the groups must not change a bit; the groups are cut
    at 1 column (TV) or 1 block of 3 (Huber across slices) here, and run one at a time or two
    at once on threads.
    """
    import chemtomo.reconstruct.autoparam as ap

    monkeypatch.setattr(ap, "concurrent_workers", lambda n_tasks=None: min(workers, n_tasks or workers))
    g, W, X, mean = disk
    noisy = np.random.default_rng(11).poisson(np.repeat(2.0 * mean, 3, axis=2)).astype(np.float32)
    mus = (0.06, 0.24)
    run = lambda: ap.cv_tv_weight(W, noisy, "poisson", mus, n_iter=30, **prior)  # noqa: E731
    monkeypatch.setattr(ap, "RULE_GROUP_BYTES", 2**40)
    whole = run()
    monkeypatch.setattr(ap, "RULE_GROUP_BYTES", 1)
    grouped = run()
    assert np.array_equal(whole.scores, grouped.scores)
    assert whole.params == grouped.params and grouped.info["column_iterations"] == 30 * 4 * 2 * 3
