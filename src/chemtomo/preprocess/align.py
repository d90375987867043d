"""Tilt-series alignment: shifts, tilt-axis rotation and tilt-axis offset; one alignment for all channels.

An :class:`Alignment` is estimated once, on the channel that shows the
specimen best (the HAADF, registered to the EDS maps), and applied to every
channel by :func:`apply_alignment`, so HAADF and EDS stay registered.

The transform of each image: rotate the content by ``rotation_deg``
(counter-clockwise as displayed, rows downwards, about the image centre) so
that the tilt axis becomes vertical, then shift it by ``shifts_px[i] +
(0, axis_offset_px)`` (``(dy, dx)`` applied to the content, see
:mod:`chemtomo.preprocess.register`). One interpolation (linear) does both.

Estimators:

- :func:`estimate_shifts`: ``"xcorr"`` cross-correlation of each tilt with
  its neighbour towards 0 degrees (optionally the higher tilt cosine-stretched
  across the axis first: a feature of a slab at distance u from the axis
  projects to u cos(theta)), accumulated outward from the tilt nearest 0
  degrees, the shifts along the axis then refined against the reference
  tilt's profile when the specimen is wholly in the field; or
  ``"com"``, each image's centre of mass to the image centre (right for an
  isolated particle wholly in the field of view, the classic method). The
  cosine stretch suits a slab (a lamella, a thin film); a compact particle's
  projection does not stretch with tilt, so it is off by default.
- :func:`estimate_tilt_axis_rotation`: the rotation that makes the local
  motion of the specimen between tilts (patch cross-correlation) purely
  across the axis; or the one for which every tilt's profile along the axis
  (the image summed across it) is the same, as it must be for a parallel
  projection of a specimen wholly in the field of view.
- :func:`estimate_tilt_axis_offset`: the common shift across the axis that
  best predicts held-out tilts from a SIRT reconstruction of the others
  (cross-validation on a few band-summed slices), refined to sub-pixel.

The module holds the shift estimation, :func:`align_tilt_series` (the whole
estimate) and the comparison with tomviz; the alignment record and its
application live in :mod:`chemtomo.preprocess.transform`, the tilt-axis
estimators in :mod:`chemtomo.preprocess.tilt_axis` (both re-exported here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from ._signals import unwrap
from .register import centre_of_mass, estimate_shift
from .tilt_axis import ROTATION_METHODS, RotationMethod, estimate_tilt_axis_offset, estimate_tilt_axis_rotation
from .transform import Alignment, apply_alignment, transform_image

ShiftMethod = Literal["xcorr", "com"]
SHIFT_METHODS = ("xcorr", "com")


# --------------------------------------------------------------------------- shifts

def reference_tilt(angles_deg) -> int:
    """Index of the tilt nearest 0 degrees."""
    return int(np.argmin(np.abs(np.asarray(angles_deg, dtype=float))))


def _stretch_x(image: np.ndarray, factor: float) -> np.ndarray:
    """Stretch across the axis (x) by ``factor`` about the centre column."""
    if factor == 1:
        return np.asarray(image, dtype=np.float64)
    c = (image.shape[1] - 1) / 2
    return ndimage.affine_transform(np.asarray(image, dtype=np.float64), np.array([1.0, 1.0 / factor]),
                                    offset=(0.0, c - c / factor), order=1, mode="nearest")


#: Mean of the two outer columns relative to the image mean above which a specimen runs out of the field.
EDGE_SIGNAL_FRACTION = 0.2


def runs_out_of_field(stack) -> bool:
    """True when the specimen reaches the image edges across the tilt axis (a slab, a lamella).

    The two outer columns on each side, averaged over every image, hold more
    than :data:`EDGE_SIGNAL_FRACTION` of the mean signal; an isolated particle
    in vacuum leaves them near 0.
    """
    st = np.asarray(unwrap(stack, "tilt series")[0], dtype=np.float64)
    edge = 0.5 * (st[..., :2].mean() + st[..., -2:].mean())
    return bool(edge > EDGE_SIGNAL_FRACTION * max(st.mean(), 1e-30))


def estimate_shifts(stack, angles_deg, method: ShiftMethod = "xcorr", *, reference_index: int | None = None,
                    stretch: bool = False, profile_y: bool | str = "auto", smooth_px: float = 1.0,
                    max_shift_px: float | None = None, upsample: int = 20) -> np.ndarray:
    """Shifts ``(n_tilts, 2)`` ``(dy, dx)`` that align a tilt series (pixels, applied to the content).

    Parameters
    ----------
    stack : ndarray or Signal2D (n_tilts, ny, nx)
        Tilt axis vertical (rows = slices).
    angles_deg : array_like (n_tilts,)
    method : {"xcorr", "com"}
        See the module docstring.
    reference_index : int, optional
        Tilt whose shift is 0 (xcorr); default the tilt nearest 0 degrees.
    stretch : bool
        Cosine-stretch the higher tilt of each pair across the axis (xcorr;
        for slabs such as FIB lamellae).
    profile_y : bool or "auto"
        Refine the shifts along the axis (xcorr) by matching each tilt's
        profile along the axis to the reference tilt's: the profile is
        tilt-invariant for a specimen wholly in the field, and matching to
        one reference does not accumulate the neighbour-to-neighbour errors.
        ``"auto"``: only when the specimen does not run out of the field
        (:func:`runs_out_of_field`); a slab wider than the field shows
        different material at each tilt and its profile changes.
    smooth_px, max_shift_px : see :func:`chemtomo.preprocess.register.estimate_shift`
        (``max_shift_px`` between neighbouring tilts).
    upsample : int
        Sub-pixel factor of the profile matching along the axis.
    """
    data, _ = unwrap(stack, "tilt series")
    ang = np.asarray(angles_deg, dtype=np.float64).ravel()
    n = data.shape[0]
    if ang.size != n:
        raise ValueError(f"{n} images but {ang.size} tilt angles")
    if method == "com":
        centre = (np.asarray(data.shape[1:], dtype=float) - 1) / 2
        return np.array([centre - np.asarray(centre_of_mass(data[i])) for i in range(n)])
    if method != "xcorr":
        raise ValueError(f"method must be one of {SHIFT_METHODS}, got {method!r}")
    ref = reference_tilt(ang) if reference_index is None else int(reference_index)
    if not 0 <= ref < n:
        raise ValueError(f"reference_index {ref} outside 0..{n - 1}")
    cos = np.cos(np.deg2rad(ang))
    shifts = np.zeros((n, 2))
    for order in (range(ref + 1, n), range(ref - 1, -1, -1)):
        for j in order:
            i = j - 1 if j > ref else j + 1
            k = cos[i] / cos[j] if stretch else 1.0
            s = estimate_shift(_stretch_x(data[j], k), data[i], "xcorr", smooth_px=smooth_px,
                               max_shift_px=max_shift_px)
            shifts[j, 0] = s[0] + shifts[i, 0]
            shifts[j, 1] = (s[1] + shifts[i, 1]) / k
    if profile_y == "auto":
        profile_y = not runs_out_of_field(data)
    if profile_y:
        shifts[:, 0] += _profile_dy(data, shifts, ref, smooth_px, upsample)
    return shifts


def _profile_dy(data: np.ndarray, shifts: np.ndarray, ref: int, smooth_px: float, upsample: int) -> np.ndarray:
    """Residual shifts along the axis from each image's profile along it (summed across), against the reference's.

    The profile along the tilt axis does not change with tilt (a parallel projection about that axis), so
    each tilt is matched to the reference directly and neighbour-to-neighbour errors do not accumulate.
    """
    from skimage.registration import phase_cross_correlation

    n, ny, nx = data.shape
    margin = int(np.ceil(np.max(np.abs(shifts[:, 1])))) + 1
    margin = min(margin, nx // 4)

    def profile(i):
        im = transform_image(data[i], 0.0, shifts[i])
        p = im[:, margin: nx - margin].sum(axis=1)
        p = ndimage.gaussian_filter1d(p, smooth_px) if smooth_px else p
        p = (p - p.mean()) / max(p.std(), 1e-12)
        return p * np.hanning(ny) ** 0.5

    p0 = profile(ref)
    out = np.zeros(n)
    for i in range(n):
        if i != ref:
            out[i] = phase_cross_correlation(p0, profile(i), upsample_factor=int(upsample), normalization=None)[0][0]
    return out


# --------------------------------------------------------------------------- the whole estimate

def align_tilt_series(stack, angles_deg, *, method: ShiftMethod = "xcorr", rotation: bool = True,
                      rotation_method: RotationMethod = "auto",
                      offset: bool = True, search_rotation_deg: float = 5.0, search_offset_px: float | None = None,
                      offset_bin: int = 1, pixel_nm: float | None = None, stretch: bool = False,
                      progress: bool = False) -> Alignment:
    """Estimate the alignment of a tilt series (shifts, tilt-axis rotation and offset).

    Steps: shifts (``method``); the tilt-axis rotation on the shifted images;
    the shifts again on the rotated images; the tilt-axis offset on the
    aligned images (binned by ``offset_bin`` for speed).

    Parameters
    ----------
    stack : ndarray or Signal2D (n_tilts, ny, nx)
        The channel to align on (the HAADF, registered to the EDS maps).
    angles_deg : array_like
    method : {"xcorr", "com"}
    rotation, offset : bool
        Estimate the tilt-axis rotation / offset (else 0).
    rotation_method : {"auto", "patches", "profiles"}
        See :func:`estimate_tilt_axis_rotation`.
    search_rotation_deg, search_offset_px : float
    offset_bin : int
        Bin the images by this factor for the offset search (result in full pixels).
    pixel_nm : float, optional
        Recorded in the alignment.
    stretch : bool
        Cosine stretch in the cross-correlation (slabs).
    progress : bool

    Returns
    -------
    Alignment
    """
    data, _ = unwrap(stack, "tilt series")
    ang = np.asarray(angles_deg, dtype=float).ravel()
    diag: dict = {}
    shifts = estimate_shifts(data, ang, method, stretch=stretch)
    rot = 0.0
    if rotation:
        rot, diag["rotation"] = estimate_tilt_axis_rotation(data, ang, shifts, method=rotation_method,
                                                            search_deg=search_rotation_deg)
        if abs(rot) > 1e-6:
            rotated = np.stack([transform_image(im, rot) for im in data])
            shifts = estimate_shifts(rotated, ang, method, stretch=stretch)
    al = Alignment(ang, shifts, rot, 0.0, reference_tilt(ang), data.shape[1:], pixel_nm, method, diag)
    if offset:
        from .linemaps import rebin

        aligned = apply_alignment(data, al)
        b = max(1, int(offset_bin))
        small = rebin(aligned, b) if b > 1 else aligned
        sp = None if search_offset_px is None else search_offset_px / b
        off, diag["offset"] = estimate_tilt_axis_offset(small, ang, search_px=sp, progress=progress)
        diag["offset"]["bin"] = b
        if diag["offset"]["identifiable"]:
            al.axis_offset_px = off * b
        else:
            diag["offset"]["note"] = ("the prediction error is flat over the search range: the offset is not "
                                      "identifiable from these data and is left at 0")
    return al


# --------------------------------------------------------------------------- comparison

def tomviz_shifts(path, angles_deg) -> np.ndarray:
    """Shifts from a tomviz alignment file, as ``(dy, dx)`` in chemtomo's convention.

    tomviz stores one ``[x, y]`` pixel shift per tilt (applied to the image;
    its y axis points up, so ``dy = -y``). ``angles_deg`` are the angles of the
    series the file was made for (the file holds no angles).
    """
    tv = np.asarray(json.loads(Path(path).read_text()), dtype=float)
    a = np.asarray(angles_deg, dtype=float).ravel()
    if tv.ndim != 2 or tv.shape[1] != 2:
        raise ValueError(f"{path}: expected a list of [x, y] shifts, got shape {tv.shape}")
    if tv.shape[0] != a.size:
        raise ValueError(f"{path} holds {tv.shape[0]} shifts but {a.size} angles were given")
    return np.stack([-tv[:, 1], tv[:, 0]], axis=1)


def compare_shifts(ours, theirs, reference_index: int) -> dict:
    """Per-tilt difference of two shift sets after making both 0 at ``reference_index``.

    Returns ``{"difference_px": (n, 2), "distance_px": (n,), "rms_px": float, "max_px": float}``.
    """
    a = np.asarray(ours, dtype=float)
    b = np.asarray(theirs, dtype=float)
    d = (a - a[reference_index]) - (b - b[reference_index])
    dist = np.hypot(d[:, 0], d[:, 1])
    return {"difference_px": d, "distance_px": dist, "rms_px": float(np.sqrt(np.mean(dist**2))),
            "max_px": float(dist.max())}



def compare_with_tomviz(alignment: Alignment, path, tomviz_angles_deg) -> dict:
    """Our shifts against a tomviz alignment file, per tilt (pixels), both 0 at the tilt nearest 0 degrees.

    The tomviz file may cover more tilts than the series (``tomviz_angles_deg``
    names them all); only the tilts of the series are compared.

    Parameters
    ----------
    alignment : Alignment
        Ours (raw pixels).
    path : path
        A tomviz alignment JSON (one ``[x, y]`` per tilt, :func:`tomviz_shifts`).
    tomviz_angles_deg : array_like
        The angles (degrees) of every entry of the file.

    Returns
    -------
    dict
        ``angles_deg``, ``ours_px``, ``tomviz_px``, ``difference_px``,
        ``distance_px`` (per tilt), ``rms_px``, ``max_px``, ``file``, ``convention``.

    Raises
    ------
    ValueError
        A tilt of the series that the file's angles do not list.
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


__all__ = [
    "Alignment", "ROTATION_METHODS", "SHIFT_METHODS", "align_tilt_series", "apply_alignment", "compare_shifts",
    "compare_with_tomviz",
    "estimate_shifts", "estimate_tilt_axis_offset", "estimate_tilt_axis_rotation", "reference_tilt",
    "runs_out_of_field", "tomviz_shifts", "transform_image",
]
