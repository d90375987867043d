"""Reused work buffers (issue 17): the same bits as fresh arrays, whatever the previous call left behind."""

import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import (
    ChannelMix,
    ChannelSum,
    MatrixOperator,
    PerModality,
    RowScale,
    VStack,
    make_operator,
)
from chemtomo.projector._work import WorkBuffers, out_buffer
from chemtomo.projector.astra_backend import astra_matrix

# odd grid: 2 x 2 pixel groups at the edges hold dummy slots
ODD = TiltGeometry(np.arange(-75.0, 75.1, 5.0), 33, 1.5)
FEW = TiltGeometry(np.arange(-60.0, 60.1, 20.0), 33, 1.5)


def _poison(*ops):
    """Fill every kept buffer of ``ops`` (this thread's) with NaN: a value read before written shows."""
    for op in ops:
        bufs = op.__dict__.get("_bufs")
        if bufs is not None:
            for a in bufs._store().values():
                a.fill(np.nan)


def _fresh(op):
    """``op`` with no kept buffers (a pickle round trip drops them)."""
    return pickle.loads(pickle.dumps(op))


def _data(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_engine_same_bits_across_column_counts(group, rng):
    W = make_operator(ODD, group=group)
    ref = MatrixOperator(astra_matrix(ODD, "strip"))
    for m in (40, 3, 40, 17, 64, 1, 9):  # grows, shrinks, changes the block width (8-64 lanes)
        x, y = _data(rng, (W.shape[1], m)), _data(rng, (W.shape[0], m))
        _poison(W)
        fx, aty = W.forward(x), W.adjoint(y)
        assert np.array_equal(fx, _fresh(W).forward(x))
        assert np.array_equal(aty, _fresh(W).adjoint(y))
        # independent reference: scipy's product of the same matrix, float32 rounding
        assert np.max(np.abs(fx - ref.forward(x))) <= 1e-5 * np.max(np.abs(fx))
        assert np.max(np.abs(aty - ref.adjoint(y))) <= 1e-5 * np.max(np.abs(aty))


def test_engine_channels_same_bits_across_channel_counts(rng):
    W = make_operator(ODD)
    for k, S in ((2, 7), (5, 3), (3, 11), (5, 13), (1, 1)):
        x3, y3 = _data(rng, (k, W.shape[1], S)), _data(rng, (k, W.shape[0], S))
        _poison(W)
        got_f, got_a = W.forward_channels(x3), W.adjoint_channels(y3)
        # the channel layout is the transposed columns' (bit for bit), computed by a fresh operator
        cols = np.ascontiguousarray(x3.transpose(1, 0, 2).reshape(W.shape[1], k * S))
        want_f = _fresh(W).forward(cols).reshape(W.shape[0], k, S).transpose(1, 0, 2)
        rows = np.ascontiguousarray(y3.transpose(1, 0, 2).reshape(W.shape[0], k * S))
        want_a = _fresh(W).adjoint(rows).reshape(W.shape[1], k, S).transpose(1, 0, 2)
        assert np.array_equal(got_f, want_f)
        assert np.array_equal(got_a, want_a)


def _compositions(W, WH):
    """``(name, operator, its matrix in float64)`` for every composition that reuses buffers."""
    A = sp.csr_matrix(astra_matrix(ODD, "strip"), dtype=np.float32).astype(np.float64)
    AH = sp.csr_matrix(astra_matrix(FEW, "strip"), dtype=np.float32).astype(np.float64)
    k = 3
    r = np.array([0.7, 1.3, 2.0], np.float32)
    mix = np.vstack([np.diag(1.0 / r), np.ones((1, k))]).astype(np.float32)
    w = np.array([0.5, 1.0, 2.0])
    yield "mix", ChannelMix(W, mix), sp.kron(mix.astype(np.float64), A)
    yield "identity", ChannelMix(W, np.eye(k)), sp.kron(np.eye(k), A)
    yield "sum", ChannelSum(WH, w), sp.kron(w[None], AH)
    yield "vstack", VStack([ChannelMix(W, np.diag(1.0 / r)), ChannelSum(WH, np.ones(k))]), sp.vstack(
        [sp.kron(np.diag(1.0 / r).astype(np.float32).astype(np.float64), A), sp.kron(np.ones((1, k)), AH)])
    d = np.random.default_rng(5).random((4 * W.shape[0], 1)).astype(np.float32)
    yield "rowscale", RowScale(ChannelMix(W, mix), d), sp.diags(d[:, 0].astype(np.float64)) @ sp.kron(
        mix.astype(np.float64), A)
    yield "permodality", ChannelMix(PerModality(W, WH, ODD, FEW), np.eye(k)), sp.kron(np.eye(k), A)


def _close(got, want):
    return np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


@pytest.mark.parametrize("name", ["mix", "identity", "sum", "vstack", "rowscale", "permodality"])
def test_compositions_into_buffers_same_bits(name, rng):
    W, WH = make_operator(ODD), make_operator(FEW)
    op, M = {n: (o, mat) for n, o, mat in _compositions(W, WH)}[name]
    fresh = _fresh(op)
    for m in (6, 2, 6, 13):
        x, y = _data(rng, (op.shape[1], m)), _data(rng, (op.shape[0], m))
        want_f, want_a = fresh.forward(x), fresh.adjoint(y)
        # independent reference: the composition's matrix in float64, float32 rounding
        assert _close(want_f, M @ x.astype(np.float64)) and _close(want_a, M.T @ y.astype(np.float64))
        fresh = _fresh(op)
        _poison(op, W, WH, *getattr(op, "ops", ()), getattr(op, "op", W))
        assert np.array_equal(op.forward(x), want_f)
        assert np.array_equal(op.adjoint(y), want_a)
        # into a caller's buffer (garbage in it): written there, the same bits
        out_f = np.full((op.shape[0], m), np.nan, np.float32)
        out_a = np.full((op.shape[1], m), np.nan, np.float32)
        got_f, got_a = op._forward_into(x, out_f), op._adjoint_into(y, out_a)
        assert np.array_equal(got_f, want_f) and np.array_equal(got_a, want_a)
        assert got_f is out_f and got_a is out_a
        # a buffer that does not fit is not used
        wrong = np.zeros((op.shape[0], m + 1), np.float32)
        assert np.array_equal(op._forward_into(x, wrong), want_f) and not np.any(wrong)


def test_column_dependent_row_scale_into_buffers(rng):
    W = make_operator(ODD)
    m = 4
    d = rng.random((2 * W.shape[0], m)).astype(np.float32)
    op = RowScale(ChannelMix(W, np.eye(2)), d)
    x, y = _data(rng, (op.shape[1], m)), _data(rng, (op.shape[0], m))
    # independent reference: d * (W x) blockwise, and W^T (d y) blockwise, in float64
    A = astra_matrix(ODD, "strip").astype(np.float64)
    n_out, n_in = W.shape
    want_f = d * np.vstack([A @ x[:n_in], A @ x[n_in:]])
    dy = (d * y).astype(np.float64)
    want_a = np.vstack([A.T @ dy[:n_out], A.T @ dy[n_out:]])
    out = np.empty((op.shape[0], m), np.float32)
    assert op._forward_into(x, out) is out
    assert np.max(np.abs(out - want_f)) <= 1e-5 * np.max(np.abs(want_f))
    got = op._adjoint_into(y, np.empty((op.shape[1], m), np.float32))
    assert np.max(np.abs(got - want_a)) <= 1e-5 * np.max(np.abs(want_a))


def test_threads_sharing_an_operator_get_their_own_buffers(rng):
    W = make_operator(ODD)
    xs = [_data(rng, (W.shape[1], m)) for m in (8, 24, 5, 40)]
    want = [_fresh(W).forward(x) for x in xs]
    got: dict = {}
    start = threading.Barrier(len(xs))

    def run(i):
        start.wait()
        for _ in range(5):
            got[i] = W.forward(xs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[i], want[i]) for i in range(len(xs)))


