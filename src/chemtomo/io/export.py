"""Volumes as TIFF, OME-TIFF or MRC stacks, one file per volume, for tomviz, napari, ImageJ/Fiji.

chemtomo holds a volume as ``(slices, z, x)``: slices along the tilt axis
(the image's y), z along the beam at 0 degrees, x across the tilt axis. The
files hold it as ``(z, y, x)``: each page is an image seen along the beam at 0
degrees, as the micrographs are, and the pages step through the depth. The
voxel size is written where each reader looks for it, so the volumes open to
scale:

- TIFF (``.tif``): ImageJ hyperstack layout (``imagej=True``): ``spacing``
  (z) and ``unit="nm"`` in the ImageJ description, X/YResolution in pixels
  per nm. Fiji/ImageJ, tifffile and tomviz read it; float32, zlib-compressed
  (lossless) unless ``compression=None``.
- OME-TIFF (``.ome.tif``): OME-XML ``PhysicalSizeX/Y/Z`` with unit ``nm``
  (Fiji's Bio-Formats, napari-aicsimageio/bioio, tifffile).
- MRC (``.mrc``): MRC2014 mode 2 through ``mrcfile``, ``voxel_size`` in
  Angstrom (IMOD, tomviz, ChimeraX, mrcfile).

napari's built-in reader ignores the voxel size of all three; chemtomo's
napari plugin (:mod:`chemtomo.io.napari_reader`) reads the files chemtomo
wrote with their scale. Each file says it is chemtomo's and what it holds
(kind, name, title, units, map convention): in the ImageJ ``Info`` text, the
OME ``Description``, or the MRC labels; :func:`volume_info` reads it back.

Maps are per nm of beam path (chemtomo's convention); ``map_units="per_pixel"``
(:func:`export_result`, :func:`export_result_volumes`) writes them per voxel
as ASTRA/etspy/tomviz SIRT does (times the voxel size).

Every file is written under a temporary name and renamed when complete; an
export of several files renames them only when all are written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from .atomic import atomic_path

ExportFormat = Literal["tiff", "ome-tiff", "mrc"]
EXPORT_FORMATS = ("tiff", "ome-tiff", "mrc")
EXPORT_KINDS = ("maps", "weight", "atomic", "mask", "haadf")
_SUFFIX = {"tiff": ".tif", "ome-tiff": ".ome.tif", "mrc": ".mrc"}
MARKER = "chemtomo volume"
#: zlib level of compressed TIFF stacks: lossless at any level; 1 costs about a third less CPU
#: than the library's default (6) for files 4-8 % larger (docs/performance.md, "The volume path").
TIFF_ZLIB_LEVEL = 1


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff")):
        return "ome-tiff"
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".mrc"):
        return "mrc"
    raise ValueError(f"{path}: volumes are written as .ome.tif, .tif/.tiff or .mrc, not {path.suffix!r}")


def _info_text(title: str, info: dict | None) -> str:
    lines = [MARKER, f"title={title}"] + [f"{k}={v}" for k, v in (info or {}).items()]
    return "\n".join(lines)


def _parse_info(text: str) -> dict:
    lines = [ln.strip() for ln in (text or "").replace("\r", "").split("\n")]
    if MARKER not in lines:  # (an MRC file's first label is mrcfile's own)
        return {}
    out = {"chemtomo": True}
    for ln in lines[lines.index(MARKER) + 1:]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def to_zyx(volume: np.ndarray) -> np.ndarray:
    """``(slices, z, x)`` -> ``(z, y, x)`` (the files' order)."""
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"a volume is (slices, z, x), got shape {v.shape}")
    return np.ascontiguousarray(v.transpose(1, 0, 2))


def _check_volume(path: Path, volume, pixel_nm) -> None:
    if not (np.isfinite(pixel_nm) and pixel_nm > 0):
        raise ValueError(f"pixel_nm must be a positive number, got {pixel_nm!r}")
    _file_kind(Path(path))
    if np.ndim(volume) != 3:
        raise ValueError(f"a volume is (slices, z, x), got shape {np.shape(volume)}")


