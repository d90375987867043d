"""A chunked, resumable Zarr store for a volume reconstruction.

One run of :func:`chemtomo.pipeline.reconstruct_series` with ``store=PATH``
writes its maps here chunk by chunk, as the chunks complete; a run that dies
(even by SIGKILL) and is started again with the same inputs and parameters
finds the chunks already written, verifies them against their checksums, and
reconstructs only the rest.

Layout (a Zarr v3 group; arrays are ``(slices, z, x)`` per line as in the HDF5
result of :mod:`chemtomo.io.result`)::

    maps               float32 (k, n_slices, n_grid, n_grid); one Zarr chunk
                       per line and slice chunk: (1, chunk_slices, n_grid, n_grid)
    fractions/weight   float32 (k, ...)   written by the quantification pass
    fractions/atomic   float32 (k, ...)
    mask               uint8 (n_slices, n_grid, n_grid)
    attrs["chemtomo"]         format, format_version, fingerprint (digest,
                              parameters, inputs), layout (lines, n_slices,
                              n_grid, chunk_slices), created
    attrs["chemtomo_chunks"]  chunk index -> {slices, sha256, seconds, host, pid, written}
    attrs["chemtomo_result"]  status and, once complete, the threshold,
                              response ratios and parameters of the run
    attrs["chemtomo_repairs"] damaged chunks found on resuming: chunk, slices,
                              reason, found (time), host, pid

Why it survives a kill: Zarr's local store writes every file to a temporary
name and renames it, so a file is either old or new, never half; a chunk's
record (with the SHA-256 of its float32 bytes) is written only after all of
its data, so a chunk without a record is simply recomputed, and a chunk whose
bytes no longer match its record (a damaged disk, a hand edit), or whose file
cannot be read at all (truncated, overwritten: any codec or I/O error), is
reported (a warning naming the chunk and the reason, and an entry in
``attrs["chemtomo_repairs"]``, see :meth:`VolumeStore.repairs`), its files are
removed, and it is recomputed. The fingerprint (SHA-256 of the parameters that change the maps
and of every input array) is fixed when the store is created: a run with other
inputs or parameters is refused with the list of what differs, instead of
mixing chunks of two reconstructions.

The store has one writer, the process that drives the run (the client of a
Dask cluster); workers only compute and return arrays, so they need neither
the store nor a shared file system.

The module is over 500 lines on purpose: it is the store's whole on-disk
format (layout, fingerprint, chunk records, repairs, lock) in one place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.atomic import pid_alive, remove_stale_temporaries, replace_path
from ..io.provenance import to_json

STORE_FORMAT = "chemtomo-volume-store"
STORE_FORMAT_VERSION = "1"
_META, _CHUNKS, _RESULT = "chemtomo", "chemtomo_chunks", "chemtomo_result"
_REPAIRS = "chemtomo_repairs"

log = logging.getLogger("chemtomo.pipeline.store")


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("the chunked store needs Zarr: pip install 'chemtomo[dask]'") from exc
    return zarr


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _canonical(obj) -> str:
    """JSON with sorted keys and numpy scalars/arrays as plain numbers (for hashing)."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer, np.bool_)):
            return o.item()
        raise TypeError(f"cannot fingerprint a {type(o).__name__}: {o!r}")

    return json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes."""
    a = np.asarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    if a.ndim == 0:
        h.update(np.ascontiguousarray(a).tobytes())
    else:
        for block in a:  # one leading-axis block at a time: no full-size copy of a strided array
            h.update(memoryview(np.ascontiguousarray(block)).cast("B"))
    return h.hexdigest()


class StoreExistsError(ValueError):
    """The store path exists and resuming was not asked for."""


class StoreMismatchError(ValueError):
    """The store holds chunks of a reconstruction with other inputs or parameters."""


@dataclass(frozen=True)
class Fingerprint:
    """What a store's chunks are a function of.

    Attributes
    ----------
    parameters : dict
        Everything that changes the reconstructed maps (method, iterations,
        alpha, filter, backend, geometry, lines, response ratios, versions).
    inputs : dict
        Name -> SHA-256 of each input array (EDS lines, HAADF).
    """

    parameters: dict
    inputs: dict

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the parameters and inputs."""
        return hashlib.sha256(_canonical({"parameters": self.parameters, "inputs": self.inputs}).encode()).hexdigest()

    def as_dict(self) -> dict:
        """``{digest, parameters, inputs}``, the parameters JSON round-tripped to compare equal to stored ones."""
        # round-trip through JSON so a stored fingerprint compares equal to a fresh one
        return {"digest": self.digest, "parameters": json.loads(_canonical(self.parameters)),
                "inputs": dict(self.inputs)}

    def differences(self, stored: dict) -> list[str]:
        """Human-readable differences from a stored fingerprint (``as_dict`` form)."""
        out = []
        new = json.loads(_canonical(self.parameters))
        old = stored.get("parameters", {})
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                out.append(f"parameter {key}: {_short(old.get(key, '<absent>'))} -> {_short(new.get(key, '<absent>'))}")
        old_in = stored.get("inputs", {})
        for key in sorted(set(old_in) | set(self.inputs)):
            if key not in old_in:
                out.append(f"input {key}: not in the stored run")
            elif key not in self.inputs:
                out.append(f"input {key}: in the stored run but not given now")
            elif old_in[key] != self.inputs[key]:
                out.append(f"input {key}: data differ (sha256 {old_in[key][:12]}... -> {self.inputs[key][:12]}...)")
        return out


