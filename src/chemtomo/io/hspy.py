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
  :func:`chemtomo.geometry.angles_to_deg` (``angles_unit``: radians converted when asserted);
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

from ..geometry import angles_to_deg
from ..tiltseries import TiltSeries
from .atomic import atomic_path
from .detector_meta import detector_facts
from .metadata import axis_pixel_nm, beam_energy_kev, image_role
from .orientation import (
    SNAP_DEG,
    check_layout,
    estimate_axis_rotation,
    normalise_tilt_axis,
    parse_tilt_axis,
    rotate_stack,
    to_chemtomo_layout,
)
from .stacks import (
    MRC_SUFFIXES,
    TIFF_SUFFIXES,
    angle_file_for,
    read_angle_file,
    read_mrc,
    read_tiff,
)
from .vendor import check_zspy_readable

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


def _signal_angles(s, path: Path, n: int, angles_unit: str | None = None) -> tuple[np.ndarray | None, str | None]:
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
        if angles_unit == "rad":  # converted by read_stack, as every angle asserted to be radians
            return np.asarray(ax.axis, dtype=float), f"navigation axis {ax.name!s} (radians)"
        raise ValueError(f"{path}: the navigation axis {ax.name!s} is in radians; chemtomo takes degrees: give "
                         "--angles-unit rad (angles_unit='rad') to convert them, convert the axis (scale and "
                         "offset x 180/pi), or give the angles in degrees with --angles")
    if units.startswith("deg") or units == "°":
        values = np.asarray(ax.axis, dtype=float)
        if str(ax.name) == "Projections" and float(ax.offset) == 0 and float(ax.scale) == 1 and n > 1:
            raise ValueError(f"{path}: the navigation axis 'Projections' counts images (0, 1, 2 ...), it does not "
                             "hold tilt angles, and the file has no metadata.Tomography.tilts; give the angles "
                             "with --angles or an angle file <stem>.rawtlt")
        return values, f"navigation axis {ax.name!s}"
    return None, None


def read_stack(path, angles_deg=None, *, pixel_nm: float | None = None,
               tilt_axis: str | None = None, angles_unit: str | None = None,
               check: bool = True) -> tuple[np.ndarray, np.ndarray, float, dict]:
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
    angles_unit : {"deg", "rad"}, optional
        The unit of the angles, given or the file's (CLI ``--angles-unit``):
        ``"rad"`` converts them to degrees (a navigation axis in radians is
        read only so); ``"deg"`` accepts a set that looks like radians;
        None (default) refuses such a set (:func:`chemtomo.geometry.angles_to_deg`).
    check : bool
        Check the layout against the data (default True; ``read_tilt_series``
        with ``tilt_axis="auto"`` orients all stacks itself).

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
    check_zspy_readable(path)
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
        file_angles, angle_source = ((None, None) if angles_deg is not None
                                     else _signal_angles(s, path, data.shape[0], angles_unit))
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
        det = detector_facts(s)
        if det.any:
            md["eds_detector"] = det.as_dict()
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
    if angles_unit is None and angles_deg is None and md.get("angles_unit") == "deg":
        angles_unit = "deg"  # written by chemtomo for a series whose degrees were asserted
    angles = angles_to_deg(angles, angles_unit, f"{path} ({angle_source})")
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
    if check:
        check_layout(data, layout, str(path), by)
    md.update({"tilt_axis": layout, "angle_source": angle_source, "notes": notes})
    if role is not None:
        md["role"] = list(role)
    return to_chemtomo_layout(data, layout).astype(np.float32), angles, px, md