def _write(tmp: Path, kind: str, volume, pixel_nm: float, *, title: str = "", compression: str | None = "zlib",
           info: dict | None = None) -> None:
    """Write ``volume`` to ``tmp`` in format ``kind`` (the name of a temporary does not say it)."""
    data = to_zyx(volume).astype(np.float32)
    px = float(pixel_nm)
    text = _info_text(title, info)
    level = {"compressionargs": {"level": TIFF_ZLIB_LEVEL}} if compression == "zlib" else {}
    if kind == "tiff":
        import tifffile

        tifffile.imwrite(
            tmp, data, imagej=True, resolution=(1.0 / px, 1.0 / px),
            metadata={"spacing": px, "unit": "nm", "axes": "ZYX", "Info": text},
            compression=compression, photometric="minisblack", **level,
        )
    elif kind == "ome-tiff":
        import tifffile

        md = {"axes": "ZYX", "Name": title, "Description": text}
        for ax in "XYZ":
            md[f"PhysicalSize{ax}"], md[f"PhysicalSize{ax}Unit"] = px, "nm"
        tifffile.imwrite(tmp, data, ome=True, metadata=md, compression=compression, photometric="minisblack",
                         **level)
    else:
        import mrcfile

        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(data)
            m.voxel_size = px * 10.0  # Angstrom
            for ln in text.split("\n")[:9]:  # MRC holds 10 labels; mrcfile writes the first
                m.add_label(ln[:80])


def write_volume(path, volume: np.ndarray, pixel_nm: float, *, title: str = "",
                 compression: str | None = "zlib", info: dict | None = None) -> Path:
    """Write one ``(slices, z, x)`` volume as ``(z, y, x)`` with its voxel size (module docstring).

    Parameters
    ----------
    path : path
        ``.tif``/``.tiff`` (ImageJ), ``.ome.tif``/``.ome.tiff`` (OME-TIFF) or ``.mrc``.
    volume : ndarray (slices, z, x)
    pixel_nm : float
        Voxel size in nm (the same along every axis).
    title : str
        Shown by the viewers (ImageJ Info, OME Name, MRC label).
    compression : str or None
        TIFF compression (default ``"zlib"``, lossless); ignored for MRC.
    info : dict, optional
        ``key=value`` facts written after the chemtomo marker (kind, name, units, map_units).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        A non-positive ``pixel_nm``, a volume that is not 3-D, another suffix.
    """
    path = Path(path)
    _check_volume(path, volume, pixel_nm)
    with atomic_path(path) as tmp:
        _write(tmp, _file_kind(path), volume, pixel_nm, title=title, compression=compression, info=info)
    return path


def volume_info(path) -> dict:
    """The voxel size and, for files chemtomo wrote, what they hold.

    Parameters
    ----------
    path : path
        A ``.tif``/``.ome.tif``/``.mrc`` stack.

    Returns
    -------
    dict
        ``pixel_nm`` (nan when the file states none), ``shape`` (z, y, x) and,
        when chemtomo wrote it, ``chemtomo=True``, ``title``, ``kind``,
        ``name``, ``units``, ``map_units``.
    """
    path = Path(path)
    kind = _file_kind(path)
    if kind in ("tiff", "ome-tiff"):
        import tifffile

        with tifffile.TiffFile(path) as t:
            shape = tuple(t.series[0].shape)
            if t.is_ome:
                img = tifffile.xml2dict(t.ome_metadata)["OME"]["Image"]
                img = img[0] if isinstance(img, list) else img
                pix = img["Pixels"]
                px = float(pix.get("PhysicalSizeX", float("nan")))
                if pix.get("PhysicalSizeXUnit", "µm") != "nm":
                    from .metadata import length_nm

                    px = length_nm(px, pix.get("PhysicalSizeXUnit", "µm"), str(path))
                out = _parse_info(img.get("Description", ""))
            else:
                md = t.imagej_metadata or {}
                px = float(md.get("spacing", float("nan")))
                out = _parse_info(md.get("Info", ""))
    else:
        import mrcfile

        with mrcfile.open(path, permissive=False, header_only=True) as m:
            shape = (int(m.header.nz), int(m.header.ny), int(m.header.nx))
            px = float(m.voxel_size.x) / 10.0
            labels = [bytes(lb).decode("ascii", "replace").rstrip("\x00 ")
                      for lb in m.header.label[: int(m.header.nlabl)]]
        out = _parse_info("\n".join(labels))
    out.update(pixel_nm=px if px > 0 else float("nan"), shape=shape)
    return out


