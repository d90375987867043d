"""Real data end to end: raw spectrum-image tilt series -> quantified 3-D maps, figures and stacks.

The path of Yuan et al. 2020, section 3.2, for files as microscopes write them:

1. :func:`load_line_maps` - open the tilt files (:mod:`chemtomo.io.microscope`),
   turn each spectrum image into background-subtracted line maps (exSpy) and
   keep each tilt's HAADF image;
2. :func:`preprocess_tilt_series` - register HAADF to EDS per tilt, align the
   tilt series (one alignment for every channel), bin, normalise shadowing,
   clip negative counts -> a :class:`~chemtomo.tiltseries.TiltSeries`;
3. :func:`reconstruct_experimental` - every slice along the tilt axis, by
   EDS-only SIRT and by HEBT, with :func:`chemtomo.pipeline.reconstruct_series`
   (the engine of the phantom study: r_A fitted with R^2, ESF mask, weight
   and atomic fractions, slice chunks);
4. :func:`write_outputs` - one HDF5 result (the layout of
   :mod:`chemtomo.io.result` plus the groups below), TIFF/MRC stacks per
   element, and figures; staged in a temporary folder and moved into place
   only when everything is written.

:func:`run_experimental` chains them. Every step takes and returns NumPy
arrays or HyperSpy signals, so a HyperSpy/exSpy user can enter at any step.

Groups added to the result file (besides ``maps``, ``fractions``, ``mask``,
``response_ratios`` of the primary method)::

    /methods/<method>/maps/<line>, fractions/{weight,atomic}/<element>, mask
                      attrs: factor, threshold (JSON), r2, response_ratios (JSON)
    /alignment/shifts_px             (n_tilts, 2) (dy, dx) raw pixels, after rotation
    /alignment/total_shifts_px       shifts with the tilt-axis offset added
    /alignment/haadf_registration_px (n_tilts, 2) HAADF-to-EDS shifts, raw pixels
    /alignment/angles_deg
              attrs: rotation_deg, axis_offset_px, reference_index, method,
                     convention, diagnostics (JSON)
    /alignment/tomviz/...            comparison with a tomviz alignment, if asked
    /preprocess/shadowing_factors/<line>  (n_tilts,) scale applied to each tilt
              attrs: bin_factor, pixel_nm_raw, windows_kev (JSON), clipped (JSON)
    /tiltseries/haadf, /tiltseries/eds/<line>   the preprocessed stacks
              (n_tilts, slices, pixels) that were reconstructed, without the
              padding; attrs angles_deg, pixel_nm, pad_px
    root attrs: primary_method, methods (JSON), timings_s (JSON; the steps
              before writing)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..io.microscope import AngleSource, RawTiltSeries, open_tilt_series
from ..preprocess._signals import is_signal, unwrap
from ..preprocess.align import Alignment, align_tilt_series, apply_alignment, compare_shifts, tomviz_shifts
from ..preprocess.linemaps import clip_negative, line_energy_kev, line_intensities, rebin, split_line
from ..preprocess.register import normalise_shadowing, register_haadf_to_eds
from ..reconstruct import canonical_name, estimate_response_ratios, get_method
from ..tiltseries import TiltSeries
from .volume import VolumeResult, prepare_series, reconstruct_series

DEFAULT_METHODS = ("eds_sirt", "hebt_sirt")
ALIGN_METHODS = ("xcorr", "xcorr-stretch", "com", "none")
REGISTER_METHODS = ("xcorr", "com", "none")


def _bar(iterable, desc: str, progress: bool, total: int | None = None, unit: str = "it"):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr)


# --------------------------------------------------------------------------- 1. line maps

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
    """

    eds: dict
    haadf: np.ndarray | None
    angles_deg: np.ndarray
    pixel_nm: float
    windows_kev: dict = field(default_factory=dict)
    raw: RawTiltSeries | None = None
    beam_kev: float | None = None

    def to_signals(self) -> dict:
        """The stacks as HyperSpy Signal2D (tilt | y, x), keyed ``HAADF`` and line names."""
        from ..io.hspy import to_signal

        out = {ln: to_signal(v, self.angles_deg, self.pixel_nm, ln) for ln, v in self.eds.items()}
        if self.haadf is not None:
            out["HAADF"] = to_signal(self.haadf, self.angles_deg, self.pixel_nm, "HAADF")
        return out


def check_lines(lines: Sequence[str], energy_axis: tuple[float, float, int] | None = None) -> list[str]:
    """Validate line names (and energies against an energy axis) before any heavy work."""
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


