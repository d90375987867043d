"""Work buffers kept from one call to the next: fewer page-faulting allocations per iteration.

An iterative solver calls the same operator hundreds of times with arrays of the same
shapes. A fresh ``np.empty`` of a few megabytes is, above glibc's mmap threshold, new
pages from the kernel, zeroed on their first touch (a minor page fault per 4 KiB page);
reusing the previous call's array avoids them. Measured on fused-TV's real-example
slices: ``bench/tv_convergence_real.py --alloc-cost`` (issue 17).

:class:`WorkBuffers` holds an operator's *internal* scratch arrays (never returned to a
caller), one set per thread, so that threads sharing an operator (Dask's threaded
scheduler) never share a buffer. Pickling (Dask's process workers) drops them.
:func:`out_buffer` is the rule of the contract's ``_forward_into`` / ``_adjoint_into``:
a caller's buffer is used only when its shape, dtype and layout fit exactly.

A reused buffer holds the previous call's values: every user must write every element
it reads (the engine's pack, projection and unpack kernels do; see their docstrings).
"""

from __future__ import annotations

import threading

import numpy as np

from .base import DTYPE

#: Largest scratch array kept between calls (bytes); larger ones are allocated per call
#: as before, so that a huge batch does not keep its working set after it returns.
WORK_BUFFER_MAX_BYTES = 256 * 2**20


def out_buffer(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``out`` when it is a float32 C-contiguous array of exactly ``shape``, else None."""
    if out is not None and out.shape == tuple(shape) and out.dtype == DTYPE and out.flags.c_contiguous:
        return out
    return None


def result_array(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` when :func:`out_buffer` takes it, else a new float32 array of ``shape`` (uninitialised)."""
    res = out_buffer(out, shape)
    return np.empty(shape, DTYPE) if res is None else res


class WorkBuffers:
    """Named float32 scratch arrays, one set per thread, reused across calls.

    Parameters
    ----------
    max_bytes : int, optional
        Arrays larger than this are not kept (default :data:`WORK_BUFFER_MAX_BYTES`).

    Notes
    -----
    :meth:`get` returns a view of the first ``prod(shape)`` elements of a flat array
    that grows to the largest size asked under that name; its contents are the last
    user's (``np.empty`` semantics). Two names never share memory. The buffers are
    dropped when the object is pickled or :meth:`clear` is called.
    """

    def __init__(self, max_bytes: int = WORK_BUFFER_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._local = threading.local()

    def _store(self) -> dict[str, np.ndarray]:
        store = getattr(self._local, "arrays", None)
        if store is None:
            store = self._local.arrays = {}
        return store

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` for this thread, reused under ``name``.

        Parameters
        ----------
        name : str
            The buffer's role (one array per name and thread).
        shape : tuple of int

        Returns
        -------
        ndarray
            Uninitialised (it holds whatever the last call left).
        """
        size = int(np.prod(shape, dtype=np.int64))
        if size * DTYPE().itemsize > self.max_bytes:
            return np.empty(shape, DTYPE)
        store = self._store()
        flat = store.get(name)
        if flat is None or flat.size < size:
            store.pop(name, None)  # let the old one go before the new one is made
            flat = store[name] = np.empty(size, DTYPE)
        return flat[:size].reshape(shape)

    def clear(self) -> None:
        """Drop this thread's buffers."""
        self._local.arrays = {}

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.max_bytes = int(state["max_bytes"])
        self._local = threading.local()


class ReusesBuffers:
    """Mixin: an operator's per-thread :class:`WorkBuffers`, made on first use, not pickled."""

    def _work(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The calling thread's reused scratch array ``name`` of ``shape`` (uninitialised)."""
        bufs = self.__dict__.get("_bufs")
        if bufs is None:
            bufs = self.__dict__.setdefault("_bufs", WorkBuffers())
        return bufs.get(name, shape)

    def release_buffers(self) -> None:
        """Drop the calling thread's scratch arrays (they are otherwise kept between calls)."""
        bufs = self.__dict__.get("_bufs")
        if bufs is not None:
            bufs.clear()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_bufs", None)  # per-thread scratch arrays: not shipped to Dask's workers
        return state
