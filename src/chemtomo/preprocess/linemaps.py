"""Spectrum images to X-ray line maps: background-subtracted integrated intensities, rebinning.

The line intensity of each pixel is the counts in an integration window
around the line (``integration_width`` times the line's FWHM) minus the
background estimated from two windows beside it, with exSpy's
``get_lines_intensity`` (Yuan et al. 2020, section 3.2.1: "the background was
subtracted, and the intensities of the peak ... were integrated").

Background windows start where exSpy puts them (``line_width`` FWHMs either
side of the line, ``window_width`` FWHMs wide) and are then moved outward,
past any other line of the specimen that they would overlap (the elements
named in the file's metadata, or ``avoid``), so that a neighbouring peak
(Ga Ka beside Pt La, Al Ka beside Mg Ka) is not taken for background.

Counts after background subtraction can be negative in single pixels (Poisson
noise); they are kept here and clipped only at the end of preprocessing
(:func:`clip_negative`), after binning, where it biases least.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from ._signals import is_signal, unwrap

#: Lines weaker than this (exSpy weight relative to the family's strongest) are not avoided.
MIN_INTERFERER_WEIGHT = 0.05


def _exspy():
    from ..io.microscope import quiet_hyperspy

    try:
        with quiet_hyperspy():
            import exspy
    except ImportError as exc:  # pragma: no cover - declared extra
        raise ImportError("line maps need exSpy: pip install 'chemtomo[io]'") from exc
    return exspy


@lru_cache(maxsize=1)
def _elements_db() -> dict:
    """ExSpy's element database as a plain dict."""
    _exspy()
    from exspy.material import elements

    return elements.as_dictionary() if hasattr(elements, "as_dictionary") else dict(elements)


def split_line(line: str) -> tuple[str, str]:
    """``"Fe_Ka"`` -> ``("Fe", "Ka")``, with a clear error for a malformed or unknown line."""
    if not isinstance(line, str) or line.count("_") != 1:
        raise ValueError(f"X-ray lines are named <Element>_<line>, e.g. 'Fe_Ka' or 'Pt_La'; got {line!r}")
    el, ln = line.split("_")
    db = _elements_db()
    if el not in db:
        raise ValueError(f"unknown element {el!r} in line {line!r}")
    known = list(db[el]["Atomic_properties"]["Xray_lines"].keys())
    if ln not in known:
        raise ValueError(f"{el} has no line {ln!r} in exSpy's database; known: {known}")
    return el, ln


def line_energy_kev(line: str) -> float:
    """Energy (keV) of an X-ray line from exSpy's database."""
    el, ln = split_line(line)
    return float(_elements_db()[el]["Atomic_properties"]["Xray_lines"][ln]["energy (keV)"])


def line_fwhm_kev(energy_kev: float, fwhm_mnka_ev: float = 130.0) -> float:
    """Detector FWHM (keV) at ``energy_kev`` from the Mn Ka FWHM (eV).

    Fiori & Newbury (1978), as exSpy uses it:
    ``FWHM(E)^2 = FWHM(Mn Ka)^2 + 2.5 eV (E - E(Mn Ka))`` with energies in eV.
    """
    e_mn = line_energy_kev("Mn_Ka")
    return float(np.sqrt(fwhm_mnka_ev**2 + 2.5 * (energy_kev - e_mn) * 1e3) / 1e3)


def interfering_lines(elements: Iterable[str], energy_range_kev: tuple[float, float]) -> list[tuple[str, float]]:
    """Every line (name, keV) of ``elements`` inside ``energy_range_kev`` worth avoiding."""
    db = _elements_db()
    out = []
    lo, hi = energy_range_kev
    for el in elements:
        if el not in db:
            continue
        for ln, d in db[el]["Atomic_properties"]["Xray_lines"].items():
            e = float(d["energy (keV)"])
            if lo <= e <= hi and float(d.get("weight", 1.0)) >= MIN_INTERFERER_WEIGHT:
                out.append((f"{el}_{ln}", e))
    return out


