"""Image stacks that are not HyperSpy files: MRC (``.mrc``/``.ali``/``.st``) and TIFF, with angle files.

Both hold ``(n_tilts, ny, nx)`` images and, at most, a pixel size; the tilt
angles come from an IMOD angle file next to the stack (``<stem>.rawtlt`` or
``<stem>.tlt``, one angle in degrees per line; a TIFF may also have
``<stem>_angles.txt``), from an FEI extended MRC header, or from the caller.

- MRC: the voxel size (Å in the header) converted to nm; an int16 stack
  holding unsigned data (values above 32767 wrapped to negative numbers) is
  read as uint16 when it is clearly wrapped, refused when it is unclear
  (:func:`unwrap_int16`).
- TIFF: the ImageJ unit and resolution tags give the pixel size; without a
  length unit there is none (the caller's ``--pixel-nm``).

IMOD's convention puts the tilt axis along the image's y axis (each row one
slice), which is chemtomo's (``tilt_axis="rows"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metadata import length_nm

MRC_SUFFIXES = (".mrc", ".ali", ".st", ".mrcs", ".preali")
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class RawStack:
    """A stack as read: ``data`` (n_tilts, ny, nx), angles if the file or an angle file states them.

    Attributes
    ----------
    data : ndarray
    angles_deg : ndarray or None
    angle_source : str or None
        The file the angles came from.
    pixel_nm : float or None
    pixel_problem : str or None
        Why ``pixel_nm`` is None.
    layout : str or None
        ``"rows"`` when the format's convention says the tilt axis runs along y.
    notes : list of str
    """

    data: np.ndarray
    angles_deg: np.ndarray | None = None
    angle_source: str | None = None
    pixel_nm: float | None = None
    pixel_problem: str | None = None
    layout: str | None = None
    notes: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def angle_file_for(path) -> Path | None:
    """The IMOD angle file beside a stack: ``.tlt`` first for an aligned ``.ali``, else ``.rawtlt`` first."""
    path = Path(path)
    order = (".tlt", ".rawtlt") if path.suffix.lower() == ".ali" else (".rawtlt", ".tlt")
    cands = [path.with_suffix(s) for s in order] + [path.with_name(path.stem + "_angles.txt")]
    for c in cands:
        if c.is_file():
            return c
    return None


def read_angle_file(path, n_images: int | None = None) -> np.ndarray:
    """Angles (degrees) from a text file with one angle per line (IMOD ``.rawtlt``/``.tlt``).

    Raises
    ------
    ValueError
        Not numbers, or a count different from ``n_images``.
    """
    path = Path(path)
    try:
        a = np.loadtxt(path, dtype=float, ndmin=1)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not an angle file (one tilt angle in degrees per line): {exc}") from None
    a = a.ravel()
    if n_images is not None and a.size != n_images:
        raise ValueError(f"{path} holds {a.size} tilt angles but the stack has {n_images} images; "
                         "give one angle per image")
    return a


def unwrap_int16(data: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """An int16 stack's values, as uint16 when they are unsigned data stored as int16.

    Unsigned counts above 32767 written as int16 wrap to negative numbers
    (32768 -> -32768). The data are taken as wrapped when both sides of the
    wrap are populated (values above 24576 and below -24576): read as uint16.
    Negative values that stay small next to the positive ones (down to -25 %
    of the maximum) are genuine signed data and are kept.

    Returns
    -------
    data : ndarray
    note : str or None
        What was done, if anything.

    Raises
    ------
    ValueError
        Negative values that are neither (the file names which).
    """
    if data.dtype != np.int16:
        return data, None
    lo, hi = int(data.min()), int(data.max())
    if lo >= 0:
        return data, None
    if hi > 24576 and lo < -24576:
        return data.view(np.uint16), (f"{where}: int16 data wrapped above 32767 (min {lo}, max {hi}): "
                                      "read as uint16")
    if hi > 0 and lo >= -0.25 * hi:
        return data, None
    raise ValueError(
        f"{where}: the MRC header says int16 and the data hold negative values (min {lo}, max {hi}) that are "
        "neither small signed values nor unsigned data wrapped above 32767; convert the stack to float32 or "
        "uint16 (IMOD: newstack -mode 6) and say which values are right"
    )


def read_mrc(path) -> RawStack:
    """An MRC stack (``.mrc``, IMOD ``.ali``/``.st``) with its voxel size and angle file.

    Raises
    ------
    ValueError
        Not an MRC file, not a stack of 2-D images, or int16 data that cannot
        be told apart (:func:`unwrap_int16`).
    """
    import mrcfile

    path = Path(path)
    try:
        with mrcfile.open(path, permissive=True, mode="r") as m:
            if m.data is None:
                raise ValueError("no data block")
            data = np.array(m.data)
            vx = float(m.voxel_size.x)
            fei = _fei_tilts(m)
    except Exception as exc:  # noqa: BLE001 - mrcfile raises several kinds on a bad file
        raise ValueError(f"{path}: not a readable MRC stack ({type(exc).__name__}: {exc}); expected an MRC "
                         "file of 2-D images (n_tilts, ny, nx)") from None
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path}: an MRC tilt series is a stack of 2-D images, got data of shape {data.shape}")
    data, note = unwrap_int16(data, str(path))
    out = RawStack(data=data, layout="rows", notes=[note] if note else [])
    if vx > 0:
        out.pixel_nm = length_nm(vx, "Å", f"{path} (MRC voxel size)")
    else:
        out.pixel_problem = f"{path}: the MRC header states no voxel size; give the pixel size with --pixel-nm"
    af = angle_file_for(path)
    if af is not None:
        out.angles_deg, out.angle_source = read_angle_file(af, data.shape[0]), str(af)
    elif fei is not None and fei.size == data.shape[0] and np.ptp(fei) > 0:
        out.angles_deg, out.angle_source = fei, f"{path} (FEI extended header)"
    return out


def _fei_tilts(m) -> np.ndarray | None:
    try:
        ext = m.indexed_extended_header
        if ext is None or "Alpha tilt" not in (ext.dtype.names or ()):
            return None
        return np.asarray(ext["Alpha tilt"], dtype=float)
    except Exception:  # noqa: BLE001 - an odd extended header is not an error: no angles from it
        return None


def read_tiff(path) -> RawStack:
    """A TIFF stack with its ImageJ pixel size (if a length unit is stated) and angle file.

    Raises
    ------
    ValueError
        Not a readable TIFF, or not a stack of 2-D images.
    """
    import tifffile

    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            ij = tif.imagej_metadata or {}
            page = tif.pages[0]
            xres = page.tags.get("XResolution")
            yres = page.tags.get("YResolution")
            xres = None if xres is None else xres.value
            yres = None if yres is None else yres.value
    except Exception as exc:  # noqa: BLE001 - tifffile raises several kinds on a bad file
        raise ValueError(f"{path}: not a readable TIFF stack ({type(exc).__name__}: {exc})") from None
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path}: a TIFF tilt series is a stack of 2-D greyscale images (n_tilts, ny, nx), "
                         f"got data of shape {data.shape}")
    out = RawStack(data=data)
    unit = str(ij.get("unit", "") or "").replace("\\u00B5", "µ")
    if unit and xres is not None and xres[0] > 0:
        try:
            px = length_nm(xres[1] / xres[0], unit, f"{path} (ImageJ resolution)")
            if yres is not None and yres[0] > 0:
                py = length_nm(yres[1] / yres[0], unit, f"{path} (ImageJ resolution)")
                if not np.isclose(px, py, rtol=1e-2):
                    raise ValueError(f"{path}: pixels are not square ({px:.6g} x {py:.6g} nm); give --pixel-nm")
            out.pixel_nm = px
        except ValueError as exc:
            out.pixel_problem = str(exc)
    else:
        out.pixel_problem = (f"{path}: the TIFF states no pixel size in a length unit (ImageJ unit and "
                             "resolution); give the pixel size with --pixel-nm")
    af = angle_file_for(path)
    if af is not None:
        out.angles_deg, out.angle_source = read_angle_file(af, data.shape[0]), str(af)
    return out
