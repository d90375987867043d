"""Sparse EDS tilts placed on a densely aligned HAADF series (a HAADF at tilts of its own).

When the HAADF is recorded at many tilts and the EDS at a few
(:class:`~chemtomo.tiltseries.TiltSeries` with ``haadf_angles_deg``), the HAADF
series is aligned on its own (:func:`~chemtomo.preprocess.align.align_tilt_series`
over its own angles: the cross-correlation chain of neighbouring tilts needs the
dense set) and each EDS tilt is then placed on that alignment
(:func:`place_eds_tilts`):

- at a tilt both modalities share (:func:`~chemtomo.geometry.match_tilts`, within
  :data:`~chemtomo.geometry.SHARED_TILT_TOL_DEG`) the EDS map was scanned with
  that HAADF image: the EDS total (the sum of the lines) is registered to the raw
  HAADF image of that tilt (as :func:`~chemtomo.preprocess.register.register_haadf_to_eds`
  registers them at a shared tilt, square-root whitened cross-correlation or centres
  of mass) and then takes that image's transform: shift ``s_j + R r`` for the
  HAADF's shift ``s_j``, the rotation ``R`` and the registration ``r``, one
  interpolation;
- at an EDS tilt with no HAADF image, the EDS total (rotated like the HAADF) is
  registered to the *reprojection* of the aligned HAADF at that tilt: the
  projection, at the EDS angle, of a SIRT reconstruction of the aligned HAADF
  (:func:`reproject`). The reprojection shows the specimen at exactly that tilt,
  where the nearest HAADF image shows it a few degrees away (features at a
  distance ``z`` from the axis moved by ``z sin(d theta)``), and is in the aligned
  frame, tilt-axis offset included.
"""

from __future__ import annotations

import numpy as np

from ..geometry import SHARED_TILT_TOL_DEG, match_tilts
from .transform import Alignment, apply_alignment, transform_image

#: SIRT iterations of the reconstruction whose reprojections place the EDS tilts without a HAADF image.
PLACEMENT_SIRT_ITER = 30
PLACEMENT_METHODS = ("xcorr", "com", "none")


def rotate_shift(shift, rotation_deg: float) -> np.ndarray:
    """A displacement ``(dy, dx)`` rotated as :func:`~chemtomo.preprocess.transform_image` rotates the content.

    Parameters
    ----------
    shift : array_like (2,)
        ``(dy, dx)`` in pixels.
    rotation_deg : float
        Content rotation (counter-clockwise as displayed, rows downwards).

    Returns
    -------
    ndarray (2,)
        ``R shift``: shifting an image by ``shift`` and then rotating it by
        ``rotation_deg`` about its centre is rotating it, then shifting by this.
    """
    t = np.deg2rad(float(rotation_deg))
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return r @ np.asarray(shift, dtype=np.float64)


def reproject(aligned, angles_deg, to_angles_deg, *, n_iter: int = PLACEMENT_SIRT_ITER,
              bin_factor: int = 1) -> np.ndarray:
    """Projections at ``to_angles_deg`` of a SIRT reconstruction of an aligned tilt series.

    Parameters
    ----------
    aligned : ndarray (n_tilts, ny, nx)
        Aligned images (tilt axis vertical, on the centre column).
    angles_deg : array_like (n_tilts,)
        Their tilt angles (degrees).
    to_angles_deg : array_like (m,)
        The tilts to project at (degrees).
    n_iter : int
        SIRT iterations (non-negative).
    bin_factor : int
        Reconstruct from the images binned by this factor (sum) for speed.

    Returns
    -------
    ndarray (m, ny // bin_factor, nx // bin_factor)
        On the binned grid, in the images' units (sum-binned).
    """
    from ..geometry import TiltGeometry, columns_to_sinogram, sinogram_to_columns
    from ..projector import make_operator
    from ..reconstruct.sirt import sirt, sirt_weights
    from .linemaps import rebin

    data = np.asarray(aligned, dtype=np.float64)
    b = max(1, int(bin_factor))
    if b > 1:
        data = np.asarray(rebin(data, b), dtype=np.float64)
    ang = np.asarray(angles_deg, dtype=np.float64).ravel()
    to = np.asarray(to_angles_deg, dtype=np.float64).ravel()
    nx = data.shape[2]
    w = make_operator(TiltGeometry(ang, nx, 1.0))
    res = sirt(w, sinogram_to_columns(data), int(n_iter), weights=sirt_weights(w))
    w_to = make_operator(TiltGeometry(to, nx, 1.0))
    return columns_to_sinogram(w_to.forward(res.x), to.size, nx)


