"""The batched engine as an operator: adjoints, agreement with ASTRA and scipy, layout invariance."""

import numpy as np
import pytest
import scipy.sparse as sp

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import (
    AstraOperator,
    BatchedOperator,
    ChannelMix,
    MatrixOperator,
    Scaled,
    dottest,
    gpu_available,
    iter_slice_chunks,
    make_operator,
)
from chemtomo.projector.astra_backend import astra_matrix
from chemtomo.projector.batched import BLOCK_WIDTHS, choose_block_width, slot_order

# odd grid: 2 x 2 pixel groups at the edges hold dummy slots
ODD = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 33, 1.5)
WEDGE = TiltGeometry(np.arange(-72.0, 54.1, 9.0), 40, 2.74)


def _assert_adjoint(op, k=3, seed=0):
    """<A x, y> = <x, A^T y> to float32 rounding, relative to the sum of |terms| (no cancellation)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((op.shape[1], k)).astype(np.float32)
    y = rng.standard_normal((op.shape[0], k)).astype(np.float32)
    ax, aty = op.forward(x).astype(np.float64), op.adjoint(y).astype(np.float64)
    lhs, rhs = np.sum(ax * y), np.sum(x * aty)
    scale = np.sum(np.abs(ax * y)) + np.sum(np.abs(x * aty))
    assert abs(lhs - rhs) <= 1e-6 * scale, (lhs, rhs, scale)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kind", ["strip", "line", "linear"])
@pytest.mark.parametrize("group", [1, 2, 4])
def test_adjoint(kind, group):
    _assert_adjoint(make_operator(ODD, kind=kind, group=group), k=5, seed=1)


@pytest.mark.parametrize("min_shared", [2, 3, 4])
def test_adjoint_with_per_pixel_entries(min_shared):
    op = make_operator(WEDGE, group=4, min_shared=min_shared)
    assert op.n_entries[1] > 0
    _assert_adjoint(op, seed=2)
    ref = MatrixOperator(astra_matrix(WEDGE, "strip"))
    x = np.random.default_rng(2).random((WEDGE.n_voxels, 3)).astype(np.float32)
    assert _rel(op.forward(x), ref.forward(x)) < 1e-5
    assert _rel(op.adjoint(x[: WEDGE.n_rays]), ref.adjoint(x[: WEDGE.n_rays])) < 1e-5


def test_channel_mix_and_scaled_adjoint():
    W = make_operator(ODD)
    for op in (ChannelMix(W, [[0.3, 0.0], [0.0, 0.3], [0.7, 0.7]]), Scaled(W, -1.7)):
        _assert_adjoint(op, k=4, seed=3)
        lhs, rhs = dottest(op, k=4, rng=3)  # the contract's own helper, too
        assert lhs == pytest.approx(rhs, rel=1e-4)


@pytest.mark.parametrize("kind", ["strip", "linear"])
def test_matches_astra_projectors(kind, rng):
    """Forward and back projection equal ASTRA's own CPU projectors (float32 rounding)."""
    op = make_operator(WEDGE, kind=kind)
    ref = AstraOperator(WEDGE, kind)
    x = rng.random((WEDGE.n_voxels, 3)).astype(np.float32)
    y = rng.random((WEDGE.n_rays, 3)).astype(np.float32)
    assert _rel(op.forward(x), ref.forward(x)) < 1e-5
    assert _rel(op.adjoint(y), ref.adjoint(y)) < 1e-5


@pytest.mark.parametrize("group", [1, 2, 4])
def test_matches_scipy_matrix(group, rng):
    W = astra_matrix(ODD, "strip")
    op = BatchedOperator(W, (ODD.n_grid, ODD.n_grid), group=group)
    ref = MatrixOperator(W)
    x = rng.standard_normal((ODD.n_voxels, 7)).astype(np.float32)
    y = rng.standard_normal((ODD.n_rays, 7)).astype(np.float32)
    assert _rel(op.forward(x), ref.forward(x)) < 1e-5
    assert _rel(op.adjoint(y), ref.adjoint(y)) < 1e-5
    # 1-D input gives 1-D output, as the contract says
    assert op.forward(x[:, 0]).shape == (ODD.n_rays,)


def test_sums_are_the_matrix_sums():
    W = astra_matrix(ODD, "strip")
    op = BatchedOperator(W, (ODD.n_grid, ODD.n_grid))
    np.testing.assert_allclose(op.row_sums(), np.asarray(W.sum(axis=1)).ravel(), rtol=1e-6)
    np.testing.assert_allclose(op.col_sums(), np.asarray(W.sum(axis=0)).ravel(), rtol=1e-6)
    assert op.nnz == W.count_nonzero()


