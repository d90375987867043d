"""The Huber-TV prior: the slice gradient and its adjoint, the conjugate's proximal map, the solver with it."""

import numpy as np
import pytest
from scipy.optimize import minimize

from chemtomo.projector import dottest
from chemtomo.reconstruct.huber import HuberGroup, SliceGradient
from chemtomo.reconstruct.pdhg import GroupL21, Term, WeightedL2, pdhg
from chemtomo.reconstruct.tv import Gradient2D


def _dense(op, m):
    """The matrix of a column-dependent operator acting on ``m`` columns, as ``(n_out m, n_in m)``."""
    n_in = op.shape[1]
    cols = []
    for j in range(n_in * m):
        flat = np.zeros(n_in * m, np.float32)
        flat[j] = 1  # column-major: the unknown's index within its column runs fastest
        e = np.ascontiguousarray(flat.reshape(n_in, m, order="F"))
        cols.append(op.forward(e).reshape(-1, order="F"))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("shape, k, block, m", [((4, 5), 1, 3, 6), ((3, 4), 2, 4, 4), ((3, 3), 2, 1, 2)])
def test_slice_gradient_adjoint(shape, k, block, m):
    op = SliceGradient(shape, k, block, m)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((op.shape[1], m)).astype(np.float32)
    y = rng.standard_normal((op.shape[0], m)).astype(np.float32)
    lhs = float(np.sum(op.forward(x).astype(np.float64) * y))
    rhs = float(np.sum(x.astype(np.float64) * op.adjoint(y)))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_slice_gradient_is_plane_gradient_and_slice_difference():
    shape, k, block, m = (3, 4), 2, 3, 6
    rng = np.random.default_rng(1)
    x = rng.standard_normal((k * 12, m)).astype(np.float32)
    g = SliceGradient(shape, k, block, m).forward(x)
    np.testing.assert_array_equal(g[:2 * k * 12], Gradient2D(shape, k).forward(x))
    gz = g[2 * k * 12:]
    for j in range(m):
        want = x[:, j + 1] - x[:, j] if j % block != block - 1 else 0 * x[:, j]
        np.testing.assert_allclose(gz[:, j], want, atol=1e-6)


def test_slice_gradient_abs_sums_match_the_matrix():
    shape, k, block, m = (3, 4), 2, 2, 4
    op = SliceGradient(shape, k, block, m)
    A = np.abs(_dense(op, m))  # (n_out m, n_in m), column-major order
    rows = A.sum(axis=1).reshape(op.shape[0], m, order="F")
    np.testing.assert_array_equal(op.abs_row_sums(), rows)
    w = np.random.default_rng(3).random((op.shape[0], m)).astype(np.float32)
    cols = (A.T @ w.reshape(-1, order="F")).reshape(op.shape[1], m, order="F")
    np.testing.assert_allclose(op.abs_col_sums(w), cols, rtol=1e-5)
    np.testing.assert_allclose(op.abs_col_sums(), A.sum(axis=0).reshape(op.shape[1], m, order="F"), rtol=1e-6)


def test_slice_gradient_rejects_a_column_count_that_is_not_a_multiple_of_the_block():
    with pytest.raises(ValueError, match="multiple"):
        SliceGradient((3, 3), 1, 4, 6)
    with pytest.raises(ValueError, match="built for 4 columns"):
        SliceGradient((3, 3), 1, 2, 4).forward(np.zeros((9, 2), np.float32))


def _huber_conj(q, lam, delta):
    """``(lam h_delta(||.||))^*`` of one group, +inf outside the ball (the reference's own formula)."""
    n = np.linalg.norm(q)
    return np.inf if n > lam * (1 + 1e-6) else delta / (2 * lam) * n * n


@pytest.mark.parametrize("coupled", [True, False])
@pytest.mark.parametrize("lam, delta, sigma", [(1.0, 0.5, 0.7), (0.3, 2.0, 3.0), (2.0, 0.0, 1.0), (0.5, 1.0, 0.05)])
def test_huber_conjugate_prox_against_brute_force(coupled, lam, delta, sigma):
    """prox_{sigma F*}(p) = argmin_q F*(q) + ||q - p||^2 / (2 sigma), found by SLSQP on each group."""
    shape, k = (2, 3), 2
    rng = np.random.default_rng(11)
    p = (2 * rng.standard_normal((3 * k * 6, 1))).astype(np.float32)
    f = HuberGroup(lam, delta, k, shape, n_dirs=3, coupled=coupled)
    got = f.prox_conj(p.copy(), np.float32(sigma))
    # groups: rows of one voxel (coupled: all channels), as HuberGroup defines them
    idx = np.arange(p.shape[0])
    plane, slc = idx[:2 * k * 6].reshape(k, 2, 2, 3), idx[2 * k * 6:].reshape(k, 2, 3)
    for yy in range(2):
        for xx in range(3):
            chans = [list(range(k))] if coupled else [[c] for c in range(k)]
            for cs in chans:
                rows = np.concatenate([np.r_[plane[c, :, yy, xx], slc[c, yy, xx]] for c in cs])
                p0 = p[rows, 0].astype(np.float64)
                obj = lambda q, p0=p0: (delta / (2 * lam)) * q @ q + (q - p0) @ (q - p0) / (2 * sigma)  # noqa: E731
                cons = {"type": "ineq", "fun": lambda q: lam ** 2 - q @ q}
                ref = minimize(obj, np.zeros_like(p0), constraints=[cons], method="SLSQP",
                               options={"ftol": 1e-12, "maxiter": 500}).x
                np.testing.assert_allclose(got[rows, 0], ref, atol=2e-4)
                # and the reference does no better than the prox (to float32 rounding of the objective)
                assert obj(got[rows, 0].astype(np.float64)) <= obj(ref) * (1 + 1e-6) + 1e-6
                assert _huber_conj(got[rows, 0].astype(np.float64), lam, delta) < np.inf


