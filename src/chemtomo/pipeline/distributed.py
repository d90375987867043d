"""Run the slice chunks of a volume in this process or on a Dask cluster.

Slices along the tilt axis are independent problems sharing one projector, so a
volume is cut into chunks of slices, each one batched solve
(:func:`reconstruct_chunk`). What is global stays with the driving process:
the filtered series and the response ratios before the chunks, the particle
mask after them. A :class:`Runner` decides where the chunks run:

- in this process (the default), no Dask needed: the chunks run on as many Python
  threads as numba has (:func:`~chemtomo.projector.concurrent_workers`), each with its
  share of numba's threads. A regularised solve alone keeps two cores only ~60 % busy
  (its iteration is a chain of short parallel passes); two chunks at once keep both
  busy, and a chunk's maps do not depend on its thread count. A cluster on one
  machine only adds start-up and copying (measured in ``bench/dask_scaling.py``);
- ``"local"`` or ``"local:N"``: a ``dask.distributed.LocalCluster`` of N
  single-threaded worker processes (default one per core);
- any other string: the address of an existing scheduler (``tcp://host:8786``)
  or the path of its scheduler file (``scheduler.json``); or a
  ``distributed.Client``.

With no ``scheduler`` given, the environment variable ``CHEMTOMO_SCHEDULER`` is
read. Workers need only chemtomo installed: each task carries its chunk of the
series (float32 sinograms) and returns its maps; the projector is rebuilt once
per worker process from the geometry. The driving process keeps at most
``2 x slots`` chunks in flight, so its memory and the cluster's stay bounded.

Memory: :func:`chunk_bytes` states the peak working set of one chunk solve
(measured by ``tests/pipeline/test_distributed.py`` against ``tracemalloc``);
:func:`plan_chunk_slices` sizes chunks so that a slot's budget covers the
projector plus one chunk. On a LocalCluster the same budget is each worker's
``memory_limit``, which Dask enforces (pause at 80 %, restart at 95 %).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..geometry import TiltGeometry, columns_to_volume
from ..reconstruct import ChannelData, MethodParams, WarmStart, get_method
from .memory import _BUDGET_FILL, WORKER_BASELINE_BYTES, default_memory_budget, plan_chunk_slices

log = logging.getLogger("chemtomo.pipeline")

SCHEDULER_ENV = "CHEMTOMO_SCHEDULER"
IN_PROCESS = ("inprocess", "in-process", "none", "sync")

# -- one chunk --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkSpec:
    """What every chunk of a run shares (small: shipped with every task).

    Attributes
    ----------
    geometry : dict
        :meth:`TiltGeometry.key` of one slice.
    backend : str
        Operator backend (:func:`chemtomo.projector.make_operator`).
    method : str
        A registered reconstruction method (:func:`chemtomo.reconstruct.get_method`).
    params : MethodParams or dict
        The method's parameters, validated into its ``Params`` (a frozen dataclass: pickled by reference
        to its class, so a worker imports the module that defines, and registers, it).
    constants : dict or None
        The method's volume-level set-up (:meth:`~chemtomo.reconstruct.Method.setup`)
        on all of the run's data, the same for every chunk.
    threads : int or None
        Threads the operator may use in a task (None: its default). Set for
        LocalCluster workers so that N single-threaded workers do not
        oversubscribe the cores.
    group : int or None
        Pixel grouping of the batched engine, fixed by the driver so that every
        worker, whatever its CPU, sums in the same order (None: the worker's default).
    haadf_geometry : dict or None
        :meth:`TiltGeometry.key` of the HAADF's own tilts (None: the HAADF, if any,
        is at ``geometry``'s); the worker then builds a
        :class:`~chemtomo.projector.modality.PerModality` pair.
    """

    geometry: dict
    backend: str
    method: str
    params: MethodParams
    constants: dict | None = None
    threads: int | None = None
    group: int | None = None
    haadf_geometry: dict | None = None

    def __post_init__(self):
        m = get_method(self.method)
        object.__setattr__(self, "method", m.name)
        object.__setattr__(self, "params", m.params(self.params))

    def with_threads(self, threads: int | None) -> ChunkSpec:
        """The same spec with another thread limit."""
        return dataclasses.replace(self, threads=threads)


@dataclass
class ChunkOutput:
    """What a task returns: the maps of its slices and where and how long it ran."""

    maps: np.ndarray  # (k, s, n_grid, n_grid) float32
    factor: str
    seconds: float
    host: str
    pid: int
    max_rss_bytes: int = 0  # peak resident memory of the process that ran it, so far
    warm: WarmStart | None = None  # the method's final state, when the chunk's data asked for it (keep_warm)


_OP_LOCK = threading.Lock()
_OP_CACHE: dict[str, object] = {}
_OP_KEPT = [0]  # depth of nested keep_operator() blocks in this process


def _geometry(key: dict) -> TiltGeometry:
    return TiltGeometry(np.asarray(key["angles_deg"]), key["n_pixels"], key["pixel_nm"], key["n_grid"],
                        key["grid_pixel_nm"])


def chunk_operator(geometry: dict, backend: str, group: int | None = None, haadf_geometry: dict | None = None):
    """The projector of ``geometry`` (a ``TiltGeometry.key()``), built once per process.

    With ``haadf_geometry`` (the HAADF's own tilts) a
    :class:`~chemtomo.projector.modality.PerModality` pair, each projector built once.
    One entry is kept: a worker serves one run at a time, and a projector of a
    large grid is the biggest object it holds.
    """
    from ..projector import make_modality_operator

    parts = [geometry, backend, group] + ([] if haadf_geometry is None else [haadf_geometry])
    key = json.dumps(parts, sort_keys=True)
    with _OP_LOCK:
        op = _OP_CACHE.get(key)
        if op is None:
            _OP_CACHE.clear()
            opts = {"group": group} if (backend == "batched" and group is not None) else {}
            hg = None if haadf_geometry is None else _geometry(haadf_geometry)
            op = _OP_CACHE[key] = make_modality_operator(_geometry(geometry), hg, backend, **opts)
        return op


def release_operator() -> None:
    """Drop this process's cached projector (kept inside a :func:`keep_operator` block)."""
    with _OP_LOCK:
        if not _OP_KEPT[0]:
            _OP_CACHE.clear()


@contextlib.contextmanager
def keep_operator():
    """Keep this process's cached projector from one in-process run to the next inside the block.

    A run releases its projector when it ends (a large grid's is the biggest object it
    holds); a caller that runs several reconstructions of one series in a row (the
    absorption correction's outer loop, several methods) would rebuild it for each.
    Inside the block it is built once (per geometry) and released at the block's end.
    """
    with _OP_LOCK:
        _OP_KEPT[0] += 1
    try:
        yield
    finally:
        with _OP_LOCK:
            _OP_KEPT[0] -= 1
        release_operator()


@contextlib.contextmanager
def _thread_limit(threads: int | None):
    """Limit numba's and the BLAS pools' threads inside the block (restored after).

    numba is limited only if the operator already loaded it: importing it here
    would cost a worker half a second for nothing.
    """
    if not threads:
        yield
        return
    from threadpoolctl import threadpool_limits

    numba = sys.modules.get("numba")
    prev = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        with threadpool_limits(int(threads)):
            yield
    finally:
        if prev is not None:
            numba.set_num_threads(prev)


def reconstruct_chunk(spec: ChunkSpec, data: ChannelData) -> ChunkOutput:
    """Reconstruct one chunk of slices: the task every worker runs.

    The result depends only on ``spec`` and ``data``, never on which other
    slices share the chunk or on where it runs: every column (slice, line) is
    an independent problem with a fixed order of arithmetic.

    Parameters
    ----------
    spec : ChunkSpec
    data : ChannelData
        The chunk's EDS (and HAADF) sinograms as operator columns, with the
        run's response ratios.

    Returns
    -------
    ChunkOutput
        ``maps`` is ``(k, s, n_grid, n_grid)`` float32.
    """
    t0 = time.perf_counter()
    W = chunk_operator(spec.geometry, spec.backend, spec.group, spec.haadf_geometry)
    method = get_method(spec.method)
    method.check_warm(data)  # a method without warm starts refuses one rather than ignore it
    with _thread_limit(spec.threads):
        res = method.solve(W, data, spec.params, constants=spec.constants)
    n = int(spec.geometry["n_grid"])
    maps = np.stack([columns_to_volume(m, n) for m in res.maps]).astype(np.float32, copy=False)
    return ChunkOutput(maps, res.factor, time.perf_counter() - t0, socket.gethostname(), os.getpid(), _max_rss(),
                       res.warm)


def _max_rss() -> int:
    """Peak resident memory (bytes) of this process: ``VmHWM`` on Linux.

    Not ``getrusage``: its ``ru_maxrss`` survives ``exec`` and so reports the
    parent's size for a freshly spawned worker.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except ImportError:  # pragma: no cover
        return 0


# -- where chunks run ---------------------------------------------------------------------------


def resolve_scheduler(scheduler=None):
    """``("inprocess", None)``, ``("local", n_workers or None)``, ``("address", str)`` or ``("client", Client)``.

    ``scheduler`` None reads ``CHEMTOMO_SCHEDULER``; unset or empty means in process.
    """
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV, "").strip() or None
    if scheduler is None:
        return ("inprocess", None)
    if not isinstance(scheduler, str):
        if type(scheduler).__name__ == "Client":
            return ("client", scheduler)
        raise ValueError(f"scheduler must be an address string or a distributed.Client, got {type(scheduler).__name__}")
    s = scheduler.strip()
    if s.lower() in IN_PROCESS:
        return ("inprocess", None)
    if s.lower() == "local" or s.lower().startswith("local:"):
        n = s.split(":", 1)[1] if ":" in s else ""
        if n and (not n.isdigit() or int(n) < 1):
            raise ValueError(f"scheduler 'local:N' needs a positive number of workers, got {scheduler!r}")
        return ("local", int(n) if n else None)
    if not s:
        raise ValueError("scheduler address is empty")
    return ("address", s)


def _versions() -> dict:
    import chemtomo

    return {"chemtomo": chemtomo.__version__, "numpy": np.__version__}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Runner:
    """Where the chunks of a run execute; a context manager that starts and stops a cluster it owns.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        See :func:`resolve_scheduler`.
    memory_budget_bytes : float, optional
        Memory for the chunks of this run on this machine (in process or
        LocalCluster; default :func:`default_memory_budget`). On an existing
        cluster each worker's own ``memory_limit`` is the budget.

    Attributes
    ----------
    kind : {"inprocess", "local", "address", "client"}
    slots : int
        Chunks that run at once (threads over all workers; in process, the Python
        threads of :func:`~chemtomo.projector.map_threads`).
    slot_bytes : float
        Memory one running chunk may use (projector + solve); in process, the whole
        budget, which the chunks at once share with one projector (:meth:`plan_chunk`).
    threads : int or None
        Threads a task's operator may use (LocalCluster: cores per worker).
    """

    def __init__(self, scheduler=None, *, memory_budget_bytes: float | None = None):
        self.kind, self.target = resolve_scheduler(scheduler)
        self.memory_budget_bytes = memory_budget_bytes
        self.client = self.cluster = None
        self.slots, self.slot_bytes, self.threads = 1, 0.0, None

    def describe(self) -> str:
        """Where the chunks run, as text for the log: in process, a LocalCluster, or a cluster's address."""
        if self.kind == "inprocess":
            return "in process" + (f" ({self.slots} chunks at once)" if self.slots > 1 else "")
        if self.kind == "local":
            return f"LocalCluster of {self.slots} workers"
        addr = getattr(self.client, "scheduler", None)
        return f"Dask cluster {getattr(addr, 'address', self.target)} ({self.slots} threads)"

    def __enter__(self) -> Runner:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        budget = self.memory_budget_bytes
        if self.kind == "inprocess":
            from ..projector import concurrent_workers

            self.slots = concurrent_workers()
            self.slot_bytes = float(budget if budget else default_memory_budget())
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - declared extra
            raise ImportError("running on a Dask cluster needs dask.distributed: pip install 'chemtomo[dask]'") from exc
        if self.kind == "local":
            n = self.target or _cores()
            total = float(budget if budget else default_memory_budget())
            self.slots, self.threads = n, max(1, _cores() // n)
            self.slot_bytes = total / n
            # Dask's limit sits above what the chunk sizing allows, so it trips only on a real overrun
            limit = (self.slot_bytes + WORKER_BASELINE_BYTES) / _BUDGET_FILL
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        memory_limit=int(limit), dashboard_address=":0")
            self.client = Client(self.cluster)
            return
        if self.kind == "address":
            try:
                if self.target.endswith(".json") and os.path.isfile(self.target):
                    self.client = Client(scheduler_file=self.target)
                else:
                    self.client = Client(self.target)
            except OSError as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {self.target!r}: {exc}") from exc
        else:
            self.client = self.target
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        if not workers:
            raise RuntimeError(f"the Dask cluster at {self.target} has no workers")
        self._check_versions()
        self.slots = sum(int(w["nthreads"]) for w in workers)
        per = [float(w.get("memory_limit") or 0) / max(1, int(w["nthreads"])) for w in workers]
        limit = min(per) if all(p > 0 for p in per) else float(budget or 4 * 2**30)
        self.slot_bytes = _BUDGET_FILL * limit - WORKER_BASELINE_BYTES

    def _check_versions(self) -> None:
        """Every worker must run this chemtomo and numpy: the chunks are bit-identical only then."""
        here = _versions()
        theirs = self.client.run(_versions)
        bad = {addr: v for addr, v in theirs.items() if v != here}
        if bad:
            addr, v = next(iter(bad.items()))
            raise RuntimeError(f"{len(bad)} Dask worker(s) run other versions than this process ({here}), e.g. "
                               f"{addr}: {v}; install the same chemtomo and numpy on every worker")

    def __exit__(self, *exc) -> None:
        if self.kind == "inprocess":
            release_operator()  # as before the runner: a run does not keep its projector alive
        if self.kind in ("local", "address"):
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        self.client = self.cluster = None

    def plan_chunk(self, geom: TiltGeometry, n_lines: int, n_slices: int, method: str, backend: str,
                   store: bool = False, haadf_geom: TiltGeometry | None = None, halo_slices: int = 0) -> int:
        """Slices per chunk for this runner (:func:`~chemtomo.pipeline.memory.plan_chunk_slices`).

        At least enough chunks to keep every slot busy: in process without a store, as few
        as memory allows beyond that; otherwise at least 8 and 4 per slot, to balance the
        load and lose little to a kill. In process the chunks at once share one projector
        and the budget; when it cannot hold a slice for each, they run one at a time (and
        :attr:`slots` says so).
        """
        while True:
            min_chunks = self.slots if (self.kind == "inprocess" and not store) else max(8, 4 * self.slots)
            at_once = self.slots if self.kind == "inprocess" else 1
            try:
                return plan_chunk_slices(geom, n_lines, n_slices, method, self.slot_bytes, backend, min_chunks,
                                         haadf_geom, halo_slices, at_once)
            except MemoryError:
                if at_once == 1:
                    raise
                log.info("the memory budget holds one chunk at a time: chunks run one after another")
                self.slots = 1

    def run(self, spec: ChunkSpec, tasks: Iterable[tuple[int, int, int]],
            make_data: Callable[[int, int], ChannelData],
            on_done: Callable[[int, int, int, ChunkOutput], None]) -> None:
        """Reconstruct every ``(index, start, stop)`` of ``tasks``; ``on_done`` gets each result as it completes.

        ``make_data(start, stop)`` builds a chunk's input in this process, only
        when it is about to be sent. ``on_done`` runs in this process (it is the
        store's one writer).
        """
        tasks = list(tasks)
        if self.kind == "inprocess":
            from ..projector import map_threads

            workers = 1
            if self.slots > 1 and len(tasks) > 1:  # built here, once, before the threads share it
                W = chunk_operator(spec.geometry, spec.backend, spec.group, spec.haadf_geometry)
                workers = self.slots if W.thread_safe() else 1
            for j, out in map_threads(lambda t: reconstruct_chunk(spec, make_data(t[1], t[2])), tasks, workers):
                on_done(*tasks[j], out)
            return
        self._run_dask(spec.with_threads(self.threads), tasks, make_data, on_done)

    def _run_dask(self, spec, tasks, make_data, on_done, max_retries: int = 2) -> None:
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        client = self.client
        tag = uuid.uuid4().hex[:8]
        queue = list(tasks)
        window = 2 * max(1, self.slots)
        inflight: dict = {}
        retries: dict[int, int] = {}
        ac = as_completed()

        def submit(task):
            i, a, b = task
            payload = make_data(a, b)
            for attempt in range(max_retries + 1):
                try:  # straight to a worker; if that worker has just died, the scheduler picks another
                    data = client.scatter(payload, hash=False)
                    break
                except (CommClosedError, OSError) as exc:
                    if attempt == max_retries:
                        raise
                    log.warning("sending chunk %d failed (%s); retrying", i, type(exc).__name__)
                    time.sleep(0.5 * (attempt + 1))
            fut = client.submit(reconstruct_chunk, spec, data, key=f"chemtomo-chunk-{i}-{tag}-{retries.get(i, 0)}",
                                pure=False)
            inflight[fut.key] = (task, data)
            ac.add(fut)

        while queue and len(inflight) < window:
            submit(queue.pop(0))
        try:
            for fut in ac:
                task, data = inflight.pop(fut.key)
                try:
                    out = fut.result()
                except (KilledWorker, FutureCancelledError) as exc:  # a worker died: its scattered input with it
                    i = task[0]
                    retries[i] = retries.get(i, 0) + 1
                    if retries[i] > max_retries:
                        raise
                    log.warning("chunk %d lost (%s); resubmitting (%d/%d)", i, type(exc).__name__, retries[i],
                                max_retries)
                    queue.insert(0, task)
                else:
                    on_done(*task, out)
                del fut, data  # drop the last references: the cluster frees the chunk's input and output
                while queue and len(inflight) < window:
                    submit(queue.pop(0))
        finally:
            for f in list(ac.futures):
                f.cancel()
            inflight.clear()
