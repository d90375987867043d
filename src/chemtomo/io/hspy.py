"""Tilt series as stacks: HyperSpy ``.hspy``/``.zspy`` (chemtomo's and etspy's conventions), DM, MRC, TIFF.

One file per channel (HAADF, and each EDS line). chemtomo writes a
``Signal2D`` whose navigation axis is the tilt (named ``Tilt``, units
``degrees``, one value per image; also ``metadata.Tomography.tilts``) and whose
signal axes are ``y`` (along the tilt axis: the slices, image rows) and ``x``
(beam positions) in nm; ``metadata.Tomography.tilt_axis_along = "y"`` says so.

:func:`read_stack` reads any of them into chemtomo's layout
(:mod:`chemtomo.io.orientation`):

- angles: the caller's, else ``metadata.Tomography.tilts``, else an IMOD
  angle file beside the stack (``.rawtlt``/``.tlt``), else the navigation axis
  in degrees (radians and image numbers refused), checked by
  :func:`chemtomo.io.metadata.check_angles_deg`;
- pixel size: the image axes in any length unit (HyperSpy converts), or the
  caller's; none is an error naming ``--pixel-nm``;
- beam energy: ``Acquisition_instrument.TEM.beam_energy`` or the SEM key, as
  ``metadata["beam_kev"]`` of the series;
- orientation: etspy's stacks (navigation axis ``Projections`` or etspy's
  ``Tomography`` keys) have the tilt axis along x and are transposed; a layout
  the data contradict is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tiltseries import TiltSeries
from .atomic import atomic_path
from .metadata import axis_pixel_nm, beam_energy_kev, check_angles_deg, image_role
from .orientation import check_layout, normalise_tilt_axis, to_chemtomo_layout
from .stacks import (
    MRC_SUFFIXES,
    TIFF_SUFFIXES,
    angle_file_for,
    read_angle_file,
    read_mrc,
    read_tiff,
)

HSPY_SUFFIXES = (".hspy", ".h5", ".hdf5", ".zspy")
DM_SUFFIXES = (".dm3", ".dm4")
STACK_SUFFIXES = HSPY_SUFFIXES + DM_SUFFIXES + MRC_SUFFIXES + TIFF_SUFFIXES
ETSPY_KEYS = ("tiltaxis", "xshift", "yshift", "cropped", "shifts")


def _hs():
    try:
        import hyperspy.api as hs
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("reading .hspy files needs HyperSpy: pip install 'chemtomo[io]'") from exc
    return hs


def to_signal(stack: np.ndarray, angles_deg, pixel_nm: float, title: str, extra: dict | None = None):
    """A HyperSpy Signal2D (tilt | y, x) from a ``(n_tilts, n_slices, n_pixels)`` stack.

    Parameters
    ----------
    stack : ndarray (n_tilts, n_slices, n_pixels)
    angles_deg : array_like
    pixel_nm : float
    title : str
    extra : dict, optional
        Acquisition facts stored under ``Acquisition_instrument.chemtomo``
        (``beam_kev`` also as ``Acquisition_instrument.TEM.beam_energy``).

    Returns
    -------
    hyperspy.signals.Signal2D
    """
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
    s.metadata.set_item("Tomography.tilt_axis_along", "y")
    for k, v in (extra or {}).items():
        s.metadata.set_item(f"Acquisition_instrument.chemtomo.{k}", v)
    if "beam_kev" in (extra or {}):
        s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", float(extra["beam_kev"]))
    return s


def write_tilt_series(folder, series: TiltSeries) -> dict[str, Path]:
    """Write ``haadf.hspy`` and ``eds_<line>.hspy`` into ``folder``; returns the paths.

    Each file holds its own stack's angles (the HAADF's own when it has them: read
    them back with ``read_tilt_series(..., haadf_angles_deg="file")``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    items = ([("HAADF", "haadf.hspy", series.haadf, series.haadf_angles)] if series.haadf is not None else [])
    items += [(ln, f"eds_{ln}.hspy", v, series.angles_deg) for ln, v in series.eds.items()]
    md = {k: v for k, v in series.metadata.items() if isinstance(v, (int, float, str))}
    for name, fname, stack, angles in items:
        sig = to_signal(stack, angles, series.pixel_nm, name, md)
        path = folder / fname
        with atomic_path(path) as tmp:
            sig.save(tmp, overwrite=True)
        out[name] = path
    return out