def read_volume(path) -> tuple[np.ndarray, float]:
    """``(volume (slices, z, x), pixel_nm)`` from a ``.tif``/``.ome.tif``/``.mrc`` stack.

    Reads what :func:`write_volume` wrote.

    Parameters
    ----------
    path : path

    Returns
    -------
    volume : ndarray (slices, z, x)
    pixel_nm : float
        nan when the file states no voxel size.
    """
    path = Path(path)
    kind = _file_kind(path)
    if kind in ("tiff", "ome-tiff"):
        import tifffile

        data = tifffile.imread(path)
    else:
        import mrcfile

        with mrcfile.open(path, permissive=False) as m:
            data = np.array(m.data)
    return np.ascontiguousarray(np.asarray(data).transpose(1, 0, 2)), volume_info(path)["pixel_nm"]


def _check_formats(formats) -> list[str]:
    formats = list(formats)
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise ValueError(f"export formats must be among {EXPORT_FORMATS}, got {bad}")
    return formats


def _write_all(jobs: list[tuple[Path, dict]]) -> list[Path]:
    """Write every ``(path, write_volume kwargs)``; rename all when the last is written, remove all on a failure."""
    with contextlib.ExitStack() as stack:
        for path, kw in jobs:
            _check_volume(path, kw["volume"], kw["pixel_nm"])
            _write(stack.enter_context(atomic_path(path)), _file_kind(path), **kw)
    return [p for p, _ in jobs]


def export_volumes(folder, volumes: dict[str, np.ndarray], pixel_nm: float,
                   formats: Iterable[ExportFormat] = ("tiff",), *, prefix: str = "",
                   compression: str | None = "zlib", titles: dict[str, str] | None = None,
                   infos: dict[str, dict] | None = None) -> list[Path]:
    """Write each named volume (``{"weight_Fe": vol, ...}``) in each format, all or none.

    Parameters
    ----------
    folder : path
    volumes : dict name -> ndarray (slices, z, x)
    pixel_nm : float
    formats : iterable of {"tiff", "ome-tiff", "mrc"}
    prefix : str
        Prepended to the file names.
    compression : str or None
        TIFF compression.
    titles, infos : dict name -> str / dict, optional
        Per-volume title and facts (:func:`write_volume`); by default read
        from names such as ``weight_Fe`` or ``mask`` (maps taken per nm), else
        the name and none.

    Returns
    -------
    list of Path
        ``<folder>/<prefix><name>.tif`` / ``.ome.tif`` / ``.mrc``.
    """
    folder = Path(folder)
    formats = _check_formats(formats)
    jobs = []
    for name, vol in volumes.items():
        title, info = _labels_from_name(name)
        title = (titles or {}).get(name, title)
        info = (infos or {}).get(name, info)
        for fmt in formats:
            jobs.append((folder / f"{prefix}{name}{_SUFFIX[fmt]}",
                         {"volume": vol, "pixel_nm": pixel_nm, "title": title, "compression": compression,
                          "info": info}))
    return _write_all(jobs)


