"""Adjoint (dot) tests for every operator, and backend agreement."""

import numpy as np
import pytest
import scipy.sparse as sp

from chemtomo.projector import (
    AstraOperator,
    BlockDiag,
    ChannelMix,
    HStack,
    MatrixOperator,
    Scaled,
    VStack,
    dottest,
    make_operator,
)
from chemtomo.reconstruct import hebt_operator

RTOL = 1e-4  # float32 products of ~1e3 terms


def _assert_adjoint(op):
    lhs, rhs = dottest(op, k=3, rng=0)
    assert lhs == pytest.approx(rhs, rel=RTOL), (lhs, rhs)


@pytest.mark.parametrize("kind", ["strip", "line", "linear"])
def test_sparse_projector_adjoint(small_geom, kind):
    _assert_adjoint(make_operator(small_geom, "sparse", kind))


@pytest.mark.parametrize("kind", ["strip", "linear"])
def test_astra_projector_adjoint(small_geom, kind):
    _assert_adjoint(AstraOperator(small_geom, kind))


def test_sparse_matches_astra_reference(small_geom, rng):
    W = make_operator(small_geom, "sparse")
    A = AstraOperator(small_geom)
    x = rng.random((small_geom.n_voxels, 2)).astype(np.float32)
    y = rng.random((small_geom.n_rays, 2)).astype(np.float32)
    np.testing.assert_allclose(W.forward(x), A.forward(x), rtol=1e-5, atol=1e-5 * np.abs(A.forward(x)).max())
    np.testing.assert_allclose(W.adjoint(y), A.adjoint(y), rtol=1e-5, atol=1e-5 * np.abs(A.adjoint(y)).max())


def test_strip_weights_are_path_lengths_in_nm(small_geom):
    """A ray through the centre at 0 degrees crosses the whole grid: its weights sum to its width (nm)."""
    W = make_operator(small_geom)
    rs = W.row_sums().reshape(small_geom.n_tilts, small_geom.n_pixels)
    mid = list(small_geom.angles_deg).index(0.0)
    assert rs[mid, small_geom.n_pixels // 2] == pytest.approx(small_geom.n_grid * small_geom.grid_pixel_nm, rel=1e-4)


def _random_matrix(m, n, seed):
    return MatrixOperator(sp.random(m, n, density=0.3, random_state=seed, format="csr"))


def test_composite_operators_adjoint():
    A, B, C = _random_matrix(8, 5, 1), _random_matrix(6, 5, 2), _random_matrix(8, 4, 3)
    for op in (Scaled(A, -2.5), VStack([A, B]), BlockDiag([A, B, C]), HStack([A, C]), A.T,
               ChannelMix(A, [[1.0, 0.5], [0.0, 2.0], [0.3, 0.3]])):
        _assert_adjoint(op)


def test_channel_mix_equals_explicit_block_system(rng):
    """HEBT's operator as M (x) W equals eq 17's block matrix built from VStack/BlockDiag/HStack."""
    W = _random_matrix(9, 7, 4)
    alpha, k = 0.7, 3
    fast = hebt_operator(W, k, alpha)
    explicit = VStack([BlockDiag([Scaled(W, 1 - alpha)] * k), HStack([Scaled(W, alpha)] * k)])
    x = rng.random((k * 7, 4)).astype(np.float32)
    y = rng.random((k * 9 + 9, 4)).astype(np.float32)
    np.testing.assert_allclose(fast.forward(x), explicit.forward(x), rtol=1e-5)
    np.testing.assert_allclose(fast.adjoint(y), explicit.adjoint(y), rtol=1e-5)
    _assert_adjoint(fast)


def test_operator_rejects_wrong_shape(small_geom):
    W = make_operator(small_geom)
    with pytest.raises(ValueError, match="shape"):
        W.forward(np.ones(small_geom.n_voxels + 1, np.float32))
    with pytest.raises(ValueError, match="backend"):
        make_operator(small_geom, "nope")