def _short(v, n: int = 60) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= n else s[: n - 3] + "..."


def chunk_bounds(n_slices: int, chunk_slices: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``n_slices`` in chunks of ``chunk_slices``."""
    if int(chunk_slices) < 1:
        raise ValueError(f"chunk_slices must be >= 1, got {chunk_slices}")
    c = int(chunk_slices)
    return [(a, min(a + c, n_slices)) for a in range(0, n_slices, c)]


@dataclass
class ChunkRecord:
    """The record of one completed chunk (kept in the store's attributes)."""

    index: int
    slices: tuple[int, int]
    sha256: str
    factor: str = ""
    seconds: float = float("nan")
    host: str = ""
    pid: int = 0
    written: str = ""
    max_rss_bytes: int = 0

    def as_dict(self) -> dict:
        """The record as a JSON-ready dict (without ``index``: that is its key in the store)."""
        return {"slices": list(self.slices), "sha256": self.sha256, "factor": self.factor,
                "seconds": float(self.seconds), "host": self.host, "pid": int(self.pid), "written": self.written,
                "max_rss_bytes": int(self.max_rss_bytes)}

    @classmethod
    def from_dict(cls, index: int, d: dict) -> ChunkRecord:
        """The record of chunk ``index`` from its :meth:`as_dict` form (absent optional fields take defaults)."""
        return cls(int(index), tuple(d["slices"]), d["sha256"], d.get("factor", ""),
                   float(d.get("seconds", float("nan"))), d.get("host", ""), int(d.get("pid", 0)),
                   d.get("written", ""), int(d.get("max_rss_bytes", 0)))


def _check_not_written(lock: Path, path: Path) -> None:
    """Raise StoreExistsError if ``lock`` names a writer that may still run (another host, or a live pid)."""
    if not lock.is_file():
        return
    try:
        other = json.loads(lock.read_text())
    except (OSError, ValueError):
        other = {}
    if other.get("host") == socket.gethostname() and not pid_alive(int(other.get("pid", 0) or 0)):
        return
    raise StoreExistsError(f"the store {path} is being written by pid {other.get('pid')} on {other.get('host')} "
                           f"since {other.get('since')}; it cannot be replaced while that run writes it")


class StoreArray:
    """A read-only view of a store array that loads on indexing (``np.asarray`` loads it all).

    Stands in for an ndarray in :class:`~chemtomo.pipeline.VolumeResult` when the
    maps live in a store: ``arr[i]``, ``arr[:, a:b]``, ``arr.astype(...)`` and
    ``np.asarray(arr)`` read from disk, so a consumer that indexes one line or
    one chunk at a time never holds the whole volume.
    """

    def __init__(self, array, dtype=None):
        self._a = array
        self.dtype = np.dtype(dtype) if dtype is not None else np.dtype(array.dtype)
        self.shape = tuple(array.shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self._a[key]).astype(self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """The whole array, read from disk, as ``dtype``."""
        return self[...].astype(dtype, copy=copy)

    def __repr__(self) -> str:
        return f"StoreArray(shape={self.shape}, dtype={self.dtype}, store={self._a.store_path})"


@dataclass
class VolumeStore:
    """A chemtomo volume store (see the module docstring for the layout).

    Create or reopen one with :meth:`open`; write chunks with
    :meth:`write_chunk`; check them with :meth:`verify`.
    """

    path: Path
    group: object  # zarr.Group
    lines: list[str]
    n_slices: int
    n_grid: int
    chunk_slices: int
    fingerprint: dict = field(default_factory=dict)
    #: chunk index -> why it failed the last :meth:`verify` (read by :meth:`forget`)
    damaged: dict = field(default_factory=dict)

    # -- creation and reopening ------------------------------------------------------------

    @classmethod
    def open(cls, path, fingerprint: Fingerprint, *, lines: list[str], n_slices: int, n_grid: int,
             chunk_slices: int, resume: bool, chunk_slices_given: bool = False,
             replace: bool = False) -> VolumeStore:
        """Create the store at ``path``, or reopen it to resume.

        Parameters
        ----------
        path : path-like
            A folder (conventionally ``*.zarr``).
        fingerprint : Fingerprint
            Of this run's inputs and parameters.
        lines : list of str
        n_slices, n_grid : int
        chunk_slices : int
            Slices per chunk for a new store. A resumed store keeps its own.
        resume : bool
            Reopen an existing store of the same run (skipping its verified
            chunks). Without it an existing path is an error. With it a missing
            path is created.
        chunk_slices_given : bool
            ``chunk_slices`` was asked for explicitly: a resumed store with other
            chunks is then an error instead of silently keeping its own.
        replace : bool
            Without ``resume``: replace whatever is at ``path`` (a store of
            another run, a folder the user allowed to be replaced) by the new
            store, in one rename (:func:`chemtomo.io.atomic.replace_path`) once
            the new store is created.

        Raises
        ------
        StoreExistsError
            ``path`` exists and ``resume`` is False.
        StoreMismatchError
            The store at ``path`` was written for other inputs or parameters.
        """
        zarr = _zarr()
        path = Path(path)
        if path.exists() and not (replace and not resume):
            if not resume:
                raise StoreExistsError(
                    f"the store {path} already exists: resume it (--resume, resume=True) or choose a new path")
            store = cls._reopen(path)
            stored_fp = store.fingerprint
            if stored_fp.get("digest") != fingerprint.digest:
                diffs = fingerprint.differences(stored_fp) or ["(fingerprint format changed)"]
                raise StoreMismatchError(
                    f"the store {path} holds a reconstruction with other inputs or parameters, so its "
                    "chunks cannot be reused:\n  " + "\n  ".join(diffs)
                    + f"\nremove {path} or choose another store path to start a new reconstruction")
            layout = (store.lines, store.n_slices, store.n_grid)
            if layout != (list(lines), int(n_slices), int(n_grid)):  # implied by the fingerprint; belt and braces
                raise StoreMismatchError(f"the store {path} has layout {layout}, this run needs "
                                         f"{(list(lines), n_slices, n_grid)}")
            if chunk_slices_given and int(chunk_slices) != store.chunk_slices:
                raise StoreMismatchError(
                    f"the store {path} was written in chunks of {store.chunk_slices} slices, not "
                    f"{chunk_slices}: resume with chunk_slices={store.chunk_slices} (or none), or start a new store")
            store._lock()
            store._set_status("reconstructing")
            return store
        if path.exists():  # replace: never a store another live run writes
            _check_not_written(path / "chemtomo.lock", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, f".{path.name}.tmp-")  # stores half-created by killed runs
        remove_stale_temporaries(path.parent, f".{path.name}.old-")  # set aside by a killed replacement
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        group = zarr.open_group(str(tmp), mode="w")
        k, c = len(lines), int(chunk_slices)
        group.create_array("maps", shape=(k, n_slices, n_grid, n_grid), chunks=(1, c, n_grid, n_grid),
                           dtype="float32", fill_value=0.0)
        meta = {
            "format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "created": _now(),
            "fingerprint": fingerprint.as_dict(),
            "layout": {"lines": list(lines), "n_slices": int(n_slices), "n_grid": int(n_grid), "chunk_slices": c,
                       "axes": "line,slices,z,x"},
        }
        group.attrs.update({_META: meta, _CHUNKS: {}, _RESULT: {"status": "reconstructing"}})
        replace_path(tmp, path)  # a store appears whole, with its fingerprint, or not at all
        store = cls._reopen(path)
        store._lock()
        return store

    @classmethod
    def _reopen(cls, path: Path) -> VolumeStore:
        zarr = _zarr()
        try:
            group = zarr.open_group(str(path), mode="r+")
            meta = dict(group.attrs).get(_META)
        except Exception as exc:  # noqa: BLE001 - any failure to read means: not our store
            raise ValueError(f"{path} is not a readable chemtomo volume store ({exc})") from exc
        if not meta or meta.get("format") != STORE_FORMAT:
            raise ValueError(f"{path} exists but is not a chemtomo volume store (no format={STORE_FORMAT!r})")
        if meta.get("format_version") != STORE_FORMAT_VERSION:
            raise StoreMismatchError(f"{path} has store format version {meta.get('format_version')}, this "
                                     f"chemtomo writes {STORE_FORMAT_VERSION}: start a new store")
        lay = meta["layout"]
        return cls(path, group, list(lay["lines"]), int(lay["n_slices"]), int(lay["n_grid"]),
                   int(lay["chunk_slices"]), meta["fingerprint"])

    @classmethod
    def read(cls, path) -> VolumeStore:
        """Open an existing store (to read its results)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such store: {path}")
        return cls._reopen(path)

    # -- one writer ----------------------------------------------------------------------------

    @property
    def _lock_path(self) -> Path:
        return self.path / "chemtomo.lock"

    def _lock(self) -> None:
        """Take the store for this process; a lock left by a dead process (a kill) is taken over."""
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}
        for _ in range(2):
            try:
                fd = os.open(self._lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self._lock_path.read_text())
                except (OSError, ValueError):
                    other = {}
                if other.get("host") == me["host"] and not pid_alive(int(other.get("pid", 0))):
                    self._lock_path.unlink(missing_ok=True)  # its writer was killed: stale
                    continue
                raise StoreExistsError(
                    f"the store {self.path} is being written by pid {other.get('pid')} on {other.get('host')} "
                    f"since {other.get('since')}; if that run is dead, delete {self._lock_path}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return
        raise StoreExistsError(f"could not lock {self.path}")  # pragma: no cover - a race lost twice

    def close(self) -> None:
        """Release the store (idempotent)."""
        try:
            other = json.loads(self._lock_path.read_text())
        except (OSError, ValueError):
            return
        if other.get("pid") == os.getpid() and other.get("host") == socket.gethostname():
            self._lock_path.unlink(missing_ok=True)

    # -- chunks ------------------------------------------------------------------------------

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` slice range of every chunk, in order."""
        return chunk_bounds(self.n_slices, self.chunk_slices)

    @property
    def maps(self):
        """The Zarr array of maps, ``(k, n_slices, n_grid, n_grid)`` float32."""
        return self.group["maps"]

    def records(self) -> dict[int, ChunkRecord]:
        """The chunks recorded as written (not yet verified), in the order of their index (not of their writing)."""
        raw = dict(self.group.attrs).get(_CHUNKS, {})
        return {int(i): ChunkRecord.from_dict(int(i), d) for i, d in sorted(raw.items(), key=lambda kv: int(kv[0]))}

    def read_chunk(self, index: int) -> np.ndarray:
        """Chunk ``index``'s maps ``(k, stop - start, n_grid, n_grid)``, read from disk."""
        a, b = self.chunks[index]
        return np.asarray(self.maps[:, a:b])

    def chunk_files(self, index: int) -> list[Path]:
        """The files holding chunk ``index``'s maps (one per line; absent ones included)."""
        a = self.maps
        grid = [-(-n // c) for n, c in zip(a.shape, a.chunks, strict=True)]
        i_chunk = self.chunks[index][0] // a.chunks[1]
        files = []
        for coords in np.ndindex(grid[0], grid[2], grid[3]):
            key = a.metadata.encode_chunk_key((coords[0], i_chunk, coords[1], coords[2]))
            files.append(self.path / "maps" / key)
        return files

    def check_chunks(self) -> tuple[list[int], dict[int, str]]:
        """``(good, bad)``: recorded chunks whose data read back and match their SHA-256, and the others.

        Reading a chunk can fail in any way when its file is damaged (a truncated
        or overwritten file raises in the codec, e.g. Zstd, or in I/O): such a
        chunk is bad, never an error of this method.

        Returns
        -------
        good : list of int
            Verified chunk indices, ascending.
        bad : dict
            Chunk index -> why it is bad (a sentence naming the file or the failure).
        """
        good: list[int] = []
        bad: dict[int, str] = {}
        chunks = self.chunks
        for i, rec in sorted(self.records().items()):
            if i >= len(chunks) or tuple(rec.slices) != chunks[i]:
                bad[i] = f"its record (slices {tuple(rec.slices)}) does not fit the store's layout"
                continue
            missing = [f for f in self.chunk_files(i) if not f.is_file()]
            try:
                data = self.read_chunk(i)
            except Exception as exc:  # noqa: BLE001 - a damaged file raises anything (codec, I/O, shape)
                msg = (str(exc).splitlines() or [""])[0][:200]
                bad[i] = f"it cannot be read ({type(exc).__name__}: {msg})"
                continue
            if array_sha256(data) == rec.sha256:
                good.append(i)
            elif missing:
                bad[i] = "its file(s) are missing: " + ", ".join(str(f.relative_to(self.path)) for f in missing)
            else:
                bad[i] = "its data do not match the recorded SHA-256"
        return good, bad

    def verify(self) -> tuple[list[int], list[int]]:
        """``(good, bad)``: recorded chunks whose bytes match their SHA-256, and those that do not.

        A chunk that cannot be read (a damaged file) is bad. Each bad chunk is
        logged as a warning with the reason and kept in :attr:`damaged` for
        :meth:`forget`; see :meth:`check_chunks`.
        """
        good, bad = self.check_chunks()
        self.damaged = dict(bad)
        for i, why in sorted(bad.items()):
            a, b = self.chunks[i] if i < len(self.chunks) else (-1, -1)
            log.warning("store %s: chunk %d (slices %d:%d) is damaged: %s", self.path, i, a, b, why)
        return good, sorted(bad)

    def forget(self, indices) -> None:
        """Drop the records and the files of chunks ``indices`` (they will be recomputed).

        Chunks found damaged by the last :meth:`verify` are also listed, with the
        reason, in the store's repairs (:meth:`repairs`).
        """
        indices = sorted({int(i) for i in indices})
        raw = dict(dict(self.group.attrs).get(_CHUNKS, {}))
        for i in indices:
            raw.pop(str(i), None)
        self.group.attrs[_CHUNKS] = raw  # the record first: a chunk without one is recomputed
        repairs = list(dict(self.group.attrs).get(_REPAIRS, []))
        for i in indices:
            if i < len(self.chunks):
                for f in self.chunk_files(i):
                    f.unlink(missing_ok=True)  # never read again, even by a partial write
            if i in self.damaged:
                a, b = self.chunks[i] if i < len(self.chunks) else (-1, -1)
                repairs.append({"chunk": i, "slices": [a, b], "reason": self.damaged.pop(i), "found": _now(),
                                "host": socket.gethostname(), "pid": os.getpid()})
                log.warning("store %s: recomputing chunk %d (slices %d:%d)", self.path, i, a, b)
        if repairs:
            self.group.attrs[_REPAIRS] = repairs

    def repairs(self) -> list[dict]:
        """The damaged chunks found on resuming, oldest first.

        Returns
        -------
        list of dict
            ``{chunk, slices, reason, found, host, pid}`` for each chunk dropped
            by :meth:`forget` after :meth:`verify` found it damaged.
        """
        return [dict(r) for r in dict(self.group.attrs).get(_REPAIRS, [])]

    def write_chunk(self, index: int, maps: np.ndarray, *, factor: str = "", seconds: float = float("nan"),
                    host: str = "", pid: int = 0, max_rss_bytes: int = 0) -> ChunkRecord:
        """Write chunk ``index``'s maps ``(k, s, n_grid, n_grid)`` float32, then its record.

        ``factor`` is the factor the maps are quantified by (``"f"`` or ``"z"``).
        """
        a, b = self.chunks[index]
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        want = (len(self.lines), b - a, self.n_grid, self.n_grid)
        if maps.shape != want:
            raise ValueError(f"chunk {index} (slices {a}:{b}) needs maps of shape {want}, got {maps.shape}")
        self.maps[:, a:b] = maps
        rec = ChunkRecord(index, (a, b), array_sha256(maps), factor, seconds, host or socket.gethostname(),
                          pid or os.getpid(), _now(), int(max_rss_bytes))
        raw = dict(dict(self.group.attrs).get(_CHUNKS, {}))
        raw[str(index)] = rec.as_dict()
        self.group.attrs[_CHUNKS] = raw  # one atomic rewrite of zarr.json: after the data
        return rec

    def iter_maps(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, maps[:, start:stop])`` chunk by chunk."""
        for a, b in self.chunks:
            yield a, b, np.asarray(self.maps[:, a:b])

    # -- results -----------------------------------------------------------------------------

    def _set_status(self, status: str, **extra) -> None:
        self.group.attrs[_RESULT] = {"status": status, **extra}

    @property
    def result_info(self) -> dict:
        """The result attributes: ``status`` and, once complete, what :meth:`mark_complete` recorded."""
        return dict(dict(self.group.attrs).get(_RESULT, {}))

    def create_output(self, name: str, shape: tuple, dtype) -> object:
        """A result array chunked like the maps (overwritten if present)."""
        chunks = (1,) * (len(shape) - 3) + (self.chunk_slices, self.n_grid, self.n_grid)
        return self.group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                                       overwrite=True)

    def mark_complete(self, info: dict) -> None:
        """Set the status to ``"complete"`` with ``info`` (arrays stored as lists, other non-JSON objects as text)."""
        self._set_status("complete", **json.loads(to_json(info)))
