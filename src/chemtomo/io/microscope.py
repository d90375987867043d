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

import contextlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np

SUPPORTED_SUFFIXES = (".bcf", ".emd", ".hspy", ".zspy")
HAADF_COMPANION = "_haadf"
AngleSource = Literal["auto", "user", "metadata", "filename"]
ANGLE_SOURCES = ("auto", "user", "metadata", "filename")
ANGLE_TOLERANCE_DEG = 0.05

_LENGTH_TO_NM = {"nm": 1.0, "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3, "å": 0.1, "a": 0.1,
                 "angstrom": 0.1, "pm": 1e-3, "mm": 1e6, "m": 1e9}


@contextlib.contextmanager
def quiet_hyperspy():
    """Silence HyperSpy's and exSpy's own deprecation chatter about their internals (not ours to fix), locally."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Import it from `hyperspy\.signals` instead.*")
        warnings.filterwarnings("ignore", message=r".*use `exspy\.material` instead.*")
        yield


def _hs():
    try:
        with quiet_hyperspy():
            import hyperspy.api as hs
            import exspy  # noqa: F401  (registers the EDS signal types)
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("reading microscope files needs HyperSpy and exSpy: pip install 'chemtomo[io]'") from exc
    return hs


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
    if len(inputs) == 1 and inputs[0].is_dir():
        folder = inputs[0]
        files = [p for p in folder.iterdir()
                 if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not _is_companion(p)]
        if not files:
            raise ValueError(
                f"{folder} holds no tilt files ({', '.join(SUPPORTED_SUFFIXES)}); give the folder of "
                "one tilt series or the files themselves"
            )
        return sorted(files, key=_natural_key)
    out = []
    for p in inputs:
        if p.is_dir():
            raise ValueError(f"{p} is a folder: give either one folder or a list of files, not both")
        if not p.is_file():
            raise FileNotFoundError(f"no such file: {p}")
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ValueError(f"{p}: unsupported file type {p.suffix!r}; tilt files are {SUPPORTED_SUFFIXES}")
        out.append(p)
    dup = sorted({str(p) for p in out if out.count(p) > 1})
    if dup:
        raise ValueError(f"file(s) given twice: {dup}")
    return out


def _is_companion(p: Path) -> bool:
    return p.stem.lower().endswith(HAADF_COMPANION)


def _natural_key(p: Path):
    parts = re.split(r"([+-]?\d+(?:\.\d+)?)", p.stem)
    return [(0, float(t), "") if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", t) else (1, 0.0, t.lower())
            for t in parts if t]


_NUM = r"[+-]?\d+(?:\.\d+)?"


def angle_from_filename(path) -> float | None:
    """The tilt angle (degrees) a file name states, or None.

    Accepted: a stem that is a number (``-10``, ``+35.5``); a number followed by
    ``deg``/``degree(s)``/``°`` (``map_-40deg``); a number after ``tilt``,
    ``angle`` or ``alpha`` with an optional ``_``, ``=`` or space
    (``tilt_+35``, ``TS alpha=-12.5``). Anything else (``map_012``) is not
    taken for an angle.

    >>> angle_from_filename("data/-10.bcf"), angle_from_filename("tilt_+35.5.emd"), angle_from_filename("scan_3.bcf")
    (-10.0, 35.5, None)
    """
    stem = Path(path).stem
    if stem.lower().endswith(HAADF_COMPANION):
        stem = stem[: -len(HAADF_COMPANION)]
    if re.fullmatch(_NUM, stem.strip()):
        return float(stem)
    m = re.search(rf"({_NUM})\s*(?:deg(?:rees?)?|°)(?![a-z])", stem, flags=re.IGNORECASE)
    if m:
        return float(m.group(1))
    m = re.search(rf"(?:tilt|angle|alpha)[\s_=]*({_NUM})", stem, flags=re.IGNORECASE)
    if m:
        return float(m.group(1))
    return None


def resolve_angles(paths: Sequence[Path], metadata_angles: Sequence[float | None],
                   angles_deg=None, angle_source: AngleSource = "auto") -> tuple[np.ndarray, str]:
    """Tilt angles of ``paths`` and where they came from (``user``, ``metadata``, ``filename``).

    Raises ValueError when no source gives an angle for every file, when the
    sources disagree, when the user's list has the wrong length, or when an
    angle repeats.
    """
    if angle_source not in ANGLE_SOURCES:
        raise ValueError(f"angle_source must be one of {ANGLE_SOURCES}, got {angle_source!r}")
    n = len(paths)
    names = [Path(p).name for p in paths]
    from_names = [angle_from_filename(p) for p in paths]
    md = [None if a is None else float(a) for a in metadata_angles]
    md_ok = all(a is not None for a in md) and (n == 1 or len({round(a, 6) for a in md}) > 1)
    names_ok = all(a is not None for a in from_names)
    if angles_deg is not None:
        if angle_source not in ("auto", "user"):
            raise ValueError(f"angles were given, so angle_source must be 'auto' or 'user', not {angle_source!r}")
        angles = np.asarray(angles_deg, dtype=float).ravel()
        if angles.size != n:
            raise ValueError(
                f"{angles.size} tilt angles given for {n} files ({names}); give one angle per file, "
                "in the order of the files"
            )
        source = "user"
    elif angle_source == "user":
        raise ValueError("angle_source='user' but no angles were given (angles_deg= or --angles)")
    elif angle_source == "metadata" or (angle_source == "auto" and md_ok):
        if not md_ok:
            missing = [nm for nm, a in zip(names, md) if a is None]
            why = (f"no tilt angle in the metadata of {missing}" if missing
                   else f"every file's metadata says {md[0]:g} degrees")
            raise ValueError(f"angle_source='metadata' but {why}; use the file names or give the angles")
        angles = np.array(md, dtype=float)
        source = "metadata"
        if angle_source == "auto" and names_ok and not np.allclose(angles, from_names, atol=ANGLE_TOLERANCE_DEG):
            bad = [f"{nm}: metadata {a:g}, name {b:g}" for nm, a, b in zip(names, angles, from_names)
                   if abs(a - b) > ANGLE_TOLERANCE_DEG]
            raise ValueError(
                "the tilt angles in the metadata do not match those in the file names ("
                + "; ".join(bad[:4]) + (" ..." if len(bad) > 4 else "")
                + "); choose one with angle_source='metadata' or 'filename' (--angles-from), or give the angles"
            )
    elif angle_source == "filename" or (angle_source == "auto" and names_ok):
        if not names_ok:
            bad = [nm for nm, a in zip(names, from_names) if a is None]
            raise ValueError(f"no tilt angle in the file name(s) {bad[:4]}; name files like '-10.bcf' "
                             "or 'tilt_-10.emd', or give the angles")
        angles = np.array(from_names, dtype=float)
        source = "filename"
    else:
        why = ("the files' metadata hold no tilt angle" if any(a is None for a in md)
               else f"the files' metadata say {md[0]:g} degrees for every tilt")
        raise ValueError(
            f"no tilt angles found: {why} and the file names carry none ({names[:3]}...); "
            "give them with angles_deg=[...] (CLI: --angles -40 -35 ...) in the order of the files"
        )
    if not np.all(np.isfinite(angles)) or np.any(np.abs(angles) > 90):
        raise ValueError(f"tilt angles must be finite and within [-90, 90] degrees, got {angles.tolist()}")
    r = np.round(angles, 6)
    for a in np.unique(r):
        idx = np.flatnonzero(r == a)
        if idx.size > 1:
            raise ValueError(
                f"tilt angle {a:g} degrees ({source}) is duplicated: {[names[i] for i in idx]}; "
                "each tilt must appear once (remove the repeat or correct its angle)"
            )
    return angles, source


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


def _check_bcf_whole(path: Path) -> None:
    """A truncated .bcf makes the Bruker reader crash the process (SIGBUS); check its size first."""
    try:
        from rsciio.bruker._api import SFS_reader

        sfs = SFS_reader(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure here means unreadable
        raise ValueError(f"{path}: not a readable Bruker .bcf file ({type(exc).__name__}: {exc}); "
                         "is it truncated or corrupt?") from None
    expected = 0x118 + sfs.sfs_n_of_chunks * sfs.chunksize
    size = path.stat().st_size
    if size < expected:
        raise ValueError(f"{path}: truncated .bcf file ({size} bytes, the container declares {expected}); "
                         "copy it again from the microscope")


def _load(path: Path, lazy: bool):
    hs = _hs()
    if path.suffix.lower() == ".bcf":
        _check_bcf_whole(path)
    try:
        with quiet_hyperspy():
            out = hs.load(path, lazy=lazy)
    except Exception as exc:  # noqa: BLE001 - readers raise anything on a bad file
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); is it truncated, corrupt "
                         "or not a microscope file?") from None
    return out if isinstance(out, list) else [out]


def _describe(sig) -> str:
    return f"{type(sig).__name__} {sig.metadata.General.title!r} {sig.axes_manager._get_dimension_str()}"


def _is_spectrum_image(sig) -> bool:
    st = str(sig.metadata.get_item("Signal.signal_type", "") or "")
    am = sig.axes_manager
    return st.upper().startswith("EDS") and am.signal_dimension == 1 and am.navigation_dimension == 2


def _pick_spectrum_image(path: Path, signals):
    sis = [s for s in signals if _is_spectrum_image(s)]
    if not sis:
        found = "; ".join(_describe(s) for s in signals) or "nothing"
        raise ValueError(
            f"{path} holds no EDS spectrum image (found: {found}); every tilt file needs one, with "
            "signal_type 'EDS_TEM' and two navigation axes (y, x) over one energy axis"
        )
    if len(sis) > 1:
        raise ValueError(
            f"{path} holds {len(sis)} EDS spectrum images ({'; '.join(_describe(s) for s in sis)}); "
            "sum the detectors when exporting (Velox: one spectrum image per tilt)"
        )
    return sis[0]


def _pick_haadf(signals, haadf_title: str | None):
    imgs = [s for s in signals if s.axes_manager.signal_dimension == 2 and s.axes_manager.navigation_dimension <= 1]
    if not imgs:
        return None
    titles = [str(s.metadata.General.title) for s in imgs]
    if haadf_title is not None:
        hits = [s for s, t in zip(imgs, titles) if t.lower() == haadf_title.lower()]
        return hits[0] if hits else None
    for pattern in (r"haadf", r"adf|^df"):
        hits = [s for s, t in zip(imgs, titles) if re.search(pattern, t, flags=re.IGNORECASE)]
        if hits:
            return hits[0]
    if len(imgs) == 1 and not re.match(r"^a?bf", titles[0], flags=re.IGNORECASE):
        return imgs[0]
    return None


def _companion(path: Path) -> Path | None:
    for suf in (path.suffix, ".hspy", ".zspy", ".tif", ".tiff"):
        for tag in (HAADF_COMPANION, HAADF_COMPANION.upper(), "_HAADF"):
            c = path.with_name(path.stem + tag + suf)
            if c.is_file():
                return c
    return None


def _pixel_nm(ax) -> float | None:
    units = str(ax.units or "").strip().lower()
    if units in ("", "<undefined>", "px", "pixel", "pixels"):
        return None
    f = _LENGTH_TO_NM.get(units)
    return None if f is None else float(ax.scale) * f


def _metadata_angle(*signals) -> float | None:
    for s in signals:
        if s is None:
            continue
        for key in ("Acquisition_instrument.TEM.Stage.tilt_alpha", "Acquisition_instrument.SEM.Stage.tilt_alpha"):
            v = s.metadata.get_item(key)
            if v is not None:
                try:
                    return float(v)
                except (TypeError, ValueError):
                    pass
    return None


def _haadf_on_grid(path: Path, haadf, shape: tuple[int, int]):
    """The HAADF as a 2-D float image on the spectrum image's (ny, nx) grid (sum-binned if finer)."""
    data = np.asarray(haadf.data, dtype=np.float64)
    if data.ndim == 3:  # a frame series: sum the frames
        data = data.sum(axis=0)
    if data.shape == tuple(shape):
        return data
    ry, rx = data.shape[0] / shape[0], data.shape[1] / shape[1]
    if ry == rx and ry == int(ry) and ry > 1:
        f = int(ry)
        return data.reshape(shape[0], f, shape[1], f).sum(axis=(1, 3))
    raise ValueError(
        f"{path}: the HAADF image is {data.shape[0]}x{data.shape[1]} but the spectrum image "
        f"{shape[0]}x{shape[1]}; they must cover the same scan (equal, or an integer multiple)"
    )


