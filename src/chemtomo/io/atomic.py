"""Write files whole or not at all: a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def replace_path(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move ``src`` (a file or a folder) to ``dest``, replacing what is there.

    A file replaces a file atomically (:func:`os.replace`). A folder (a Zarr
    store such as ``.zspy``) cannot replace a non-empty folder in one step: the
    old one is first renamed aside, the new one renamed in, then the old one
    removed, so ``dest`` is always either the old or the new whole folder.

    Parameters
    ----------
    src, dest : path
    """
    src, dest = Path(src), Path(dest)
    if src.is_dir() and dest.exists():
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        _remove(aside)
        os.replace(dest, aside)
        try:
            os.replace(src, dest)
        except BaseException:
            os.replace(aside, dest)
            raise
        _remove(aside)
    else:
        os.replace(src, dest)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary path may become a file or a folder (a ``.zspy`` Zarr store).
    On any exception it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the extension: writers such as HyperSpy choose the format by it
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        replace_path(tmp, path)
    finally:
        _remove(tmp)