def load_line_maps(inputs, lines: Sequence[str], *, angles_deg=None, angle_source: AngleSource = "auto",
                   haadf_title: str | None = None, line_method: str = "windows", integration_width: float = 2.0,
                   line_width=(2.0, 2.0), window_width: float = 1.0, elements: Sequence[str] | None = None,
                   pixel_nm: float | None = None, progress: bool = True) -> LineMaps:
    """Raw tilt files -> line maps and HAADF images, one tilt in memory at a time.

    Parameters
    ----------
    inputs : folder, file or list of files, or a :class:`RawTiltSeries`
    lines : list of str
        X-ray lines (``Fe_Ka``, ``Pt_La``).
    angles_deg, angle_source, haadf_title : see :func:`chemtomo.io.microscope.open_tilt_series`.
    line_method, integration_width, line_width, window_width :
        ``method`` and the windows of :func:`chemtomo.preprocess.line_intensities`.
    elements : list of str, optional
        Elements of the specimen whose lines the background windows avoid and
        the fit models (default: the files' ``Sample.elements`` and the lines').
    pixel_nm : float, optional
        Pixel size (nm), if the files do not state it (or to override them).
    progress : bool

    Raises
    ------
    ValueError
        Bad files or angles (see ``open_tilt_series``), an unknown line, a
        line outside the energy range, or a line with no net counts in the
        whole series (not in this specimen).
    """
    raw = inputs if isinstance(inputs, RawTiltSeries) else open_tilt_series(
        inputs, angles_deg, angle_source, haadf_title, progress=progress)
    lines = check_lines(lines, raw.energy_axis)
    px = pixel_nm if pixel_nm is not None else raw.pixel_nm
    if px is None:
        raise ValueError("the files do not state the pixel size: give pixel_nm (CLI --pixel-nm)")
    n = len(raw)
    ny, nx = raw.image_shape
    eds = {ln: np.zeros((n, ny, nx), np.float32) for ln in lines}
    haadf = np.zeros((n, ny, nx), np.float32) if raw.has_haadf else None
    windows = {}
    for i in _bar(range(n), "line maps", progress, total=n, unit="tilt"):
        tilt = raw.read(i)
        maps = line_intensities(tilt.spectrum_image, lines, method=line_method, integration_width=integration_width,
                                line_width=line_width, window_width=window_width, avoid=elements)
        for ln in lines:
            eds[ln][i] = maps[ln].data if is_signal(maps[ln]) else maps[ln]
        if haadf is not None:
            if tilt.haadf is None:
                raise ValueError(f"{tilt.path}: no HAADF image found on reading")
            haadf[i] = np.asarray(tilt.haadf.data, dtype=np.float32)
        if i == 0 and line_method == "windows":
            from ..preprocess.linemaps import background_windows

            w = background_windows(tilt.spectrum_image, lines, line_width=line_width, window_width=window_width,
                                   avoid=elements)
            windows = {ln: [float(v) for v in row] for ln, row in zip(lines, w)}
        del tilt
    empty = [ln for ln in lines if float(eds[ln].sum()) <= 0]
    if empty:
        raise ValueError(f"line(s) {empty} have no net counts above background in the whole series: not in this "
                         "specimen, or the wrong line; remove them or choose another line of the element")
    return LineMaps(eds, haadf, raw.angles_deg.copy(), float(px), windows, raw, raw.beam_kev)


# --------------------------------------------------------------------------- 2. preprocessing

@dataclass
class Preprocessed:
    """A tilt series ready to reconstruct, with everything done to it.

    Attributes
    ----------
    series : TiltSeries
        Aligned, binned, shadowing-normalised, clipped (pixel size binned).
    alignment : Alignment
        In raw pixels.
    registration_px : ndarray (n_tilts, 2) or None
        HAADF-to-EDS shifts (raw pixels).
    shadowing_factors : dict line -> ndarray (n_tilts,)
    clipped : dict line -> dict
    unfiltered : TiltSeries or None
        The same series without the Gaussian filter (for methods that model the
        counts' noise: a method's ``raw_counts``); None when no filter was applied.
    bin_factor : int
    pixel_nm_raw : float
    windows_kev : dict
    notes : list of str
    """

    series: TiltSeries
    alignment: Alignment
    registration_px: np.ndarray | None
    shadowing_factors: dict
    clipped: dict
    bin_factor: int
    pixel_nm_raw: float
    windows_kev: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    timings_s: dict = field(default_factory=dict)
    pad_px: int = 0
    unfiltered: TiltSeries | None = None

    @property
    def field_series(self) -> TiltSeries:
        """The series without the padding (the field of view as measured)."""
        p = self.pad_px
        if not p:
            return self.series
        s = self.series
        cut = slice(p, s.shape[2] - p)
        return TiltSeries(s.angles_deg, s.pixel_nm, {k: v[..., cut] for k, v in s.eds.items()},
                          None if s.haadf is None else s.haadf[..., cut], dict(s.metadata))

    def to_signals(self) -> dict:
        """The preprocessed stacks as HyperSpy Signal2D (tilt | y, x)."""
        from ..io.hspy import to_signal

        s = self.series
        out = {ln: to_signal(v, s.angles_deg, s.pixel_nm, ln) for ln, v in s.eds.items()}
        if s.haadf is not None:
            out["HAADF"] = to_signal(s.haadf, s.angles_deg, s.pixel_nm, "HAADF")
        return out

    def summary(self) -> dict:
        return {
            "bin_factor": self.bin_factor, "pixel_nm_raw": self.pixel_nm_raw, "pixel_nm": self.series.pixel_nm,
            "alignment": self.alignment.as_dict(),
            "registration_px": None if self.registration_px is None else self.registration_px.tolist(),
            "shadowing_factors": {k: v.tolist() for k, v in self.shadowing_factors.items()},
            "clipped": self.clipped, "windows_kev": self.windows_kev, "notes": list(self.notes),
            "pad_px": self.pad_px,
        }