def scan_tilt_file(path, haadf_title: str | None = None) -> TiltFileInfo:
    """Read one tilt file's header (data stays on disk) and check it holds a spectrum image."""
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
    haadf = _pick_haadf(signals, haadf_title)
    where = "in file" if haadf is not None else None
    if haadf is None:
        c = _companion(path)
        if c is not None:
            where = str(c)
    beam = si.metadata.get_item("Acquisition_instrument.TEM.beam_energy")
    lines = si.metadata.get_item("Sample.xray_lines") or []
    return TiltFileInfo(
        path=path, image_shape=shape, pixel_nm=_pixel_nm(nav[0]),
        beam_kev=None if beam is None else float(beam),
        energy_axis=(float(en.offset) * scale, float(en.scale) * scale, int(en.size)),
        metadata_angle_deg=_metadata_angle(si, haadf), haadf=where, xray_lines=tuple(lines),
    )


def read_tilt(path, angle_deg: float = float("nan"), haadf_title: str | None = None) -> RawTilt:
    """Load one tilt file fully: its EDS spectrum image and HAADF image (on the same grid)."""
    path = Path(path)
    signals = _load(path, lazy=False)
    si = _pick_spectrum_image(path, signals)
    if si._lazy:  # pragma: no cover - formats that always load lazily
        si.compute()
    haadf = _pick_haadf(signals, haadf_title)
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
        return [f.path for f in self.files]

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.files[0].image_shape

    @property
    def pixel_nm(self) -> float | None:
        return self.files[0].pixel_nm

    @property
    def beam_kev(self) -> float | None:
        return self.files[0].beam_kev

    @property
    def energy_axis(self) -> tuple[float, float, int]:
        return self.files[0].energy_axis

    @property
    def has_haadf(self) -> bool:
        return all(f.haadf is not None for f in self.files)

    def inputs(self) -> list[Path]:
        """Every file read (tilt files and HAADF companions), for provenance."""
        out = []
        for f in self.files:
            out.append(f.path)
            if f.haadf not in (None, "in file"):
                out.append(Path(f.haadf))
        return out

    def read(self, i: int) -> RawTilt:
        """Tilt ``i`` (in angle order), fully loaded."""
        f = self.files[i]
        return read_tilt(f.path, float(self.angles_deg[i]), self.haadf_title)

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
        }


