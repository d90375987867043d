"""Raw tilt files -> line maps and HAADF images (the first stage of the experimental path).

:func:`load_line_maps` opens the tilt files (:mod:`chemtomo.io.microscope`),
turns each spectrum image into background-subtracted line maps (exSpy, via
:func:`chemtomo.preprocess.line_intensities`) and keeps each tilt's HAADF
image, one tilt in memory at a time. Its choices are one frozen
:class:`LineMapOptions`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._options import with_overrides
from ..geometry import ANGLE_UNITS
from ..io.detector_meta import detector_facts
from ..io.microscope import RawTiltSeries, open_tilt_series
from ._signals import is_signal
from .linemaps import fit_cutoff_kev, line_energy_kev, line_intensities, split_line

ANGLE_SOURCES = ("auto", "user", "metadata", "filename")
LINE_METHODS = ("windows", "fit")


def _bar(iterable, desc: str, progress: bool, total: int | None = None, unit: str = "it"):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr)


@dataclass(frozen=True)
class LineMapOptions:
    """How raw tilt files become line maps: the facts the files may lack, and the line windows.

    Attributes
    ----------
    angles_deg : sequence of float, optional
        One tilt angle (degrees) per file, overriding the files' (CLI ``--angles``).
    angle_source : {"auto", "user", "metadata", "filename"}
        Where the angles come from (:func:`chemtomo.io.microscope.open_tilt_series`;
        default ``"auto"``: metadata, else file names).
    haadf_title : str, optional
        Title of the HAADF image in the files (default: found by name).
    pixel_nm : float, optional
        Pixel size (nm), if the files do not state it or to override them (CLI ``--pixel-nm``).
    line_method : {"windows", "fit"}
        Line intensities by exSpy's background windows (default) or a local
        least-squares fit that separates overlapping lines.
    integration_width : float
        Line integration window, in FWHMs of the line (default 2).
    line_width : (float, float)
        Line width (FWHMs) of the background windows, left and right (default (2, 2)).
    window_width : float
        Width of each background window, in FWHMs (default 1).
    elements : sequence of str, optional
        Elements of the specimen whose lines the background windows avoid and
        the fit models (default: the files' ``Sample.elements`` and the lines').
    angles_unit : {"deg", "rad"}, optional
        The unit of the tilt angles, from whichever source (CLI ``--angles-unit``):
        ``"rad"`` converts them to degrees; default None: degrees, a set that
        looks like radians refused.

    Raises
    ------
    ValueError
        On construction: an unknown angle source or line method, a width
        that is not positive, a pixel size that is not positive.
    """

    angles_deg: Sequence[float] | None = None
    angle_source: Literal["auto", "user", "metadata", "filename"] = "auto"
    haadf_title: str | None = None
    pixel_nm: float | None = None
    line_method: Literal["windows", "fit"] = "windows"
    integration_width: float = 2.0
    line_width: tuple[float, float] = (2.0, 2.0)
    window_width: float = 1.0
    elements: Sequence[str] | None = None
    angles_unit: Literal["deg", "rad"] | None = None

    def __post_init__(self):
        if self.angles_unit not in (None, *ANGLE_UNITS):
            raise ValueError(f"angles_unit must be one of {ANGLE_UNITS} or None, got {self.angles_unit!r}")
        if self.angle_source not in ANGLE_SOURCES:
            raise ValueError(f"angle_source must be one of {ANGLE_SOURCES}, got {self.angle_source!r}")
        if self.line_method not in LINE_METHODS:
            raise ValueError(f"line_method must be one of {LINE_METHODS}, got {self.line_method!r}")
        for name in ("integration_width", "window_width"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0 (FWHMs), got {getattr(self, name)!r}")
        if self.pixel_nm is not None and not float(self.pixel_nm) > 0:
            raise ValueError(f"pixel_nm must be > 0 (nm), got {self.pixel_nm!r}")


# --------------------------------------------------------------------------- line maps

@dataclass
class LineMaps:
    """Per-tilt line maps and HAADF images on the raw grid.

    Attributes
    ----------
    eds : dict line -> ndarray (n_tilts, ny, nx) float32
        Background-subtracted counts (may be negative in single pixels).
    haadf : ndarray (n_tilts, ny, nx) or None
    angles_deg : ndarray
    pixel_nm : float
    windows_kev : dict line -> [4 floats]
        Background windows used (left start, left end, right start, right end).
    raw : RawTiltSeries or None
        The opened files (their description and notes go into the provenance).
    beam_kev : float or None
        Beam energy (keV) the files state.
    eds_detector : dict or None
        The EDS detector facts the first file's metadata states
        (:meth:`chemtomo.io.detector_meta.DetectorFacts.as_dict`), for the absorption correction.
    """

    eds: dict
    haadf: np.ndarray | None
    angles_deg: np.ndarray
    pixel_nm: float
    windows_kev: dict = field(default_factory=dict)
    raw: RawTiltSeries | None = None
    beam_kev: float | None = None
    eds_detector: dict | None = None

    def to_signals(self) -> dict:
        """The stacks as HyperSpy Signal2D (tilt | y, x), keyed ``HAADF`` and line names."""
        from ..io.hspy import to_signal

        out = {ln: to_signal(v, self.angles_deg, self.pixel_nm, ln) for ln, v in self.eds.items()}
        if self.haadf is not None:
            out["HAADF"] = to_signal(self.haadf, self.angles_deg, self.pixel_nm, "HAADF")
        return out


def check_lines(lines: Sequence[str], energy_axis: tuple[float, float, int] | None = None) -> list[str]:
    """Validate line names (and energies against an energy axis) before any heavy work.

    Parameters
    ----------
    lines : sequence of str
        X-ray lines (``Fe_Ka``).
    energy_axis : (offset_kev, scale_kev, n_channels), optional
        The spectra's energy axis; each line must lie inside it (with 0.05 keV to spare).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        No line, a repeated line, an unknown element or line, a line outside the energy range.
    """
    lines = list(lines)
    if not lines:
        raise ValueError("give at least one X-ray line (e.g. --lines Fe_Ka Si_Ka)")
    dup = sorted({x for x in lines if lines.count(x) > 1})
    if dup:
        raise ValueError(f"lines repeat {dup}; give each line once")
    for ln in lines:
        split_line(ln)
        if energy_axis is not None:
            off, sc, n = energy_axis
            e = line_energy_kev(ln)
            if not off + 0.05 < e < off + sc * (n - 1) - 0.05:
                raise ValueError(f"line {ln} ({e:.3f} keV) is outside the spectra's energy range "
                                 f"{off:.2f}-{off + sc * (n - 1):.2f} keV; choose another line of that element")
    return lines


def _fit_cutoff(tilt, lines) -> float:
    """The energy (keV) above which the fit of ``lines`` reads no channel of this tilt (its detector's FWHM)."""
    si = tilt.spectrum_image
    res = si.metadata.get_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
    return fit_cutoff_kev(lines, float(res))


def load_line_maps(inputs, lines: Sequence[str], options: LineMapOptions | None = None, *, progress: bool = True,
                   **overrides) -> LineMaps:
    """Raw tilt files -> line maps and HAADF images, one tilt in memory at a time.

    With the fit (``line_method="fit"``), Bruker ``.bcf`` files after the first
    are decoded only up to the energy the fits use
    (:func:`chemtomo.preprocess.linemaps.fit_cutoff_kev`, from the first
    file's detector resolution; a file whose resolution needs more is read
    again whole): the same maps from half the spectrum cube.

    Parameters
    ----------
    inputs : folder, file or list of files, or a :class:`RawTiltSeries`
    lines : list of str
        X-ray lines (``Fe_Ka``, ``Pt_La``).
    options : LineMapOptions, optional
        Angles, pixel size, HAADF title, line method and windows (default: its defaults).
    progress : bool
        A progress bar on standard error.
    **overrides
        Fields of :class:`LineMapOptions` by name (``pixel_nm=2.0``), replacing those of ``options``.

    Returns
    -------
    LineMaps

    Raises
    ------
    ValueError
        Bad files or angles (see ``open_tilt_series``), an unknown line, a
        line outside the energy range, or a line with no net counts in the
        whole series (not in this specimen); an unknown option name.
    """
    o = with_overrides(options, LineMapOptions, overrides, "line-map options")
    raw = inputs if isinstance(inputs, RawTiltSeries) else open_tilt_series(
        inputs, o.angles_deg, o.angle_source, o.haadf_title, progress=progress, angles_unit=o.angles_unit)
    lines = check_lines(lines, raw.energy_axis)
    px = raw.require_pixel_nm(o.pixel_nm)
    n = len(raw)
    ny, nx = raw.image_shape
    eds = {ln: np.zeros((n, ny, nx), np.float32) for ln in lines}
    haadf = np.zeros((n, ny, nx), np.float32) if raw.has_haadf else None
    windows, facts, cutoff = {}, None, None
    for i in _bar(range(n), "line maps", progress, total=n, unit="tilt"):
        tilt = raw.read(i, cutoff_kev=cutoff)
        if cutoff is not None and _fit_cutoff(tilt, lines) > cutoff:  # this file's resolution is coarser
            tilt = raw.read(i)
        if i == 0 and o.line_method == "fit":
            cutoff = _fit_cutoff(tilt, lines)
            off, sc, nch = raw.energy_axis
            cutoff = cutoff if cutoff < off + sc * (nch - 1) - 2 * sc else None
        maps = line_intensities(tilt.spectrum_image, lines, method=o.line_method,
                                integration_width=o.integration_width, line_width=o.line_width,
                                window_width=o.window_width, avoid=o.elements, arrays=True)
        for ln in lines:
            eds[ln][i] = maps[ln]
        if haadf is not None:
            if tilt.haadf is None:
                raise ValueError(f"{tilt.path}: no HAADF image found on reading")
            haadf[i] = np.asarray(tilt.haadf.data, dtype=np.float32)
        if i == 0:
            facts = detector_facts(tilt.spectrum_image).as_dict() if is_signal(tilt.spectrum_image) else None
        if i == 0 and o.line_method == "windows":
            from .linemaps import background_windows

            w = background_windows(tilt.spectrum_image, lines, line_width=o.line_width,
                                   window_width=o.window_width, avoid=o.elements)
            windows = {ln: [float(v) for v in row] for ln, row in zip(lines, w, strict=True)}
        del tilt
    empty = [ln for ln in lines if float(eds[ln].sum()) <= 0]
    if empty:
        raise ValueError(f"line(s) {empty} have no net counts above background in the whole series: not in this "
                         "specimen, or the wrong line; remove them or choose another line of the element")
    return LineMaps(eds, haadf, raw.angles_deg.copy(), float(px), windows, raw, raw.beam_kev, facts)


__all__ = ["LineMapOptions", "LineMaps", "check_lines", "load_line_maps"]