def preprocess_tilt_series(eds: dict, haadf=None, angles_deg=None, pixel_nm: float | None = None, *,
                           register: str = "xcorr", reference_line: str | None = None, align: str = "xcorr",
                           rotation: bool = True, offset: bool = True, alignment: Alignment | None = None,
                           bin_factor: int = 2, shadowing: str | None = "mean", pad: int | str = 0,
                           filter_sigma: float | None = None, metadata: dict | None = None,
                           progress: bool = True) -> Preprocessed:
    """Registration, alignment, binning, shadowing normalisation: line maps -> TiltSeries.

    Parameters
    ----------
    eds : dict line -> ndarray or Signal2D (n_tilts, ny, nx)
        Line maps (counts) on the raw grid; with HyperSpy signals the angles
        and pixel size default to theirs (``metadata.Tomography.tilts``, axes).
    haadf : ndarray or Signal2D (n_tilts, ny, nx), optional
    angles_deg : array_like, optional
    pixel_nm : float, optional
    register : {"xcorr", "com", "none"}
        HAADF-to-EDS registration per tilt (:func:`register_haadf_to_eds`).
    reference_line : str, optional
        The EDS map the HAADF is registered to (default: the sum of all lines).
    align : {"xcorr", "xcorr-stretch", "com", "none"}
        Shift estimation (:func:`chemtomo.preprocess.align_tilt_series`);
        ``xcorr-stretch`` cosine-stretches (slabs, lamellae).
    rotation, offset : bool
        Estimate the tilt-axis rotation and offset.
    alignment : Alignment, optional
        Use this alignment (raw pixels) instead of estimating one.
    bin_factor : int
        Sum-binning of every image after alignment (the paper bins 2x2).
    shadowing : {"mean", "max", "first", "slab"} or None
        Shadowing normalisation target (:func:`normalise_shadowing`; None: none).
    pad : int or "auto"
        Pixels (after binning) added on both sides across the tilt axis by
        repeating the edge columns, for a specimen wider than the field of
        view: rays that leave the field at high tilt then meet material on a
        wider grid instead of piling it at the grid's rim.
        :func:`reconstruct_experimental` crops the volumes back to the field
        (``crop_px``). ``"auto"``: :func:`auto_pad` (none for a particle in
        vacuum; for a specimen reaching the edges, enough for the highest tilt).
    filter_sigma : float, optional
        Gaussian filter (pixels, each image) of the EDS maps before negative
        counts are clipped: clipping single noisy pixels adds a positive bias
        (0.4 sigma per background pixel); clipping the filtered maps adds far
        less. The paper filters with 0.8 px before reconstructing; give the
        reconstruction ``filter_sigma=None`` then (as :func:`run_experimental` does).
    metadata : dict, optional
        Stored in the TiltSeries (``beam_kev``, ...).
    progress : bool

    Returns
    -------
    Preprocessed
    """
    t0 = time.perf_counter()
    if not eds:
        raise ValueError("no EDS line maps given")
    first = next(iter(eds.values()))
    if angles_deg is None and is_signal(first):
        angles_deg = first.metadata.get_item("Tomography.tilts")
    if pixel_nm is None and is_signal(first):
        ax = first.axes_manager.signal_axes[0]
        pixel_nm = float(ax.scale) if str(ax.units) == "nm" else None
    if angles_deg is None:
        raise ValueError("give angles_deg (one tilt angle per image)")
    if pixel_nm is None:
        raise ValueError("give pixel_nm (the pixel size in nm)")
    if register not in REGISTER_METHODS:
        raise ValueError(f"register must be one of {REGISTER_METHODS}, got {register!r}")
    if align not in ALIGN_METHODS:
        raise ValueError(f"align must be one of {ALIGN_METHODS}, got {align!r}")
    maps = {}
    for ln, v in eds.items():
        maps[ln] = np.asarray(unwrap(v, f"EDS line {ln!r}")[0], dtype=np.float32)
    shapes = {ln: m.shape for ln, m in maps.items()}
    h = None if haadf is None else np.asarray(unwrap(haadf, "HAADF")[0], dtype=np.float32)
    if h is not None:
        shapes["HAADF"] = h.shape
    if len(set(shapes.values())) != 1:
        raise ValueError(f"every stack must have the same shape (n_tilts, ny, nx), got {shapes}")
    ang = np.asarray(angles_deg, dtype=float).ravel()
    n, ny, nx = next(iter(shapes.values()))
    if ang.size != n:
        raise ValueError(f"{n} images but {ang.size} tilt angles")
    notes = []
    timings = {}
    # registration of HAADF to EDS
    reg = None
    if h is not None and register != "none":
        if reference_line is not None and reference_line not in maps:
            raise ValueError(f"reference_line {reference_line!r} is not among the lines {list(maps)}")
        ref = maps[reference_line] if reference_line else sum(maps.values())
        h, reg = register_haadf_to_eds(h, ref, register)
    timings["register"] = time.perf_counter() - t0
    # alignment, estimated on the HAADF (or the EDS sum) and applied to every channel
    t1 = time.perf_counter()
    if alignment is None:
        if align == "none":
            alignment = Alignment.identity(ang, (ny, nx), pixel_nm)
        else:
            target = h if h is not None else sum(maps.values())
            alignment = align_tilt_series(
                target, ang, method="com" if align == "com" else "xcorr", stretch=align == "xcorr-stretch",
                rotation=rotation, offset=offset, offset_bin=max(1, int(bin_factor)), pixel_nm=pixel_nm,
                progress=progress)
            alignment.method = align
            note = alignment.diagnostics.get("offset", {}).get("note")
            if note:
                notes.append("tilt-axis offset: " + note)
    elif alignment.image_shape not in ((0, 0), (ny, nx)):
        raise ValueError(f"the given alignment is for {alignment.image_shape} images, these are {(ny, nx)}")
    maps = apply_alignment(maps, alignment)
    if h is not None:
        h = apply_alignment(h, alignment)
    timings["align"] = time.perf_counter() - t1
    # binning, shadowing, clipping
    b = int(bin_factor)
    maps = {ln: rebin(m, b) for ln, m in maps.items()}
    if h is not None:
        h = rebin(h, b)
    factors = {ln: np.ones(n) for ln in maps}
    if shadowing:
        maps, factors = normalise_shadowing(maps, shadowing, ang)
    raw_maps = None
    if filter_sigma:
        from ..preprocess.filters import gaussian_filter_stack

        raw_maps = {ln: clip_negative(m)[0] for ln, m in maps.items()}
        maps = {ln: gaussian_filter_stack(m, float(filter_sigma), "image") for ln, m in maps.items()}
    clipped = {}
    for ln in list(maps):
        maps[ln], clipped[ln] = clip_negative(maps[ln])
    if h is not None and np.any(h < 0):
        h = np.clip(h, 0, None)
    nxb = next(iter(maps.values())).shape[2]
    pad_px = auto_pad(h if h is not None else sum(maps.values()), ang) if pad == "auto" else int(pad)
    if pad_px < 0:
        raise ValueError(f"pad must be >= 0 pixels or 'auto', got {pad!r}")
    if pad_px:
        widths = ((0, 0), (0, 0), (pad_px, pad_px))
        maps = {ln: np.pad(m, widths, mode="edge") for ln, m in maps.items()}
        if raw_maps is not None:
            raw_maps = {ln: np.pad(m, widths, mode="edge") for ln, m in raw_maps.items()}
        if h is not None:
            h = np.pad(h, widths, mode="edge")
        notes.append(f"images padded by {pad_px} px (binned) on both sides across the tilt axis by repeating the "
                     "edge columns; volumes cropped back to the field of view")
    md = dict(metadata or {})
    series = TiltSeries(ang, float(pixel_nm) * b, maps, h, md)
    unfiltered = None if raw_maps is None else TiltSeries(ang, float(pixel_nm) * b, raw_maps, h, dict(md))
    timings["total"] = time.perf_counter() - t0
    return Preprocessed(series, alignment, reg, factors, clipped, b, float(pixel_nm), {}, notes, timings,
                        pad_px, unfiltered)


