"""Accept HyperSpy signals or NumPy arrays; give back the kind received.

A stack is ``(n_tilts, ny, nx)``: as a HyperSpy ``Signal2D`` it has the tilt
as navigation axis and (y, x) as signal axes (the convention of
:mod:`chemtomo.io.hspy`). Arrays in, arrays out; signals in, signals out, with
the axes and metadata of the input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def is_signal(x) -> bool:
    """True for a HyperSpy signal (checked without importing HyperSpy)."""
    return hasattr(x, "axes_manager") and hasattr(x, "data") and hasattr(x, "metadata")


def unwrap(x, name: str = "stack", ndim: tuple[int, ...] = (3,)) -> tuple[np.ndarray, Callable]:
    """``(array, rewrap)``: the data of ``x`` and a function that dresses an array like ``x``."""
    if is_signal(x):
        data = np.asarray(x.data)

        def rewrap(a, title: str | None = None):
            a = np.asarray(a)
            if a.shape == data.shape:
                out = x._deepcopy_with_new_data(a)
            else:  # binned or cropped: same axes, scale by the size ratio
                out = type(x)(a, metadata=x.metadata.as_dictionary())
                for old_ax, new_ax in zip(x.axes_manager._axes, out.axes_manager._axes, strict=True):
                    new_ax.name, new_ax.units = old_ax.name, old_ax.units
                    new_ax.offset = old_ax.offset
                    new_ax.scale = old_ax.scale * old_ax.size / new_ax.size
            if title:
                out.metadata.General.title = title
            return out
    else:
        data = np.asarray(x)

        def rewrap(a, title: str | None = None):
            return np.asarray(a)
    if data.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {data.shape}")
    return data, rewrap


def unwrap_dict(d: dict, name: str = "maps", ndim: tuple[int, ...] = (3,)):
    """Like :func:`unwrap` for a dict of stacks: ``(dict of arrays, rewrap_dict)``."""
    arrays, wraps = {}, {}
    for k, v in d.items():
        arrays[k], wraps[k] = unwrap(v, f"{name} {k!r}", ndim)

    def rewrap_dict(out: dict) -> dict:
        return {k: wraps[k](v) for k, v in out.items()}

    return arrays, rewrap_dict
