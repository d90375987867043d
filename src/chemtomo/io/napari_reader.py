"""napari reader for chemtomo results (an npe2 plugin: ``chemtomo/napari.yaml``).

Opens, to scale in nm:

- a result file (``result.h5``, format ``chemtomo-result``) or the output
  folder holding it: the HAADF volume (grey, when present), each element's
  weight fraction (one colour per element, additive, 0..1), atomic fractions
  and line maps (hidden) and the particle mask (labels, hidden);
- the HyperSpy signals chemtomo wrote (:mod:`chemtomo.io.signals`);
- the TIFF / OME-TIFF / MRC stacks chemtomo exported (:mod:`chemtomo.io.export`).

Files chemtomo did not write are left to other readers (:func:`get_reader`
returns None). Volumes are shown as ``(z, y, x)``, as the exports hold them:
each plane is a view along the beam at 0 degrees, the slider steps through
the depth. Layer names are the titles (``"Fe weight fraction"``); each layer's
``metadata["chemtomo"]`` holds kind, name, units, map convention and voxel size.

napari is never imported here (only its version is read), so the reader can
be used and tested without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: napari colormaps given to elements in order.
ELEMENT_COLORMAPS = ("red", "green", "blue", "magenta", "cyan", "yellow", "bop orange", "bop purple")
AXIS_LABELS = ("z", "y", "x")
_TIFF = (".tif", ".tiff")
_HDF5 = (".h5", ".hdf5")


def _paths(path) -> list[Path]:
    return [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]


def _result_file(p: Path) -> Path | None:
    """The chemtomo result file ``p`` is or holds (a folder with ``result.h5``), else None."""
    if p.is_dir():
        p = p / "result.h5"
    if not (p.is_file() and p.suffix.lower() in _HDF5):
        return None
    try:
        import h5py

        with h5py.File(p, "r") as f:
            from .result import FORMAT

            return p if f.attrs.get("format") == FORMAT else None
    except OSError:
        return None


def _hspy_chemtomo(p: Path) -> bool:
    if not (p.is_file() and p.suffix.lower() == ".hspy"):
        return False
    try:
        import h5py

        with h5py.File(p, "r") as f:
            return any("metadata/chemtomo" in g for g in f.get("Experiments", {}).values())
    except OSError:
        return False


def _stack_chemtomo(p: Path) -> bool:
    name = p.name.lower()
    if not (p.is_file() and (name.endswith(_TIFF) or name.endswith(".mrc"))):
        return False
    try:
        from .export import volume_info

        return bool(volume_info(p).get("chemtomo"))
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False


def is_chemtomo_path(path) -> bool:
    """Whether every path is a chemtomo result, result folder, signal or exported stack."""
    return all(_result_file(p) is not None or _hspy_chemtomo(p) or _stack_chemtomo(p) for p in _paths(path))


def get_reader(path):
    """npe2 reader contribution: :func:`read_layers` for chemtomo's files, None for any other.

    Parameters
    ----------
    path : str or list of str

    Returns
    -------
    callable or None
    """
    return read_layers if is_chemtomo_path(path) else None


def layer_kwargs_supported() -> set[str]:
    """Which of napari's newer layer arguments (``units``, ``axis_labels``) the installed napari takes.

    Read from napari's layer signature when napari is already imported (a
    running viewer), else from its installed version (0.6 and later take
    both); empty when napari is not installed (the reader then gives the
    units in ``metadata`` only). napari is never imported here.
    """
    import sys

    napari = sys.modules.get("napari")
    if napari is not None and hasattr(napari, "layers"):
        import inspect

        params = inspect.signature(napari.layers.Image).parameters
        return {k for k in ("units", "axis_labels") if k in params}
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(v) for v in version("napari").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return set()
    return {"units", "axis_labels"} if (major, minor) >= (0, 6) else set()


def _kwargs(title: str, kind: str, name: str, pixel_nm: float, info: dict, colour_index: int,
            newer: set[str]) -> dict:
    kw = {"name": title, "scale": (float(pixel_nm),) * 3,
          "metadata": {"chemtomo": {**info, "kind": kind, "name": name, "pixel_nm": float(pixel_nm),
                                    "axes": ",".join(AXIS_LABELS), "axis_units": "nm,nm,nm"}}}
    if "units" in newer:
        kw["units"] = ("nm",) * 3
    if "axis_labels" in newer:
        kw["axis_labels"] = AXIS_LABELS
    if kind == "mask":
        kw.update(opacity=0.4, visible=False)
        return kw
    if kind in ("weight", "atomic"):
        kw.update(colormap=ELEMENT_COLORMAPS[colour_index % len(ELEMENT_COLORMAPS)], blending="additive",
                  contrast_limits=(0.0, 1.0), visible=kind == "weight")
    elif kind == "maps":
        kw.update(colormap=ELEMENT_COLORMAPS[colour_index % len(ELEMENT_COLORMAPS)], blending="additive",
                  visible=False)
    else:  # haadf or unknown
        kw.update(colormap="gray", blending="translucent")
    return kw


def _layer(data_yzx: np.ndarray, kind: str, kw: dict):
    data = np.asarray(data_yzx).transpose(1, 0, 2)  # (y, z, x) -> (z, y, x), the exports' order
    if kind == "mask":
        return (np.asarray(data, dtype=np.uint8), kw, "labels")
    return (np.asarray(data, dtype=np.float32), kw, "image")


def _from_result(p: Path, newer: set[str]) -> list[tuple]:
    from .volumes import result_volume_entries

    entries, summary = result_volume_entries(p)
    order = {"haadf": 0, "weight": 1, "atomic": 2, "maps": 3, "mask": 4}
    colour = {el: i for i, el in enumerate(summary.elements)}
    colour.update({ln: i for i, ln in enumerate(summary.lines)})
    out = []
    for e in sorted(entries, key=lambda e: order[e.kind]):
        info = {"units": e.units, "quantity": e.quantity, "map_units": summary.map_units, "method": summary.method,
                "source": str(p)}
        kw = _kwargs(e.title, e.kind, e.name, summary.pixel_nm, info, colour.get(e.name, 0), newer)
        out.append(_layer(e.data, e.kind, kw))
    return out


def _from_hspy(p: Path, newer: set[str]) -> list[tuple]:
    from rsciio.hspy import file_reader

    out = []
    for d in file_reader(str(p)):
        md = d["metadata"].get("chemtomo", {})
        px = float(md.get("pixel_nm", d["axes"][0].get("scale", 1.0)))
        title = d["metadata"].get("General", {}).get("title", p.stem)
        kind = md.get("kind", "")
        info = {k: md[k] for k in ("units", "map_units", "method") if k in md}
        info["source"] = str(p)
        kw = _kwargs(title, kind, md.get("name", ""), px, info, 0, newer)
        out.append(_layer(d["data"], kind, kw))
    return out


def _from_stack(p: Path, newer: set[str]) -> list[tuple]:
    from .export import read_volume, volume_info

    info = volume_info(p)
    vol, px = read_volume(p)
    kind = info.get("kind", "")
    meta = {k: info[k] for k in ("units", "map_units", "method") if k in info}
    meta["source"] = str(p)
    kw = _kwargs(info.get("title", p.stem), kind, info.get("name", ""), px, meta, 0, newer)
    return [_layer(vol, kind, kw)]


def read_layers(path) -> list[tuple]:
    """Napari layer data tuples ``(data, kwargs, layer_type)`` of chemtomo's files (module docstring).

    Parameters
    ----------
    path : str or list of str
        Result files or folders, ``.hspy`` signals, ``.tif``/``.ome.tif``/``.mrc`` stacks.

    Returns
    -------
    list of tuple
        ``data`` is ``(z, y, x)``; ``kwargs`` has ``name``, ``scale`` (nm per
        voxel along z, y, x), ``colormap``, ``blending``, ``visible``,
        ``metadata`` and, where napari takes them, ``units`` and ``axis_labels``.

    Raises
    ------
    ValueError
        A path that is not one of chemtomo's files.
    """
    newer = layer_kwargs_supported()
    out: list[tuple] = []
    for p in _paths(path):
        res = _result_file(p)
        if res is not None:
            out += _from_result(res, newer)
        elif _hspy_chemtomo(p):
            out += _from_hspy(p, newer)
        elif _stack_chemtomo(p):
            out += _from_stack(p, newer)
        else:
            raise ValueError(f"{p} is not a chemtomo result, result folder, signal (.hspy) or exported stack")
    return out
