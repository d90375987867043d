"""Provenance: what went into a result (inputs with checksums, versions, time), and its JSON form."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

_PACKAGES = ("chemtomo", "numpy", "scipy", "astra-toolbox", "xraylib", "pyxray", "scikit-image",
             "h5py", "hyperspy", "exspy", "rosettasciio", "numba", "dask")


def json_default(o):
    """The JSON form of what :func:`json.dumps` cannot write itself.

    NumPy arrays become lists, NumPy scalars (numbers and booleans) Python
    numbers and booleans, anything else (paths, ...) its ``str``. The one
    ``default=`` of every JSON text chemtomo writes (result attributes,
    alignment files, metrics).

    Parameters
    ----------
    o : object
        An object the JSON encoder does not know.

    Returns
    -------
    object
        A JSON-serialisable stand-in.
    """
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    return str(o)


def to_json(obj, **kwargs) -> str:
    """``json.dumps(obj, default=json_default, **kwargs)``: NumPy values as numbers, the rest as text.

    Parameters
    ----------
    obj : object
        Dicts, lists, numbers, strings, NumPy arrays and scalars, paths.
    **kwargs
        Passed to :func:`json.dumps` (``indent``, ``sort_keys``).

    Returns
    -------
    str
    """
    return json.dumps(obj, default=json_default, **kwargs)


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in blocks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """The Python version and the installed versions of chemtomo's main dependencies (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(inputs: list[str | Path] = (), **extra) -> dict:
    """A JSON-friendly record of inputs (path, size, sha256), versions, time and command."""
    files = []
    for p in inputs:
        p = Path(p)
        if p.is_file():
            files.append({"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": sha256(p)})
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "inputs": files,
        "versions": versions(),
        "platform": platform.platform(),
        **extra,
    }