def auto_pad(stack: np.ndarray, angles_deg) -> int:
    """Padding (pixels each side across the axis) for a specimen that runs out of the field.

    0 for an isolated particle in vacuum (:func:`chemtomo.preprocess.align.runs_out_of_field`);
    else enough for a slab as wide as the field at the highest tilt,
    ``ceil(nx/2 (1/cos(max tilt) - 1)) + 2``.
    """
    from ..preprocess.align import runs_out_of_field

    nx = np.asarray(stack).shape[2]
    if not runs_out_of_field(stack):
        return 0
    tmax = float(np.max(np.abs(np.asarray(angles_deg, dtype=float))))
    return int(np.ceil(nx / 2 * (1 / np.cos(np.deg2rad(min(tmax, 80.0))) - 1))) + 2


# --------------------------------------------------------------------------- 3. reconstruction

def resolve_factors(factors, lines: Sequence[str], beam_kev: float | None, efficiency: float = 0.96):
    """A :class:`chemtomo.physics.Factors` from ``"physics"``, ``"paper"``, a table path, or as given."""
    from ..physics import Factors

    if isinstance(factors, Factors):
        missing = [ln for ln in lines if ln not in factors]
        if missing:
            raise KeyError(f"the factor table has no line(s) {missing}; it holds {list(factors)}")
        return factors.subset(lines)
    if factors in (None, "physics"):
        from ..physics import compute_factors

        if beam_kev is None:
            raise ValueError("the beam energy is not in the files' metadata: give beam_kev (CLI --beam-kev)")
        return compute_factors(list(lines), beam_kev=float(beam_kev), detector=efficiency)
    if factors == "paper":
        from ..physics import paper_table2

        return paper_table2(list(lines), detector_efficiency=efficiency)
    from ..io.factors import read_factor_table

    table = read_factor_table(factors)
    return resolve_factors(table, lines, beam_kev, efficiency)


