"""HAADF-to-EDS registration per tilt, and shadowing normalisation of the EDS maps.

Shift convention (all of chemtomo.preprocess): a shift ``(dy, dx)`` in pixels
is what is *applied to the image content*: ``out(y, x) = in(y - dy, x - dx)``
(``scipy.ndimage.shift``). Rows ``y`` run along the tilt axis (slices),
columns ``x`` across it.

Registration (Yuan et al. 2020, section 3.2.1): "The ADF images and EDS maps
for the same tilt angle were aligned by aligning the center of mass of ADF
image with the elemental map of N". ``method="com"`` does that (with any
reference map); ``method="xcorr"`` (default) cross-correlates the HAADF with
the (smoothed) reference map instead, with square-root spectral whitening,
which does not assume that the two images weigh the specimen alike nor that
it lies inside the field of view.

Shadowing (section 3.2.1): "the total signals of a tilt series EDS maps for a
certain element were normalized to the same value". :func:`normalise_shadowing`
scales each tilt's total counts per line to the mean over the tilts and
returns the factors, so the correction can be reported and undone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from ._signals import unwrap, unwrap_dict

RegistrationMethod = Literal["xcorr", "com"]
REGISTRATION_METHODS = ("xcorr", "com")


def centre_of_mass(image: np.ndarray, background_percentile: float = 1.0) -> tuple[float, float]:
    """Centre of mass ``(cy, cx)`` (pixels) after subtracting a background level.

    The level is the ``background_percentile``-th percentile of the image (a
    HAADF detector's dark offset, an EDS map's continuum residue), and values
    below it count as 0.
    """
    im = np.asarray(image, dtype=np.float64)
    if im.ndim != 2:
        raise ValueError(f"centre_of_mass takes one 2-D image, got shape {im.shape}")
    im = np.clip(im - np.percentile(im, background_percentile), 0, None)
    total = im.sum()
    if not total > 0:
        raise ValueError("the image is empty after background subtraction: no centre of mass")
    yy, xx = np.indices(im.shape)
    return float((yy * im).sum() / total), float((xx * im).sum() / total)


def _for_xcorr(image: np.ndarray, smooth_px: float) -> np.ndarray:
    """Smoothed (noise), zero-mean, edge-tapered image."""
    im = np.asarray(image, dtype=np.float64)
    if smooth_px:
        im = ndimage.gaussian_filter(im, smooth_px)
    im = im - im.mean()
    wy = np.hanning(im.shape[0])[:, None]
    wx = np.hanning(im.shape[1])[None, :]
    return im * np.sqrt(wy * wx)  # taper the edges: a field of view cut through the specimen


Normalization = Literal["none", "sqrt", "phase"]


def _xcorr_peak(a: np.ndarray, b: np.ndarray, max_shift_px: float, normalization: Normalization) -> np.ndarray:
    """Shift ``d`` (sub-pixel) maximising the (whitened) cross-correlation of ``a`` and ``b(x - d)``.

    Searched within ``|d| <= max_shift_px`` per axis; a parabola through the peak gives the sub-pixel part.
    """
    F = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    if normalization == "phase":
        F = F / np.maximum(np.abs(F), 1e-30)
    elif normalization == "sqrt":
        F = F / np.maximum(np.sqrt(np.abs(F)), 1e-30)
    elif normalization != "none":
        raise ValueError(f"normalization must be 'none', 'sqrt' or 'phase', got {normalization!r}")
    cc = np.fft.fftshift(np.fft.ifft2(F).real)
    c = np.array(cc.shape) // 2
    yy, xx = np.indices(cc.shape)
    outside = (np.abs(yy - c[0]) > max_shift_px) | (np.abs(xx - c[1]) > max_shift_px)
    cc = np.where(outside, -np.inf, cc)
    iy, ix = np.unravel_index(int(np.argmax(cc)), cc.shape)
    out = np.array([iy - c[0], ix - c[1]], dtype=np.float64)
    for k, (i, n) in enumerate(((iy, cc.shape[0]), (ix, cc.shape[1]))):
        if 0 < i < n - 1:
            idx = [iy, ix]
            vals = []
            for di in (-1, 0, 1):
                idx[k] = i + di
                vals.append(cc[tuple(idx)])
            y0, y1, y2 = vals
            den = y0 - 2 * y1 + y2
            if np.isfinite(den) and den < 0:
                out[k] += 0.5 * (y0 - y2) / den
    return out


def estimate_shift(moving, reference, method: RegistrationMethod = "xcorr", *, smooth_px: float = 1.0,
                   max_shift_px: float | None = None, normalization: Normalization = "none",
                   passes: int = 3) -> np.ndarray:
    """The shift ``(dy, dx)`` that brings ``moving`` onto ``reference`` (2-D images).

    Parameters
    ----------
    moving, reference : ndarray (ny, nx)
    method : {"xcorr", "com"}
        Cross-correlation of smoothed, edge-tapered images (FFT; sub-pixel by
        a parabola through the peak), repeated on the shifted image up to
        ``passes`` times; or the difference of centres of mass.
    smooth_px : float
        Gaussian smoothing (pixels) before cross-correlation (noisy EDS maps).
    max_shift_px : float, optional
        Largest shift searched per axis (default a quarter of the image).
    normalization : {"none", "sqrt", "phase"}
        Spectral whitening of the cross-power: none (images of one kind,
        neighbouring tilts), square root (partial; images of different
        contrast, HAADF against an EDS map), or phase correlation.
    """
    mov = np.asarray(moving, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if mov.shape != ref.shape or mov.ndim != 2:
        raise ValueError(f"images to register must be 2-D and the same shape, got {mov.shape} and {ref.shape}")
    if method == "com":
        return np.subtract(centre_of_mass(ref), centre_of_mass(mov))
    if method != "xcorr":
        raise ValueError(f"method must be one of {REGISTRATION_METHODS}, got {method!r}")
    a = _for_xcorr(ref, smooth_px)
    if not np.any(a) or not np.any(mov - mov.mean()):
        raise ValueError("cannot cross-correlate a flat (empty) image")
    limit = min(mov.shape) / 4 if max_shift_px is None else float(max_shift_px)
    total = np.zeros(2)
    for p in range(max(1, int(passes))):  # the taper pulls the peak towards 0: refine on the shifted image
        m = mov if p == 0 else ndimage.shift(mov, total, order=1, mode="nearest")
        s = _xcorr_peak(a, _for_xcorr(m, smooth_px), limit if p == 0 else 2.0, normalization)
        total += s
        if np.all(np.abs(s) < 0.02):
            break
    return total


def shift_stack(stack, shifts, *, order: int = 1, mode: str = "nearest"):
    """Shift each image of a ``(n, ny, nx)`` stack by its ``(dy, dx)``.

    Linear interpolation (``order=1``) keeps non-negative counts non-negative;
    pixels shifted in from outside the field repeat the edge (``mode="nearest"``:
    a specimen wider than the field continues).
    """
    data, rewrap = unwrap(stack, "stack to shift")
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.shape != (data.shape[0], 2):
        raise ValueError(f"shifts must be (n_images, 2) = {(data.shape[0], 2)}, got {shifts.shape}")
    out = np.empty(data.shape, dtype=np.float32)
    for i in range(data.shape[0]):
        if np.allclose(shifts[i], 0):
            out[i] = data[i]
        else:
            out[i] = ndimage.shift(np.asarray(data[i], dtype=np.float64), shifts[i], order=order, mode=mode)
    return rewrap(out)


def register_haadf_to_eds(haadf, eds_reference, method: RegistrationMethod = "xcorr", *,
                          smooth_px: float = 1.5, search_px: float | None = None, max_shift_px: float | None = None):
    """Register each tilt's HAADF image onto its EDS reference map.

    Parameters
    ----------
    haadf : ndarray or Signal2D (n_tilts, ny, nx)
    eds_reference : ndarray or Signal2D (n_tilts, ny, nx)
        A map that weighs the specimen like the HAADF: the sum of the lines
        used, or one light-element line as the paper did (N).
    method : {"xcorr", "com"}
        Cross-correlation with square-root whitening (the two images weigh
        the elements differently), or centres of mass.
    smooth_px : float
        Gaussian smoothing before cross-correlation.
    search_px : float, optional
        Largest shift searched (xcorr; default 10% of the image: HAADF and EDS
        are scanned together, a drift between them is small).
    max_shift_px : float, optional
        Refuse shifts larger than this (a sign the two images show different things).

    Returns
    -------
    registered : same kind as ``haadf``
    shifts : ndarray (n_tilts, 2)
        ``(dy, dx)`` applied to each HAADF image (pixels).
    """
    h, rewrap = unwrap(haadf, "HAADF stack")
    e, _ = unwrap(eds_reference, "EDS reference stack")
    if h.shape != e.shape:
        raise ValueError(f"HAADF {h.shape} and EDS reference {e.shape} stacks differ in shape")
    if search_px is None:
        search_px = 0.1 * max(h.shape[1:])
    shifts = np.array([estimate_shift(h[i], e[i], method, smooth_px=smooth_px, max_shift_px=search_px,
                                      normalization="sqrt") for i in range(h.shape[0])])
    if max_shift_px is not None:
        big = np.flatnonzero(np.hypot(*shifts.T) > max_shift_px)
        if big.size:
            raise ValueError(
                f"HAADF-to-EDS registration shifts exceed {max_shift_px} px at tilts {big.tolist()} "
                f"({np.round(shifts[big], 1).tolist()}); check the reference map or use method='com'"
            )
    return rewrap(shift_stack(h, shifts)), shifts


ShadowingTarget = Literal["mean", "max", "first", "slab"]
SHADOWING_TARGETS = ("mean", "max", "first", "slab")


def normalise_shadowing(eds: dict, target: ShadowingTarget = "mean", angles_deg=None):
    """Scale each tilt's total counts, per line, to one common value.

    Parameters
    ----------
    eds : dict line -> ndarray or Signal2D (n_tilts, ny, nx)
    target : {"mean", "max", "first", "slab"}
        The common value: the mean (default; keeps the counts' scale), the
        maximum, or the first tilt's total. ``"slab"``: the common value is
        that of ``total * cos(tilt)`` (mean over tilts), for a slab wider than
        the field of view, whose projected amount grows as 1/cos(tilt); needs
        ``angles_deg``.
    angles_deg : array_like, optional
        Tilt angles (for ``"slab"``).

    Returns
    -------
    normalised : dict line -> same kind as the input
    factors : dict line -> ndarray (n_tilts,)
        The scale applied to each tilt (``normalised = factor * original``).

    Notes
    -----
    Corrects the loss of X-rays to detector shadowing at some tilts, as the
    paper did; it also removes any real change of the projected amount with
    tilt (a slab's path length grows as 1/cos(tilt)), see docs/experimental.md.
    """
    if target not in SHADOWING_TARGETS:
        raise ValueError(f"target must be one of {SHADOWING_TARGETS}, got {target!r}")
    arrays, rewrap = unwrap_dict(eds, "EDS stack")
    n = next(iter(arrays.values())).shape[0]
    if target == "slab":
        if angles_deg is None:
            raise ValueError("target='slab' needs the tilt angles (angles_deg=)")
        geo = np.cos(np.deg2rad(np.asarray(angles_deg, dtype=float).ravel()))
        if geo.size != n:
            raise ValueError(f"{geo.size} angles for {n} tilts")
    else:
        geo = np.ones(n)
    out, factors = {}, {}
    for line, a in arrays.items():
        totals = np.asarray(a, dtype=np.float64).sum(axis=(1, 2))
        if np.any(totals <= 0):
            bad = np.flatnonzero(totals <= 0).tolist()
            raise ValueError(f"line {line!r} has no net counts at tilt(s) {bad}; it cannot be normalised "
                             "(drop the line or those tilts)")
        t = totals * geo
        common = {"mean": t.mean(), "max": t.max(), "first": t[0], "slab": t.mean()}[target]
        f = common / t
        out[line] = (np.asarray(a, dtype=np.float64) * f[:, None, None]).astype(np.float32)
        factors[line] = f
    return rewrap(out), factors