def place_eds_tilts(eds_total, eds_angles_deg, haadf, haadf_alignment: Alignment, *, method: str = "xcorr",
                    tol_deg: float = SHARED_TILT_TOL_DEG, smooth_px: float = 1.5, search_px: float | None = None,
                    n_iter: int = PLACEMENT_SIRT_ITER, bin_factor: int = 1) -> Alignment:
    """The alignment of the EDS tilts on a HAADF series aligned at tilts of its own (module docstring).

    Parameters
    ----------
    eds_total : ndarray (n_eds, ny, nx)
        The sum of the EDS line maps (raw grid, counts).
    eds_angles_deg : array_like (n_eds,)
        The EDS tilt angles (degrees).
    haadf : ndarray (n_haadf, ny, nx)
        The raw HAADF images (not aligned), at ``haadf_alignment.angles_deg``.
    haadf_alignment : Alignment
        The HAADF's alignment (raw pixels).
    method : {"xcorr", "com", "none"}
        Registration of the EDS total to the HAADF image at a shared tilt
        (square-root whitened cross-correlation, centres of mass, or none: the two
        are already registered). At a tilt with no HAADF image the EDS total is
        registered to the HAADF's reprojection by centres of mass for ``"com"``,
        else by cross-correlation (it must be placed somehow).
    tol_deg : float
        Largest angle difference of one shared tilt (degrees).
    smooth_px : float
        Gaussian smoothing (raw pixels) before cross-correlation (noisy EDS maps).
    search_px : float, optional
        Largest registration shift at a shared tilt (default 10% of the image, as
        :func:`~chemtomo.preprocess.register.register_haadf_to_eds`); at the other
        tilts a quarter of the image.
    n_iter : int
        SIRT iterations of the reprojection (:func:`reproject`).
    bin_factor : int
        Binning of the reprojection and of its registration (shifts returned in raw pixels).

    Returns
    -------
    Alignment
        For the EDS tilts, raw pixels: ``rotation_deg`` and ``axis_offset_px`` the
        HAADF's, ``shifts_px`` per EDS tilt; ``diagnostics["placement"]`` holds,
        per EDS tilt, the HAADF index it shares (-1: none), what it was registered
        to (``"haadf_image"`` or ``"reprojection"``) and the registration shift.

    Raises
    ------
    ValueError
        An unknown method, stacks of other shapes than the alignment's, or angle
        counts that do not match the stacks.
    """
    from .align import reference_tilt
    from .linemaps import rebin
    from .register import estimate_shift

    if method not in PLACEMENT_METHODS:
        raise ValueError(f"method must be one of {PLACEMENT_METHODS}, got {method!r}")
    e = np.asarray(eds_total, dtype=np.float64)
    h = np.asarray(haadf, dtype=np.float64)
    ang = np.asarray(eds_angles_deg, dtype=np.float64).ravel()
    al = haadf_alignment
    if e.ndim != 3 or e.shape[0] != ang.size:
        raise ValueError(f"the EDS total is {e.shape} for {ang.size} EDS tilt angles: give (n_eds, ny, nx)")
    if h.ndim != 3 or h.shape[0] != al.angles_deg.size:
        raise ValueError(f"the HAADF stack is {h.shape} for an alignment of {al.angles_deg.size} tilts")
    if h.shape[1:] != e.shape[1:]:
        raise ValueError(f"the HAADF images are {h.shape[1:]} pixels and the EDS maps {e.shape[1:]}: "
                         "put them on one grid first")
    ie, ih = match_tilts(ang, al.angles_deg, tol_deg)
    shared = dict(zip(ie.tolist(), ih.tolist(), strict=True))
    rot = float(al.rotation_deg)
    off = np.array([0.0, float(al.axis_offset_px)])
    search = 0.1 * max(e.shape[1:]) if search_px is None else float(search_px)
    shifts = np.zeros((ang.size, 2))
    reg = np.zeros((ang.size, 2))
    ref_kind = []
    for i, j in shared.items():
        r = np.zeros(2) if method == "none" else estimate_shift(e[i], h[j], method, smooth_px=smooth_px,
                                                                max_shift_px=search, normalization="sqrt")
        reg[i] = r
        shifts[i] = al.shifts_px[j] + rotate_shift(r, rot)
    alone = [i for i in range(ang.size) if i not in shared]
    b = max(1, int(bin_factor))
    if alone:
        proj = reproject(apply_alignment(h, al), al.angles_deg, ang[alone], n_iter=n_iter, bin_factor=b)
        reg_method = "com" if method == "com" else "xcorr"
        for k, i in enumerate(alone):
            moving = transform_image(e[i], rot)
            if b > 1:
                moving = rebin(moving[None], b)[0]
            s = estimate_shift(moving, proj[k], reg_method, smooth_px=smooth_px / b,
                               normalization="sqrt") * b
            reg[i] = s
            shifts[i] = s - off  # the reprojection is in the aligned frame: the axis offset is in s
    for i in range(ang.size):
        ref_kind.append("haadf_image" if i in shared else "reprojection")
    diag = {"placement": {"haadf_index": [shared.get(i, -1) for i in range(ang.size)], "reference": ref_kind,
                          "registration_px": reg.tolist(), "method": method, "tol_deg": float(tol_deg),
                          "reprojection_sirt_iter": int(n_iter) if alone else 0, "reprojection_bin": b}}
    return Alignment(ang, shifts, rot, float(al.axis_offset_px), reference_tilt(ang), e.shape[1:], al.pixel_nm,
                     f"{al.method} (EDS placed on the HAADF)", diag)


__all__ = ["PLACEMENT_METHODS", "PLACEMENT_SIRT_ITER", "place_eds_tilts", "reproject", "rotate_shift"]