def test_huber_with_zero_threshold_is_tv_and_value_is_huber():
    shape, k = (4, 4), 2
    rng = np.random.default_rng(2)
    p = rng.standard_normal((2 * k * 16, 3)).astype(np.float32)
    lam = np.array([0.3, 1.0, 2.0])
    h = HuberGroup(lam, 0.0, k, shape, n_dirs=2, coupled=True)
    tv = GroupL21(lam, k, shape, coupled=True)
    np.testing.assert_allclose(h.prox_conj(p.copy(), 0.5), tv.prox_conj(p.copy(), 0.5), rtol=1e-6)
    np.testing.assert_allclose(h.value(p), tv.value(p), rtol=1e-6)
    # the value: quadratic below delta, linear above, continuous at delta
    g = np.zeros((2 * 16, 2), np.float32)
    g[0, 0], g[0, 1] = 0.5, 3.0  # one nonzero difference per column
    v = HuberGroup(2.0, 1.0, 1, shape, n_dirs=2).value(g)
    np.testing.assert_allclose(v, [2.0 * 0.5 ** 2 / 2, 2.0 * (3.0 - 0.5)], rtol=1e-6)


def test_huber_group_rejects_bad_values():
    with pytest.raises(ValueError, match="delta"):
        HuberGroup(1.0, -1.0, 1, (3, 3))
    with pytest.raises(ValueError, match="n_dirs"):
        HuberGroup(1.0, 1.0, 1, (3, 3), n_dirs=4)


def test_pdhg_huber_denoising_matches_a_direct_minimisation():
    """min_x 1/2 ||x - f||^2 + lam HTV_3D(x) on a 2-slice block: PDHG against L-BFGS on the smooth objective."""
    from chemtomo.projector.base import MatrixOperator

    shape, k, block, m = (5, 5), 2, 2, 2
    n = k * 25
    rng = np.random.default_rng(4)
    f = (1 + 0.3 * rng.standard_normal((n, m))).astype(np.float32)
    lam, delta = 0.2, 0.3  # delta > 0: the objective is differentiable, so L-BFGS finds its minimum
    D = SliceGradient(shape, k, block, m)
    terms = [Term(MatrixOperator(np.eye(n, dtype=np.float32)), WeightedL2(f)),
             Term(D, HuberGroup(lam, delta, k, shape, n_dirs=3, coupled=True))]
    x = pdhg(terms, 800, x0=f.copy(), nonneg=False).x
    # the reference: float64, the gradient matrix written out, groups = a voxel's 3 k differences
    Dd = _dense(D, m).astype(np.float64)  # column-major vectors
    n_out = D.shape[0]
    f64 = f.reshape(-1, order="F").astype(np.float64)
    vox = np.concatenate([np.tile(np.arange(25), 2 * k), np.tile(np.arange(25), k)])  # voxel of each row

    def fun(z):
        g = (Dd @ z).reshape(n_out, m, order="F")
        t = np.sqrt(np.stack([np.bincount(vox, g[:, j] ** 2, minlength=25) for j in range(m)], axis=1))
        h = np.where(t <= delta, t * t / (2 * delta), t - delta / 2)
        dg = g / np.maximum(t, delta)[vox]
        return (0.5 * np.sum((z - f64) ** 2) + lam * h.sum(),
                (z - f64) + lam * Dd.T @ dg.reshape(-1, order="F"))

    ref = minimize(fun, f64, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-10}).x
    got = x.reshape(-1, order="F").astype(np.float64)
    assert fun(got)[0] <= fun(ref)[0] * (1 + 1e-5)
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_dottest_helper_agrees_for_a_single_block():
    """The package's dottest (random columns) on an operator built for as many columns."""
    op = SliceGradient((4, 4), 2, 3, 3)
    lhs, rhs = dottest(op, k=3, rng=0)
    assert lhs == pytest.approx(rhs, rel=1e-5)


# -- the solver and the method --------------------------------------------------------------------

N = 24


