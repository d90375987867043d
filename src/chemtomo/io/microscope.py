"""Raw tilt series as microscopes write them: one file per tilt, HAADF + EDS spectrum image.

Formats are read through RosettaSciIO / HyperSpy / exSpy:

- Bruker ``.bcf`` (HAADF image + EDS spectrum image in one file);
- Thermo Fisher Velox ``.emd`` (HAADF/ADF images + EDS spectrum image);
- HyperSpy ``.hspy`` / ``.zspy``: an EDS spectrum image per file; its HAADF
  image, if any, in a companion file named ``<stem>_haadf.<ext>``.

:func:`open_tilt_series` scans the files once (headers only, data loaded
lazily), checks that they form one tilt series (every file readable and whole,
one spectrum image each, the same image size, energy axis and pixel size) and
resolves the tilt angles; :meth:`RawTiltSeries.read` then loads one tilt at a
time, so a series never has to fit in memory as spectra.

Tilt angles come, in this order of preference (``angle_source="auto"``), from

1. the user's list (``angles_deg=``), paired with the files in their order;
2. the files' metadata (``Acquisition_instrument.TEM.Stage.tilt_alpha``), when
   every file has one and they are not all equal (Bruker often stores 0);
3. the file names: a name that is a number (``-10.bcf``), or a number marked
   by ``deg``/``°`` or preceded by ``tilt``/``angle``/``alpha``
   (``tilt_+35.5.emd``, ``map_-40deg.bcf``).

When both metadata and file names give angles and they disagree, it is an
error (say which to trust with ``angle_source``). Tilts are returned sorted
by angle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .angles import (  # noqa: F401  (re-exported: callers import them from here)
    ANGLE_SOURCES,
    ANGLE_TOLERANCE_DEG,
    HAADF_COMPANION,
    AngleSource,
    _natural_key,
    angle_from_filename,
    resolve_angles,
)
from .metadata import (  # noqa: F401
    MIN_TILTS,
    axis_pixel_nm,
    beam_energy_kev,
    check_enough_tilts,
    image_role,
)
from .vendor import (  # noqa: F401  (quiet_hyperspy and _hs are imported from here by callers and tests)
    _companion,
    _describe,
    _haadf_on_grid,
    _hs,
    _image_list,
    _load,
    _metadata_angle,
    _one_name,
    _pick_haadf,
    _pick_spectrum_image,
    _pixel_nm,
    check_zspy_readable,
    quiet_hyperspy,
)

SUPPORTED_SUFFIXES = (".bcf", ".emd", ".hspy", ".zspy", ".asw", ".pts")



# --------------------------------------------------------------------------- files and angles

def find_tilt_files(inputs) -> list[Path]:
    """The tilt files named by ``inputs``: a folder, one file, or a list of files.

    A folder gives every file inside with a supported suffix (not recursive),
    HAADF companions (``*_haadf.*``) excluded, in natural order (``-5`` before
    ``10``). A list is kept in the order given.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("no tilt-series files given: pass a folder or a list of files")
    if len(inputs) == 1 and inputs[0].is_dir() and inputs[0].suffix.lower() != ".zspy":
        folder = inputs[0]
        files = [p for p in folder.iterdir()
                 if (p.is_file() or p.suffix.lower() == ".zspy") and p.suffix.lower() in SUPPORTED_SUFFIXES
                 and not _is_companion(p)]
        for p in files:
            check_zspy_readable(p)
        if not files:
            raise ValueError(
                f"{folder} holds no tilt files ({', '.join(SUPPORTED_SUFFIXES)}); give the folder of "
                "one tilt series or the files themselves"
            )
        return sorted(files, key=_natural_key)
    out = []
    for p in inputs:
        check_zspy_readable(p)
        if p.is_dir() and p.suffix.lower() != ".zspy":
            raise ValueError(f"{p} is a folder: give either one folder or a list of files, not both")
        if not (p.is_file() or p.is_dir()):
            raise FileNotFoundError(f"no such file: {p}")
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            stack = p.suffix.lower() in (".mrc", ".ali", ".st", ".mrcs", ".tif", ".tiff", ".dm3", ".dm4")
            hint = ("; a stack of images (all tilts in one file) is read with --haadf PATH or --eds LINE=PATH "
                    "(chemtomo.io.hspy.read_tilt_series)") if stack else ""
            raise ValueError(f"{p}: unsupported file type {p.suffix!r}; tilt files (one spectrum image per tilt) "
                             f"are {SUPPORTED_SUFFIXES}{hint}")
        out.append(p)
    dup = sorted({str(p) for p in out if out.count(p) > 1})
    if dup:
        raise ValueError(f"file(s) given twice: {dup}")
    return out


