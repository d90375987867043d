"""Output paths checked before any work starts: every command's ``--out`` (and ``show``'s folder).

A run that would fail at its last step (a read-only folder, a parent that is a
file, an input about to be overwritten) is refused here, in one line naming the
option and the path, before minutes of reconstruction.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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


__all__ = ["check_output", "is_chemtomo_result"]