def reconstruct_experimental(series: TiltSeries, factors, *, methods: Iterable[str] = DEFAULT_METHODS,
                             n_iter: int | dict | None = None, alpha: float | None = None,
                             filter_sigma: float | None = 0.8,
                             chunk_slices: int | None = 32, backend: str | None = None,
                             quantify_lines: Sequence[str] | None = None, mask_method: str = "esf",
                             threshold: float | None = None, engine_options: dict | None = None,
                             crop_px: int = 0, progress: bool = True, unfiltered: TiltSeries | None = None,
                             auto: bool | Sequence[str] = False, method_options: dict | None = None,
                             auto_grid: dict | None = None) -> dict[str, VolumeResult]:
    """Every slice of ``series`` by each method (EDS-only SIRT, HEBT, the regularised solvers), quantified.

    Methods that model the counts' noise (a registered method's ``raw_counts``) get
    ``unfiltered`` (the series before its Gaussian filter) when given, and the
    automatic rules score it, with its variance-to-mean factor estimated (line maps
    are background-subtracted and normalised, not raw counts); the response ratios
    are fitted once, on ``series``, for every bimodal method.
    ``auto`` (True, or the methods to apply it to) chooses parameters from the data
    (``reconstruct_series(auto=True)``); ``method_options`` maps a method to its
    parameters (e.g. ``{"fused_tv": {"mu": 0.2}}``, validated by the registry) and ``auto_grid``
    to the candidates of its rule (e.g. ``{"fused_tv": {"mu": [0.02, 0.04]}}``). ``n_iter`` is one
    count for every method or a dict method -> count (key ``"default"`` for the rest); ``alpha``
    goes to the methods that have one; None: the methods' defaults.

    ``quantify_lines`` (default all) restricts the weight and atomic fractions
    to some lines, as the paper left C and N out of its quantification while
    keeping them in the HEBT reconstruction. ``backend`` (default: the
    engine's) and ``engine_options`` (e.g. ``scheduler``, ``store``) go to
    :func:`chemtomo.pipeline.reconstruct_series` unchanged. ``crop_px`` (the
    padding of :func:`preprocess_tilt_series`) crops the volumes back to the
    field of view, ``(nx - 2 crop_px)`` square in (z, x), before the mask and
    the fractions are computed.
    """
    methods = [canonical_name(m) for m in methods]
    if not methods:
        raise ValueError("give at least one method (eds_sirt, hebt_sirt)")
    out = {}
    auto_for = set(methods) if auto is True else set(auto or ())
    rr = None
    if series.haadf is not None and any(get_method(m).needs_haadf for m in methods):
        prepared = prepare_series(series, filter_sigma, "image")
        rr = estimate_response_ratios(prepared.haadf, {ln: prepared.eds[ln] for ln in series.lines})
    for m in methods:
        kw = dict(engine_options or {})
        if backend is not None:
            kw["backend"] = backend
        if kw.get("store") and len(methods) > 1:  # one resumable store per method
            st = Path(kw["store"])
            kw["store"] = st.with_name(f"{st.stem}-{m}{st.suffix}")
        given = {"n_iter": iterations_for(n_iter, m),
                 "alpha": alpha if "alpha" in get_method(m).Params.names() else None}
        params = {**{k: v for k, v in given.items() if v is not None}, **(method_options or {}).get(m, {})}
        res = reconstruct_series(series, factors, m, params,
                                 filter_sigma=filter_sigma, mask_method=mask_method, threshold=threshold,
                                 chunk_slices=chunk_slices, progress=progress, auto=m in auto_for,
                                 response_ratios=rr if get_method(m).needs_haadf else None, counts=unfiltered,
                                 noise_factor="estimate", auto_grid=(auto_grid or {}).get(m), **kw)
        if crop_px:
            res = crop_result(res, crop_px)
        if crop_px or (quantify_lines is not None and list(quantify_lines) != list(res.lines)):
            res = requantify(res, factors, quantify_lines or res.lines, mask_method, threshold)
        out[m] = res
    return out


def iterations_for(n_iter: int | dict | None, method: str) -> int | None:
    """The iteration count of ``method``: ``n_iter`` itself, or its entry (else ``"default"``, else None:
    the method's default)."""
    if isinstance(n_iter, dict):
        n_iter = n_iter.get(method, n_iter.get("default"))
    return None if n_iter is None else int(n_iter)


def crop_result(res: VolumeResult, crop_px: int) -> VolumeResult:
    """The maps cropped by ``crop_px`` on every side in (z, x) (composition to be recomputed)."""
    from ..geometry import TiltGeometry

    c = int(crop_px)
    n = res.maps.shape[-1]
    if not 0 <= 2 * c < n - 1:
        raise ValueError(f"cannot crop {c} px from each side of a {n}-pixel grid")
    maps = np.ascontiguousarray(res.maps[:, :, c:n - c, c:n - c])
    g = res.geometry
    geom = TiltGeometry(g.angles_deg, g.n_pixels - 2 * c, g.pixel_nm, g.n_grid - 2 * c,
                        grid_pixel_nm=g.grid_pixel_nm)
    params = dict(res.parameters, crop_px=c, padded_geometry=g.key(), geometry=geom.key())
    return replace(res, maps=maps, geometry=geom, parameters=params)


def requantify(res: VolumeResult, factors, lines: Sequence[str], mask_method: str | None = None,
               threshold: float | None = None) -> VolumeResult:
    """The maps quantified (again) over ``lines``: mask and weight/atomic fractions."""
    from ..quantify import quantify

    lines = list(lines)
    bad = [ln for ln in lines if ln not in res.lines]
    if bad:
        raise ValueError(f"quantify_lines {bad} are not among the reconstructed lines {res.lines}")
    idx = [res.lines.index(ln) for ln in lines]
    q = factors.f(lines) if res.factor == "f" else factors.z(lines)
    elements = [factors[ln].element for ln in lines]
    mm = mask_method or res.parameters.get("mask_method", "esf")
    comp = quantify(res.maps[idx], q, factors.atomic_weights(lines), lines, elements, mm, threshold)
    params = dict(res.parameters, quantify_lines=lines, threshold=comp.threshold.as_dict())
    return replace(res, elements=elements, composition=comp, parameters=params)


# --------------------------------------------------------------------------- 4. outputs

@dataclass
class ExperimentalResult:
    """Everything :func:`run_experimental` made."""

    pre: Preprocessed
    results: dict
    primary: str
    factors: object
    timings_s: dict = field(default_factory=dict)
    tomviz: dict | None = None
    paths: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    raw_description: dict | None = None

    @property
    def primary_result(self) -> VolumeResult:
        return self.results[self.primary]