def _spectrum_signal(spectrum_image, energy_axis=None, beam_kev=None, fwhm_mnka_ev=None):
    """An exSpy EDSTEMSpectrum from a signal (as is) or an array ``(ny, nx, n_channels)``."""
    exspy = _exspy()
    if is_signal(spectrum_image):
        if spectrum_image.axes_manager.signal_dimension != 1:
            raise ValueError(f"a spectrum image has one signal (energy) axis; got {spectrum_image}")
        s = spectrum_image
        if not isinstance(s, exspy.signals.EDSSpectrum):
            raise ValueError(f"{s} is not an EDS spectrum image (signal_type EDS_TEM); set_signal_type('EDS_TEM')")
        return s
    data = np.asarray(spectrum_image)
    if data.ndim != 3:
        raise ValueError(f"a spectrum-image array is (ny, nx, n_channels), got shape {data.shape}")
    if energy_axis is None:
        raise ValueError("an array spectrum image needs energy_axis=(offset_kev, scale_kev)")
    s = exspy.signals.EDSTEMSpectrum(data)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units, ax.name = float(energy_axis[0]), float(energy_axis[1]), "keV", "Energy"
    if beam_kev is not None:
        s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", float(beam_kev))
    if fwhm_mnka_ev is not None:
        s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", float(fwhm_mnka_ev))
    return s


def background_windows(spectrum_image, lines: Sequence[str], *, line_width=(2.0, 2.0), window_width: float = 1.0,
                       avoid: Iterable[str] | None = None, max_move_kev: float = 0.6) -> np.ndarray:
    """Background windows (keV) per line, ``(k, 4)``: left start, left end, right start, right end.

    Each window is ``window_width`` FWHMs wide and starts ``line_width`` FWHMs
    from the line, as exSpy's ``estimate_background_windows`` puts it; a
    window that overlaps another line of the specimen (within one FWHM of
    that line; the elements in the spectrum's metadata ``Sample.elements``, or
    ``avoid``) is moved outward, in quarter-FWHM steps up to ``max_move_kev``,
    to the first place clear of every such line. If one side has no clear
    place, both windows go to the other side (a one-sided background); if
    neither has, exSpy's windows are kept.
    """
    s = _spectrum_signal(spectrum_image)
    lines = list(lines)
    ax = s.axes_manager.signal_axes[0]
    e_lo, e_hi = float(ax.axis[0]), float(ax.axis[-1])
    res = s.metadata.get_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
    if avoid is None:
        avoid = list(s.metadata.get_item("Sample.elements", []) or [])
    avoid = set(avoid) | {split_line(ln)[0] for ln in lines}
    others = [(n, e, line_fwhm_kev(e, res)) for n, e in interfering_lines(sorted(avoid), (e_lo, e_hi))]
    out = []
    for line in lines:
        e0 = line_energy_kev(line)
        w = line_fwhm_kev(e0, res)
        width = w * window_width
        peaks = [(e, fw) for n, e, fw in others if n != line and abs(e - e0) > 0.5 * w]

        def clear(a, b, peaks=peaks):
            return a >= e_lo and b <= e_hi and not any(a - fw < e < b + fw for e, fw in peaks)

        sides = {}
        for side, d0 in ((-1, line_width[0] * w), (1, line_width[1] * w)):
            d = d0
            while d <= d0 + max_move_kev:
                a, b = (e0 - d - width, e0 - d) if side < 0 else (e0 + d, e0 + d + width)
                if clear(a, b):
                    sides[side] = [a, b]
                    break
                d += 0.25 * w
        default = [e0 - w * (line_width[0] + window_width), e0 - w * line_width[0],
                   e0 + w * line_width[1], e0 + w * (line_width[1] + window_width)]
        if -1 in sides and 1 in sides:
            out.append(sides[-1] + sides[1])
        elif sides:  # one-sided: the clear window and the next one beyond it
            a, b = next(iter(sides.values()))
            side = next(iter(sides))
            a2, b2 = (a - width, a) if side < 0 else (b, b + width)
            out.append(sorted([a2, b2, a, b]) if clear(min(a, a2), max(b, b2)) else [a, b, a, b])
        else:
            out.append(default)
    return np.array(out)