def test_pickling_drops_the_buffers(rng):
    W = make_operator(ODD)
    x = _data(rng, (W.shape[1], 16))
    y = W.forward(x)
    assert "_bufs" in W.__dict__
    W2 = pickle.loads(pickle.dumps(W))
    assert "_bufs" not in W2.__dict__
    assert np.array_equal(W2.forward(x), y)
    W.release_buffers()
    assert np.array_equal(W.forward(x), y)


def test_work_buffers_grow_and_skip_large_arrays():
    bufs = WorkBuffers(max_bytes=4 * 100)
    a = bufs.get("a", (5, 4))
    assert a.shape == (5, 4) and a.dtype == np.float32 and a.flags.c_contiguous
    b = bufs.get("a", (3, 2))
    assert np.shares_memory(a, b)  # reused
    c = bufs.get("a", (10, 10))  # grows (400 bytes: at the limit)
    assert c.shape == (10, 10) and not np.shares_memory(a, c)
    assert not np.shares_memory(bufs.get("b", (2, 2)), bufs.get("a", (2, 2)))  # names never share
    big = bufs.get("a", (11, 10))  # over the limit: a fresh array every call
    assert not np.shares_memory(big, bufs.get("a", (11, 10)))
    assert out_buffer(np.zeros((2, 3), np.float64), (2, 3)) is None
    assert out_buffer(np.zeros((3, 2), np.float32).T, (2, 3)) is None
    z = np.zeros((2, 3), np.float32)
    assert out_buffer(z, (2, 3)) is z


def test_non_float32_inputs_keep_the_plain_expressions():
    A = MatrixOperator(np.array([[1.0, 2.0], [0.5, 0.0]]))
    op = ChannelSum(A, [1.0, 3.0])
    x = np.arange(4, dtype=np.float64)[:, None]
    # W (1 x_0 + 3 x_1) with x_0 = (0, 1), x_1 = (2, 3): W (6, 10) = (26, 3)
    assert np.allclose(op._forward(x)[:, 0], [26.0, 3.0])