def open_tilt_series(inputs, angles_deg=None, angle_source: AngleSource = "auto",
                     haadf_title: str | None = None, progress: bool = False) -> RawTiltSeries:
    """Scan and check a raw tilt series: a folder, or a list of files (one per tilt).

    Parameters
    ----------
    inputs : path or list of paths
        A folder holding the tilt files, or the files themselves.
    angles_deg : array_like, optional
        One tilt angle (degrees) per file, in the order of ``inputs`` (a
        folder's files are in natural name order, see :func:`find_tilt_files`).
    angle_source : {"auto", "user", "metadata", "filename"}
        Where the angles come from (module docstring).
    haadf_title : str, optional
        Title of the image to use as HAADF when a file holds several images.
    progress : bool
        A progress bar over the files (stderr).

    Returns
    -------
    RawTiltSeries
        Sorted by tilt angle.

    Raises
    ------
    ValueError
        A file that cannot be read (truncated, corrupt), holds no EDS spectrum
        image, or differs from the others in image size, energy axis or pixel
        size; tilt angles missing, contradictory or duplicated.
    FileNotFoundError
        A named file does not exist.
    """
    paths = find_tilt_files(inputs)
    it = paths
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="scanning tilt files", unit="file")
    infos = [scan_tilt_file(p, haadf_title) for p in it]
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
    md = [f.metadata_angle_deg for f in infos]
    angles, source = resolve_angles(paths, md, angles_deg, angle_source)
    if source != "metadata" and all(a is not None for a in md) and len({round(a, 6) for a in md}) == 1 \
            and len(md) > 1:
        notes.append(f"metadata tilt_alpha is {md[0]:g} deg in every file: ignored")
    order = np.argsort(angles, kind="stable")
    return RawTiltSeries([infos[i] for i in order], angles[order], source, haadf_title, notes)