def _load_signal(path: Path):
    """One HyperSpy signal from a .hspy/.zspy/.h5/DM file, or a ValueError naming the file and what was expected."""
    hs = _hs()
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file; expected a tilt-series stack ({', '.join(STACK_SUFFIXES)})")
    reader = {".hspy": "HSPY", ".h5": "HSPY", ".hdf5": "HSPY", ".zspy": "ZSPY"}.get(suffix)
    kind = "a HyperSpy file" if reader else "a DigitalMicrograph file"
    try:
        from .vendor import quiet_hyperspy, quiet_load_errors

        with quiet_hyperspy(), quiet_load_errors():
            s = hs.load(path, file_format=reader) if reader else hs.load(path)
    except Exception as exc:  # noqa: BLE001 - readers raise anything on a foreign or damaged file
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ValueError(f"{path}: cannot be read as {kind} ({type(exc).__name__}: {msg}); expected a tilt-series "
                         "stack: a HyperSpy Signal2D (tilt | y, x), DM3/DM4, MRC or TIFF; is it truncated or "
                         "another kind of file?") from None
    if isinstance(s, list):
        raise ValueError(f"{path} holds {len(s)} signals; give one tilt-series signal per file")
    return s


def _is_etspy(s) -> bool:
    nav = s.axes_manager.navigation_axes
    if nav and str(nav[0].name) == "Projections":
        return True
    tomo = s.metadata.get_item("Tomography")
    return tomo is not None and any(tomo.has_item(k) for k in ETSPY_KEYS)


def _signal_angles(s, path: Path, n: int) -> tuple[np.ndarray | None, str | None]:
    tilts = s.metadata.get_item("Tomography.tilts")
    if tilts is not None:
        return np.asarray(tilts, dtype=float).ravel(), "metadata.Tomography.tilts"
    af = angle_file_for(path)
    if af is not None:
        return read_angle_file(af, n), str(af)
    nav = s.axes_manager.navigation_axes
    if not nav:
        return None, None
    ax = nav[0]
    units = str(ax.units).strip().lower()
    if units.startswith("rad"):
        raise ValueError(f"{path}: the navigation axis {ax.name!s} is in radians; chemtomo takes degrees: convert "
                         "the axis (scale and offset x 180/pi) or give the angles in degrees with --angles")
    if units.startswith("deg") or units == "°":
        values = np.asarray(ax.axis, dtype=float)
        if str(ax.name) == "Projections" and float(ax.offset) == 0 and float(ax.scale) == 1 and n > 1:
            raise ValueError(f"{path}: the navigation axis 'Projections' counts images (0, 1, 2 ...), it does not "
                             "hold tilt angles, and the file has no metadata.Tomography.tilts; give the angles "
                             "with --angles or an angle file <stem>.rawtlt")
        return values, f"navigation axis {ax.name!s}"
    return None, None