def read_tilt_series(eds: dict[str, str | Path], haadf: str | Path | None = None,
                     angles_deg=None, pixel_nm: float | None = None, *, tilt_axis: str | None = None,
                     haadf_signal: str | None = None, haadf_angles_deg=None,
                     angles_unit: str | None = None) -> TiltSeries:
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
    tilt_axis : {"rows", "columns", "auto"}, float or None, optional
        None (default): each file's convention, checked against the data
        (:func:`read_stack`); ``"rows"``/``"columns"``: that layout, checked;
        ``"auto"``: the in-plane rotation of the tilt axis estimated from the
        data and corrected, any angle (0 and 90 degrees exactly, by keeping
        or transposing), or the files' convention when the estimate is
        uncertain; a number: that rotation (degrees) applied to every stack.
        ``metadata["tilt_axis_rotation_deg"]`` and ``notes`` say what was done.
    haadf_signal : str, optional
        Accept a ``haadf`` stack that its metadata call something else (DF-S,
        BF, BSE ...) when it has this name (``--haadf-signal``); without it such
        a stack is refused as HAADF.
    haadf_angles_deg : array_like or "file", optional
        The HAADF at tilts of its own: its angles (in ``angles_unit``), or ``"file"`` for the
        angles its stack states (metadata, angle file, navigation axis: as
        :func:`read_stack`). None (default): every file is at one tilt set, and
        files that disagree are refused. A HAADF at tilts of its own may also have
        its own pixel size, finer than the EDS stacks' by an integer factor: it is
        binned to their grid (``TiltSeries(haadf_pixel_nm=...)``); any other is refused.
    angles_unit : {"deg", "rad"}, optional
        The unit of the angles, given or the files' (:func:`read_stack`); with a
        unit the series' ``metadata["angles_unit"]`` is ``"deg"`` (the angles
        are known to be degrees).

    Returns
    -------
    TiltSeries
        ``metadata["beam_kev"]`` from the files when they state it, and
        ``metadata["eds_detector"]`` (:meth:`chemtomo.io.detector_meta.DetectorFacts.as_dict`)
        when they state any EDS detector fact.

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
    mode = parse_tilt_axis(tilt_axis)
    turn = mode == "auto" or isinstance(mode, float)  # read in the files' convention, then orient all alike
    stacks, angles, px, meta, px_from, h_angles, h_px = {}, None, None, {}, None, None, None
    paths = dict(eds)
    if haadf is not None:
        paths = {"HAADF": haadf, **paths}
    for name, p in paths.items():
        kw = dict(pixel_nm=pixel_nm, tilt_axis=None if turn else tilt_axis, check=not turn, angles_unit=angles_unit)
        if own and name == "HAADF":
            given = None if isinstance(haadf_angles_deg, str) else haadf_angles_deg
            data, h_angles, pnm, md = read_stack(p, given, **kw)
            a = angles
        else:
            data, a, pnm, md = read_stack(p, angles_deg, **kw)
        if angles is not None and (a.size != angles.size or not np.allclose(a, angles)):
            hint = ("" if own or haadf is None else "; a HAADF at tilts of its own takes haadf_angles_deg "
                    "(--haadf-angles FILE, or 'file' for the HAADF stack's own)")
            raise ValueError(f"{p}: tilt angles differ from the other files' ({a} vs {angles}){hint}")
        if own and name == "HAADF":  # its own grid: binned to the EDS's by TiltSeries, or refused there
            h_px = pnm
        elif px is not None and not np.isclose(pnm, px, rtol=1e-3):
            raise ValueError(f"pixel sizes differ: {p} {pnm:.6g} nm, {px_from} {px:.6g} nm; every channel must be on "
                             "one grid (bin or resample them alike)")
        if name == "HAADF" and md.get("role") and md["role"][0] not in ("HAADF", "unknown", "EDS map"):
            r, nm = md["role"]
            if haadf_signal is None or str(haadf_signal).lower() not in (str(nm).lower(), r.lower()):
                raise ValueError(f"{p} is a {r} image ({nm}), not HAADF; use it as HAADF only by choice: "
                                 f"haadf_signal={nm!r} (--haadf-signal {nm})")
        if not (own and name == "HAADF"):
            angles, px, px_from = a, pnm, px_from or p
        for k, v in md.items():
            if k not in ("notes", "role", "angle_source"):
                meta.setdefault(k, v)
        stacks[name] = data
    if turn:
        stacks = _orient(stacks, mode, paths, meta)
    h = stacks.pop("HAADF", None)
    if own and not stacks:
        raise ValueError("haadf_angles_deg (--haadf-angles) needs EDS stacks: a HAADF-only series has one tilt set")
    if h_px is not None and np.isclose(h_px, px, rtol=1e-3):
        h_px = None
    if angles_unit is not None:
        meta["angles_unit"] = "deg"
    return TiltSeries(angles, px, stacks, h, meta, haadf_angles_deg=h_angles, haadf_pixel_nm=h_px)


def _orient(stacks: dict, mode, paths: dict, meta: dict) -> dict:
    """Turn every stack alike so the tilt axis runs along y: by the given rotation or the estimated one.

    ``mode="auto"``: the rotation is estimated on the HAADF stack (else the
    EDS stacks' sum, each normalised) by projection invariance
    (:func:`chemtomo.io.orientation.estimate_axis_rotation`); an uncertain
    estimate leaves the files' convention, checked as without ``auto``
    (a 90-degree contradiction is refused). Within ``SNAP_DEG`` of 0 nothing
    is done, of 90 the stacks are transposed (exact), else every image is
    rotated (linear interpolation). ``meta`` records what was done.
    """
    if mode == "auto":
        ref = stacks.get("HAADF")
        if ref is None:
            ref = sum(np.asarray(v, dtype=np.float64) / max(float(np.mean(v)), 1e-300) for v in stacks.values())
        rot, info = estimate_axis_rotation(ref)
        meta["tilt_axis_estimate"] = {k: v for k, v in info.items() if k != "reason"}
        if not info["confident"]:
            for name, data in stacks.items():
                check_layout(data, "rows", str(paths[name]),
                             f"tilt_axis='auto' kept the file's convention: the rotation could not be estimated "
                             f"({info['reason']})")
            meta.setdefault("notes", []).append(f"tilt axis: rotation not estimated ({info['reason']}); the files' "
                                                "convention kept")
            meta["tilt_axis_rotation_deg"] = 0.0
            return stacks
        by = f"estimated from the data ({'HAADF' if 'HAADF' in stacks else 'EDS sum'})"
    else:
        rot, by = float(mode), "given"
    rot = float((rot + 90.0) % 180.0 - 90.0)
    if abs(rot) <= SNAP_DEG:
        applied, out = 0.0, stacks
    elif 90.0 - abs(rot) <= SNAP_DEG:
        applied = 90.0
        out = {k: np.ascontiguousarray(np.swapaxes(v, 1, 2)) for k, v in stacks.items()}
    else:
        applied = rot
        out = {k: rotate_stack(v, rot) for k, v in stacks.items()}
    meta["tilt_axis_rotation_deg"] = applied
    meta.setdefault("notes", []).append(
        f"tilt axis: rotation {rot:.2f} deg {by}; "
        + ("none applied (within 1 deg of the image's y axis)" if applied == 0.0 else
           "stacks transposed (the axis ran along x)" if applied == 90.0 else
           f"every image rotated by {rot:.2f} deg (linear interpolation)"))
    return out
