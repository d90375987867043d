"""Total variation: gradient and its adjoint, TV norms, the TV proximal map against scikit-image."""

import numpy as np
import pytest
from skimage.restoration import denoise_tv_chambolle

from chemtomo.projector import dottest
from chemtomo.reconstruct.tv import Gradient2D, project_l2_balls, tv_norm, tv_prox


def _dense(op):
    """The matrix of an operator, column by column (small operators only)."""
    eye = np.eye(op.shape[1], dtype=np.float32)
    return op.forward(eye)


@pytest.mark.parametrize("shape, k", [((5, 7), 1), ((6, 4), 3)])
def test_gradient_adjoint(shape, k):
    lhs, rhs = dottest(Gradient2D(shape, k), k=4, rng=1)
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_gradient_abs_sums_match_the_matrix():
    D = Gradient2D((5, 6), 2)
    A = np.abs(_dense(D))
    np.testing.assert_array_equal(D.abs_row_sums(), A.sum(axis=1)[:, None])
    np.testing.assert_array_equal(D.abs_col_sums(), A.sum(axis=0)[:, None])
    w = np.random.default_rng(3).random((D.shape[0], 2)).astype(np.float32)
    np.testing.assert_allclose(D.abs_col_sums(w), A.T @ w, rtol=1e-6)


def test_gradient_is_forward_difference_with_neumann_boundary():
    u = np.arange(12, dtype=np.float32).reshape(3, 4) ** 2
    g = Gradient2D((3, 4)).forward(u.ravel()).reshape(2, 3, 4)
    np.testing.assert_array_equal(g[0, :-1], u[1:] - u[:-1])
    np.testing.assert_array_equal(g[0, -1], 0)
    np.testing.assert_array_equal(g[1, :, :-1], u[:, 1:] - u[:, :-1])
    np.testing.assert_array_equal(g[1, :, -1], 0)


def test_tv_norm_of_a_step_and_of_coupled_channels():
    """A vertical step of height h through ny rows has TV = h ny; identical channels couple to sqrt(k) times one."""
    ny, nx, h = 8, 10, 3.0
    u = np.zeros((ny, nx), np.float32)
    u[:, 6:] = h
    assert tv_norm(u.ravel(), (ny, nx)) == pytest.approx(h * ny)
    rng = np.random.default_rng(0)
    v = rng.random((ny, nx)).astype(np.float32)
    two = np.concatenate([v.ravel(), v.ravel()])
    one = tv_norm(v.ravel(), (ny, nx))
    assert tv_norm(two, (ny, nx), 2) == pytest.approx(2 * one, rel=1e-6)
    assert tv_norm(two, (ny, nx), 2, coupled=True) == pytest.approx(np.sqrt(2) * one, rel=1e-5)


def test_project_l2_balls():
    rng = np.random.default_rng(2)
    shape, k = (4, 5), 2
    p = (3 * rng.standard_normal((2 * k * 20, 3))).astype(np.float32)
    radius = np.array([0.5, 1.0, 100.0])
    q = project_l2_balls(p.copy(), radius, k, shape, coupled=False)
    nrm = np.sqrt((q.reshape(k, 2, 4, 5, 3) ** 2).sum(axis=1))
    assert np.all(nrm <= radius + 1e-5)
    np.testing.assert_array_equal(q[:, 2], p[:, 2])  # radius 100: nothing moves
    # a vector already inside its ball is unchanged, one outside is scaled onto the sphere
    inside = np.sqrt((p.reshape(k, 2, 4, 5, 3) ** 2).sum(axis=1)) <= radius
    assert np.allclose(nrm[~inside], np.broadcast_to(radius, nrm.shape)[~inside], rtol=1e-5)


@pytest.mark.parametrize("weight", [0.05, 0.2])
def test_tv_prox_matches_scikit_image(weight):
    """``tv_prox`` and ``denoise_tv_chambolle`` minimise 1/2 ||u - f||^2 + weight TV(u): same minimiser.

    Both iterate close to convergence (ours 5000 FGP iterations, scikit-image 50000 Chambolle
    iterations at eps 1e-9): the maps agree to 1e-3 of the image range (measured 3e-5 and 3e-4),
    and ours reaches an objective at most 1e-7 above scikit-image's (measured: below it).
    """
    rng = np.random.default_rng(3)
    f = np.zeros((32, 32))
    f[8:24, 10:22] = 1.0
    f += 0.2 * rng.standard_normal(f.shape)
    ref = denoise_tv_chambolle(f, weight=weight, eps=1e-9, max_num_iter=50000)
    ours = tv_prox(f.ravel().astype(np.float32), weight, f.shape, n_iter=5000).reshape(f.shape)
    assert np.max(np.abs(ours - ref)) < 1e-3 * np.ptp(f)

    def objective(u):
        return 0.5 * np.sum((u - f) ** 2) + weight * tv_norm(u.ravel().astype(np.float32), f.shape)

    assert objective(ours) <= objective(ref) * (1 + 1e-7)


def test_tv_prox_nonneg_and_per_column_weights():
    rng = np.random.default_rng(4)
    f = (rng.standard_normal((36, 3)) * 0.5 + 0.1).astype(np.float32)
    u = tv_prox(f, np.array([0.0, 0.1, 0.3]), (6, 6), nonneg=True, n_iter=300)
    assert np.all(u >= 0)
    np.testing.assert_array_equal(u[:, 0], np.maximum(f[:, 0], 0))  # weight 0: the projection onto u >= 0
    tvs = tv_norm(u, (6, 6))
    assert tvs[2] < tvs[1] < tvs[0]


def test_tv_prox_rejects_negative_weight():
    with pytest.raises(ValueError, match="TV weight"):
        tv_prox(np.ones(16, np.float32), -1.0, (4, 4))
