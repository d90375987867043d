"""Results as HyperSpy signals (``.hspy``, ``.zspy``) that ``hs.load`` opens as they are.

One file per volume, written by HyperSpy/RosettaSciIO itself::

    <folder>/<prefix>maps_<line>.hspy      reconstructed map of each line
    <folder>/<prefix>weight_<element>.hspy weight fraction
    <folder>/<prefix>atomic_<element>.hspy atomic fraction
    <folder>/<prefix>mask.hspy             particle mask (uint8)
    <folder>/<prefix>haadf.hspy            HAADF volume (when the result has one)
    <folder>/<prefix>se_weight_<element>.hspy  bootstrap standard error of the weight
                                           fraction (when the result has an uncertainty)

Each is a ``Signal2D`` of shape ``(y | z, x)`` -- HyperSpy's notation: one
navigation axis ``y`` (the slices along the tilt axis), signal axes ``z``
(along the beam at 0 degrees) and ``x`` -- every axis scaled by the voxel
size in ``nm`` (units ``"nm"``). ``metadata.General.title`` names the
element and kind (``"Fe weight fraction"``), ``metadata.Signal.quantity``
the values and their units (``"Fe weight fraction (1)"``,
``"Fe_Ka X-ray line signal per nm of beam path (counts/nm)"``), and
``metadata.chemtomo`` holds ``kind``, ``name``, ``method``, ``pixel_nm``,
``map_units`` (with ``map_units_note``), ``axes``, ``lines``, ``elements``,
``response_ratios``, ``r2``, and ``parameters`` and ``provenance`` as JSON
text. ``hs.load("<folder>/*.hspy")`` opens them all.

``.zspy`` (a Zarr folder store) needs ``zarr``. Files are written under
temporary names and renamed only when every one of them is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from .atomic import atomic_path
from .result import AXIS_NAMES, VOLUME_KINDS
from .volumes import VolumeEntry, result_volume_entries

#: The volumes written by default: every kind, and the weight fractions' standard errors when present.
SIGNAL_KINDS = VOLUME_KINDS + ("se_weight",)

SIGNAL_FORMATS = ("hspy", "zspy")
SIGNAL_FORMAT_VERSION = "1.0"


def _hs():
    try:
        import hyperspy.api as hs
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("writing .hspy/.zspy results needs HyperSpy: pip install 'chemtomo[io]'") from exc
    return hs


def zspy_supported() -> tuple[bool, str]:
    """Whether RosettaSciIO can write ``.zspy`` with the installed zarr, and why not.

    RosettaSciIO 0.15's zspy writer uses zarr 2's ``NestedDirectoryStore``;
    with zarr 3 (which chemtomo's Dask store pins) it cannot write
    (hyperspy/rosettasciio#352, #539).

    Returns
    -------
    ok : bool
    reason : str
        Empty when ``ok``.
    """
    try:
        import zarr
    except ImportError:
        return False, "zarr is not installed (pip install 'chemtomo[dask]')"
    if not hasattr(zarr.storage, "NestedDirectoryStore"):
        try:
            from rsciio.zspy import _api
        except ImportError:  # pragma: no cover - declared extra
            return False, "RosettaSciIO is not installed"
        if "LocalStore" not in Path(_api.__file__).read_text(encoding="utf-8"):
            from importlib.metadata import version

            return False, (f"RosettaSciIO {version('rosettasciio')}'s zspy writer needs zarr 2, and zarr "
                           f"{zarr.__version__} is installed (hyperspy/rosettasciio#352)")
    return True, ""


def volume_signal(entry: VolumeEntry, pixel_nm: float, chemtomo_metadata: dict | None = None):
    """A HyperSpy ``Signal2D`` ``(y | z, x)`` of one volume, axes named and scaled in nm.

    Parameters
    ----------
    entry : VolumeEntry
        A volume ``(y, z, x)`` with its kind, name, title, quantity and units.
    pixel_nm : float
        Voxel size in nm.
    chemtomo_metadata : dict, optional
        Stored under ``metadata.chemtomo`` (with ``kind`` and ``name`` added).

    Returns
    -------
    hyperspy.signals.Signal2D
    """
    hs = _hs()
    if entry.data.ndim != 3:
        raise ValueError(f"{entry.key}: a volume is (y, z, x), got shape {entry.data.shape}")
    s = hs.signals.Signal2D(entry.data)
    am = s.axes_manager
    # array order (y, z, x): navigation y, signal axes (x, z) in HyperSpy's (column, row) order
    for ax, name in ((am.navigation_axes[0], "y"), (am.signal_axes[0], "x"), (am.signal_axes[1], "z")):
        ax.name, ax.units, ax.scale, ax.offset = name, "nm", float(pixel_nm), 0.0
    s.metadata.General.title = entry.title
    s.metadata.set_item("Signal.quantity", f"{entry.quantity} ({entry.units})")
    node = {**(chemtomo_metadata or {}), "kind": entry.kind, "name": entry.name, "units": entry.units,
            "format_version": SIGNAL_FORMAT_VERSION}
    for k, v in node.items():
        s.metadata.set_item(f"chemtomo.{k}", v)
    return s


def result_signals(result, kinds: Iterable[str] = SIGNAL_KINDS, *, map_units: str = "per_nm",
                   provenance: dict | None = None) -> dict:
    """HyperSpy signals of a result's volumes, by name (``weight_Fe``, ``maps_Fe_Ka``, ``mask``, ...).

    Parameters
    ----------
    result : VolumeResult, Uncertainty, dict or path
        A result, a result with its uncertainty, a :func:`chemtomo.io.read_result`
        dict or a result file.
    kinds : iterable of {"maps", "weight", "atomic", "mask", "haadf", "se_maps", "se_weight", "se_atomic"}
        Which volumes (default all the result holds, with ``se_weight_<el>`` when it
        has an uncertainty).
    map_units : {"per_nm", "per_pixel"}
        Maps and HAADF per nm of beam path (chemtomo) or per voxel
        (ASTRA/etspy/tomviz SIRT: times ``pixel_nm``).
    provenance : dict, optional
        Inputs, versions, command (replaces the result's own).

    Returns
    -------
    dict name -> hyperspy.signals.Signal2D
    """
    entries, summary = result_volume_entries(result, kinds, map_units=map_units, provenance=provenance)
    md = summary.metadata()
    return {e.key: volume_signal(e, summary.pixel_nm, md) for e in entries}


def write_result_signals(result, folder, *, format: str = "hspy", kinds: Iterable[str] = SIGNAL_KINDS,
                         map_units: str = "per_nm", provenance: dict | None = None, prefix: str = "") -> list[Path]:
    """Write a result's volumes as HyperSpy files in ``folder`` (layout: module docstring), all or none.

    Parameters
    ----------
    result : VolumeResult, Uncertainty, dict or path
        A result, a result with its uncertainty, a :func:`chemtomo.io.read_result`
        dict or a result file.
    folder : path
        Created if needed.
    format : {"hspy", "zspy"}
        ``zspy`` needs ``zarr``.
    kinds : iterable of str
        As :func:`result_signals`.
    map_units : {"per_nm", "per_pixel"}
    provenance : dict, optional
    prefix : str
        Prepended to each file name (``"hebt_sirt_"``).

    Returns
    -------
    list of Path
        The files, in the order maps, weight, atomic, mask, haadf, se_weight.

    Raises
    ------
    ValueError
        An unknown format, kind or map_units.
    ImportError
        ``zspy`` without ``zarr``.
    """
    if format not in SIGNAL_FORMATS:
        raise ValueError(f"signal format must be one of {SIGNAL_FORMATS}, got {format!r}")
    if format == "zspy":
        ok, why = zspy_supported()
        if not ok:
            raise ImportError(f"cannot write .zspy: {why}; use format='hspy'")
    signals = result_signals(result, kinds, map_units=map_units, provenance=provenance)
    folder = Path(folder)
    paths = [folder / f"{prefix}{name}.{format}" for name in signals]
    # every file under a temporary name; all renamed when the last is written, all removed on a failure
    with contextlib.ExitStack() as stack:
        for path, sig in zip(paths, signals.values(), strict=True):
            tmp = stack.enter_context(atomic_path(path))
            sig.save(tmp, overwrite=True)
    return paths


__all__ = ["AXIS_NAMES", "SIGNAL_FORMATS", "SIGNAL_KINDS", "result_signals", "volume_signal", "write_result_signals",
           "zspy_supported"]
