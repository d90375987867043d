"""Line maps -> a tilt series ready to reconstruct (the second stage of the experimental path).

:func:`preprocess_tilt_series` registers the HAADF to the EDS maps per tilt,
aligns the tilt series (one alignment for every channel; a HAADF at tilts of
its own is aligned on them and the EDS tilts placed on it, :mod:`.place`), bins, normalises
shadowing, filters, clips negative counts and pads across the tilt axis; its
choices are one frozen :class:`PreprocessOptions`, validated once. The result
is a :class:`Preprocessed`: the :class:`~chemtomo.tiltseries.TiltSeries` and
everything done to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._options import with_overrides
from ..geometry import SHARED_TILT_TOL_DEG, check_angles_deg
from ..tiltseries import TiltSeries
from ._signals import is_signal, unwrap
from .align import align_tilt_series
from .filters import FILTER_SIGMA_PX
from .linemaps import clip_negative, rebin
from .register import normalise_shadowing, register_haadf_to_eds
from .transform import Alignment, apply_alignment

ALIGN_METHODS = ("xcorr", "xcorr-stretch", "com", "none")
REGISTER_METHODS = ("xcorr", "com", "none")
SHADOWING_TARGETS = ("mean", "max", "first", "slab")


@dataclass(frozen=True)
class PreprocessOptions:
    """The choices of :func:`preprocess_tilt_series` (the defaults are the CLI's and the paper's).

    Attributes
    ----------
    register : {"xcorr", "com", "none"}
        HAADF-to-EDS registration per tilt (:func:`~chemtomo.preprocess.register_haadf_to_eds`;
        default ``"xcorr"``; ``"com"`` as the paper).
    reference_line : str, optional
        The EDS map the HAADF is registered to (default: the sum of all lines).
    align : {"xcorr", "xcorr-stretch", "com", "none"}
        Shift estimation (:func:`~chemtomo.preprocess.align_tilt_series`, default
        ``"xcorr"``); ``"xcorr-stretch"`` cosine-stretches (slabs, lamellae).
    rotation, offset : bool
        Estimate the tilt-axis rotation and offset (default True).
    bin_factor : int
        Sum-binning of every image after alignment (default 2: the paper bins 2x2).
    shadowing : {"mean", "max", "first", "slab"} or None
        Shadowing normalisation target (:func:`~chemtomo.preprocess.normalise_shadowing`;
        default ``"mean"`` as the paper; None: none).
    pad : int or "auto"
        Pixels (after binning) added on both sides across the tilt axis by
        repeating the edge columns, for a specimen wider than the field of
        view: rays that leave the field at high tilt then meet material on a
        wider grid instead of piling it at the grid's rim. The reconstruction
        crops the volumes back to the field (``crop_px``). ``"auto"`` (default):
        :func:`auto_pad` (none for a particle in vacuum; for a specimen reaching
        the edges, enough for the highest tilt).
    filter_sigma : float or None
        Gaussian filter (pixels after binning, each image) of the EDS maps
        before negative counts are clipped (default
        :data:`~chemtomo.preprocess.filters.FILTER_SIGMA_PX`, the paper's 0.8):
        clipping single noisy pixels adds a positive bias (0.4 sigma per
        background pixel); clipping the filtered maps adds far less. The reconstruction
        then gets ``filter_sigma=None`` (as :func:`~chemtomo.pipeline.experimental.run_experimental`
        does). None or 0: no filter.

    Raises
    ------
    ValueError
        On construction: a choice outside those listed, ``bin_factor < 1``,
        a negative ``pad`` or ``filter_sigma``.
    """

    register: Literal["xcorr", "com", "none"] = "xcorr"
    reference_line: str | None = None
    align: Literal["xcorr", "xcorr-stretch", "com", "none"] = "xcorr"
    rotation: bool = True
    offset: bool = True
    bin_factor: int = 2
    shadowing: Literal["mean", "max", "first", "slab"] | None = "mean"
    pad: int | Literal["auto"] = "auto"
    filter_sigma: float | None = FILTER_SIGMA_PX

    def __post_init__(self):
        if self.register not in REGISTER_METHODS:
            raise ValueError(f"register must be one of {REGISTER_METHODS}, got {self.register!r}")
        if self.align not in ALIGN_METHODS:
            raise ValueError(f"align must be one of {ALIGN_METHODS}, got {self.align!r}")
        if self.shadowing is not None and self.shadowing not in SHADOWING_TARGETS:
            raise ValueError(f"shadowing must be one of {SHADOWING_TARGETS} or None, got {self.shadowing!r}")
        if int(self.bin_factor) != self.bin_factor or int(self.bin_factor) < 1:
            raise ValueError(f"bin_factor must be an integer >= 1, got {self.bin_factor!r}")
        if self.pad != "auto" and (isinstance(self.pad, str) or int(self.pad) < 0):
            raise ValueError(f"pad must be >= 0 pixels or 'auto', got {self.pad!r}")
        if self.filter_sigma is not None and not float(self.filter_sigma) >= 0:
            raise ValueError(f"filter_sigma must be >= 0 pixels or None, got {self.filter_sigma!r}")


@dataclass
class Preprocessed:
    """A tilt series ready to reconstruct, with everything done to it.

    Attributes
    ----------
    series : TiltSeries
        Aligned, binned, shadowing-normalised, clipped (pixel size binned).
    alignment : Alignment
        In raw pixels (with a HAADF at tilts of its own: the HAADF's).
    registration_px : ndarray (n_tilts, 2) or None
        HAADF-to-EDS shifts (raw pixels).
    shadowing_factors : dict line -> ndarray (n_tilts,)
    clipped : dict line -> dict
    unfiltered : TiltSeries or None
        The same series without the Gaussian filter (for methods that model the
        counts' noise: a method's ``raw_counts``); None when no filter was applied.
    unclipped : dict line -> ndarray (n_tilts, ny, nx) or None
        The line maps before the Gaussian filter, the clipping and the padding
        (binned, shadowing-normalised; negative values kept): what the bootstrap
        draws its replicas around, each then finished by :meth:`finish_maps` as the
        data were. None on a Preprocessed built without them.
    filter_sigma : float or None
        The Gaussian filter (pixels) the maps of ``series`` went through (None: none).
    eds_alignment : Alignment or None
        With a HAADF at tilts of its own: the EDS tilts' alignment (raw pixels;
        ``alignment`` is then the HAADF's). None: one alignment for every channel.
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
    eds_alignment: Alignment | None = None
    unclipped: dict | None = None
    filter_sigma: float | None = None

    def finish_maps(self, maps: dict, filtered: bool = True) -> dict:
        """Line maps on the grid of ``unclipped`` finished as the data were: filter, clip, pad.

        The same arithmetic as the preprocessing's last steps, so a replica drawn around
        ``unclipped`` goes through the filter and the clipping in the order the measured
        maps did (the bootstrap of the raw route,
        :func:`~chemtomo.pipeline.experimental.bootstrap_experimental`).

        Parameters
        ----------
        maps : dict line -> ndarray (n_tilts, ny, nx)
            Maps before the filter (negative values allowed).
        filtered : bool
            Apply ``filter_sigma`` (True: as ``series``; False: as ``unfiltered``, for
            the methods that model the counts' noise).

        Returns
        -------
        dict line -> float32 ndarray (n_tilts, ny, nx + 2 pad_px)
        """
        sigma = self.filter_sigma if filtered else None
        out = _filter_clip(maps, sigma)[0]
        return _pad_maps(out, self.pad_px)

    @property
    def field_series(self) -> TiltSeries:
        """The series without the padding (the field of view as measured)."""
        p = self.pad_px
        if not p:
            return self.series
        s = self.series
        cut = slice(p, s.shape[2] - p)
        return TiltSeries(s.angles_deg, s.pixel_nm, {k: v[..., cut] for k, v in s.eds.items()},
                          None if s.haadf is None else s.haadf[..., cut], dict(s.metadata),
                          haadf_angles_deg=s.haadf_angles_deg)

    def to_signals(self) -> dict:
        """The preprocessed stacks as HyperSpy Signal2D (tilt | y, x)."""
        from ..io.hspy import to_signal

        s = self.series
        out = {ln: to_signal(v, s.angles_deg, s.pixel_nm, ln) for ln, v in s.eds.items()}
        if s.haadf is not None:
            out["HAADF"] = to_signal(s.haadf, s.haadf_angles, s.pixel_nm, "HAADF")
        return out

    def summary(self) -> dict:
        """Everything done to the series, JSON-friendly (for the result's provenance)."""
        return {
            "bin_factor": self.bin_factor, "pixel_nm_raw": self.pixel_nm_raw, "pixel_nm": self.series.pixel_nm,
            "alignment": self.alignment.as_dict(),
            "registration_px": None if self.registration_px is None else self.registration_px.tolist(),
            "shadowing_factors": {k: v.tolist() for k, v in self.shadowing_factors.items()},
            "clipped": self.clipped, "windows_kev": self.windows_kev, "notes": list(self.notes),
            "pad_px": self.pad_px,
            **({} if self.eds_alignment is None else {"eds_alignment": self.eds_alignment.as_dict()}),
        }


def preprocess_tilt_series(eds: dict, haadf=None, angles_deg=None, pixel_nm: float | None = None,
                           options: PreprocessOptions | None = None, *, alignment: Alignment | None = None,
                           metadata: dict | None = None, progress: bool = True, haadf_angles_deg=None,
                           eds_alignment: Alignment | None = None, **overrides) -> Preprocessed:
    """Registration, alignment, binning, shadowing normalisation: line maps -> TiltSeries.

    With one tilt set the HAADF is registered to the EDS maps per tilt and one
    alignment, estimated on it, is applied to every channel. With a HAADF at tilts
    of its own (``haadf_angles_deg``) the HAADF series is aligned on its own angles
    and each EDS tilt is placed on that alignment
    (:func:`~chemtomo.preprocess.place.place_eds_tilts`: registered to the HAADF
    image at a shared tilt, else to the aligned HAADF's reprojection at its angle).

    Parameters
    ----------
    eds : dict line -> ndarray or Signal2D (n_tilts, ny, nx)
        Line maps (counts) on the raw grid; with HyperSpy signals the angles
        and pixel size default to theirs (``metadata.Tomography.tilts``, axes).
    haadf : ndarray or Signal2D (n_tilts, ny, nx), optional
    angles_deg : array_like, optional
        One tilt angle (degrees) per image.
    pixel_nm : float, optional
        Pixel size (nm) of the raw images.
    options : PreprocessOptions, optional
        Registration, alignment, binning, shadowing, filter, padding (default:
        its defaults, those of the CLI).
    alignment : Alignment, optional
        Use this alignment (raw pixels) instead of estimating one (with
        ``haadf_angles_deg``: the HAADF's).
    metadata : dict, optional
        Stored in the TiltSeries (``beam_kev``, ...).
    progress : bool
        A progress bar on standard error.
    haadf_angles_deg : array_like, optional
        The HAADF's own tilt angles (degrees), one per HAADF image; None (default):
        the HAADF is at ``angles_deg``, and an angle set exactly equal to
        ``angles_deg`` is the same (bit for bit). With HyperSpy signals, a HAADF
        with another number of images than the EDS maps defaults to its own
        ``metadata.Tomography.tilts``.
    eds_alignment : Alignment, optional
        With ``haadf_angles_deg``: use this alignment of the EDS tilts (raw pixels)
        instead of placing them on the HAADF's.
    **overrides
        Fields of :class:`PreprocessOptions` by name (``bin_factor=1``), replacing those of ``options``.

    Returns
    -------
    Preprocessed
        With ``haadf_angles_deg``: ``alignment`` the HAADF's, ``eds_alignment`` the
        EDS tilts', ``registration_px`` None (the registrations are in
        ``eds_alignment.diagnostics["placement"]``) and a series with both angle sets.

    Raises
    ------
    ValueError
        No maps, missing angles or pixel size, stacks of different shapes,
        an alignment for other images, an unknown option name or value;
        ``haadf_angles_deg`` without a HAADF, with another count than its images,
        or equal to the EDS angles within :data:`~chemtomo.geometry.SHARED_TILT_TOL_DEG`
        at every tilt but not exactly (one tilt set read twice).
    """
    o = with_overrides(options, PreprocessOptions, overrides, "preprocess options")
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
    maps = {}
    for ln, v in eds.items():
        maps[ln] = np.asarray(unwrap(v, f"EDS line {ln!r}")[0], dtype=np.float32)
    shapes = {ln: m.shape for ln, m in maps.items()}
    h = None if haadf is None else np.asarray(unwrap(haadf, "HAADF")[0], dtype=np.float32)
    ang = np.asarray(angles_deg, dtype=float).ravel()
    if (haadf_angles_deg is None and h is not None and is_signal(haadf)
            and h.shape[0] != next(iter(maps.values())).shape[0]
            and haadf.metadata.get_item("Tomography.tilts") is not None):
        haadf_angles_deg = haadf.metadata.get_item("Tomography.tilts")
    hang = _own_haadf_angles(haadf_angles_deg, h, ang)
    if hang is not None:
        return _preprocess_own_tilts(maps, h, ang, hang, float(pixel_nm), o, alignment, eds_alignment,
                                     metadata, progress, t0)
    if eds_alignment is not None:
        raise ValueError("eds_alignment is for a HAADF at tilts of its own (haadf_angles_deg); with one tilt set "
                         "give the one alignment as alignment=")
    if h is not None:
        shapes["HAADF"] = h.shape
    if len(set(shapes.values())) != 1:
        raise ValueError(f"every stack must have the same shape (n_tilts, ny, nx), got {shapes}")
    n, ny, nx = next(iter(shapes.values()))
    if ang.size != n:
        raise ValueError(f"{n} images but {ang.size} tilt angles")
    notes = []
    timings = {}
    # registration of HAADF to EDS
    reg = None
    if h is not None and o.register != "none":
        if o.reference_line is not None and o.reference_line not in maps:
            raise ValueError(f"reference_line {o.reference_line!r} is not among the lines {list(maps)}")
        ref = maps[o.reference_line] if o.reference_line else sum(maps.values())
        h, reg = register_haadf_to_eds(h, ref, o.register)
    timings["register"] = time.perf_counter() - t0
    # alignment, estimated on the HAADF (or the EDS sum) and applied to every channel
    t1 = time.perf_counter()
    if alignment is None:
        if o.align == "none":
            alignment = Alignment.identity(ang, (ny, nx), pixel_nm)
        else:
            target = h if h is not None else sum(maps.values())
            alignment = align_tilt_series(
                target, ang, method="com" if o.align == "com" else "xcorr", stretch=o.align == "xcorr-stretch",
                rotation=o.rotation, offset=o.offset, offset_bin=max(1, int(o.bin_factor)), pixel_nm=pixel_nm,
                progress=progress)
            alignment.method = o.align
            note = alignment.diagnostics.get("offset", {}).get("note")
            if note:
                notes.append("tilt-axis offset: " + note)
    elif alignment.image_shape not in ((0, 0), (ny, nx)):
        raise ValueError(f"the given alignment is for {alignment.image_shape} images, these are {(ny, nx)}")
    maps = apply_alignment(maps, alignment)
    if h is not None:
        h = apply_alignment(h, alignment)
    timings["align"] = time.perf_counter() - t1
    return _finish(maps, h, ang, None, float(pixel_nm), o, alignment, None, reg, notes, timings, metadata, t0)


def _finish(maps: dict, h, ang: np.ndarray, hang, pixel_nm: float, o: PreprocessOptions, alignment: Alignment,
            eds_alignment: Alignment | None, reg, notes: list, timings: dict, metadata, t0: float) -> Preprocessed:
    """Aligned stacks -> binning, shadowing, filter, clipping, padding -> Preprocessed (``hang``: HAADF's angles)."""
    n = ang.size
    # binning, shadowing, clipping
    b = int(o.bin_factor)
    maps = {ln: rebin(m, b) for ln, m in maps.items()}
    if h is not None:
        h = rebin(h, b)
    factors = {ln: np.ones(n) for ln in maps}
    if o.shadowing:
        maps, factors = normalise_shadowing(maps, o.shadowing, ang)
    unclipped = {ln: np.array(m, dtype=np.float32) for ln, m in maps.items()}
    raw_maps = None
    if o.filter_sigma:
        raw_maps = _filter_clip(maps, None)[0]
    maps, clipped = _filter_clip(maps, o.filter_sigma)
    if h is not None and np.any(h < 0):
        h = np.clip(h, 0, None)
    pad_angles = ang if hang is None else np.concatenate([ang, hang])  # one padding for both tilt sets
    pad_px = auto_pad(h if h is not None else sum(maps.values()), pad_angles) if o.pad == "auto" else int(o.pad)
    if pad_px:
        maps = _pad_maps(maps, pad_px)
        if raw_maps is not None:
            raw_maps = _pad_maps(raw_maps, pad_px)
        if h is not None:
            h = np.pad(h, ((0, 0), (0, 0), (pad_px, pad_px)), mode="edge")
        notes.append(f"images padded by {pad_px} px (binned) on both sides across the tilt axis by repeating the "
                     "edge columns; volumes cropped back to the field of view")
    md = dict(metadata or {})
    series = TiltSeries(ang, float(pixel_nm) * b, maps, h, md, haadf_angles_deg=hang)
    unfiltered = None if raw_maps is None else TiltSeries(ang, float(pixel_nm) * b, raw_maps, h, dict(md),
                                                          haadf_angles_deg=hang)
    timings["total"] = time.perf_counter() - t0
    return Preprocessed(series, alignment, reg, factors, clipped, b, float(pixel_nm), {}, notes, timings,
                        pad_px, unfiltered, eds_alignment, unclipped,
                        float(o.filter_sigma) if o.filter_sigma else None)


def _filter_clip(maps: dict, sigma: float | None) -> tuple[dict, dict]:
    """Each map Gaussian-filtered per image (``sigma`` pixels; None or 0: not), clipped at 0; and what was clipped."""
    from .filters import gaussian_filter_stack

    out, clipped = {}, {}
    for ln, m in maps.items():
        if sigma:
            m = gaussian_filter_stack(m, float(sigma), "image")
        out[ln], clipped[ln] = clip_negative(m)
    return out, clipped


def _pad_maps(maps: dict, pad_px: int) -> dict:
    """Each map padded by ``pad_px`` on both sides of its last axis by repeating the edge columns."""
    if not pad_px:
        return dict(maps)
    widths = ((0, 0), (0, 0), (int(pad_px), int(pad_px)))
    return {ln: np.pad(m, widths, mode="edge") for ln, m in maps.items()}


def _own_haadf_angles(haadf_angles_deg, h, ang: np.ndarray) -> np.ndarray | None:
    """The HAADF's own angles, checked; None for one tilt set (none given, or exactly the EDS angles)."""
    if haadf_angles_deg is None:
        return None
    if h is None:
        raise ValueError("haadf_angles_deg is given but there is no HAADF stack: give the HAADF images or leave "
                         "haadf_angles_deg out")
    hang = check_angles_deg(haadf_angles_deg, "preprocess_tilt_series haadf_angles_deg (the HAADF tilts)")
    if hang.size != h.shape[0]:
        raise ValueError(f"the HAADF has {h.shape[0]} images but {hang.size} HAADF tilt angles (haadf_angles_deg): "
                         "give one angle per HAADF image")
    if np.array_equal(hang, ang):
        return None  # one tilt set: the shared path, bit for bit
    if hang.size == ang.size:
        diff = float(np.max(np.abs(np.sort(hang) - np.sort(ang))))
        if diff <= SHARED_TILT_TOL_DEG:
            raise ValueError(
                f"the HAADF tilt angles equal the EDS's to within {diff:.3g} degrees at every tilt (tolerance "
                f"{SHARED_TILT_TOL_DEG} degrees) but not exactly: one tilt set recorded twice, not a HAADF series of "
                "its own; give haadf_angles_deg=None (the HAADF at the EDS angles) or correct the offset")
    return hang


def _preprocess_own_tilts(maps: dict, h: np.ndarray, ang: np.ndarray, hang: np.ndarray, pixel_nm: float,
                          o: PreprocessOptions, alignment: Alignment | None, eds_alignment: Alignment | None,
                          metadata, progress: bool, t0: float) -> Preprocessed:
    """A HAADF at tilts of its own: the HAADF aligned densely, the EDS tilts placed on it, then :func:`_finish`."""
    from .place import place_eds_tilts

    shapes = {ln: m.shape for ln, m in maps.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"every EDS stack must have the same shape (n_tilts, ny, nx), got {shapes}")
    n, ny, nx = next(iter(shapes.values()))
    if ang.size != n:
        raise ValueError(f"{n} EDS images but {ang.size} tilt angles")
    check_angles_deg(ang, "preprocess_tilt_series angles_deg (the EDS tilts)")
    if h.shape[1:] != (ny, nx):
        raise ValueError(f"the HAADF images are {h.shape[1]} x {h.shape[2]} pixels but the EDS maps {ny} x {nx}: "
                         "preprocessing registers them on one grid; bin or crop the HAADF to the EDS grid first")
    if o.reference_line is not None and o.reference_line not in maps:
        raise ValueError(f"reference_line {o.reference_line!r} is not among the lines {list(maps)}")
    notes, timings = [], {"register": 0.0}
    t1 = time.perf_counter()
    if alignment is None:
        if o.align == "none":
            alignment = Alignment.identity(hang, (ny, nx), pixel_nm)
        else:
            alignment = align_tilt_series(
                h, hang, method="com" if o.align == "com" else "xcorr", stretch=o.align == "xcorr-stretch",
                rotation=o.rotation, offset=o.offset, offset_bin=max(1, int(o.bin_factor)), pixel_nm=pixel_nm,
                progress=progress)
            alignment.method = o.align
            note = alignment.diagnostics.get("offset", {}).get("note")
            if note:
                notes.append("tilt-axis offset: " + note)
    elif alignment.angles_deg.size != hang.size or alignment.image_shape not in ((0, 0), (ny, nx)):
        raise ValueError(f"the given alignment is for {alignment.angles_deg.size} tilts of {alignment.image_shape} "
                         f"images; the HAADF has {hang.size} of {(ny, nx)}")
    if eds_alignment is None:
        if o.align == "none":
            eds_alignment = Alignment.identity(ang, (ny, nx), pixel_nm)
        else:
            ref = maps[o.reference_line] if o.reference_line else sum(maps.values())
            eds_alignment = place_eds_tilts(ref, ang, h, alignment, method=o.register,
                                            bin_factor=max(1, int(o.bin_factor)))
            kinds = eds_alignment.diagnostics["placement"]["reference"]
            notes.append(f"HAADF at tilts of its own ({hang.size}), aligned on them; the {ang.size} EDS tilts placed "
                         f"on it: {kinds.count('haadf_image')} registered to the HAADF image of a shared tilt, "
                         f"{kinds.count('reprojection')} to the aligned HAADF's reprojection")
    elif eds_alignment.angles_deg.size != n or eds_alignment.image_shape not in ((0, 0), (ny, nx)):
        raise ValueError(f"the given eds_alignment is for {eds_alignment.angles_deg.size} tilts of "
                         f"{eds_alignment.image_shape} images; the EDS maps have {n} of {(ny, nx)}")
    maps = apply_alignment(maps, eds_alignment)
    h = apply_alignment(h, alignment)
    timings["align"] = time.perf_counter() - t1
    return _finish(maps, h, ang, hang, pixel_nm, o, alignment, eds_alignment, None, notes, timings, metadata, t0)


def auto_pad(stack: np.ndarray, angles_deg) -> int:
    """Padding (pixels each side across the axis) for a specimen that runs out of the field.

    0 for an isolated particle in vacuum (:func:`chemtomo.preprocess.align.runs_out_of_field`);
    else enough for a slab as wide as the field at the highest tilt,
    ``ceil(nx/2 (1/cos(max tilt) - 1)) + 2``.

    Parameters
    ----------
    stack : ndarray (n_tilts, ny, nx)
        The images (HAADF, or the sum of the line maps).
    angles_deg : array_like
        Tilt angles (degrees); those beyond 80 degrees count as 80.

    Returns
    -------
    int
        Pixels to add on each side across the tilt axis.
    """
    from .align import runs_out_of_field

    nx = np.asarray(stack).shape[2]
    if not runs_out_of_field(stack):
        return 0
    tmax = float(np.max(np.abs(np.asarray(angles_deg, dtype=float))))
    return int(np.ceil(nx / 2 * (1 / np.cos(np.deg2rad(min(tmax, 80.0))) - 1))) + 2


__all__ = ["ALIGN_METHODS", "PreprocessOptions", "Preprocessed", "REGISTER_METHODS", "auto_pad",
           "preprocess_tilt_series"]
