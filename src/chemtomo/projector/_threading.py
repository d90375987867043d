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


#: numba threading layers that serve parallel kernels launched from several Python threads at once.
THREADSAFE_LAYERS = ("omp", "tbb")


@numba.njit(parallel=True, cache=True)
def _touch_layer(n):  # pragma: no cover - compiled
    s = 0
    for i in numba.prange(n):
        s += i
    return s


def concurrent_workers(n_tasks: int | None = None) -> int:
    """How many independent solves to run at once on Python threads: at most the calling thread's numba threads.

    Each of the workers then runs its kernels on ``numba threads // workers`` threads
    (:func:`map_threads`). One task at a time (the kernels on every thread) when there is
    only one task, when numba is set to one thread, or when numba's threading layer cannot
    serve two Python threads at once (``workqueue``): then nothing changes. ``n_tasks``
    None: as many workers as threads.

    Why: a regularised solve's iteration is a chain of short memory-bound passes, each a
    parallel region with a barrier, and one solve keeps two cores ~60 % busy
    (``docs/performance.md``). Two solves of independent columns on a thread each keep
    both busy, and a kernel's result does not depend on its thread count.
    """
    cores = numba.get_num_threads()
    if cores < 2 or (n_tasks is not None and n_tasks < 2):
        return 1
    _touch_layer(2)  # the layer is chosen at the first parallel launch
    if numba.threading_layer() not in THREADSAFE_LAYERS:
        return 1
    return cores if n_tasks is None else min(cores, int(n_tasks))


def map_threads(fn, items, n_workers: int):
    """``(i, fn(items[i]))`` for every item, as each finishes, from ``n_workers`` Python threads.

    For independent solves: the chunks of a volume, the rule's column groups.

    Each worker runs its numba kernels on ``numba threads // n_workers`` threads (the
    caller's setting split between them). At most ``n_workers`` items are in progress, so
    whatever ``fn`` builds for an item is held for at most that many at once. With
    ``n_workers`` 1 the items run in order in the calling thread. An exception in a
    worker is raised here, after the running items end; items not started are dropped.

    Parameters
    ----------
    fn : callable
        ``fn(item)``: must be safe to run on several threads at once (the operators are:
        their work buffers are per thread).
    items : iterable
    n_workers : int
        From :func:`concurrent_workers`.

    Yields
    ------
    tuple
        ``(index of the item, fn's result)``, in the order the items finish.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    items = list(items)
    n_workers = max(1, min(int(n_workers), len(items)))
    if n_workers == 1:
        for i, item in enumerate(items):
            yield i, fn(item)
        return
    per = max(1, numba.get_num_threads() // n_workers)

    def work(item):
        numba.set_num_threads(per)  # this worker thread's own setting
        return fn(item)

    todo = iter(enumerate(items))
    pending: dict = {}
    with ThreadPoolExecutor(n_workers, thread_name_prefix="chemtomo-worker") as pool:
        def submit():
            nxt = next(todo, None)
            if nxt is not None:
                pending[pool.submit(work, nxt[1])] = nxt[0]

        try:
            for _ in range(n_workers):
                submit()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=pending.get):
                    i = pending.pop(fut)
                    res = fut.result()
                    submit()
                    yield i, res
        finally:
            for fut in pending:
                fut.cancel()