def compare_with_tomviz(alignment: Alignment, path, tomviz_angles_deg) -> dict:
    """Our shifts against a tomviz alignment file, per tilt (pixels), both 0 at the tilt nearest 0 degrees.

    The tomviz file may cover more tilts than the series (``tomviz_angles_deg``
    names them all); only the tilts of the series are compared.
    """
    tv_all = tomviz_shifts(path, tomviz_angles_deg)
    tva = np.asarray(tomviz_angles_deg, dtype=float).ravel()
    idx = []
    for a in alignment.angles_deg:
        hit = np.flatnonzero(np.isclose(tva, a, atol=1e-3))
        if hit.size != 1:
            raise ValueError(f"tilt {a:g} deg is not among the tomviz file's angles {tva.tolist()}")
        idx.append(int(hit[0]))
    tv = tv_all[idx]
    ref = int(np.argmin(np.abs(alignment.angles_deg)))
    c = compare_shifts(alignment.shifts_px, tv, ref)
    ours = alignment.shifts_px - alignment.shifts_px[ref]
    return {"angles_deg": alignment.angles_deg.tolist(), "ours_px": ours.tolist(),
            "tomviz_px": (tv - tv[ref]).tolist(), "difference_px": c["difference_px"].tolist(),
            "distance_px": c["distance_px"].tolist(), "rms_px": c["rms_px"], "max_px": c["max_px"],
            "file": str(path), "convention": "(dy, dx) raw pixels applied to each image, 0 at the reference tilt; "
                                              "tomviz [x, y] read as (dy, dx) = (-y, x)"}


def _json(obj) -> str:
    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        return str(o)

    return json.dumps(obj, default=default)


def _write_extras(path: Path, exp: ExperimentalResult) -> None:
    import h5py

    opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    pre = exp.pre
    with h5py.File(path, "a") as f:
        f.attrs["primary_method"] = exp.primary
        f.attrs["methods"] = _json(list(exp.results))
        f.attrs["timings_s"] = _json(exp.timings_s)
        for m, res in exp.results.items():
            g = f.create_group(f"methods/{m}")
            g.attrs["factor"] = res.factor
            g.attrs["threshold"] = _json(res.composition.threshold.as_dict())
            g.attrs["parameters"] = _json(res.parameters)
            if res.response_ratios is not None:
                g.attrs["r2"] = float(res.response_ratios.r2)
                g.attrs["response_ratios"] = _json(res.response_ratios.as_dict())
            for i, ln in enumerate(res.lines):
                g.create_dataset(f"maps/{ln}", data=res.maps[i].astype(np.float32), **opts)
            for kind, arr in (("weight", res.composition.weight), ("atomic", res.composition.atomic)):
                for i, el in enumerate(res.elements):
                    g.create_dataset(f"fractions/{kind}/{el}", data=arr[i].astype(np.float32), **opts)
            g.create_dataset("mask", data=res.composition.mask.astype(np.uint8), **opts)
        al = pre.alignment
        g = f.create_group("alignment")
        g.create_dataset("shifts_px", data=al.shifts_px)
        g.create_dataset("total_shifts_px", data=al.total_shifts_px)
        g.create_dataset("angles_deg", data=al.angles_deg)
        if pre.registration_px is not None:
            g.create_dataset("haadf_registration_px", data=pre.registration_px)
        d = al.as_dict()
        for k in ("rotation_deg", "axis_offset_px", "reference_index", "method", "convention"):
            g.attrs[k] = d[k]
        g.attrs["pixel_nm"] = pre.pixel_nm_raw
        g.attrs["diagnostics"] = _json(al.diagnostics)
        if exp.tomviz is not None:
            t = g.create_group("tomviz")
            for k in ("ours_px", "tomviz_px", "difference_px", "distance_px"):
                t.create_dataset(k, data=np.asarray(exp.tomviz[k], dtype=float))
            for k in ("rms_px", "max_px", "file", "convention"):
                t.attrs[k] = exp.tomviz[k]
        g = f.create_group("preprocess")
        for ln, fac in pre.shadowing_factors.items():
            g.create_dataset(f"shadowing_factors/{ln}", data=np.asarray(fac, dtype=float))
        g.attrs["bin_factor"] = pre.bin_factor
        g.attrs["pixel_nm_raw"] = pre.pixel_nm_raw
        g.attrs["windows_kev"] = _json(pre.windows_kev)
        g.attrs["clipped"] = _json(pre.clipped)
        g.attrs["notes"] = _json(pre.notes)
        s = pre.field_series
        g = f.create_group("tiltseries")
        g.attrs["pad_px"] = pre.pad_px
        g.attrs["angles_deg"] = s.angles_deg
        g.attrs["pixel_nm"] = s.pixel_nm
        if s.haadf is not None:
            g.create_dataset("haadf", data=s.haadf.astype(np.float32), **opts)
        for ln, v in s.eds.items():
            g.create_dataset(f"eds/{ln}", data=v.astype(np.float32), **opts)


