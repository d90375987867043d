"""The operator contract: adjoints of every operator, and the capabilities asked of operators.

Capabilities (absolute row and column sums, whether an operator depends on the column,
a fused SIRT plan and its memory) are methods of the operator; every wrapper answers
by composing its blocks' answers, and these tests check the answers against the dense
``|A|`` of each operator.
"""

import logging
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from chemtomo.projector import (
    BatchedOperator,
    BlockDiag,
    ChannelMix,
    HebtColumns,
    HStack,
    MatrixOperator,
    RowScale,
    Scaled,
    VStack,
    astra_matrix,
    batched,
    dottest,
    make_operator,
)
from chemtomo.reconstruct import hebt_operator


def _dense(op) -> np.ndarray:
    return op.forward(np.eye(op.shape[1], dtype=np.float32)).astype(np.float64)


@pytest.fixture(scope="module")
def blocks():
    rng = np.random.default_rng(4)
    A = MatrixOperator(sp.random(7, 5, density=0.5, random_state=1, format="csr"))
    B = MatrixOperator(rng.random((4, 5)))
    C = MatrixOperator(rng.standard_normal((6, 3)))  # negative entries
    N = MatrixOperator(-rng.random((4, 3)))
    return A, B, C, N


def _composites(blocks, W):
    A, B, C, N = blocks
    d = np.random.default_rng(5).random(A.shape[0]).astype(np.float32) + 0.1
    return {
        "matrix": A, "negative": C, "scaled": Scaled(C, -2.5), "vstack": VStack([A, B]),
        "blockdiag": BlockDiag([A, B, C]), "hstack": HStack([B, N]), "adjoint": A.T,
        "channelmix": ChannelMix(A, [[1.0, 0.0], [0.5, 2.0], [1.0, 1.0]]),
        "channelmix_negative": ChannelMix(A, [[1.0, -1.0], [0.5, 2.0]]),
        "rowscale": RowScale(ChannelMix(A, [[1.0, 0.0], [0.5, 2.0]]), np.tile(d, 2)),
        "batched": W, "scaled_batched": Scaled(W, 0.5), "hebt": hebt_operator(W, 2, 0.7),
    }


@pytest.fixture(scope="module")
def W(small_geom_module):
    return make_operator(small_geom_module)


@pytest.fixture(scope="module")
def small_geom_module():
    from chemtomo.geometry import TiltGeometry

    return TiltGeometry(np.arange(-60.0, 60.1, 20.0), 10, 1.5)


@pytest.mark.parametrize("name", [
    "matrix", "negative", "scaled", "vstack", "blockdiag", "hstack", "adjoint", "channelmix",
    "channelmix_negative", "rowscale", "batched", "scaled_batched", "hebt"])
