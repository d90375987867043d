"""Write files whole or not at all: a temporary name in the same folder, then rename.

The temporary name carries the writer's process id (``.result.tmp-PID.h5``). A
writer stopped by an exception, Ctrl-C or SIGTERM (the command line turns it into
an exception, see :func:`chemtomo.cli.main`) removes its temporary; one killed
outright (SIGKILL, a power cut) cannot, so the next write of the same path
removes every temporary of that path whose process is no longer running
(:func:`remove_stale_temporaries`) and says so in a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger("chemtomo.io")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (any user's).

    Parameters
    ----------
    pid : int

    Returns
    -------
    bool
        False for ``pid <= 0`` or no such process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OverflowError:  # not a pid this system can have
        return False
    return True


def stale_temporaries(folder: str | os.PathLike, prefix: str, suffix: str = "") -> list[tuple[Path, int]]:
    """Files or folders ``<prefix><PID><suffix>`` in ``folder`` whose process ``PID`` is not running.

    Parameters
    ----------
    folder : path
        Where to look (a missing folder has none).
    prefix, suffix : str
        The fixed parts of the name around the process id, e.g. ``".result.tmp-"`` and ``".h5"``.

    Returns
    -------
    list of (Path, int)
        Each stale temporary and the process id in its name, sorted by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
    out = []
    for p in sorted(folder.iterdir()):
        m = pattern.fullmatch(p.name)
        if m and not pid_alive(int(m.group(1))):
            out.append((p, int(m.group(1))))
    return out


def remove_stale_temporaries(folder: str | os.PathLike, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the temporaries :func:`stale_temporaries` finds, with a warning for each.

    A temporary of a running process is never touched. One that cannot be
    removed is reported in the warning and left.

    Parameters
    ----------
    folder : path
    prefix, suffix : str
        As for :func:`stale_temporaries`.

    Returns
    -------
    list of Path
        The temporaries removed.
    """
    removed = []
    for p, pid in stale_temporaries(folder, prefix, suffix):
        try:
            _remove(p)
        except OSError as exc:
            log.warning("could not remove %s, left by process %d which is no longer running: %s", p, pid, exc)
            continue
        log.warning("removed %s, a temporary left by process %d which is no longer running (killed?)", p, pid)
        removed.append(p)
    return removed


def _stale_of(path: Path) -> list[Path]:
    """Remove the stale temporaries (atomic_path) and set-aside folders (replace_path) of ``path``."""
    return (remove_stale_temporaries(path.parent, f".{path.stem}.tmp-", path.suffix)
            + remove_stale_temporaries(path.parent, f".{path.name}.old-"))


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
    On any exception (including KeyboardInterrupt and SystemExit) it is removed
    and ``path`` is untouched. Temporaries of ``path`` left by processes that no
    longer run (a SIGKILL) are removed first, with a warning.

    Parameters
    ----------
    path : path
        The file (or folder) to write.

    Yields
    ------
    Path
        ``.<stem>.tmp-<pid><suffix>`` in the folder of ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _stale_of(path)
    # keep the extension: writers such as HyperSpy choose the format by it
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        replace_path(tmp, path)
    finally:
        _remove(tmp)