def _is_companion(p: Path) -> bool:
    return p.stem.lower().endswith(HAADF_COMPANION)



# --------------------------------------------------------------------------- one file

@dataclass
class RawTilt:
    """One tilt as read: the EDS spectrum image and the HAADF image (HyperSpy signals).

    Attributes
    ----------
    path : Path
    angle_deg : float
    spectrum_image : exspy.signals.EDSTEMSpectrum
        Navigation (y, x), signal energy (keV).
    haadf : hyperspy.signals.Signal2D or None
        On the spectrum image's grid.
    """

    path: Path
    angle_deg: float
    spectrum_image: object
    haadf: object | None


@dataclass(frozen=True)
class TiltFileInfo:
    """What the header scan learnt about one tilt file."""

    path: Path
    image_shape: tuple[int, int]
    pixel_nm: float | None
    beam_kev: float | None
    energy_axis: tuple[float, float, int]  # offset keV, scale keV, channels
    metadata_angle_deg: float | None
    haadf: str | None  # where the HAADF comes from ("in file" / companion path), None if absent
    xray_lines: tuple[str, ...] = ()
    images: tuple[tuple[str, str], ...] = ()  # (title, role) of every image in the file
    pixel_problem: str | None = None  # why pixel_nm is None


def scan_tilt_file(path, haadf_title: str | None = None) -> TiltFileInfo:
    """Read one tilt file's header (data stays on disk) and check it holds a spectrum image.

    Parameters
    ----------
    path : path
    haadf_title : str, optional
        Title or detector name of the image to use as HAADF (``--haadf-signal``);
        by default only an image recognised as HAADF is used.

    Returns
    -------
    TiltFileInfo
    """
    path = Path(path)
    signals = _load(path, lazy=True)
    si = _pick_spectrum_image(path, signals)
    nav = si.axes_manager.navigation_axes
    shape = (int(nav[1].size), int(nav[0].size))
    en = si.axes_manager.signal_axes[0]
    units = str(en.units).lower()
    scale = {"kev": 1.0, "ev": 1e-3}.get(units)
    if scale is None:
        raise ValueError(f"{path}: the spectrum's energy axis is in {en.units!r}; expected keV or eV")
    haadf = _pick_haadf(signals, haadf_title, path, shape)
    where = "in file" if haadf is not None else None
    if haadf is None:
        c = _companion(path)
        if c is not None:
            where = str(c)
        elif haadf_title is not None:
            raise ValueError(f"{path}: no image named {haadf_title!r} to use as HAADF: the file holds no image and "
                             f"has no companion '{path.stem}{HAADF_COMPANION}' file")
    beam = beam_energy_kev(si.metadata)
    if beam is None and haadf is not None:
        beam = beam_energy_kev(haadf.metadata)
    lines = si.metadata.get_item("Sample.xray_lines") or []
    px, why = _pixel_nm(nav[:2], path)
    return TiltFileInfo(
        path=path, image_shape=shape, pixel_nm=px, beam_kev=beam,
        energy_axis=(float(en.offset) * scale, float(en.scale) * scale, int(en.size)),
        metadata_angle_deg=_metadata_angle(si, haadf), haadf=where, xray_lines=tuple(lines),
        images=tuple(_image_list(signals)), pixel_problem=why,
    )


def read_tilt(path, angle_deg: float = float("nan"), haadf_title: str | None = None, *,
              haadf_signal: str | None = None, cutoff_kev: float | None = None) -> RawTilt:
    """Load one tilt file fully: its EDS spectrum image and HAADF image (on the same grid).

    Parameters
    ----------
    path : path
    angle_deg : float
    haadf_title, haadf_signal : str, optional
        Title or detector name of the image to use as HAADF (the two are the
        same option; ``haadf_signal`` is the CLI's ``--haadf-signal``).
    cutoff_kev : float, optional
        Bruker ``.bcf`` only: the spectrum image ends at this energy (keV), the
        channels above it not decoded (RosettaSciIO's ``cutoff_at_kV``; a
        smaller array to fill); other formats are loaded whole.

    Returns
    -------
    RawTilt
    """
    path = Path(path)
    haadf_title = _one_name(haadf_title, haadf_signal)
    signals = _load(path, lazy=False, cutoff_kev=cutoff_kev)
    si = _pick_spectrum_image(path, signals)
    if si._lazy:  # pragma: no cover - formats that always load lazily
        si.compute()
    nav = si.axes_manager.navigation_axes
    haadf = _pick_haadf(signals, haadf_title, path, (int(nav[1].size), int(nav[0].size)))
    if haadf is None:
        c = _companion(path)
        if c is not None:
            imgs = _load(c, lazy=False)
            haadf = _pick_haadf(imgs, None) or (imgs[0] if len(imgs) == 1 else None)
            if haadf is None:
                raise ValueError(f"{c}: expected one HAADF image, found {[_describe(s) for s in imgs]}")
    if haadf is not None:
        nav = si.axes_manager.navigation_axes
        shape = (int(nav[1].size), int(nav[0].size))
        data = _haadf_on_grid(path, haadf, shape)
        hs = _hs()
        img = hs.signals.Signal2D(data.astype(np.float32))
        for i, ax in enumerate(nav):
            img.axes_manager.signal_axes[i].update_from(ax, ("scale", "offset", "units", "name"))
        img.metadata.General.title = "HAADF"
        haadf = img
    return RawTilt(path, float(angle_deg), si, haadf)