def test_every_operator_is_adjoint_and_knows_its_absolute_sums(blocks, W, name):
    op = _composites(blocks, W)[name]
    lhs, rhs = dottest(op, k=3, rng=2)
    assert lhs == pytest.approx(rhs, rel=1e-4)
    assert not op.column_dependent()
    if name == "adjoint":
        return  # A^T uses the default sums, exact for non-negative entries only
    dense = np.abs(_dense(op))
    rs, cs = op.abs_row_sums(), op.abs_col_sums()
    assert rs.shape == (op.shape[0], 1) and cs.shape == (op.shape[1], 1)
    np.testing.assert_allclose(rs[:, 0], dense.sum(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cs[:, 0], dense.sum(axis=0), rtol=1e-5, atol=1e-6)
    w = (np.random.default_rng(3).random((op.shape[0], 2)) > 0.3).astype(np.float32)
    np.testing.assert_allclose(op.abs_col_sums(w), dense.T @ w, rtol=1e-5, atol=1e-6)


def test_stacks_compose_their_blocks_sums(blocks):
    A, B, C, N = blocks
    for op in (VStack([N, C]), BlockDiag([A, C]), HStack([C, Scaled(C, 2.0)]), HStack([B, N])):
        dense = np.abs(_dense(op))
        np.testing.assert_allclose(op.abs_row_sums()[:, 0], dense.sum(axis=1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(op.abs_col_sums()[:, 0], dense.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_row_scale_per_column_is_column_dependent(blocks):
    A = blocks[0]
    d = np.random.default_rng(8).random((A.shape[0], 3)).astype(np.float32) + 0.1
    op = RowScale(A, d)
    assert op.column_dependent() and not RowScale(A, d[:, 0]).column_dependent()
    lhs, rhs = dottest(op, k=3, rng=3)
    assert lhs == pytest.approx(rhs, rel=1e-5)
    dense = np.abs(_dense(A))
    np.testing.assert_allclose(op.abs_row_sums(), d * dense.sum(axis=1)[:, None], rtol=1e-5)
    np.testing.assert_allclose(op.abs_col_sums(), dense.T @ d, rtol=1e-5)
    with pytest.raises(ValueError, match="row scales"):
        RowScale(A, -d)


def test_hebt_columns_is_hebt_operator_per_column(small_geom):
    W = make_operator(small_geom)
    alphas = [0.0, 0.4, 0.9]
    op = HebtColumns(W, 2, alphas)
    assert op.column_dependent()
    lhs, rhs = dottest(op, k=3, rng=6)
    assert lhs == pytest.approx(rhs, rel=1e-4)
    x = np.random.default_rng(7).random((op.shape[1], 3)).astype(np.float32)
    rs = op.abs_row_sums()
    assert rs.shape == (op.shape[0], 3)
    for j, a in enumerate(alphas):
        ref = hebt_operator(W, 2, a)
        np.testing.assert_allclose(op.forward(x)[:, j], ref.forward(x[:, j]), rtol=1e-5)
        np.testing.assert_allclose(rs[:, j], ref.abs_row_sums()[:, 0], rtol=1e-5, atol=1e-6)
    one = np.ones((op.shape[0], 1), np.float32)
    np.testing.assert_array_equal(op.abs_col_sums(one), op.abs_col_sums())
    assert op.abs_col_sums().shape == (op.shape[1], 3)
    with pytest.raises(ValueError, match="built for 3 columns"):
        op.forward(x[:, :2])


def test_the_fused_plan_is_asked_of_the_operator(blocks, W):
    A = blocks[0]
    b = np.ones((W.shape[0], 2), np.float32)
    R, C = np.ones((W.shape[0], 1), np.float32), np.ones((W.shape[1], 1), np.float32)
    assert W.fused_sirt_plan(b, None, R, C, 1.0, True) is not None
    assert Scaled(Scaled(W, 2.0), 0.5).fused_sirt_plan(b, None, R, C, 1.0, True) is not None
    assert A.fused_sirt_plan(np.ones((A.shape[0], 1), np.float32), None, R, C, 1.0, True) is None
    hebt = hebt_operator(W, 2, 0.5)
    bh = np.ones((hebt.shape[0], 2), np.float32)
    Rh, Ch = np.ones((hebt.shape[0], 1), np.float32), np.ones((hebt.shape[1], 1), np.float32)
    assert hebt.fused_sirt_plan(bh, None, Rh, Ch, 1.0, True) is not None
    nested = ChannelMix(hebt, [[1.0]])
    assert nested.fused_sirt_plan(bh, None, Rh, Ch, 1.0, True) is None  # a mix inside a mix: generic
    assert W.sirt_memory() == (W.matrix_bytes, W.bytes_per_column())
    assert hebt.sirt_memory() == (W.matrix_bytes, 2 * W.bytes_per_column())
    assert Scaled(W, 3.0).sirt_memory() == W.sirt_memory() and A.sirt_memory() is None


def test_cpu_probe_is_lazy():
    """Importing the engine asks the CPU nothing; the first use does (once)."""
    code = ("import chemtomo.projector.batched as b; n0 = b._has_avx512.cache_info().currsize; "
            "b.choose_block_width(100, 2); print(n0, b._has_avx512.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "1"]


def test_cpu_probe_failure_falls_back_to_avx2(monkeypatch, caplog):
    from llvmlite import binding

    def broken():
        raise RuntimeError("no feature query here")

    monkeypatch.setattr(binding, "get_host_cpu_features", broken)
    batched._has_avx512.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="chemtomo.projector.batched"):
            assert batched._has_avx512() is False
            assert batched.default_group() == 2
            assert batched._block_cost() == batched._BLOCK_COST_AVX2
        assert "no feature query here" in caplog.text and "AVX2" in caplog.text
    finally:
        batched._has_avx512.cache_clear()


def test_batched_operator_matches_its_matrix(small_geom):
    M = astra_matrix(small_geom, "strip")
    W = BatchedOperator(M, (small_geom.n_grid, small_geom.n_grid))
    dense = M.toarray().astype(np.float64)
    np.testing.assert_allclose(W.abs_row_sums()[:, 0], dense.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(W.abs_col_sums()[:, 0], dense.sum(axis=0), rtol=1e-5)