def read_stack(path, angles_deg=None, *, pixel_nm: float | None = None,
               tilt_axis: str | None = None) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """``(stack, angles_deg, pixel_nm, metadata)`` from a tilt-series stack, in chemtomo's layout.

    Parameters
    ----------
    path : path
        HyperSpy ``.hspy``/``.zspy``/``.h5``, DM ``.dm3``/``.dm4``, MRC
        ``.mrc``/``.ali``/``.st``, or TIFF ``.tif``/``.tiff``.
    angles_deg : array_like, optional
        Tilt angles (degrees), overriding the file's (module docstring for
        where they come from otherwise).
    pixel_nm : float, optional
        Pixel size (nm), overriding the file's; needed when the file states
        none in a length unit.
    tilt_axis : {"rows", "columns", "auto"}, optional
        The image direction the tilt axis runs along: ``"rows"`` (along y, each
        row one slice: chemtomo, IMOD), ``"columns"`` (along x: etspy;
        transposed on reading); default the file's convention. Checked against
        the data (:func:`chemtomo.io.orientation.check_layout`).

    Returns
    -------
    stack : ndarray float32 (n_tilts, n_slices, n_pixels)
    angles_deg : ndarray
    pixel_nm : float
    metadata : dict
        ``Acquisition_instrument.chemtomo`` facts, ``beam_kev`` (from the TEM
        or SEM key when absent there), ``tilt_axis`` (the layout read),
        ``angle_source``, ``role`` of the image, ``notes``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        An unreadable, empty or foreign file; not a stack of images; no, too
        few, radian or out-of-range angles; no pixel size; a layout the data
        contradict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in STACK_SUFFIXES:
        raise ValueError(f"{path}: unsupported stack type {path.suffix!r}; stacks are {', '.join(STACK_SUFFIXES)}")
    chosen = normalise_tilt_axis(tilt_axis)
    md, notes, role = {}, [], None
    if suffix in MRC_SUFFIXES + TIFF_SUFFIXES:
        raw = read_mrc(path) if suffix in MRC_SUFFIXES else read_tiff(path)
        data, file_angles, angle_source = raw.data, raw.angles_deg, raw.angle_source
        file_px, px_problem, convention = raw.pixel_nm, raw.pixel_problem, raw.layout
        notes += raw.notes
        conv_name = "the IMOD convention" if convention else "no stated convention: assumed"
    else:
        s = _load_signal(path)
        data = np.asarray(s.data)
        if data.ndim != 3 or s.axes_manager.signal_dimension != 2:
            raise ValueError(f"{path}: a tilt series must be a stack of 2-D images (tilt | y, x), got "
                             f"{type(s).__name__} {s.axes_manager._get_dimension_str()} (data shape {data.shape})")
        file_angles, angle_source = (None, None) if angles_deg is not None else _signal_angles(s, path, data.shape[0])
        try:
            file_px, px_problem = axis_pixel_nm(s.axes_manager.signal_axes, str(path)), None
        except ValueError as exc:
            file_px, px_problem = None, str(exc)
        along = s.metadata.get_item("Tomography.tilt_axis_along")
        if along is not None:
            convention, conv_name = normalise_tilt_axis(str(along)), "the file's Tomography.tilt_axis_along"
        elif _is_etspy(s):
            convention, conv_name = "columns", "etspy's convention"
        else:
            convention, conv_name = None, "no stated convention: assumed"
        chem = s.metadata.get_item("Acquisition_instrument.chemtomo")
        md = chem.as_dictionary() if chem is not None else {}
        beam = beam_energy_kev(s.metadata)
        if "beam_kev" not in md and beam is not None:
            md["beam_kev"] = beam
        role = image_role(s)
    if angles_deg is not None:
        angles, angle_source = np.asarray(angles_deg, dtype=float).ravel(), "given"
    elif file_angles is not None:
        angles = file_angles
    else:
        raise ValueError(f"{path}: no tilt angles found (no metadata.Tomography.tilts, no angle file "
                         f"{path.stem}.rawtlt/.tlt, and no navigation axis in degrees); pass them with --angles "
                         "or angles_deg=")
    if angles.size != data.shape[0]:
        raise ValueError(f"{path}: {data.shape[0]} images but {angles.size} tilt angles ({angle_source})")
    check_angles_deg(angles, f"{path} ({angle_source})")
    if pixel_nm is not None:
        if not np.isfinite(pixel_nm) or pixel_nm <= 0:
            raise ValueError(f"pixel_nm (--pixel-nm) must be a positive number of nm, got {pixel_nm!r}")
        px = float(pixel_nm)
    elif file_px is None:
        raise ValueError(px_problem or f"{path}: no pixel size; give it with --pixel-nm")
    else:
        px = file_px
    layout = chosen or convention or "rows"
    by = f"tilt_axis={chosen!r}" if chosen else conv_name + ("" if convention else " rows")
    check_layout(data, layout, str(path), by)
    md.update({"tilt_axis": layout, "angle_source": angle_source, "notes": notes})
    if role is not None:
        md["role"] = list(role)
    return to_chemtomo_layout(data, layout).astype(np.float32), angles, px, md


def read_tilt_series(eds: dict[str, str | Path], haadf: str | Path | None = None,
                     angles_deg=None, pixel_nm: float | None = None, *, tilt_axis: str | None = None,
                     haadf_signal: str | None = None, haadf_angles_deg=None) -> TiltSeries:
    """A :class:`TiltSeries` from per-channel stacks (``.hspy``, ``.zspy``, DM, MRC, TIFF).

    Parameters
    ----------
    eds : dict line -> path
        May be empty when ``haadf`` is given (a HAADF-only series).
    haadf : path, optional
    angles_deg : array_like, optional
        Overrides the angles stored in the files (the EDS files' when the HAADF has
        angles of its own).
    pixel_nm : float, optional
        Overrides the pixel size stored in the files.
    tilt_axis : {"rows", "columns", "auto"}, optional
        See :func:`read_stack`.
    haadf_signal : str, optional
        Accept a ``haadf`` stack that its metadata call something else (DF-S,
        BF, BSE ...) when it has this name (``--haadf-signal``); without it such
        a stack is refused as HAADF.
    haadf_angles_deg : array_like or "file", optional
        The HAADF at tilts of its own: its angles (degrees), or ``"file"`` for the
        angles its stack states (metadata, angle file, navigation axis: as
        :func:`read_stack`). None (default): every file is at one tilt set, and
        files that disagree are refused.

    Returns
    -------
    TiltSeries
        ``metadata["beam_kev"]`` from the files when they state it.

    Raises
    ------
    ValueError
        No file; files that disagree on angles or pixel size; a non-HAADF
        image given as HAADF; see :func:`read_stack`.
    """
    if not eds and haadf is None:
        raise ValueError("give at least one EDS line file (LINE=PATH) or a HAADF stack")
    own = haadf_angles_deg is not None
    if own and haadf is None:
        raise ValueError("haadf_angles_deg (--haadf-angles) is given but there is no HAADF stack")
    if isinstance(haadf_angles_deg, str) and haadf_angles_deg != "file":
        raise ValueError(f"haadf_angles_deg is an array of angles or 'file', got {haadf_angles_deg!r}")
    stacks, angles, px, meta, px_from, h_angles = {}, None, None, {}, None, None
    paths = dict(eds)
    if haadf is not None:
        paths = {"HAADF": haadf, **paths}
    for name, p in paths.items():
        if own and name == "HAADF":
            given = None if isinstance(haadf_angles_deg, str) else haadf_angles_deg
            data, h_angles, pnm, md = read_stack(p, given, pixel_nm=pixel_nm, tilt_axis=tilt_axis)
            a = angles
        else:
            data, a, pnm, md = read_stack(p, angles_deg, pixel_nm=pixel_nm, tilt_axis=tilt_axis)
        if angles is not None and (a.size != angles.size or not np.allclose(a, angles)):
            hint = ("" if own or haadf is None else "; a HAADF at tilts of its own takes haadf_angles_deg "
                    "(--haadf-angles FILE, or 'file' for the HAADF stack's own)")
            raise ValueError(f"{p}: tilt angles differ from the other files' ({a} vs {angles}){hint}")
        if px is not None and not np.isclose(pnm, px, rtol=1e-3):
            raise ValueError(f"pixel sizes differ: {p} {pnm:.6g} nm, {px_from} {px:.6g} nm; every channel must be on "
                             "one grid (bin or resample them alike)")
        if name == "HAADF" and md.get("role") and md["role"][0] not in ("HAADF", "unknown", "EDS map"):
            r, nm = md["role"]
            if haadf_signal is None or str(haadf_signal).lower() not in (str(nm).lower(), r.lower()):
                raise ValueError(f"{p} is a {r} image ({nm}), not HAADF; use it as HAADF only by choice: "
                                 f"haadf_signal={nm!r} (--haadf-signal {nm})")
        angles, px, px_from = a, pnm, px_from or p
        for k, v in md.items():
            if k not in ("notes", "role", "angle_source"):
                meta.setdefault(k, v)
        stacks[name] = data
    h = stacks.pop("HAADF", None)
    if own and not stacks:
        raise ValueError("haadf_angles_deg (--haadf-angles) needs EDS stacks: a HAADF-only series has one tilt set")
    return TiltSeries(angles, px, stacks, h, meta, haadf_angles_deg=h_angles)