def read_experimental(path) -> dict:
    """The result file with the experimental groups: ``read_result`` plus ``methods``, ``alignment``,
    ``preprocess``, ``tiltseries`` (whatever of them the file holds)."""
    import h5py

    from ..io.result import read_result

    out = read_result(path)
    out["methods"], out["alignment"], out["preprocess"], out["tiltseries"] = {}, {}, {}, {}
    with h5py.File(path, "r") as f:
        out["primary_method"] = f.attrs.get("primary_method")
        ts = f.attrs.get("timings_s")
        out["timings_s"] = json.loads(ts) if ts is not None else {}
        if "methods" in f:
            order = json.loads(f.attrs["methods"]) if "methods" in f.attrs else []
            for m in [m for m in order if m in f["methods"]] + [m for m in f["methods"] if m not in order]:
                g = f["methods"][m]
                d = {"maps": {k: g["maps"][k][()] for k in g["maps"]},
                     "weight": {k: g["fractions/weight"][k][()] for k in g["fractions/weight"]},
                     "atomic": {k: g["fractions/atomic"][k][()] for k in g["fractions/atomic"]},
                     "mask": g["mask"][()].astype(bool), "factor": g.attrs.get("factor"),
                     "r2": g.attrs.get("r2"), "threshold": json.loads(g.attrs.get("threshold", "{}"))}
                if "response_ratios" in g.attrs:
                    d["response_ratios"] = json.loads(g.attrs["response_ratios"])
                out["methods"][m] = d
        if "alignment" in f:
            g = f["alignment"]
            a = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
            a.update({k: (json.loads(v) if k == "diagnostics" else v) for k, v in g.attrs.items()})
            if "tomviz" in g:
                a["tomviz"] = {k: g["tomviz"][k][()] for k in g["tomviz"]}
                a["tomviz"].update(dict(g["tomviz"].attrs))
            out["alignment"] = a
        if "preprocess" in f:
            g = f["preprocess"]
            p = {k: (json.loads(v) if k in ("windows_kev", "clipped", "notes") else v) for k, v in g.attrs.items()}
            if "shadowing_factors" in g:
                p["shadowing_factors"] = {k: g["shadowing_factors"][k][()] for k in g["shadowing_factors"]}
            out["preprocess"] = p
        if "tiltseries" in f:
            g = f["tiltseries"]
            t = {"angles_deg": np.asarray(g.attrs["angles_deg"]), "pixel_nm": float(g.attrs["pixel_nm"]),
                 "eds": {k: g["eds"][k][()] for k in g["eds"]} if "eds" in g else {}}
            t["haadf"] = g["haadf"][()] if "haadf" in g else None
            out["tiltseries"] = t
    return out


def write_outputs(out, exp: ExperimentalResult, *, export: Iterable[str] = ("tiff",),
                  export_kinds: Iterable[str] = ("maps", "weight"), figures: bool = True,
                  provenance_extra: dict | None = None) -> dict:
    """Write ``result.h5``, the stacks (``export/``) and the figures (``figures/``) into folder ``out``.

    Everything is written into a temporary folder beside the outputs and moved
    into place only when all of it succeeded: a failure leaves no half output.
    Existing files of the same names are replaced.
    """
    from ..io.export import export_volumes
    from ..io.provenance import provenance
    from ..io.result import write_result

    out = Path(out)
    if out.suffix.lower() in (".h5", ".hdf5"):
        raise ValueError(f"{out}: the experimental pipeline writes a folder (result.h5, export/, figures/); "
                         "give a folder name")
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        prov = provenance(exp.inputs, pipeline="chemtomo.pipeline.experimental", raw=exp.raw_description,
                          preprocess=exp.pre.summary(), factors=exp.factors.as_dict(),
                          response_ratios={m: (r.response_ratios.as_dict() if r.response_ratios else None)
                                           for m, r in exp.results.items()},
                          tomviz=exp.tomviz, timings_s=exp.timings_s, **(provenance_extra or {}))
        result_path = stage / "result.h5"
        write_result(result_path, exp.primary_result, prov)
        _write_extras(result_path, exp)
        written = {"result": "result.h5", "export": [], "figures": []}
        formats = list(export)
        if formats:
            res = exp.primary_result
            vols = {}
            kinds = list(export_kinds)
            if "maps" in kinds:
                vols.update({f"maps_{ln}": res.maps[i] for i, ln in enumerate(res.lines)})
            if "weight" in kinds:
                vols.update({f"weight_{el}": res.composition.weight[i] for i, el in enumerate(res.elements)})
            if "atomic" in kinds:
                vols.update({f"atomic_{el}": res.composition.atomic[i] for i, el in enumerate(res.elements)})
            if "mask" in kinds:
                vols["mask"] = res.composition.mask.astype(np.float32)
            paths = export_volumes(stage / "export", vols, res.geometry.grid_pixel_nm, formats,
                                   prefix=f"{exp.primary}_")
            written["export"] = [str(p.relative_to(stage)) for p in paths]
        if figures:
            from ..report.volume import draw_result_figures

            figs = draw_result_figures(result_path, stage / "figures")
            written["figures"] = [str(p.relative_to(stage)) for p in figs]
        # everything is written: move it into place
        for p in sorted(stage.rglob("*")):
            if p.is_file():
                dest = out / p.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dest)
        return {"result": out / "result.h5", "export": [out / p for p in written["export"]],
                "figures": [out / p for p in written["figures"]]}
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --------------------------------------------------------------------------- the whole path

