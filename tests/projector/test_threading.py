"""Independent solves on Python threads: :func:`map_threads` and :func:`concurrent_workers`."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

from chemtomo.geometry import TiltGeometry
from chemtomo.projector import concurrent_workers, make_operator, map_threads


def test_map_threads_gives_every_result_once_with_its_index():
    got = dict(map_threads(lambda v: v * v, range(7), 2))
    assert got == {i: i * i for i in range(7)}


def test_map_threads_splits_numba_threads_and_leaves_the_caller_alone():
    """Each worker runs its kernels on its share of the caller's numba threads; the caller's setting is kept."""
    before = numba.get_num_threads()
    seen = dict(map_threads(lambda v: (threading.current_thread().name, numba.get_num_threads()), range(4), 2))
    assert all(name.startswith("chemtomo-worker") for name, _ in seen.values())
    assert {n for _, n in seen.values()} == {max(1, before // 2)}
    assert numba.get_num_threads() == before


def test_map_threads_with_one_worker_runs_in_order_in_the_calling_thread():
    order = []
    out = list(map_threads(lambda v: order.append((v, threading.current_thread().name)) or v, "abc", 1))
    assert out == [(0, "a"), (1, "b"), (2, "c")]
    assert {name for _, name in order} == {threading.current_thread().name}


def test_map_threads_raises_a_workers_error_and_drops_the_rest():
    started = []

    def fn(v):
        started.append(v)
        if v == 1:
            raise ValueError("bad item 1")
        return v

    with pytest.raises(ValueError, match="bad item 1"):
        list(map_threads(fn, range(50), 2))
    assert len(started) < 50  # items not started when the error came are never run


def test_concurrent_workers_is_one_for_one_task_or_one_thread():
    assert concurrent_workers(1) == 1
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert concurrent_workers(8) == 1 and concurrent_workers() == 1
    finally:
        numba.set_num_threads(old)
    assert 1 <= concurrent_workers(8) <= old and concurrent_workers(3) <= 3


def test_one_operator_on_two_threads_gives_the_bits_of_one_thread():
    """The batched engine applied from two threads at once (work buffers per thread): the serial results."""
    W = make_operator(TiltGeometry(np.arange(-60.0, 60.1, 15.0), 32, 1.0))
    rng = np.random.default_rng(3)
    xs = [rng.random((W.shape[1], m), dtype=np.float32) for m in (5, 9, 5, 9, 13, 2)]
    want = [(W.forward(x), W.adjoint(W.forward(x))) for x in xs]
    got = dict(map_threads(lambda x: (W.forward(x), W.adjoint(W.forward(x))), xs, 2))
    for i, (f, a) in enumerate(want):
        assert np.array_equal(got[i][0], f) and np.array_equal(got[i][1], a)


def test_thread_safety_is_asked_of_the_operator_and_composed_by_wrappers():
    """The batched engine and a scipy matrix are thread safe, ASTRA's projector is not; a wrapper is as its parts."""
    from chemtomo.projector import AstraOperator, ChannelMix, VStack

    g = TiltGeometry(np.arange(-60.0, 60.1, 30.0), 16, 1.0)
    W, S, A = make_operator(g), make_operator(g, "sparse"), AstraOperator(g)
    assert W.thread_safe() and S.thread_safe() and not A.thread_safe()
    assert VStack([W, S]).thread_safe() and not VStack([W, A]).thread_safe()
    assert ChannelMix(W, np.eye(2, dtype=np.float32)).thread_safe() and not ChannelMix(A, np.eye(2)).thread_safe()
    assert (2.0 * W).thread_safe() and not (2.0 * A).thread_safe() and not A.T.thread_safe()
