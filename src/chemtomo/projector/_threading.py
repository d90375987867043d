"""Thread settings for the engine's numba kernels: checked counts and a scoped override."""

from __future__ import annotations

import contextlib

import numba


def _check_threads(n_threads) -> int | None:
    """``n_threads`` checked against numba's thread pool (None: numba's current setting)."""
    if n_threads is None:
        return None
    if (isinstance(n_threads, bool) or int(n_threads) != n_threads
            or not 1 <= n_threads <= numba.config.NUMBA_NUM_THREADS):
        raise ValueError(
            f"n_threads must be an integer in [1, {numba.config.NUMBA_NUM_THREADS}] or None, got {n_threads!r}")
    return int(n_threads)


@contextlib.contextmanager
def _threads(n: int | None, n_tasks: int | None = None):
    """Run numba kernels on ``n`` threads (default: numba's current setting), never more than ``n_tasks``.

    Idle threads still cost a wake-up per parallel region, and on a busy machine a scheduler
    quantum; only the calling thread's setting changes.
    """
    old = numba.get_num_threads()
    want = old if n is None else n
    if n_tasks is not None:
        want = max(1, min(want, int(n_tasks)))
    if want == old:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(old)
