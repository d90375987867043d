"""Output paths checked before any work starts: every command's ``--out`` (and ``show``'s folder), ``--store``.

A run that would fail at its last step (a read-only folder, a parent that is a
file, an input about to be overwritten) is refused here, in one line naming the
option and the path, before minutes of reconstruction.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

RESULT_FORMAT = "chemtomo-result"


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the folder a new path would be created in)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def is_chemtomo_result(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file whose root ``format`` attribute is a chemtomo result's.

    Parameters
    ----------
    path : path

    Returns
    -------
    bool
        False for a file that is not HDF5, is damaged or unreadable, or has another format.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except (OSError, ValueError):  # not HDF5, truncated, unreadable
        return False
    if isinstance(fmt, bytes):
        fmt = fmt.decode(errors="replace")
    return fmt == RESULT_FORMAT


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike, *, option: str = "--out", kind: str = "file",
                 inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False) -> Path:
    """Refuse an output path that cannot or must not be written, before any work.

    Parameters
    ----------
    path : path
        The output: a file (``kind="file"``) or a folder (``kind="folder"``).
        For a file, an existing chemtomo result (root attribute
        ``format="chemtomo-result"``) is replaced as a re-run replaces its own
        output; any other existing file needs ``overwrite``.
    option : str
        The option the path came from, for the messages (``--out``).
    kind : {"file", "folder"}
        What the command writes at ``path``.
    inputs : iterable of path
        The command's input files: none may be the output.
    overwrite : bool
        Whether an existing file that is not a chemtomo result may be replaced.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        An empty path; a parent that is a file; a file output that is a folder
        or an input, or an unrelated existing file without ``overwrite``; a
        folder output that is an existing file; a path or the folder it would
        be created in that this user cannot write.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    if not str(path).strip():
        raise ValueError(f"{option} is empty: give a {'file (.h5) or ' if kind == 'file' else ''}folder name")
    p = Path(path)
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {p}: its parent {parent} is a file, not a folder")
    if kind == "file":
        if p.is_dir():
            raise ValueError(f"{option} {p} is a folder, not a file: give a file name or remove the folder")
        for i in inputs:
            if _same_file(p, Path(i)):
                raise ValueError(f"{option} {p} is one of the inputs; give another file name")
        if p.exists():
            if not os.access(p, os.W_OK):
                raise ValueError(f"{option} {p} exists and is read-only")
            if not overwrite and not is_chemtomo_result(p):
                raise ValueError(f"{option} {p} exists and is not a chemtomo result; give --overwrite to replace "
                                 "it, or another name")
    elif p.exists() and not p.is_dir():
        raise ValueError(f"{option} {p} is an existing file; this command writes a folder: give a folder name")
    base = _first_existing(p.parent if kind == "file" else p)
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {p}: cannot write in {base} (permission denied)")
    return p


@contextlib.contextmanager
def staged_output(out: str | os.PathLike) -> Iterator[Path]:
    """Write a command's output folder all or nothing; on failure also remove the folders it created.

    :func:`chemtomo.io.experimental_result.staged_folder` (files written into a
    staging folder inside ``out``, moved into place together at the end), plus:
    ``out`` and any of its parents that did not exist before are removed again
    when the block fails, so a refused or interrupted run leaves nothing.
    Staging folders of killed runs (``.staging-PID`` of a process no longer
    running) are removed first, with a warning (by ``staged_folder``).

    Parameters
    ----------
    out : path
        The output folder.

    Yields
    ------
    Path
        The staging folder to write into.
    """
    from chemtomo.io.experimental_result import staged_folder

    out = Path(out)
    created = []
    p = out
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        with staged_folder(out) as stage:
            yield stage
    except BaseException:
        for c in created:  # deepest first; only folders left empty
            try:
                c.rmdir()
            except OSError:
                break
        raise


STORE_FORMAT = "chemtomo-volume-store"  # chemtomo.pipeline.store.STORE_FORMAT, read without importing Zarr


def is_chemtomo_store(path: str | os.PathLike) -> bool:
    """Whether the folder ``path`` is a chemtomo volume store (its ``zarr.json`` names the store format).

    Parameters
    ----------
    path : path

    Returns
    -------
    bool
        False for a missing, unreadable or foreign folder.
    """
    import json

    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        return meta["attributes"]["chemtomo"]["format"] == STORE_FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _inside(p: Path, other: Path) -> bool:
    """Whether ``other`` is ``p`` or lies under it (resolved paths)."""
    try:
        p, other = p.resolve(), other.resolve()
    except OSError:
        return False
    return other == p or p in other.parents


def check_store(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                outputs: Iterable[str | os.PathLike] = (), resume: bool = False,
                overwrite: bool = False, option: str = "--store") -> Path:
    """Refuse a ``--store`` folder that cannot or must not be written, before any work.

    Parameters
    ----------
    path : path
        The store (a folder).
    inputs, outputs : iterable of path
        The run's input files or folders and its outputs: the store may neither
        be one of them nor hold one (replacing it would delete them).
    resume : bool
        ``--resume``: an existing chemtomo store is continued (its fingerprint
        is checked when the run opens it); a missing one is created.
    overwrite : bool
        ``--overwrite``: an existing store, or a folder that is not one, is
        replaced by the new store when the run starts.
    option : str
        The option named in the messages.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        An empty path; a parent that is a file; the path an existing file;
        an input or output at or under it; an existing chemtomo store without
        ``--resume`` or ``--overwrite``; an existing other folder without
        ``--overwrite`` (or with ``--resume``); a place this user cannot write.
    """
    if not str(path).strip():
        raise ValueError(f"{option} is empty: give a folder for the store (e.g. run.zarr)")
    p = Path(path)
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {p}: its parent {parent} is a file, not a folder")
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {p} is an existing file; the store is a folder: give a folder name")
    for kind, items in (("input", inputs), ("output", outputs)):
        for i in items:
            if _inside(p, Path(i)):
                raise ValueError(f"{option} {p} is or holds the {kind} {i}; give the store a folder of its own")
    if p.is_dir():
        ours = is_chemtomo_store(p)
        if resume and not ours:
            raise ValueError(f"{option} {p} is not a chemtomo store, so --resume cannot continue it; give the "
                             "store of the run to resume, or a new path")
        if not (resume or overwrite):
            if ours:
                raise ValueError(f"{option} {p} already holds a chemtomo store: --resume to continue that run, "
                                 "--overwrite to start it afresh, or another path")
            raise ValueError(f"{option} {p} is an existing folder that is not a chemtomo store; give --overwrite "
                             "to replace it (its contents are deleted) or another path")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {p}: cannot write in it (permission denied)")
    base = _first_existing(p.parent)
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {p}: cannot write in {base} (permission denied)")
    return p


__all__ = ["check_output", "check_store", "is_chemtomo_result", "is_chemtomo_store", "staged_output"]
