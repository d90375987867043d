"""The primal-dual solver and its functionals: proximal maps, known minimisers, monitoring, stopping."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize_scalar, nnls

from chemtomo.projector import MatrixOperator
from chemtomo.reconstruct.pdhg import (
    GroupL21,
    KullbackLeibler,
    RowScaled,
    Separable,
    Term,
    WeightedL2,
    pdhg,
)


def _conj_prox_by_moreau(f_value_1d, p, sigma, lower=-1e4):
    """``prox_{sigma F*}(p) = p - sigma prox_{F/sigma}(p / sigma)``, computed numerically.

    The inner prox is found numerically on the domain of ``F`` (``y > lower``).
    """
    v = p / sigma
    y = minimize_scalar(lambda t: f_value_1d(t) / sigma + 0.5 * (t - v) ** 2,
                        bounds=(lower + 1e-9, 1e4), method="bounded", options={"xatol": 1e-10}).x
    return p - sigma * y


@pytest.mark.parametrize("b, g, p, sigma", [(3.0, 0.0, 0.4, 0.7), (10.0, 0.5, -2.0, 2.5), (0.0, 0.2, 0.3, 1.0)])
def test_kullback_leibler_conjugate_prox(b, g, p, sigma):
    kl = KullbackLeibler(np.array([b]), background=g)

    def value(t):  # F(y) = (y + g) - b log(y + g) + const, defined for y + g >= 0
        return (t + g) - (b * np.log(t + g) if b > 0 else 0.0)

    got = float(kl.prox_conj(np.array([[p]], np.float32), np.float32(sigma))[0, 0])
    assert got == pytest.approx(_conj_prox_by_moreau(value, p, sigma, lower=-g), abs=1e-5)


def test_kullback_leibler_value_is_zero_at_the_counts_and_positive_elsewhere():
    b = np.array([[0.0], [2.0], [7.0]], np.float32)
    kl = KullbackLeibler(b)
    assert kl.value(b)[0] == pytest.approx(0.0, abs=1e-9)
    assert kl.value(b + 0.5)[0] > 0 and kl.value(np.maximum(b - 0.5, 0.1))[0] > 0


def test_weighted_l2_conjugate_prox():
    w, b, p, sigma = 2.5, 1.5, 0.8, 0.6
    f = WeightedL2(np.array([b]), w)
    got = float(f.prox_conj(np.array([[p]], np.float32), np.float32(sigma))[0, 0])
    want = _conj_prox_by_moreau(lambda t: 0.5 * w * (t - b) ** 2, p, sigma)
    assert got == pytest.approx(want, abs=1e-5)


def test_row_scaled_functional_is_the_same_term():
    """``F_d(d y) = F(y)``: the value, and the prox through the scaling rule."""
    rng = np.random.default_rng(0)
    b = rng.integers(0, 9, (6, 2)).astype(np.float32)
    d = (rng.random((6, 1)) + 0.5).astype(np.float32)
    y = (rng.random((6, 2)) * 5 + 0.5).astype(np.float32)
    kl = KullbackLeibler(b)
    np.testing.assert_allclose(RowScaled(kl, d).value(d * y), kl.value(y), rtol=1e-5)


def test_separable_splits_rows():
    a = WeightedL2(np.zeros((3, 1)), 1.0)
    c = KullbackLeibler(np.ones((2, 1)))
    f = Separable([(3, a), (2, c)])
    y = np.arange(1, 6, dtype=np.float32)[:, None]
    assert f.value(y)[0] == pytest.approx(a.value(y[:3])[0] + c.value(y[3:])[0])


def test_pdhg_least_squares_converges_to_nnls():
    """Known minimiser: non-negative least squares (scipy's NNLS), to 1e-3 relative."""
    rng = np.random.default_rng(5)
    A = sp.random(60, 25, density=0.3, random_state=6, format="csr")
    A.data = np.abs(A.data)
    x_true = np.maximum(rng.standard_normal(25), 0)
    b = A @ x_true + 0.05 * rng.standard_normal(60)
    ref, _ = nnls(A.toarray(), b)
    res = pdhg([Term(MatrixOperator(A), WeightedL2(b.astype(np.float32)), "ls")], 20000, n_cols=1, tol=1e-9)
    x = res.x[:, 0]
    assert np.linalg.norm(x - ref) <= 1e-3 * np.linalg.norm(ref)
    assert np.all(x >= 0)


def test_pdhg_monitoring_objective_falls_and_residuals_vanish():
    rng = np.random.default_rng(7)
    A = np.abs(rng.standard_normal((40, 20)))
    b = A @ np.abs(rng.standard_normal(20))
    res = pdhg([Term(MatrixOperator(A), WeightedL2(b.astype(np.float32)))], 3000, n_cols=1, monitor_every=10)
    obj = res.info["objective"][:, 0]
    assert res.info["iterations"][0] == 10 and res.info["iterations"][-1] == 3000
    assert obj[-1] < 1e-6 * obj[0]  # b is in the range: the optimum is 0
    assert np.all(np.diff(obj[::10]) <= 1e-12 * obj[0])  # falls (PDHG need not fall at every step)
    assert res.info["primal_residual"][-1, 0] < 1e-3 * res.info["primal_residual"][0, 0]
    assert res.info["dual_residual"][-1, 0] < 1e-3 * res.info["dual_residual"][0, 0]


def test_pdhg_stopping_rule_and_callback():
    rng = np.random.default_rng(8)
    A = np.abs(rng.standard_normal((30, 10)))
    b = (A @ np.abs(rng.standard_normal(10))).astype(np.float32)
    terms = [Term(MatrixOperator(A), WeightedL2(b))]
    res = pdhg(terms, 100000, n_cols=1, tol=1e-6, monitor_every=5)
    assert res.info["converged"] and res.n_iter < 100000
    seen = []
    res2 = pdhg(terms, 50, n_cols=1, callback=lambda st: seen.append(st.iteration) or st.iteration == 7)
    assert res2.n_iter == 7 and seen == list(range(1, 8))
    # callback_every: called every 6th iteration and after the last; the iterates do not change
    seen = []
    res3 = pdhg(terms, 50, n_cols=1, callback=lambda st: seen.append(st.iteration), callback_every=6)
    assert seen == [*range(6, 49, 6), 50]
    np.testing.assert_array_equal(res3.x, pdhg(terms, 50, n_cols=1).x)
    with pytest.raises(ValueError, match="callback_every"):
        pdhg(terms, 5, n_cols=1, callback=print, callback_every=0)


def test_pdhg_group_l21_alone_is_tv_denoising_dual():
    """min_{x>=0} 1/2||x - f||^2 + lam TV(x) as two PDHG terms equals tv_prox (FGP) to 1e-3."""
    from chemtomo.reconstruct.tv import Gradient2D, tv_prox

    rng = np.random.default_rng(9)
    f = np.zeros((12, 12), np.float32)
    f[3:9, 4:10] = 1
    f += (0.15 * rng.standard_normal(f.shape)).astype(np.float32)
    lam = 0.1
    eye = MatrixOperator(sp.identity(144, format="csr"))
    terms = [Term(eye, WeightedL2(f.ravel())), Term(Gradient2D((12, 12)), GroupL21(lam, 1, (12, 12)))]
    x = pdhg(terms, 4000, n_cols=1).x[:, 0]
    ref = tv_prox(f.ravel(), lam, (12, 12), nonneg=True, n_iter=3000)
    assert np.max(np.abs(x - ref)) < 1e-3


def test_pdhg_input_errors():
    A = MatrixOperator(np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least one term"):
        pdhg([], 10)
    with pytest.raises(ValueError, match="theta"):
        pdhg([Term(A, WeightedL2(np.ones(3)))], 10, theta=0)
    with pytest.raises(ValueError, match="share n_in"):
        pdhg([Term(A, WeightedL2(np.ones(3))), Term(MatrixOperator(np.ones((3, 4))), WeightedL2(np.ones(3)))], 10)
    with pytest.raises(ValueError, match="counts must be finite"):
        KullbackLeibler(np.array([1.0, -1.0]))


def test_pdhg_buffer_reuse_keeps_the_bits(no_buffers):
    """Writing ``K x`` into the replaced dual and reusing the adjoint's buffer changes no bit.

    TV denoising with a Poisson data term, 3 columns, 40 iterations with monitoring and a
    callback every 7 iterations: the same iterates, objectives and residuals as the same
    solve through operators that allocate every result afresh.
    """
    from chemtomo.projector.base import Scaled
    from chemtomo.reconstruct.tv import Gradient2D

    rng = np.random.default_rng(4)
    shape, k, m = (9, 8), 2, 3
    n = k * shape[0] * shape[1]
    b = rng.poisson(5.0, (n, m)).astype(np.float32)
    eye = MatrixOperator(sp.identity(n, format="csr", dtype=np.float32))
    D = Scaled(Gradient2D(shape, k), 0.7)
    seen = {True: [], False: []}

    def run(reuse):
        terms = [Term(eye, KullbackLeibler(b)),
                 Term(D if reuse else no_buffers(D), GroupL21(np.array([0.5, 1.0, 2.0]), k, shape, True))]
        return pdhg(terms, 40, x0=np.ones((n, m), np.float32), monitor_every=5, callback_every=7,
                    callback=lambda s: seen[reuse].append(s.x.copy()) and None)

    a, c = run(True), run(False)
    assert np.array_equal(a.x, c.x)
    for key in ("objective", "primal_residual", "dual_residual"):
        assert np.array_equal(a.info[key], c.info[key])
    assert all(np.array_equal(u, v) for u, v in zip(seen[True], seen[False], strict=True))
    # and the buffered operator's results are the operator's own
    x = rng.random((n, m), dtype=np.float32)
    buf = np.full((2 * n, m), np.nan, np.float32)
    assert np.shares_memory(D._forward_into(x, buf), buf)
    assert np.array_equal(buf, D._forward(x))
    out = np.full((n, m), np.nan, np.float32)
    assert np.array_equal(D._adjoint_into(buf, out), D._adjoint(buf))
    assert np.array_equal(D._adjoint_into(buf, np.empty((n, m + 1), np.float32)), D._adjoint(buf))  # wrong shape: new


@pytest.mark.parametrize("coupled", [True, False])
def test_compiled_passes_keep_the_bits(coupled):
    """The compiled element-wise passes give the numpy passes' iterates bit for bit.

    A fused-like problem: one row-scaled block of Poisson rows (with held-out rows) over
    weighted least-squares rows (with their own mask), and TV over 2 channels, 3 columns,
    per-column row scales; 30 iterations, monitored every 4 and watched every 7. Also the
    Poisson and least-squares terms alone (the "poisson" and "ls" models).
    """
    from chemtomo.projector.base import Scaled
    from chemtomo.reconstruct.tv import Gradient2D

    rng = np.random.default_rng(11)
    shape, k, m = (7, 6), 2, 3
    n = k * shape[0] * shape[1]
    A = sp.random(50, n, density=0.2, random_state=12, format="csr", dtype=np.float32)
    A.data = np.abs(A.data)
    A2 = sp.random(20, n, density=0.3, random_state=13, format="csr", dtype=np.float32)
    A2.data = np.abs(A2.data)
    op = MatrixOperator(sp.vstack([A, A2]).tocsr())
    b = rng.poisson(6.0, (50, m)).astype(np.float32)
    h = rng.random((20, m)).astype(np.float32) * 5
    mask = (rng.random((50, m)) > 0.2).astype(np.float32)
    mask_h = (rng.random((20, 1)) > 0.3).astype(np.float32)
    d = (0.5 + rng.random((70, m))).astype(np.float32)
    from chemtomo.projector.compose import RowScale

    tv = Term(Scaled(Gradient2D(shape, k), 0.6), GroupL21(np.array([0.3, 1.0, 2.0]), k, shape, coupled))
    fused = Term(RowScale(op, d), RowScaled(Separable([
        (50, KullbackLeibler(b, mask=mask)), (20, WeightedL2(h, 0.7 * np.ones((20, m)), mask=mask_h))]), d))
    poisson = Term(RowScale(MatrixOperator(A), d[:50]), RowScaled(KullbackLeibler(b), d[:50]))
    ls = Term(RowScale(MatrixOperator(A), d[:50, :1]), RowScaled(WeightedL2(b, 0.2), d[:50, :1]))
    for terms in ([fused, tv], [poisson, tv], [ls, tv], [fused]):
        seen = {True: [], False: []}

        def run(compiled, terms=terms, seen=seen):
            return pdhg(terms, 30, x0=np.ones((n, m), np.float32), theta=0.8, monitor_every=4, callback_every=7,
                        compiled=compiled, callback=lambda s, c=compiled: seen[c].append(s.x.copy()) and None)

        fast, slow = run(True), run(False)
        assert np.array_equal(fast.x, slow.x)
        for key in ("objective", "primal_residual", "dual_residual"):
            assert np.array_equal(fast.info[key], slow.info[key])
        assert all(np.array_equal(u, v) for u, v in zip(seen[True], seen[False], strict=True))


def test_adaptive_step_balance_converges_to_the_known_minimisers():
    """Residual balancing (``adaptive=True``) reaches the minimisers of fixed-step PDHG's tests.

    Non-negative least squares (scipy's NNLS) to 1e-3 relative from a badly balanced start
    (theta 100 and 0.01) within 3000 iterations (fixed steps at theta 100 use all 20 000 of
    the fixed-step test's budget), and TV denoising (FGP's ``tv_prox``) to 1e-3 in 400
    iterations, one theta per column (fixed steps: 8.6e-3 at 300 iterations).
    """
    from chemtomo.reconstruct.tv import Gradient2D, tv_prox

    rng = np.random.default_rng(5)
    A = sp.random(60, 25, density=0.3, random_state=6, format="csr")
    A.data = np.abs(A.data)
    x_true = np.maximum(rng.standard_normal(25), 0)
    b = A @ x_true + 0.05 * rng.standard_normal(60)
    ref, _ = nnls(A.toarray(), b)
    for theta in (100.0, 0.01):
        res = pdhg([Term(MatrixOperator(A), WeightedL2(b.astype(np.float32)), "ls")], 3000, n_cols=1, tol=1e-9,
                   theta=theta, adaptive=True)
        assert np.linalg.norm(res.x[:, 0] - ref) <= 1e-3 * np.linalg.norm(ref)
        th = res.info["theta_history"][:, 0]
        assert th[-1] != theta  # it moved
    f = np.zeros((12, 12), np.float32)
    f[3:9, 4:10] = 1
    f += (0.15 * rng.standard_normal(f.shape)).astype(np.float32)
    lam = np.array([0.05, 0.1, 0.2])
    eye = MatrixOperator(sp.identity(144, format="csr"))
    fm = np.repeat(f.reshape(-1, 1), 3, axis=1)
    terms = [Term(eye, WeightedL2(fm)), Term(Gradient2D((12, 12)), GroupL21(lam, 1, (12, 12)))]
    res = pdhg(terms, 400, n_cols=3, theta=5.0, adaptive=True)
    for j in range(3):
        assert np.max(np.abs(res.x[:, j] - tv_prox(f.ravel(), lam[j], (12, 12), nonneg=True, n_iter=3000))) < 1e-3
    assert res.info["theta_history"].shape[1] == 3
    with pytest.raises(ValueError, match="adapt_every"):
        pdhg(terms, 5, n_cols=3, adaptive=True, adapt_every=0)
    with pytest.raises(ValueError, match="theta_unit"):
        pdhg(terms, 5, n_cols=3, adaptive=True, theta_unit=-1.0)


@pytest.mark.parametrize("coupled", [True, False])
def test_tv_term_from_the_primal_iterates_keeps_the_bits(coupled):
    """The TV term run from the primal iterates (``fuse_tv``) gives the separate passes' iterates bit for bit.

    A fused-like problem (a row-scaled Poisson block over masked least-squares rows, TV over
    3 channels of 9 x 7 pixels, 4 columns), fixed and adaptive step balance, monitored every
    3 iterations and watched every 5: iterates, objectives, residuals, duals and the
    callback's states equal with ``fuse_tv`` on and off and with the numpy passes
    (``compiled=False``, the reference). Tolerance: none (the same float32 operations in the
    same order).
    """
    from chemtomo.projector.base import Scaled
    from chemtomo.projector.compose import RowScale
    from chemtomo.reconstruct.tv import Gradient2D

    rng = np.random.default_rng(21)
    shape, k, m = (9, 7), 3, 4
    n = k * shape[0] * shape[1]
    A = sp.random(60, n, density=0.2, random_state=22, format="csr", dtype=np.float32)
    A.data = np.abs(A.data)
    b = rng.poisson(6.0, (40, m)).astype(np.float32)
    h = (rng.random((20, m)) * 5).astype(np.float32)
    mask_h = (rng.random((20, m)) > 0.3).astype(np.float32)
    d = (0.5 + rng.random((60, m))).astype(np.float32)
    terms = [Term(RowScale(MatrixOperator(A), d), RowScaled(Separable([
                 (40, KullbackLeibler(b)), (20, WeightedL2(h, 0.7 * np.ones((20, m)), mask=mask_h))]), d)),
             Term(Scaled(Gradient2D(shape, k), 0.6), GroupL21(np.array([0.3, 1.0, 2.0, 0.0]), k, shape, coupled))]
    for adaptive in (False, True):
        seen: dict = {}

        def run(name, adaptive=adaptive, seen=seen, **opts):
            seen[name] = []
            # the callback keeps the arrays it is given: the solver must never write into them again
            return pdhg(terms, 25, x0=np.ones((n, m), np.float32), theta=0.8, adaptive=adaptive, adapt_every=4,
                        monitor_every=3, callback_every=5,
                        callback=lambda s: seen[name].append((s.x, s.x.copy())) and None, **opts)

        runs = {"fused": run("fused"), "separate": run("separate", fuse_tv=False),
                "numpy": run("numpy", compiled=False)}
        ref = runs["numpy"]
        for name in ("fused", "separate"):
            res = runs[name]
            assert np.array_equal(res.x, ref.x)
            for key in ("objective", "primal_residual", "dual_residual"):
                assert np.array_equal(res.info[key], ref.info[key])
            assert all(np.array_equal(u, v) for u, v in zip(res.info["dual"], ref.info["dual"], strict=True))
            assert all(np.array_equal(u[1], v[1]) for u, v in zip(seen[name], seen["numpy"], strict=True))
            assert all(np.array_equal(kept, copy) for kept, copy in seen[name])


def test_fused_tv_kernels_are_the_passes_they_replace_on_any_thread_count():
    """``dual_tv_extrap`` and ``primal_step_tv`` equal the passes they replace, on 1 thread and on all.

    Dual: ``gradient`` of both iterates, ``Scaled``'s product, ``extrapolate`` and ``dual_tv``
    (or, at the first iteration, ``K xbar = c D x``); primal: ``gradient_adjoint``, the
    product and ``primal_step2``. Random fields, NaN-filled outputs (every element written),
    shared and per-column dual steps, coupled and separate balls, with and without the
    clipping; the kernels' rows are independent, so the result is the same bits whatever
    numba's thread count. Tolerance: none.
    """
    import numba

    from chemtomo.reconstruct import _pdhg_kernels as pk
    from chemtomo.reconstruct import _tv_kernels as tk

    rng = np.random.default_rng(23)
    k, ny, nx, m = 2, 11, 6, 5
    x = rng.standard_normal((k, ny, nx, m)).astype(np.float32)
    xp = (x + 0.3 * rng.standard_normal((k, ny, nx, m))).astype(np.float32)
    a = rng.standard_normal((k, ny, nx, m)).astype(np.float32)
    y = rng.standard_normal((k, 2, ny, nx, m)).astype(np.float32)
    radius = np.array([0.5, 1.0, 2.0, 0.0, 3.0], np.float32)
    scale = np.float32(0.37)
    rows = lambda v: v.reshape(v.shape[:-2] + (-1,))  # noqa: E731
    threads = sorted({1, numba.config.NUMBA_NUM_THREADS})
    old = numba.get_num_threads()

    def on_threads(fn):
        got = []
        for n in threads:
            numba.set_num_threads(n)
            try:
                got.append(fn())
            finally:
                numba.set_num_threads(old)
        return got

    for wide in (False, True):
        sig = rng.random((k, 2, ny, nx, m if wide else 1)).astype(np.float32)
        sig_rows = rows(sig) if wide else np.ascontiguousarray(sig[..., 0])
        for coupled in (True, False):
            for first in (True, False):
                kx = np.full_like(y, np.nan)
                tk.gradient(x, kx)
                kx *= scale
                if not first:
                    ko = np.full_like(y, np.nan)
                    tk.gradient(xp, ko)
                    ko *= scale
                    pk.extrapolate(ko.reshape(-1, m), kx.reshape(-1, m))
                    kx = ko
                ref = np.full_like(y, np.nan)
                pk.dual_tv(kx, sig, y, radius, coupled, ref)

                def dual(first=first, coupled=coupled, sig_rows=sig_rows):
                    out = np.full_like(y, np.nan)
                    pk.dual_tv_extrap(rows(x), rows(xp), scale, first, sig_rows, rows(y), radius, coupled, rows(out))
                    inplace = y.copy()  # out may be y
                    pk.dual_tv_extrap(rows(x), rows(xp), scale, first, sig_rows, rows(inplace), radius, coupled,
                                      rows(inplace))
                    return out, inplace

                for out, inplace in on_threads(dual):
                    assert np.array_equal(out, ref)
                    assert np.array_equal(inplace, ref)
    tau = rng.random((k, ny, nx, m)).astype(np.float32)
    for nonneg in (True, False):
        adj = np.full((k, ny, nx, m), np.nan, np.float32)
        tk.gradient_adjoint(y, adj)
        adj *= scale
        ref = np.full((k * ny * nx, m), np.nan, np.float32)
        pk.primal_step2(x.reshape(-1, m), a.reshape(-1, m), adj.reshape(-1, m), tau.reshape(-1, m), nonneg, ref)

        def primal(nonneg=nonneg):
            out = np.full((k, ny, nx, m), np.nan, np.float32)
            pk.primal_step_tv(rows(x), rows(a), rows(y), scale, rows(tau), m, nonneg, rows(out))
            inplace = a.copy()  # out may be a
            pk.primal_step_tv(rows(x), rows(inplace), rows(y), scale, rows(tau), m, nonneg, rows(inplace))
            return out, inplace

        for out, inplace in on_threads(primal):
            assert np.array_equal(out.reshape(-1, m), ref)
            assert np.array_equal(inplace, out)