# --------------------------------------------------------------------------- the series

@dataclass
class RawTiltSeries:
    """A checked set of tilt files, sorted by tilt angle; data read one tilt at a time.

    Attributes
    ----------
    files : list of TiltFileInfo
        Sorted by angle.
    angles_deg : ndarray
    angle_source : {"user", "metadata", "filename"}
    haadf_title : str or None
    """

    files: list[TiltFileInfo]
    angles_deg: np.ndarray
    angle_source: str
    haadf_title: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        """The tilt files, in angle order."""
        return [f.path for f in self.files]

    @property
    def image_shape(self) -> tuple[int, int]:
        """The scan grid ``(rows, columns)`` of every tilt (checked equal across files)."""
        return self.files[0].image_shape

    @property
    def pixel_nm(self) -> float | None:
        """The scan pixel size (nm) shared by every tilt, None when the files do not give it."""
        return self.files[0].pixel_nm

    @property
    def beam_kev(self) -> float | None:
        """The beam energy (keV) from the first file's metadata, None when absent."""
        return self.files[0].beam_kev

    @property
    def energy_axis(self) -> tuple[float, float, int]:
        """The EDS energy axis ``(offset keV, scale keV, channels)`` shared by every tilt."""
        return self.files[0].energy_axis

    @property
    def has_haadf(self) -> bool:
        """Whether every tilt has a HAADF image."""
        return all(f.haadf is not None for f in self.files)

    def inputs(self) -> list[Path]:
        """Every file read (tilt files and HAADF companions), for provenance."""
        out = []
        for f in self.files:
            out.append(f.path)
            if f.haadf not in (None, "in file"):
                out.append(Path(f.haadf))
        return out

    def require_pixel_nm(self, pixel_nm: float | None = None) -> float:
        """The pixel size (nm): ``pixel_nm`` if given (the user's override), else the files'.

        Raises
        ------
        ValueError
            Neither is known: names the file, why (no unit, a unit that is not a
            length) and ``--pixel-nm``.
        """
        if pixel_nm is not None:
            if not np.isfinite(pixel_nm) or pixel_nm <= 0:
                raise ValueError(f"pixel_nm (--pixel-nm) must be a positive number of nm, got {pixel_nm!r}")
            return float(pixel_nm)
        if self.pixel_nm is None:
            why = self.files[0].pixel_problem or f"{self.files[0].path}: no pixel size"
            raise ValueError(f"{why} (pixel_nm= in the API)")
        return float(self.pixel_nm)

    def read(self, i: int, cutoff_kev: float | None = None) -> RawTilt:
        """Tilt ``i`` (in angle order), fully loaded (a ``.bcf`` up to ``cutoff_kev``: :func:`read_tilt`)."""
        f = self.files[i]
        return read_tilt(f.path, float(self.angles_deg[i]), self.haadf_title, cutoff_kev=cutoff_kev)

    def __iter__(self) -> Iterator[RawTilt]:
        for i in range(len(self)):
            yield self.read(i)

    def describe(self) -> dict:
        """JSON-friendly summary (for provenance)."""
        off, sc, n = self.energy_axis
        return {
            "files": [str(f.path) for f in self.files], "angles_deg": self.angles_deg.tolist(),
            "angle_source": self.angle_source, "image_shape": list(self.image_shape),
            "pixel_nm": self.pixel_nm, "beam_kev": self.beam_kev,
            "energy_axis_kev": {"offset": off, "scale": sc, "channels": n},
            "haadf": [f.haadf for f in self.files], "notes": list(self.notes),
            "images": [list(map(list, f.images)) for f in self.files[:1]],
        }