def run_experimental(inputs, lines: Sequence[str], out=None, *, angles_deg=None,
                     angle_source: AngleSource = "auto", haadf_title: str | None = None,
                     pixel_nm: float | None = None, beam_kev: float | None = None, factors="physics",
                     efficiency: float = 0.96, methods: Iterable[str] = DEFAULT_METHODS,
                     n_iter: int | dict | None = None, alpha: float | None = None,
                     filter_sigma: float | None = 0.8, bin_factor: int = 2,
                     register: str = "xcorr", reference_line: str | None = None, align: str = "xcorr",
                     rotation: bool = True, offset: bool = True, shadowing: str | None = "mean",
                     pad: int | str = "auto", quantify_lines: Sequence[str] | None = None, mask_method: str = "esf",
                     threshold: float | None = None, chunk_slices: int | None = 32,
                     backend: str | None = None, export: Iterable[str] = ("tiff",),
                     export_kinds: Iterable[str] = ("maps", "weight"), figures: bool = True,
                     compare_tomviz=None, tomviz_angles_deg=None, line_method: str = "windows",
                     integration_width: float = 2.0, elements: Sequence[str] | None = None,
                     engine_options: dict | None = None, progress: bool = True,
                     auto: bool | Sequence[str] = False, method_options: dict | None = None,
                     auto_grid: dict | None = None) -> ExperimentalResult:
    """Raw tilt files -> line maps -> registration -> alignment -> EDS-SIRT and HEBT -> quantified outputs.

    Parameters
    ----------
    inputs : folder, file list, or RawTiltSeries
    lines : list of str
        X-ray lines to map and reconstruct.
    out : path, optional
        Output folder (``result.h5``, ``export/``, ``figures/``); None writes nothing.
    angles_deg, angle_source, haadf_title, pixel_nm : see :func:`load_line_maps`.
    beam_kev : float, optional
        Beam energy (keV) for the physics factors; default from the files.
    factors : "physics", "paper", path to a factor table, or Factors
    efficiency : float
        Flat detector efficiency for the physics factors.
    methods : iterable of str
        Reconstruction methods; the last bimodal one (else the last) is the
        primary result written at the top level of the result file.
    n_iter, alpha, chunk_slices, backend : see :func:`reconstruct_series`.
    filter_sigma : float or None
        Gaussian filter of the EDS maps (pixels, after binning), applied in
        preprocessing before negative counts are clipped
        (:func:`preprocess_tilt_series`), not again in the reconstruction.
    bin_factor, register, reference_line, align, rotation, offset, shadowing, pad :
        see :func:`preprocess_tilt_series`.
    quantify_lines : list of str, optional
        Lines to quantify (default all).
    mask_method, threshold : see :func:`reconstruct_series`.
    export : iterable of {"tiff", "mrc"}
    export_kinds : iterable of {"maps", "weight", "atomic", "mask"}
    figures : bool
    compare_tomviz : path, optional
        A tomviz alignment JSON to compare the shifts with; ``tomviz_angles_deg``
        lists the angles of every entry in it.
    line_method : {"windows", "fit"}
        Line intensities by exSpy's windows or by a local least-squares fit.
    elements : list of str, optional
        Specimen elements for the windows and the fit (see :func:`load_line_maps`).
    integration_width : float
        Line integration window (FWHMs).
    engine_options : dict, optional
        Passed to :func:`reconstruct_series` (``scheduler``, ``memory_budget_gb``, ...).
    progress : bool
    auto : bool or sequence of str
        Choose the parameters of every method (True) or of the methods named from the
        data (see :func:`reconstruct_series`).
    method_options : dict, optional
        Method -> its parameters (e.g. ``{"fused_tv": {"mu": 0.2}}``; validated by the registry).
    auto_grid : dict, optional
        Method -> candidates of its automatic rule (e.g. ``{"fused_tv": {"mu": [0.02, 0.04]}}``).
    """
    timings = {}
    t0 = time.perf_counter()

    methods = [canonical_name(m) for m in methods]
    check_lines(lines)
    if compare_tomviz is not None and tomviz_angles_deg is None:
        raise ValueError("compare_tomviz needs tomviz_angles_deg: the angles of every entry of the tomviz file")
    lm = load_line_maps(inputs, lines, angles_deg=angles_deg, angle_source=angle_source, haadf_title=haadf_title,
                        line_method=line_method, integration_width=integration_width, elements=elements,
                        pixel_nm=pixel_nm, progress=progress)
    timings["load_line_maps"] = time.perf_counter() - t0
    if lm.haadf is None and any(get_method(m).needs_haadf for m in methods):
        bimodal = [m for m in methods if get_method(m).needs_haadf]
        raise ValueError(f"methods {bimodal} need HAADF images and these files "
                         "have none; use --method eds_sirt")
    beam = beam_kev if beam_kev is not None else lm.beam_kev
    fac = resolve_factors(factors, lines, beam, efficiency)  # fail on a missing factor before the heavy work
    pre = preprocess_tilt_series(lm.eds, lm.haadf, lm.angles_deg, lm.pixel_nm, register=register,
                                 reference_line=reference_line, align=align, rotation=rotation, offset=offset,
                                 bin_factor=bin_factor, shadowing=shadowing, pad=pad, filter_sigma=filter_sigma,
                                 metadata={"beam_kev": beam} if beam is not None else {}, progress=progress)
    pre.windows_kev = lm.windows_kev
    if lm.raw is not None:
        pre.notes.extend(lm.raw.notes)
    timings["preprocess"] = pre.timings_s.get("total", 0.0)
    tv = None
    if compare_tomviz is not None:
        tv = compare_with_tomviz(pre.alignment, compare_tomviz, tomviz_angles_deg)
    t1 = time.perf_counter()
    results = reconstruct_experimental(pre.series, fac, methods=methods, n_iter=n_iter, alpha=alpha,
                                       filter_sigma=None, chunk_slices=chunk_slices, backend=backend,
                                       quantify_lines=quantify_lines, mask_method=mask_method,
                                       threshold=threshold, engine_options=engine_options, crop_px=pre.pad_px,
                                       progress=progress, unfiltered=pre.unfiltered, auto=auto,
                                       method_options=method_options, auto_grid=auto_grid)
    timings["reconstruct"] = time.perf_counter() - t1
    bimodal = [m for m in methods if get_method(m).needs_haadf]
    primary = bimodal[-1] if bimodal else methods[-1]
    inputs_list = lm.raw.inputs() if lm.raw is not None else []
    exp = ExperimentalResult(pre, results, primary, fac, timings, tv, {}, inputs_list,
                             lm.raw.describe() if lm.raw is not None else None)
    if out is not None:
        t2 = time.perf_counter()
        exp.paths = write_outputs(out, exp, export=export, export_kinds=export_kinds, figures=figures)
        timings["write_outputs"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return exp