def _profile(e: np.ndarray, scale: float, e0: float, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian line integrated over channels centred at ``e`` (keV)."""
    from scipy.special import erf

    sig = fwhm / (2 * np.sqrt(2 * np.log(2)))
    edges = np.append(e - scale / 2, e[-1] + scale / 2)
    return np.diff(0.5 * (1 + erf((edges - e0) / (np.sqrt(2) * sig))))


def fit_cutoff_kev(lines: Sequence[str], fwhm_mnka_ev: float = 130.0, half_width_fwhm: float = 4.0) -> float:
    """The energy (keV) above which :func:`fit_line_intensities` of ``lines`` reads no channel.

    The highest end of the lines' fit regions (``half_width_fwhm`` FWHMs
    above each line) plus two FWHMs there and 0.5 keV: a spectrum cut above
    it has every channel the fits use and every interfering line they model
    (those within 1.5 FWHMs of a region), so the fits are the same as on the
    whole spectrum.

    Parameters
    ----------
    lines : sequence of str
        The lines to fit.
    fwhm_mnka_ev : float
        Detector FWHM at Mn Ka (eV).
    half_width_fwhm : float
        Half width of each fit region, in FWHMs (as :func:`fit_line_intensities`).

    Returns
    -------
    float
    """
    end = max(line_energy_kev(ln) + half_width_fwhm * line_fwhm_kev(line_energy_kev(ln), fwhm_mnka_ev)
              for ln in lines)
    return float(end + 2.0 * line_fwhm_kev(end + 1.0, fwhm_mnka_ev) + 0.5)


#: Pixels per block of the fit's matrix-vector products (a block's float64 copy stays in cache).
FIT_BLOCK_PIXELS = 1024


def fit_line_intensities(s, lines: Sequence[str], elements: Iterable[str], *, half_width_fwhm: float = 4.0,
                         fwhm_mnka_ev: float = 130.0) -> dict[str, np.ndarray]:
    """Area of each line at each pixel by linear least squares on a local model.

    Around each line (``+-half_width_fwhm`` FWHMs), every pixel's spectrum is
    modelled as a linear background plus one Gaussian per line of
    ``elements`` that falls in the region (fixed energies from exSpy's
    database, widths from the detector's Mn Ka FWHM); the amplitudes follow
    from one pseudo-inverse for all pixels. Separates overlapping peaks
    (Ga Ka under Pt La) that windows cannot.

    Needs a well-calibrated energy axis and detector resolution, and only the
    elements really present: below ~1 keV the Gaussian model of the detector
    response is poor and the L lines of transition metals crowd the K lines
    of light elements (Ti, Cr L under O Ka), so the fit becomes ill-posed
    there; use windows for such lines.

    Parameters
    ----------
    s : exspy.signals.EDSSpectrum
        Spectrum or spectrum image (any navigation shape), one energy axis in keV.
    lines : sequence of str
        The lines whose areas are returned.
    elements : iterable of str
        Elements whose lines the local models hold.
    half_width_fwhm : float
        Half width of each line's fit region, in FWHMs of the line.
    fwhm_mnka_ev : float
        Detector FWHM at Mn Ka (eV).

    Returns
    -------
    dict line -> ndarray (navigation shape) float32
        The line's area (counts) at each pixel.

    Notes
    -----
    The pixels' spectra are taken in blocks of :data:`FIT_BLOCK_PIXELS`
    (the channels of a line's region sliced, not gathered, and converted to
    float64 one block at a time, so the copy stays in cache): the same
    products as one matrix-vector product over all pixels, summed in an order
    that may differ by the last bit of float64 (relative differences of
    order 1e-15), far below the float32 of the maps.
    """
    ax = s.axes_manager.signal_axes[0]
    e = np.asarray(ax.axis, dtype=np.float64)
    scale = float(ax.scale)
    data = np.asarray(s.data)
    flat = data.reshape(-1, data.shape[-1])  # a view for the usual C-ordered spectrum image
    others = interfering_lines(sorted(set(elements)), (e[0], e[-1]))
    regions = []
    for line in lines:
        e0 = line_energy_kev(line)
        w = line_fwhm_kev(e0, fwhm_mnka_ev)
        sel = np.flatnonzero(np.abs(e - e0) <= half_width_fwhm * w)
        if sel.size < 8:
            raise ValueError(f"line {line}: too few channels ({sel.size}) around {e0:.3f} keV to fit")
        es = e[sel]
        comps = [line] + [n for n, en in others if n != line
                          and es[0] - 1.5 * line_fwhm_kev(en, fwhm_mnka_ev) < en < es[-1] + 1.5 * line_fwhm_kev(
                              en, fwhm_mnka_ev)]
        cols = [_profile(es, scale, line_energy_kev(c), line_fwhm_kev(line_energy_kev(c), fwhm_mnka_ev))
                for c in comps]
        cols += [np.ones_like(es), (es - e0) / max(es[-1] - es[0], 1e-9)]
        A = np.stack(cols, axis=1)
        pinv = np.linalg.pinv(A)  # (n_comp, n_ch)
        # sel is one run of channels on a monotonic axis: a slice, not a gather
        regions.append((line, slice(int(sel[0]), int(sel[-1]) + 1), pinv[0]))
    amp = {line: np.empty(flat.shape[0], dtype=np.float64) for line in lines}
    for start in range(0, flat.shape[0], FIT_BLOCK_PIXELS):
        block = flat[start:start + FIT_BLOCK_PIXELS]
        for line, channels, row in regions:
            amp[line][start:start + block.shape[0]] = block[:, channels].astype(np.float64) @ row
    return {line: a.reshape(data.shape[:-1]).astype(np.float32) for line, a in amp.items()}


def line_intensities(spectrum_image, lines: Sequence[str], *, method: str = "windows",
                     integration_width: float = 2.0, line_width=(2.0, 2.0), window_width: float = 1.0,
                     windows: np.ndarray | None = None, avoid: Iterable[str] | None = None, energy_axis=None,
                     beam_kev: float | None = None, fwhm_mnka_ev: float | None = None,
                     arrays: bool = False) -> dict:
    """Background-subtracted intensity of each line at each pixel.

    Parameters
    ----------
    spectrum_image : exspy.signals.EDSTEMSpectrum or ndarray (ny, nx, n_channels)
    lines : list of str
        ``["O_Ka", "Fe_Ka", "Pt_La"]``.
    method : {"windows", "fit"}
        ``"windows"`` (default): exSpy's ``get_lines_intensity``, counts in
        the integration window minus the background windows (98% of an
        isolated line's area for the default width). ``"fit"``: the line's
        whole area from a local least-squares model
        (:func:`fit_line_intensities`), which separates overlapping lines of
        the specimen's elements.
    integration_width : float
        Integration window, in FWHMs of the line.
    line_width, window_width : see :func:`background_windows`.
    windows : ndarray (k, 4), optional
        Background windows (keV) to use instead of :func:`background_windows`.
    avoid : iterable of str, optional
        Elements whose lines the background windows must avoid.
    energy_axis : (offset_kev, scale_kev), optional
        For an array input.
    beam_kev, fwhm_mnka_ev : float, optional
        For an array input.
    arrays : bool
        Return arrays even for a signal input (default False: signals for a
        signal input), sparing the signals' construction when only the data
        are wanted.

    Returns
    -------
    dict line -> ndarray (ny, nx) float32 (array input or ``arrays``) or hyperspy Signal2D (signal input)
        Counts; may be negative in single pixels.

    Raises
    ------
    ValueError
        An unknown line, or a line (with its windows) outside the spectrum's
        energy range.
    """
    as_signal = is_signal(spectrum_image)
    s = _spectrum_signal(spectrum_image, energy_axis, beam_kev, fwhm_mnka_ev)
    lines = list(lines)
    if not lines:
        raise ValueError("give at least one X-ray line, e.g. ['Fe_Ka']")
    if len(set(lines)) != len(lines):
        raise ValueError(f"lines repeat: {lines}")
    ax = s.axes_manager.signal_axes[0]
    e_lo, e_hi = float(ax.axis[0]), float(ax.axis[-1])
    if method not in ("windows", "fit"):
        raise ValueError(f"method must be 'windows' or 'fit', got {method!r}")
    if method == "fit":
        for line in lines:
            e0 = line_energy_kev(line)
            if not e_lo < e0 < e_hi:
                raise ValueError(f"line {line} ({e0:.3f} keV) lies outside the spectrum's energy range "
                                 f"{e_lo:.3f}-{e_hi:.3f} keV; choose another line of that element")
        els = set(avoid if avoid is not None else (s.metadata.get_item("Sample.elements", []) or []))
        els |= {split_line(ln)[0] for ln in lines}
        res = s.metadata.get_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
        fitted = fit_line_intensities(s, lines, els, fwhm_mnka_ev=float(res))
        if not as_signal or arrays:
            return fitted
        out = {}
        for line, a in fitted.items():
            im = s.isig[0:1].sum(-1).T  # the map's axes and metadata; summing one channel, not the whole cube
            im.data = a
            im.metadata.General.title = line
            out[line] = im
        return out
    if windows is None:
        windows = background_windows(s, lines, line_width=line_width, window_width=window_width, avoid=avoid)
    windows = np.asarray(windows, dtype=float)
    if windows.shape != (len(lines), 4):
        raise ValueError(f"windows must be (n_lines, 4) = {(len(lines), 4)}, got {windows.shape}")
    for line, w in zip(lines, windows, strict=True):
        e0 = line_energy_kev(line)
        if not (e_lo <= w.min() and w.max() <= e_hi):
            raise ValueError(
                f"line {line} ({e0:.3f} keV) with its background windows {np.round(w, 3).tolist()} keV lies "
                f"outside the spectrum's energy range {e_lo:.3f}-{e_hi:.3f} keV; choose another line of that element"
            )
    ims = s.get_lines_intensity(xray_lines=lines, background_windows=windows,
                                integration_windows=integration_width, only_one=False)
    out = {}
    for line, im in zip(lines, ims, strict=True):
        if as_signal and not arrays:
            im = im.T  # exSpy returns (y, x | ); a map is an image: ( | y, x)
            im.metadata.General.title = line
            out[line] = im
        else:
            out[line] = np.asarray(im.data, dtype=np.float32)
    return out


def rebin(stack, factor: int):
    """Sum-bin the last two (image) axes by ``factor``; rows/columns that do not fill a bin are cropped.

    Counts add, so binned EDS maps stay in counts (the paper bins 2x2, section 3.2.1).
    Accepts an array ``(..., ny, nx)`` or a HyperSpy signal (returns the same kind).
    """
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"the binning factor must be a positive integer, got {factor!r}")
    data, rewrap = unwrap(stack, "stack to bin", ndim=(2, 3))
    if f == 1:
        return rewrap(np.array(data, copy=True))
    ny, nx = data.shape[-2] // f, data.shape[-1] // f
    if ny < 2 or nx < 2:
        raise ValueError(f"binning {data.shape[-2]}x{data.shape[-1]} images by {f} leaves fewer than 2 pixels")
    d = np.asarray(data[..., : ny * f, : nx * f], dtype=np.float64)
    d = d.reshape(*d.shape[:-2], ny, f, nx, f).sum(axis=(-3, -1))
    return rewrap(d.astype(np.float32))


def clip_negative(stack) -> tuple[np.ndarray, dict]:
    """Negative counts set to 0 (TiltSeries requires counts >= 0); returns the stack and what was clipped."""
    data, rewrap = unwrap(stack, "stack", ndim=(2, 3))
    data = np.asarray(data, dtype=np.float32)
    neg = data < 0
    info = {"fraction_clipped": float(neg.mean()), "counts_clipped": float(-data[neg].sum()),
            "total_counts": float(data.sum())}
    return rewrap(np.where(neg, 0.0, data).astype(np.float32)), info


def synthesize_spectrum_image(line_maps: dict, energy_axis: tuple[float, float, int], *,
                              fwhm_mnka_ev: float = 130.0, background_per_channel=None,
                              rng: np.random.Generator | None = None) -> np.ndarray:
    """A spectrum image ``(ny, nx, n_channels)`` whose lines have the given expected counts.

    The forward model of :func:`line_intensities`, for tests and simulations:
    each line a Gaussian of the detector FWHM holding ``line_maps[line]``
    counts per pixel, on a background (``background_per_channel``: a scalar,
    an ``(n_channels,)`` spectrum or an ``(ny, nx, n_channels)`` array of
    expected counts; default a gently falling continuum of 0.02 counts per
    channel). With ``rng`` the counts are Poisson draws (uint16), otherwise
    the expected values (float32).
    """
    off, scale, n = float(energy_axis[0]), float(energy_axis[1]), int(energy_axis[2])
    e = off + scale * np.arange(n)
    maps = {k: np.asarray(v, dtype=np.float64) for k, v in line_maps.items()}
    shape = next(iter(maps.values())).shape
    if any(m.shape != shape for m in maps.values()):
        raise ValueError("every line map must have the same (ny, nx) shape")
    if background_per_channel is None:
        bg = 0.02 * np.exp(-np.clip(e, 0, None) / 5.0) * (e > 0.1)
    else:
        bg = np.asarray(background_per_channel, dtype=np.float64)
    lam = np.broadcast_to(bg, shape + (n,)).astype(np.float64).copy()
    for line, m in maps.items():
        e0 = line_energy_kev(line)
        sig = line_fwhm_kev(e0, fwhm_mnka_ev) / (2 * np.sqrt(2 * np.log(2)))
        # bin-integrated Gaussian profile, normalised to 1 over the channels
        from scipy.special import erf

        edges = np.append(e - scale / 2, e[-1] + scale / 2)
        cdf = 0.5 * (1 + erf((edges - e0) / (np.sqrt(2) * sig)))
        prof = np.diff(cdf)
        if prof.sum() <= 0:
            raise ValueError(f"line {line} ({e0:.3f} keV) is outside the energy axis")
        lam += m[..., None] * prof[None, None, :]
    if rng is None:
        return lam.astype(np.float32)
    return rng.poisson(lam).astype(np.uint16)
