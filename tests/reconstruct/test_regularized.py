"""The regularised models (least squares + TV, Poisson + TV, fused HAADF-EDS + TV) on problems with known answers."""

import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import make_operator
from chemtomo.reconstruct import ChannelData, get_method, sirt
from chemtomo.reconstruct.fused import tv_constants, tv_solve, tv_weight
from chemtomo.reconstruct.tv import tv_norm

N = 32


@pytest.fixture(scope="module")
def problem():
    """Two-channel piecewise-constant core-shell disk, 31 tilts: noiseless counts (~165 per ray)."""
    g = TiltGeometry(np.arange(-75.0, 75.1, 5.0), N, 1.0)
    W = make_operator(g)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    r = np.hypot(yy, xx)
    core, shell = r < 6, (r >= 6) & (r < 12)
    X = 20 * np.stack([0.3 * core + 1.0 * shell, 0.8 * core + 0.2 * shell]).reshape(2, -1, 1).astype(np.float32)
    counts = np.stack([W.forward(X[i]) for i in range(2)])
    return W, X, counts


@pytest.mark.parametrize("model", ["ls", "poisson", "fused"])
def test_noiseless_piecewise_constant_phantom_is_recovered(problem, model):
    """Exact data, small TV weight (mu = 0.001): the maps within 0.5 % (relative L2) of the phantom."""
    W, X, counts = problem
    kw = {}
    r = np.array([2.0, 5.0])
    if model == "fused":
        kw = {"haadf": (r[:, None, None] * counts).sum(axis=0), "r": r}
    res = tv_solve(W, counts, model=model, mu=0.001, n_iter=1500, **kw)
    x = res.x[:, :, 0] / (r[:, None] if model == "fused" else 1.0)
    assert res.info["factor"] == ("z" if model == "fused" else "f")
    assert np.linalg.norm(x - X[:, :, 0]) <= 5e-3 * np.linalg.norm(X)
    assert np.all(res.x >= 0)


@pytest.mark.parametrize("model", ["ls", "poisson"])
def test_objective_falls_and_weight_smooths(problem, model):
    """Noisy counts: the monitored objective falls; a larger TV weight gives a smaller TV (per column)."""
    W, X, counts = problem
    rng = np.random.default_rng(0)
    noisy = rng.poisson(np.repeat(counts, 3, axis=2)).astype(np.float32)
    mus = np.array([0.03, 0.1, 0.3])
    res = tv_solve(W, noisy, model=model, mu=mus, n_iter=300, monitor_every=10)  # a history (default: last only)
    obj = res.info["objective"]
    assert np.all(obj[-1] < obj[0])
    assert np.all(np.diff(obj[::5], axis=0) <= 1e-6 * np.abs(obj[0]))
    tv = [tv_norm(res.x[:, :, j].ravel(), (N, N), 2, coupled=True) for j in range(3)]
    assert tv[0] > tv[1] > tv[2]
    np.testing.assert_allclose(res.info["lam"], tv_weight(mus, W, tv_constants(W, noisy, model)))


@pytest.mark.parametrize("model", ["ls", "poisson", "fused"])
def test_a_column_does_not_depend_on_its_batch(problem, model):
    """With the constants of all the data, a column solved in a batch equals the same column solved alone.

    So a volume's slice does not depend on its chunk; equal to float32 rounding.
    """
    W, _, counts = problem
    rng = np.random.default_rng(1)
    noisy = rng.poisson(np.repeat(counts, 3, axis=2) * np.array([1.0, 0.3, 3.0])).astype(np.float32)
    r = np.array([2.0, 5.0])
    haadf = (r[:, None, None] * noisy).sum(axis=0) if model == "fused" else None
    const = tv_constants(W, noisy, model, haadf=haadf, r=r)
    kw = {"haadf": haadf, "r": r, "constants": const, "n_iter": 60, "mu": 0.1}
    both = tv_solve(W, noisy, model=model, **kw)
    one = tv_solve(W, noisy[:, :, 1:2], model=model, **{**kw, "haadf": None if haadf is None else haadf[:, 1:2]})
    np.testing.assert_allclose(both.x[:, :, 1], one.x[:, :, 0], rtol=1e-5, atol=1e-5 * one.x.max())
    # without them, the constants (and so the model's noise scale) are those of the batch
    alone = tv_solve(W, noisy[:, :, 1:2], model=model, **{**kw, "constants": None,
                                                            "haadf": None if haadf is None else haadf[:, 1:2]})
    assert alone.info["lam"][0] != pytest.approx(both.info["lam"][1], rel=1e-3)


def test_mu_is_in_units_of_the_relative_noise(problem):
    """``lam = mu wbar / (sqrt(bbar) u)``: 100x the counts (10x lower relative noise) gives lam / 10."""
    W, _, counts = problem
    l1 = tv_weight(0.2, W, tv_constants(W, counts, "poisson"))
    l2 = tv_weight(0.2, W, tv_constants(W, 100 * counts, "poisson"))
    assert l2 == pytest.approx(l1 / 10, rel=1e-6)