def test_results_do_not_depend_on_blocks_threads_or_neighbours(rng):
    """Bitwise: each column's arithmetic is the same whatever the block width, threads or other columns."""
    W = astra_matrix(WEDGE, "strip")
    x = rng.random((WEDGE.n_voxels, 37)).astype(np.float32)
    y = rng.random((WEDGE.n_rays, 37)).astype(np.float32)
    ref = BatchedOperator(W, (WEDGE.n_grid, WEDGE.n_grid), block_width=64)
    fx, ay = ref.forward(x), ref.adjoint(y)
    for kb in BLOCK_WIDTHS:
        for threads in (1, 2):
            op = BatchedOperator(W, (WEDGE.n_grid, WEDGE.n_grid), block_width=kb, n_threads=threads)
            assert np.array_equal(op.forward(x), fx)
            assert np.array_equal(op.adjoint(y), ay)
    # a subset of columns gives the same bits as inside the full batch
    assert np.array_equal(ref.forward(x[:, 5:9]), fx[:, 5:9])
    assert np.array_equal(ref.adjoint(y[:, 30:]), ay[:, 30:])


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (5, 7), (33, 33)])
@pytest.mark.parametrize("group", [1, 2, 4])
def test_slot_order_is_a_permutation_with_dummies(shape, group):
    n = shape[0] * shape[1]
    slots = slot_order(shape, n, group)
    assert slots.size % group == 0
    real = slots[slots >= 0]
    assert np.array_equal(np.sort(real), np.arange(n))
    # every group holds pixels of one 2 x 2 block (4) or one vertical pair (2)
    for row in slots.reshape(-1, group):
        z, x = np.divmod(row[row >= 0], shape[1])
        assert z.size >= 1
        if group >= 2:
            assert np.unique(z // 2).size == 1
            assert np.unique(x // (2 if group == 4 else 1)).size == 1


def test_choose_block_width():
    assert choose_block_width(2, 2) == 8          # the paper's phantom: 2 channels
    assert choose_block_width(1300, 2) in (32, 64)
    for n in (1, 7, 64, 100, 1300, 2560):
        assert choose_block_width(n, 2) in BLOCK_WIDTHS


def test_iter_slice_chunks_cover_and_respect_budget():
    chunks = list(iter_slice_chunks(10, bytes_per_slice=100, budget_bytes=350, fixed_bytes=50))
    assert [(c.start, c.stop) for c in chunks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert list(iter_slice_chunks(0, 100, 1000)) == []
    with pytest.raises(ValueError, match="cannot hold one slice"):
        list(iter_slice_chunks(10, bytes_per_slice=100, budget_bytes=120, fixed_bytes=50))
    with pytest.raises(ValueError, match="bytes_per_slice"):
        list(iter_slice_chunks(10, bytes_per_slice=0, budget_bytes=120))


def test_working_set_is_stated():
    op = make_operator(WEDGE)
    per = op.bytes_per_column()
    assert op.sirt_bytes(128) - op.sirt_bytes(64) == pytest.approx(64 * per, rel=0.05)
    assert op.sirt_bytes(1) > op.matrix_bytes


def test_rejects_bad_options():
    W = astra_matrix(ODD, "strip")
    with pytest.raises(ValueError, match="group"):
        BatchedOperator(W, group=3)
    with pytest.raises(ValueError, match="block_width"):
        BatchedOperator(W, block_width=48)
    with pytest.raises(ValueError, match="n_threads"):
        BatchedOperator(W, n_threads=0)
    with pytest.raises(ValueError, match="min_shared"):
        BatchedOperator(W, group=2, min_shared=3)
    with pytest.raises(ValueError, match="grid_shape"):
        BatchedOperator(W, (10, 10))
    with pytest.raises(TypeError, match="scipy.sparse"):
        BatchedOperator(W.toarray())
    with pytest.raises(ValueError, match="batched"):
        make_operator(ODD, "sparse", group=2)


def test_without_grid_shape_same_operator(rng):
    W = astra_matrix(ODD, "linear")
    a = BatchedOperator(W)
    b = BatchedOperator(W, (ODD.n_grid, ODD.n_grid))
    x = rng.random((ODD.n_voxels, 3)).astype(np.float32)
    assert _rel(a.forward(x), b.forward(x)) < 1e-6


def test_cuda_backend_needs_a_gpu():
    if gpu_available():
        pytest.skip("a GPU is present: covered by test_cuda_backend_agrees")
    with pytest.raises(RuntimeError, match="GPU"):
        make_operator(ODD, "astra_cuda")


@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU visible to ASTRA")
def test_cuda_backend_agrees(rng):  # pragma: no cover - needs a GPU
    """ASTRA's GPU projector (its own model) against the CPU linear model, loosely."""
    op = make_operator(WEDGE, "astra_cuda")
    ref = make_operator(WEDGE, kind="linear")
    x = rng.random((WEDGE.n_voxels, 2)).astype(np.float32)
    _assert_adjoint(op, k=2)
    assert _rel(op.forward(x), ref.forward(x)) < 0.05


def test_accepts_any_scipy_matrix(rng):
    A = sp.random(50, 30, density=0.2, random_state=1, format="coo", dtype=np.float64)
    op = BatchedOperator(A, group=2)
    x = rng.random((30, 3)).astype(np.float32)
    assert _rel(op.forward(x), A.toarray() @ x) < 1e-5


@pytest.mark.parametrize("group", [1, 2, 4])
def test_channel_blocks_read_in_place_equal_the_transposed_columns(group, rng):
    """``forward_channels`` / ``adjoint_channels`` on (k, n, S) blocks equal the operator bit for bit.

    The reference is the operator on the (n, k S) matrix of columns c S + j, for block widths
    that cut through the channels.
    """
    W = make_operator(ODD, group=group, block_width=8)
    k, S = 3, 5  # 15 columns: blocks of 8 lanes straddle the channel boundaries
    x3 = rng.standard_normal((k, W.shape[1], S)).astype(np.float32)
    y3 = rng.standard_normal((k, W.shape[0], S)).astype(np.float32)
    cols = lambda a: np.ascontiguousarray(a.transpose(1, 0, 2).reshape(a.shape[1], -1))  # noqa: E731
    fwd = W.forward(cols(x3)).reshape(W.shape[0], k, S).transpose(1, 0, 2)
    adj = W.adjoint(cols(y3)).reshape(W.shape[1], k, S).transpose(1, 0, 2)
    assert np.array_equal(W.forward_channels(x3), fwd)
    assert np.array_equal(W.adjoint_channels(y3), adj)


@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("block_width,S", [(8, 8), (8, 24), (16, 32), (8, 12), (16, 27), (32, 5)])
def test_channel_blocks_projected_in_place_equal_the_packed_path(group, block_width, S, rng):
    """With ``S`` a multiple of the block width the engine reads and writes the channel blocks in place.

    ``forward_channels`` / ``adjoint_channels`` then skip the packed copy of the unknown
    (``forward_channels_direct``, ``adjoint_channels_direct``); other widths (blocks that
    straddle channels, padded lanes) take the packed path. The results equal the operator on
    the (n, k S) matrix of columns c S + j bit for bit (odd grid: dummy slots in pairs and
    2 x 2 groups), into NaN-filled buffers (every element written), on 1 thread and on all,
    and with the packed path forced (``in_place_channels = False``).
    """
    import numba

    W = make_operator(ODD, group=group, block_width=block_width)
    k = 3
    x3 = rng.standard_normal((k, W.shape[1], S)).astype(np.float32)
    y3 = rng.standard_normal((k, W.shape[0], S)).astype(np.float32)
    cols = lambda a: np.ascontiguousarray(a.transpose(1, 0, 2).reshape(a.shape[1], -1))  # noqa: E731
    fwd = W.forward(cols(x3)).reshape(W.shape[0], k, S).transpose(1, 0, 2)
    adj = W.adjoint(cols(y3)).reshape(W.shape[1], k, S).transpose(1, 0, 2)
    old = numba.get_num_threads()
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        try:
            f = W.forward_channels(x3, out=np.full((k, W.shape[0], S), np.nan, np.float32))
            a = W.adjoint_channels(y3, out=np.full((k, W.shape[1], S), np.nan, np.float32))
        finally:
            numba.set_num_threads(old)
        assert np.array_equal(f, fwd)
        assert np.array_equal(a, adj)
    W.in_place_channels = False  # the instance's switch: the packed path
    assert np.array_equal(W.forward_channels(x3), fwd)
    assert np.array_equal(W.adjoint_channels(y3), adj)


def test_default_grouping_follows_the_vector_width():
    """Pairs of pixels with AVX2 (2 x 2 groups spill its 16 vector registers), 2 x 2 with AVX-512."""
    from llvmlite import binding

    from chemtomo.projector.batched import default_group

    avx512 = bool(binding.get_host_cpu_features().get("avx512f", False))
    assert default_group() == (4 if avx512 else 2)
    assert make_operator(ODD).group == default_group()
    assert choose_block_width(1300, 2) == (64 if avx512 else 32)
