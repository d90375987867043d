"""Volumes as TIFF or MRC stacks, one file per element, for tomviz, napari and ImageJ/Fiji.

chemtomo holds a volume as ``(slices, z, x)``: slices along the tilt axis
(the image's y), z along the beam at 0 degrees, x across the tilt axis. The
files hold it as ``(z, y, x)``: each page is an image seen along the beam at 0
degrees, as the micrographs are, and the pages step through the depth. The
voxel size is written in both formats (TIFF: ImageJ ``spacing`` and
resolution in nm; MRC: ``voxel_size`` in Angstrom), so the volumes open to
scale.

- TIFF: ImageJ hyperstack layout (``imagej=True``), float32, zlib-compressed
  (lossless; tifffile, napari, tomviz and ImageJ/Fiji read it) unless
  ``compression=None``.
- MRC: MRC2014, float32 (mode 2), through ``mrcfile``.

Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from .atomic import atomic_path

ExportFormat = Literal["tiff", "mrc"]
EXPORT_FORMATS = ("tiff", "mrc")
EXPORT_KINDS = ("maps", "weight", "atomic", "mask")
_SUFFIX = {"tiff": ".tif", "mrc": ".mrc"}


def to_zyx(volume: np.ndarray) -> np.ndarray:
    """``(slices, z, x)`` -> ``(z, y, x)`` (the files' order)."""
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"a volume is (slices, z, x), got shape {v.shape}")
    return np.ascontiguousarray(v.transpose(1, 0, 2))


def write_volume(path, volume: np.ndarray, pixel_nm: float, *, title: str = "",
                 compression: str | None = "zlib") -> Path:
    """Write one ``(slices, z, x)`` volume to ``path`` (``.tif``/``.tiff`` or ``.mrc``), as ``(z, y, x)``."""
    path = Path(path)
    if not (np.isfinite(pixel_nm) and pixel_nm > 0):
        raise ValueError(f"pixel_nm must be a positive number, got {pixel_nm!r}")
    data = to_zyx(volume).astype(np.float32)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(
                tmp, data, imagej=True, resolution=(1.0 / pixel_nm, 1.0 / pixel_nm),
                metadata={"spacing": float(pixel_nm), "unit": "nm", "axes": "ZYX", "Info": title},
                compression=compression,
            )
        elif suffix == ".mrc":
            import mrcfile

            with mrcfile.new(tmp, overwrite=True) as m:
                m.set_data(data)
                m.voxel_size = float(pixel_nm) * 10.0  # Angstrom
                if title:
                    m.add_label(title[:80])
        else:
            raise ValueError(f"{path}: volumes are written as .tif/.tiff or .mrc, not {path.suffix!r}")
    return path


def read_volume(path) -> tuple[np.ndarray, float]:
    """``(volume (slices, z, x), pixel_nm)`` from a file written by :func:`write_volume`."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as t:
            data = t.asarray()
            px = float((t.imagej_metadata or {}).get("spacing", float("nan")))
    elif path.suffix.lower() == ".mrc":
        import mrcfile

        with mrcfile.open(path, permissive=False) as m:
            data = np.array(m.data)
            px = float(m.voxel_size.x) / 10.0
    else:
        raise ValueError(f"{path}: expected .tif/.tiff or .mrc")
    return np.ascontiguousarray(np.asarray(data).transpose(1, 0, 2)), px


def export_volumes(folder, volumes: dict[str, np.ndarray], pixel_nm: float,
                   formats: Iterable[ExportFormat] = ("tiff",), *, prefix: str = "",
                   compression: str | None = "zlib") -> list[Path]:
    """Write each named volume (``{"weight_Fe": vol, ...}``) in each format; returns the paths."""
    folder = Path(folder)
    formats = list(formats)
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise ValueError(f"export formats must be among {EXPORT_FORMATS}, got {bad}")
    out = []
    for name, vol in volumes.items():
        for fmt in formats:
            out.append(write_volume(folder / f"{prefix}{name}{_SUFFIX[fmt]}", vol, pixel_nm, title=name,
                                    compression=compression))
    return out


def result_volumes(result: dict, kinds: Iterable[str] = ("maps", "weight")) -> dict[str, np.ndarray]:
    """Named volumes from a :func:`chemtomo.io.read_result` dict: ``maps_<line>``, ``weight_<el>``, ..."""
    kinds = list(kinds)
    bad = [k for k in kinds if k not in EXPORT_KINDS]
    if bad:
        raise ValueError(f"export kinds must be among {EXPORT_KINDS}, got {bad}")
    out = {}
    for kind in kinds:
        if kind == "mask":
            out["mask"] = np.asarray(result["mask"], dtype=np.float32)
            continue
        for name, vol in result[kind].items():
            out[f"{kind}_{name}"] = vol
    return out


def export_result(result_path, folder, formats: Iterable[ExportFormat] = ("tiff",),
                  kinds: Iterable[str] = ("maps", "weight"), compression: str | None = "zlib") -> list[Path]:
    """Export the volumes of a chemtomo result file as TIFF/MRC stacks in ``folder``."""
    from .result import read_result

    res = read_result(result_path)
    return export_volumes(folder, result_volumes(res, kinds), res["pixel_nm"], formats, compression=compression)