def _labels_from_name(name: str) -> tuple[str, dict]:
    """Title and facts of a volume named as :func:`result_volumes` names them (``weight_Fe``, ``mask``), per nm."""
    from .result import value_units, volume_title

    for kind in EXPORT_KINDS:
        if name == kind or name.startswith(f"{kind}_"):
            el = name[len(kind) + 1:]
            return volume_title(kind, el), {"kind": kind, "name": el, "units": value_units(kind),
                                            "map_units": "per_nm"}
    return name, {}


def result_volumes(result: dict, kinds: Iterable[str] = ("maps", "weight"), *,
                   map_units: str = "per_nm") -> dict[str, np.ndarray]:
    """Named volumes from a :func:`chemtomo.io.read_result` dict: ``maps_<line>``, ``weight_<el>``, ..., ``haadf``.

    Parameters
    ----------
    result : dict
        :func:`chemtomo.io.read_result` output (maps per nm).
    kinds : iterable of {"maps", "weight", "atomic", "mask", "haadf"}
    map_units : {"per_nm", "per_pixel"}
        Maps and HAADF per nm of path or per voxel (times ``pixel_nm``).

    Returns
    -------
    dict name -> ndarray (slices, z, x)
    """
    from .volumes import result_volume_entries

    kinds = list(kinds)
    bad = [k for k in kinds if k not in EXPORT_KINDS]
    if bad:
        raise ValueError(f"export kinds must be among {EXPORT_KINDS}, got {bad}")
    entries, _ = result_volume_entries({"pixel_nm": 1.0, **result}, kinds, map_units=map_units)
    return {e.key: (e.data.astype(np.float32) if e.kind == "mask" else e.data) for e in entries}


def export_result_volumes(result, folder, formats: Iterable[ExportFormat] = ("tiff",),
                          kinds: Iterable[str] = ("maps", "weight"), *, map_units: str = "per_nm",
                          prefix: str = "", compression: str | None = "zlib") -> list[Path]:
    """Export a result's volumes as stacks, titled and labelled (kind, name, units, map convention).

    Parameters
    ----------
    result : VolumeResult, dict or path
        A result, a :func:`chemtomo.io.read_result` dict or a result file.
    folder : path
    formats : iterable of {"tiff", "ome-tiff", "mrc"}
    kinds : iterable of {"maps", "weight", "atomic", "mask", "haadf"}
        A kind the result does not hold (HAADF) is skipped.
    map_units : {"per_nm", "per_pixel"}
        Maps and HAADF per nm of path (chemtomo) or per voxel (ASTRA/etspy/tomviz SIRT).
    prefix : str
    compression : str or None

    Returns
    -------
    list of Path
    """
    from .volumes import result_volume_entries

    formats = _check_formats(formats)
    kinds = list(kinds)
    bad = [k for k in kinds if k not in EXPORT_KINDS]
    if bad:
        raise ValueError(f"export kinds must be among {EXPORT_KINDS}, got {bad}")
    entries, summary = result_volume_entries(result, kinds, map_units=map_units)
    vols = {e.key: e.data.astype(np.float32) for e in entries}
    titles = {e.key: e.title for e in entries}
    infos = {e.key: {"kind": e.kind, "name": e.name, "units": e.units, "map_units": map_units,
                     "method": summary.method, "pixel_nm": summary.pixel_nm} for e in entries}
    return export_volumes(folder, vols, summary.pixel_nm, formats, prefix=prefix, compression=compression,
                          titles=titles, infos=infos)


def export_result(result_path, folder, formats: Iterable[ExportFormat] = ("tiff",),
                  kinds: Iterable[str] = ("maps", "weight"), compression: str | None = "zlib", *,
                  map_units: str = "per_nm", prefix: str = "") -> list[Path]:
    """Export the volumes of a chemtomo result file as TIFF/OME-TIFF/MRC stacks in ``folder``.

    Parameters
    ----------
    result_path : path
        A result file.
    folder : path
    formats, kinds, compression, map_units, prefix
        As :func:`export_result_volumes`.

    Returns
    -------
    list of Path
    """
    return export_result_volumes(result_path, folder, formats, kinds, map_units=map_units, prefix=prefix,
                                 compression=compression)