def open_tilt_series(inputs, angles_deg=None, angle_source: AngleSource = "auto",
                     haadf_title: str | None = None, progress: bool = False, *,
                     haadf_signal: str | None = None, angles_unit: str | None = None) -> RawTiltSeries:
    """Scan and check a raw tilt series: a folder, or a list of files (one per tilt).

    Parameters
    ----------
    inputs : path or list of paths
        A folder holding the tilt files, or the files themselves (Bruker
        ``.bcf``, Velox ``.emd``, JEOL ``.ASW``/``.pts``, HyperSpy ``.hspy``/``.zspy``).
    angles_deg : array_like, optional
        One tilt angle (degrees) per file, in the order of ``inputs`` (a
        folder's files are in natural name order, see :func:`find_tilt_files`).
    angle_source : {"auto", "user", "metadata", "filename"}
        Where the angles come from (module docstring).
    haadf_title : str, optional
        Title of the image to use as HAADF when a file holds several images.
    progress : bool
        A progress bar over the files (stderr).
    haadf_signal : str, optional
        Title or detector name of the image to use as HAADF (``"DF-S"``,
        ``"Ch 1"``; the CLI's ``--haadf-signal``; same as ``haadf_title``). By
        default only an image recognised as HAADF (detector or channel name) is
        used; DF, BF, BSE, SE images and elemental maps never are.
    angles_unit : {"deg", "rad"}, optional
        The unit of the angles from any source (:func:`~chemtomo.io.angles.resolve_angles`;
        CLI ``--angles-unit``): ``"rad"`` converts them to degrees.

    Returns
    -------
    RawTiltSeries
        Sorted by tilt angle.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_TILTS` files (a single acquisition is not a tilt
        series); a file that cannot be read (truncated, corrupt), holds no EDS
        spectrum image, or differs from the others in image size, energy axis
        or pixel size; a ``haadf_signal`` no image has; tilt angles missing,
        contradictory, duplicated or in radians.
    FileNotFoundError
        A named file does not exist.
    """
    haadf_title = _one_name(haadf_title, haadf_signal)
    paths = find_tilt_files(inputs)
    it = paths
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="scanning tilt files", unit="file")
    infos = [scan_tilt_file(p, haadf_title) for p in it]
    if len(paths) < MIN_TILTS:  # after the scan: a broken file is reported as broken
        one = infos[0]
        where = (f"{paths[0]} (one spectrum image {one.image_shape[0]}x{one.image_shape[1]})" if len(paths) == 1
                 else f"{[p.name for p in paths]}")
        check_enough_tilts(len(paths), where)
    ref = infos[0]
    for f in infos[1:]:
        if f.image_shape != ref.image_shape:
            raise ValueError(
                f"image sizes differ between tilts: {f.path.name} is {f.image_shape[0]}x{f.image_shape[1]} but "
                f"{ref.path.name} is {ref.image_shape[0]}x{ref.image_shape[1]}; every tilt must be scanned "
                "on the same grid (crop or bin them alike)"
            )
        if f.energy_axis[2] != ref.energy_axis[2] or not np.allclose(f.energy_axis[:2], ref.energy_axis[:2],
                                                                       rtol=1e-3, atol=1e-4):
            raise ValueError(f"energy axes differ: {f.path.name} {f.energy_axis} vs {ref.path.name} "
                             f"{ref.energy_axis} (offset keV, scale keV, channels)")
        if (f.pixel_nm is None) != (ref.pixel_nm is None) or (
                f.pixel_nm is not None and not np.isclose(f.pixel_nm, ref.pixel_nm, rtol=1e-3)):
            raise ValueError(f"pixel sizes differ: {f.path.name} {f.pixel_nm} nm vs {ref.path.name} "
                             f"{ref.pixel_nm} nm; tilts must share one magnification")
    notes = []
    if any(f.haadf is None for f in infos) and not all(f.haadf is None for f in infos):
        missing = [f.path.name for f in infos if f.haadf is None]
        raise ValueError(f"HAADF image missing for {missing[:4]} but present for other tilts; give every "
                         f"tilt a HAADF image (companion '<stem>{HAADF_COMPANION}.hspy') or none")
    if ref.haadf is None:
        others = [f"{t} [{r}]" for t, r in ref.images if r != "EDS map"]
        if others:
            notes.append(f"no HAADF image: the files hold {', '.join(others)}; none is used as HAADF unless "
                         "chosen with haadf_signal= (--haadf-signal)")
    if ref.pixel_problem:
        notes.append(ref.pixel_problem)
    md = [f.metadata_angle_deg for f in infos]
    angles, source = resolve_angles(paths, md, angles_deg, angle_source, angles_unit)
    if source != "metadata" and all(a is not None for a in md) and len({round(a, 6) for a in md}) == 1 \
            and len(md) > 1:
        notes.append(f"metadata tilt_alpha is {md[0]:g} deg in every file: ignored")
    order = np.argsort(angles, kind="stable")
    return RawTiltSeries([infos[i] for i in order], angles[order], source, haadf_title, notes)