def test_ray_masked_sirt_equals_sirt_on_the_kept_rays(problem):
    """Held-out rays enter nothing: SIRT with a ray mask equals SIRT on the operator with those rows removed."""
    W, _, counts = problem
    rng = np.random.default_rng(2)
    keep = (rng.random(W.shape[0]) > 0.25).astype(np.float32)
    b = counts[0]
    got = sirt(W, b, 30, ray_mask=keep[:, None]).x
    import scipy.sparse as sp

    from chemtomo.projector import MatrixOperator

    rows = np.flatnonzero(keep)
    A = sp.csr_matrix(W.forward(np.eye(W.shape[1], dtype=np.float32)))[rows]
    want = sirt(MatrixOperator(A), b[rows], 30).x
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())


def test_registered_methods_run_through_the_method_contract(problem):
    W, X, counts = problem
    r = np.array([2.0, 5.0])
    data = ChannelData(["A_Ka", "B_Ka"], counts, (r[:, None, None] * counts).sum(axis=0), r)
    for name, factor in (("ls_tv", "f"), ("poisson_tv", "f"), ("fused_tv", "z")):
        res = get_method(name)(W, data, n_iter=20, mu=0.1)
        assert res.maps.shape == (2, N * N, 1) and res.factor == factor
        assert res.info["mu"] == 0.1 and res.info["lam"] > 0
    with pytest.raises(ValueError, match="needs HAADF"):
        get_method("fused_tv")(W, ChannelData(["A_Ka", "B_Ka"], counts), n_iter=5)


def test_input_errors(problem):
    W, _, counts = problem
    with pytest.raises(ValueError, match="model must be one of"):
        tv_solve(W, counts, model="gauss", mu=0.1)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tv_solve(W, -counts, model="ls", mu=0.1)
    with pytest.raises(ValueError, match=r"counts must be \(k, n_rays"):
        tv_solve(W, counts[:, :-1], model="ls", mu=0.1)
    with pytest.raises(ValueError, match="give a TV weight"):
        tv_solve(W, counts, model="ls")
    with pytest.raises(ValueError, match="needs the HAADF"):
        tv_solve(W, counts, model="fused", mu=0.1)
    with pytest.raises(ValueError, match="positive response ratios"):
        tv_solve(W, counts, model="fused", mu=0.1, haadf=counts.sum(axis=0), r=[1.0, -2.0])
    with pytest.raises(ValueError, match="r_A = 0 does not explain the HAADF"):  # the pipeline's path: constants first
        tv_constants(W, counts, "fused", haadf=counts.sum(axis=0), r=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="TV weight mu must be finite"):
        tv_solve(W, counts, model="ls", mu=-1.0)
    with pytest.raises(ValueError, match="does not hold 36 pixels"):
        tv_solve(make_operator(TiltGeometry(np.arange(-60.0, 61.0, 30.0), 6, 1.0)),
                 np.ones((1, 30, 1), np.float32), model="ls", mu=0.1, image_shape=(5, 7))


def test_warm_start_from_a_solve_resumes_at_its_saddle_point(problem):
    """A solve handed its own maps and duals (``x0``, ``dual0``) resumes where it stopped.

    After 400 iterations, 10 more move the maps by under 1 % of what 10 iterations from the same maps with zero
    duals move them (a resumed saddle point against a restarted one), and the warm-started
    objective does not rise above the long solve's (noisy fused problem).
    """
    W, X, counts = problem
    rng = np.random.default_rng(1)
    noisy = rng.poisson(counts).astype(np.float32)
    r = np.array([2.0, 5.0])
    kw = {"model": "fused", "mu": 0.1, "haadf": (r[:, None, None] * noisy).sum(axis=0), "r": r}
    long = tv_solve(W, noisy, n_iter=400, return_dual=True, **kw)
    assert [d.shape for d in long.info["dual"]] == [(3 * W.shape[0], 1), (2 * 2 * W.shape[1], 1)]
    warm = tv_solve(W, noisy, n_iter=10, x0=long.x, dual0=long.info["dual"], **kw)
    cold = tv_solve(W, noisy, n_iter=10, x0=long.x, **kw)
    assert "dual" not in warm.info
    moved_warm = np.linalg.norm(warm.x - long.x)
    moved_cold = np.linalg.norm(cold.x - long.x)
    assert moved_warm < 0.01 * moved_cold
    assert warm.objective[-1, 0] <= long.objective[-1, 0] * (1 + 1e-6)
    with pytest.raises(ValueError, match="y0 must hold one dual per term"):
        tv_solve(W, noisy, n_iter=2, dual0=long.info["dual"][:1], **kw)
    with pytest.raises(ValueError, match=r"y0 for term data must be"):
        tv_solve(W, noisy, n_iter=2, dual0=[long.info["dual"][0][:5], None], **kw)
