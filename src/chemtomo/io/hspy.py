"""Tilt series as HyperSpy ``.hspy`` files (the convention etspy uses).

One file per channel (HAADF, and each EDS line): a ``Signal2D`` whose
navigation axis is the tilt (named ``Tilt``, units ``degrees``, one value per
image; also ``metadata.Tomography.tilts``) and whose signal axes are ``y``
(along the tilt axis: the slices) and ``x`` (beam positions) in nm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tiltseries import TiltSeries
from .atomic import atomic_path


def _hs():
    try:
        import hyperspy.api as hs
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("reading .hspy files needs HyperSpy: pip install 'chemtomo[io]'") from exc
    return hs


def to_signal(stack: np.ndarray, angles_deg, pixel_nm: float, title: str, extra: dict | None = None):
    """A HyperSpy Signal2D (tilt | y, x) from a ``(n_tilts, n_slices, n_pixels)`` stack."""
    hs = _hs()
    s = hs.signals.Signal2D(np.asarray(stack, dtype=np.float32))
    ax = s.axes_manager
    ax[0].name, ax[0].units = "Tilt", "degrees"
    angles = np.asarray(angles_deg, dtype=float)
    steps = np.diff(angles)
    if angles.size > 1 and np.allclose(steps, steps[0]):
        ax[0].offset, ax[0].scale = float(angles[0]), float(steps[0])
    elif angles.size == 1:
        ax[0].offset = float(angles[0])
    for i, name in ((1, "x"), (2, "y")):
        ax[i].name, ax[i].units, ax[i].scale = name, "nm", float(pixel_nm)
    s.metadata.General.title = title
    s.metadata.set_item("Tomography.tilts", angles.tolist())
    for k, v in (extra or {}).items():
        s.metadata.set_item(f"Acquisition_instrument.chemtomo.{k}", v)
    return s


def write_tilt_series(folder, series: TiltSeries) -> dict[str, Path]:
    """Write ``haadf.hspy`` and ``eds_<line>.hspy`` into ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    items = ([("HAADF", "haadf.hspy", series.haadf)] if series.haadf is not None else [])
    items += [(ln, f"eds_{ln}.hspy", v) for ln, v in series.eds.items()]
    md = {k: v for k, v in series.metadata.items() if isinstance(v, (int, float, str))}
    for name, fname, stack in items:
        sig = to_signal(stack, series.angles_deg, series.pixel_nm, name, md)
        path = folder / fname
        with atomic_path(path) as tmp:
            sig.save(tmp, overwrite=True)
        out[name] = path
    return out


def read_stack(path, angles_deg=None) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """``(stack, angles_deg, pixel_nm, metadata)`` from a tilt-series ``.hspy`` file.

    Tilt angles come from ``angles_deg`` if given, else ``metadata.Tomography.tilts``,
    else the navigation axis when its units are degrees.
    """
    hs = _hs()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    s = hs.load(path)
    if isinstance(s, list):
        raise ValueError(f"{path} holds {len(s)} signals; give one tilt-series signal per file")
    data = np.asarray(s.data)
    if data.ndim != 3:
        raise ValueError(
            f"{path}: a tilt series must be a stack of 2-D images (tilt | y, x), got data of shape {data.shape}"
        )
    nav = s.axes_manager.navigation_axes
    if angles_deg is None:
        tilts = s.metadata.get_item("Tomography.tilts")
        if tilts is not None:
            angles_deg = np.asarray(tilts, dtype=float)
        elif nav and str(nav[0].units).lower().startswith("deg"):
            angles_deg = np.asarray(nav[0].axis, dtype=float)
        else:
            raise ValueError(
                f"{path}: no tilt angles found (no metadata.Tomography.tilts and the navigation axis "
                "is not in degrees); pass them with --angles or angles_deg="
            )
    angles_deg = np.asarray(angles_deg, dtype=float).ravel()
    if angles_deg.size != data.shape[0]:
        raise ValueError(f"{path}: {data.shape[0]} images but {angles_deg.size} tilt angles")
    sig_ax = s.axes_manager.signal_axes
    pixel_nm = float(sig_ax[0].scale) if str(sig_ax[0].units) == "nm" else 1.0
    md = s.metadata.get_item("Acquisition_instrument.chemtomo")
    md = md.as_dictionary() if md is not None else {}
    return data.astype(np.float32), angles_deg, pixel_nm, md


def read_tilt_series(eds: dict[str, str | Path], haadf: str | Path | None = None,
                     angles_deg=None, pixel_nm: float | None = None) -> TiltSeries:
    """A :class:`TiltSeries` from per-channel ``.hspy`` files.

    Parameters
    ----------
    eds : dict line -> path
    haadf : path, optional
    angles_deg : array_like, optional
        Overrides the angles stored in the files.
    pixel_nm : float, optional
        Overrides the pixel size stored in the files.
    """
    if not eds:
        raise ValueError("give at least one EDS line file (LINE=PATH)")
    stacks, angles, px, meta = {}, None, None, {}
    paths = dict(eds)
    if haadf is not None:
        paths = {"HAADF": haadf, **paths}
    for name, p in paths.items():
        data, a, pnm, md = read_stack(p, angles_deg)
        if angles is not None and (a.size != angles.size or not np.allclose(a, angles)):
            raise ValueError(f"{p}: tilt angles differ from the other files' ({a} vs {angles})")
        angles, px = a, px or pnm
        meta.update(md)
        stacks[name] = data
    h = stacks.pop("HAADF", None)
    return TiltSeries(angles, pixel_nm or px, stacks, h, meta)