@pytest.fixture(scope="module")
def disk():
    """Two-channel core-shell disk, 25 tilts, noiseless counts, and its fused data (r = 2, 5)."""
    from chemtomo.geometry import TiltGeometry
    from chemtomo.projector import make_operator

    W = make_operator(TiltGeometry(np.arange(-60.0, 60.1, 5.0), N, 1.0))
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    rr = np.hypot(yy, xx)
    core, shell = rr < 5, (rr >= 5) & (rr < 9)
    X = 20 * np.stack([0.3 * core + 1.0 * shell, 0.8 * core + 0.2 * shell]).reshape(2, -1, 1).astype(np.float32)
    counts = np.stack([W.forward(X[i]) for i in range(2)])
    r = np.array([2.0, 5.0])
    return W, X, counts, r


def test_identical_slices_make_the_slice_coupling_vanish():
    """Equal slices have zero slice differences: the 3-D minimiser is the 2-D one.

    (The iterates differ on the way, the primal steps see the slice differences, so both run
    to convergence on a small problem: equal to 2e-3 of the maximum.)
    """
    from chemtomo.geometry import TiltGeometry
    from chemtomo.projector import make_operator
    from chemtomo.reconstruct.fused import tv_solve

    n = 12
    W = make_operator(TiltGeometry(np.arange(-60.0, 60.1, 10.0), n, 1.0))
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    X = (30 * (np.hypot(yy, xx) < 4) + 10 * (np.hypot(yy, xx) < 2)).reshape(1, -1, 1).astype(np.float32)
    noisy = np.random.default_rng(0).poisson(W.forward(X[0])[None]).astype(np.float32)
    kw = dict(model="poisson", mu=0.3, n_iter=1500, prior="huber", huber_delta=0.1)
    flat = tv_solve(W, noisy, **kw).x
    coupled = tv_solve(W, np.repeat(noisy, 3, axis=2), slice_block=3, **kw).x
    for j in range(3):
        np.testing.assert_allclose(coupled[:, :, j], flat[:, :, 0], atol=2e-3 * float(flat.max()))


def test_huber_threshold_near_zero_is_tv(disk):
    from chemtomo.reconstruct.fused import tv_solve

    W, X, counts, r = disk
    noisy = np.random.default_rng(1).poisson(counts / 4).astype(np.float32)
    a = tv_solve(W, noisy, model="poisson", mu=0.2, n_iter=60).x
    b = tv_solve(W, noisy, model="poisson", mu=0.2, n_iter=60, prior="huber", huber_delta=1e-7).x
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(a.max()))
    with pytest.raises(ValueError, match="prior"):
        tv_solve(W, noisy, model="poisson", mu=0.2, n_iter=2, prior="tgv")


def test_fused_huber_method_params_and_halo(disk):
    """The registered method: its parameters, its halo, and the halo slices cut from its maps."""
    from chemtomo.reconstruct import ChannelData, get_method

    m = get_method("fused-huber")
    p = m.params()
    assert (p.huber, p.slice_coupling, p.halo_slices, p.mu) == (0.3, True, 4, 0.34)
    assert m.halo_slices(p) == 4 and m.halo_slices(p.replace(slice_coupling=False)) == 0
    assert set(m.default_grid) == {"mu", "huber"}
    for bad in ({"huber": 0.0}, {"huber": -1}, {"slice_coupling": "yes"}, {"halo_slices": -1}, {"halo_slices": 1.5}):
        with pytest.raises(ValueError):
            m.params(bad)
    W, X, counts, r = disk
    c4 = np.repeat(counts, 4, axis=2)
    data = ChannelData(["A", "B"], c4, (r[:, None, None] * c4).sum(axis=0), r)
    full = m(W, data, n_iter=5)
    data.halo = (1, 2)
    cut = m(W, data, n_iter=5)
    assert full.maps.shape[2] == 4 and cut.maps.shape[2] == 1
    np.testing.assert_array_equal(cut.maps[:, :, 0], full.maps[:, :, 1])
    assert m.apply_choice(p, {"mu": 0.2, "huber": 0.3}).huber == 0.3


def test_fused_huber_weighs_the_haadf_with_a_5_percent_model_error(disk):
    """fused_huber's default HAADF model error is 5 % (fused_tv keeps 1 %); the solve uses it.

    Reference: tv_solve called directly with the Huber prior and haadf_model_error=0.05
    (equal to float32 rounding); with 0.01 the maps differ (the default is used, not ignored).
    """
    from chemtomo.reconstruct import ChannelData, get_method
    from chemtomo.reconstruct.fused import tv_solve

    hub, tv = get_method("fused_huber"), get_method("fused_tv")
    assert hub.params().haadf_model_error == 0.05 and tv.params().haadf_model_error == 0.01
    W, X, counts, r = disk
    noisy = np.random.default_rng(2).poisson(np.repeat(counts, 2, axis=2) / 4).astype(np.float32)
    haadf = (r[:, None, None] * noisy).sum(axis=0)
    got = hub(W, ChannelData(["A", "B"], noisy, haadf, r), n_iter=30).maps
    kw = dict(model="fused", haadf=haadf, r=r, mu=0.34, n_iter=30, prior="huber", huber_delta=0.3, slice_block=2)
    ref = tv_solve(W, noisy, haadf_model_error=0.05, **kw).x
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(ref.max()))
    old = tv_solve(W, noisy, haadf_model_error=0.01, **kw).x
    assert np.abs(old - ref).max() > 1e-3 * float(ref.max())
