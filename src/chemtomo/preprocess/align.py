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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from ._signals import unwrap
from .register import centre_of_mass, estimate_shift

ShiftMethod = Literal["xcorr", "com"]
SHIFT_METHODS = ("xcorr", "com")


@dataclass
class Alignment:
    """One alignment of a tilt series, for every channel.

    Attributes
    ----------
    angles_deg : ndarray (n_tilts,)
    shifts_px : ndarray (n_tilts, 2)
        ``(dy, dx)`` applied to each image after the rotation (pixels).
    rotation_deg : float
        Rotation of the image content (counter-clockwise as displayed) that
        makes the tilt axis vertical.
    axis_offset_px : float
        Shift across the axis (x) common to all tilts that puts the tilt axis
        on the image's centre column.
    reference_index : int
        The tilt the shifts are relative to (shift 0 before the axis offset).
    image_shape : (ny, nx)
        Image size the pixels refer to.
    pixel_nm : float or None
    method : str
    diagnostics : dict
        Costs and search grids of the estimators (JSON-friendly).
    """

    angles_deg: np.ndarray
    shifts_px: np.ndarray
    rotation_deg: float = 0.0
    axis_offset_px: float = 0.0
    reference_index: int = 0
    image_shape: tuple[int, int] = (0, 0)
    pixel_nm: float | None = None
    method: str = ""
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.shifts_px = np.asarray(self.shifts_px, dtype=np.float64).reshape(-1, 2)
        if self.shifts_px.shape[0] != self.angles_deg.size:
            raise ValueError(f"{self.shifts_px.shape[0]} shifts for {self.angles_deg.size} tilt angles")
        self.image_shape = tuple(int(v) for v in self.image_shape)

    @classmethod
    def identity(cls, angles_deg, image_shape, pixel_nm=None) -> "Alignment":
        a = np.asarray(angles_deg, dtype=float)
        return cls(a, np.zeros((a.size, 2)), 0.0, 0.0, int(np.argmin(np.abs(a))), image_shape, pixel_nm, "none")

    @property
    def total_shifts_px(self) -> np.ndarray:
        """``shifts_px`` with the axis offset added to dx: what is applied to each image."""
        return self.shifts_px + np.array([0.0, self.axis_offset_px])

    def binned(self, factor: int) -> "Alignment":
        """The same alignment in pixels of a stack binned by ``factor``."""
        f = int(factor)
        ny, nx = self.image_shape
        return replace(self, shifts_px=self.shifts_px / f, axis_offset_px=self.axis_offset_px / f,
                       image_shape=(ny // f, nx // f),
                       pixel_nm=None if self.pixel_nm is None else self.pixel_nm * f)

    def as_dict(self) -> dict:
        return {
            "angles_deg": self.angles_deg.tolist(), "shifts_px": self.shifts_px.tolist(),
            "total_shifts_px": self.total_shifts_px.tolist(), "rotation_deg": float(self.rotation_deg),
            "axis_offset_px": float(self.axis_offset_px), "reference_index": int(self.reference_index),
            "image_shape": list(self.image_shape), "pixel_nm": self.pixel_nm, "method": self.method,
            "convention": "shifts (dy, dx) in pixels applied to the image content after rotating it by "
                          "rotation_deg (counter-clockwise as displayed) about the image centre; y along the "
                          "tilt axis (rows), x across it",
            "diagnostics": self.diagnostics,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Alignment":
        return cls(d["angles_deg"], d["shifts_px"], d.get("rotation_deg", 0.0), d.get("axis_offset_px", 0.0),
                   d.get("reference_index", 0), tuple(d.get("image_shape", (0, 0))), d.get("pixel_nm"),
                   d.get("method", ""), d.get("diagnostics", {}))

    def save(self, path) -> Path:
        """Write as JSON (atomically)."""
        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.as_dict(), indent=1, default=_json_default))
        return path

    @classmethod
    def load(cls, path) -> "Alignment":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


# --------------------------------------------------------------------------- applying

def _affine(shape, rotation_deg: float, shift) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) for ndimage.affine_transform: rotate content about the centre, then shift."""
    c = (np.asarray(shape, dtype=float) - 1) / 2
    t = np.deg2rad(rotation_deg)
    rinv = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # inverse of a CCW content rotation
    offset = c - rinv @ (c + np.asarray(shift, dtype=float))
    return rinv, offset


def transform_image(image: np.ndarray, rotation_deg: float = 0.0, shift=(0.0, 0.0), *, order: int = 1,
                    mode: str = "nearest") -> np.ndarray:
    """One image rotated by ``rotation_deg`` about its centre, then shifted by ``shift`` (dy, dx)."""
    im = np.asarray(image, dtype=np.float64)
    if rotation_deg == 0:
        if np.allclose(shift, 0):
            return im.copy()
        return ndimage.shift(im, shift, order=order, mode=mode)
    m, off = _affine(im.shape, rotation_deg, shift)
    return ndimage.affine_transform(im, m, offset=off, order=order, mode=mode)


def apply_alignment(stacks, alignment: Alignment, *, order: int = 1, mode: str = "nearest"):
    """Apply one alignment to a stack or to every stack of a dict (HAADF and each EDS line).

    Parameters
    ----------
    stacks : ndarray / Signal2D (n_tilts, ny, nx), or dict name -> such
    alignment : Alignment
        In the pixels of ``stacks`` (see :meth:`Alignment.binned`).
    order : int
        Interpolation order; 1 (linear) keeps counts non-negative.
    mode : str
        Fill beyond the field (``"nearest"`` repeats the edge).

    Returns
    -------
    The same kind as ``stacks``.
    """
    if isinstance(stacks, dict):
        return {k: apply_alignment(v, alignment, order=order, mode=mode) for k, v in stacks.items()}
    data, rewrap = unwrap(stacks, "stack to align")
    if data.shape[0] != alignment.angles_deg.size:
        raise ValueError(f"the stack has {data.shape[0]} images, the alignment {alignment.angles_deg.size}")
    if alignment.image_shape not in ((0, 0), tuple(data.shape[1:])):
        raise ValueError(
            f"the alignment is for {alignment.image_shape} images but the stack holds {data.shape[1:]}; "
            "use Alignment.binned(factor) for binned stacks"
        )
    shifts = alignment.total_shifts_px
    out = np.empty(data.shape, dtype=np.float32)
    for i in range(data.shape[0]):
        out[i] = transform_image(data[i], alignment.rotation_deg, shifts[i], order=order, mode=mode)
    return rewrap(out)


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


# --------------------------------------------------------------------------- tilt-axis rotation

def _profiles(data: np.ndarray, rotation_deg: float, shifts: np.ndarray, margin: int) -> np.ndarray:
    rows = []
    for i in range(data.shape[0]):
        im = transform_image(data[i], rotation_deg, shifts[i])
        p = im[margin: im.shape[0] - margin, margin: im.shape[1] - margin].sum(axis=1)
        rows.append(p / max(p.mean(), 1e-12))
    return np.array(rows)


RotationMethod = Literal["auto", "patches", "profiles"]
ROTATION_METHODS = ("auto", "patches", "profiles")
#: Smallest image side (pixels) for which ``method="auto"`` uses patches.
MIN_SIDE_FOR_PATCHES = 128


def _patch_motions(data: np.ndarray, gaps, patch_px: int, smooth_px: float = 1.0) -> np.ndarray:
    """Local displacements ``(dy, dx, gap)`` of patches between tilts ``i`` and ``i + gap``."""
    from skimage.registration import phase_cross_correlation

    n, ny, nx = data.shape
    P = int(patch_px)
    step = max(P // 2, 1)
    margin = max(ny, nx) // 16
    win = np.sqrt(np.hanning(P)[:, None] * np.hanning(P)[None, :])
    scale = float(np.std(data))

    def prep(p):
        p = ndimage.gaussian_filter(p, smooth_px) if smooth_px else p
        return (p - p.mean()) * win

    out = []
    for gap in gaps:
        for i in range(n - gap):
            a_im, b_im = data[i], data[i + gap]
            for y in range(margin, ny - P - margin + 1, step):
                for x in range(margin, nx - P - margin + 1, step):
                    a = np.asarray(a_im[y:y + P, x:x + P], dtype=np.float64)
                    b = np.asarray(b_im[y:y + P, x:x + P], dtype=np.float64)
                    if a.std() < 0.05 * scale or b.std() < 0.05 * scale:
                        continue  # featureless patch (vacuum, saturated)
                    sh, _, _ = phase_cross_correlation(prep(a), prep(b), upsample_factor=10, normalization=None)
                    if np.hypot(*sh) < P / 4:
                        out.append((sh[0], sh[1], gap))
    return np.array(out).reshape(-1, 3)


def _slope_through_origin(dy: np.ndarray, dx: np.ndarray) -> float:
    """Robust ``t`` of ``dy = t dx``: least squares, then again without > 3-sigma (MAD) outliers."""
    t = float(np.sum(dy * dx) / max(np.sum(dx * dx), 1e-12))
    for _ in range(3):
        r = dy - t * dx
        s = 1.4826 * np.median(np.abs(r - np.median(r))) + 1e-9
        ok = np.abs(r) <= 3 * s
        if ok.sum() < 3:
            break
        t = float(np.sum(dy[ok] * dx[ok]) / max(np.sum(dx[ok] ** 2), 1e-12))
    return t


def estimate_tilt_axis_rotation(stack, angles_deg, shifts=None, *, method: RotationMethod = "auto",
                                search_deg: float = 5.0, step_deg: float = 0.25, patch_px: int | None = None,
                                gaps=(2, 3, 4)) -> tuple[float, dict]:
    """The content rotation (degrees) that makes the tilt axis vertical.

    Parameters
    ----------
    stack : ndarray or Signal2D (n_tilts, ny, nx)
    angles_deg : array_like
    shifts : ndarray (n_tilts, 2), optional
        Shifts aligning the stack (applied first).
    method : {"auto", "patches", "profiles"}
        ``"auto"`` (default): patches for images of at least
        :data:`MIN_SIDE_FOR_PATCHES` pixels a side, else profiles.
        ``"patches"``: a specimen turning about the axis moves every
        feature across the axis only; local displacements of patches between
        tilts ``gaps`` apart (phase correlation) give the direction of that
        motion, ``rotation = atan(sum dy dx / sum dx^2)`` (robust fit through
        the origin). Works when the specimen fills the field of view.
        ``"profiles"``: every tilt's profile along the axis (the image summed
        across it) must be the same; the rotation minimising their spread on
        a grid (``+-search_deg`` by ``step_deg``) wins. Needs the specimen
        wholly inside the field of view.
    patch_px : int, optional
        Patch size (default a quarter of the image).
    gaps : tuple of int
        Tilt-index separations of the patch pairs.

    Returns
    -------
    rotation_deg : float
    diagnostics : dict
    """
    data, _ = unwrap(stack, "tilt series")
    n = data.shape[0]
    shifts = np.zeros((n, 2)) if shifts is None else np.asarray(shifts, dtype=float)
    if method == "auto":
        method = "patches" if min(data.shape[1:]) >= MIN_SIDE_FOR_PATCHES else "profiles"
    if method == "patches":
        aligned = np.stack([transform_image(data[i], 0.0, shifts[i]) for i in range(n)])
        P = int(patch_px or max(16, min(data.shape[1:]) // 4))
        gaps = tuple(g for g in gaps if 0 < g < n) or (1,)
        v = _patch_motions(aligned, gaps, P)
        if v.shape[0] < 8:
            raise ValueError(f"only {v.shape[0]} patches with features to estimate the tilt-axis rotation; "
                             "give the rotation or use method='profiles'")
        t = _slope_through_origin(v[:, 0], v[:, 1])
        per_gap = {int(g): float(np.degrees(np.arctan(_slope_through_origin(v[v[:, 2] == g, 0],
                                                                          v[v[:, 2] == g, 1]))))
                   for g in gaps if np.sum(v[:, 2] == g) >= 3}
        rot = float(np.degrees(np.arctan(t)))
        if abs(rot) > search_deg:
            raise ValueError(f"estimated tilt-axis rotation {rot:.1f} deg exceeds the search limit "
                             f"{search_deg} deg; rotate the images roughly first or raise the limit")
        return rot, {"method": "patches", "n_patches": int(v.shape[0]), "patch_px": P,
                     "per_gap_deg": per_gap, "mean_abs_dx_px": float(np.abs(v[:, 1]).mean())}
    if method != "profiles":
        raise ValueError(f"method must be one of {ROTATION_METHODS}, got {method!r}")
    if not (search_deg > 0 and step_deg > 0):
        raise ValueError("search_deg and step_deg must be positive")
    margin = int(np.ceil(0.5 * max(data.shape[1:]) * np.sin(np.deg2rad(search_deg)))) + 2
    margin = max(margin, int(np.max(np.abs(shifts))) + 2)
    if 2 * margin >= min(data.shape[1:]) - 4:
        raise ValueError(f"images of {data.shape[1:]} are too small to search +-{search_deg} degrees")
    grid = np.arange(-search_deg, search_deg + step_deg / 2, step_deg)
    cost = np.array([_profiles(data, g, shifts, margin).var(axis=0).mean() for g in grid])
    best = _parabola_min(grid, cost)
    return best, {"method": "profiles", "grid_deg": grid.tolist(), "cost": cost.tolist()}


def _parabola_min(grid: np.ndarray, cost: np.ndarray) -> float:
    i = int(np.argmin(cost))
    if 0 < i < len(grid) - 1:
        y0, y1, y2 = cost[i - 1: i + 2]
        den = y0 - 2 * y1 + y2
        if den > 0:
            return float(grid[i] + 0.5 * (y0 - y2) / den * (grid[1] - grid[0]))
    return float(grid[i])


# --------------------------------------------------------------------------- tilt-axis offset

def _bands(data: np.ndarray, n_bands: int) -> np.ndarray:
    """Band-summed sinograms ``(n_tilts, n_bands, nx)``: each band's sum is itself a sinogram."""
    ny = data.shape[1]
    n_bands = max(1, min(int(n_bands), ny))
    edges = np.linspace(0, ny, n_bands + 1).astype(int)
    return np.stack([data[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def estimate_tilt_axis_offset(stack, angles_deg, *, search_px: float | None = None, step_px: float = 1.0,
                              n_bands: int = 8, folds: int = 4, n_iter: int = 30, backend: str | None = None,
                              min_rise: float = 0.1, progress: bool = False) -> tuple[float, dict]:
    """Shift across the axis (pixels, common to all tilts) that puts the tilt axis on the centre column.

    For each candidate shift, a SIRT reconstruction from the tilts of
    ``folds - 1`` interleaved folds predicts the held-out fold's images; the
    candidate with the smallest prediction error (summed over folds, on
    ``n_bands`` band-summed slices, columns within ``search_px`` of the edges
    excluded) wins; a parabola through the best three refines it.

    The offset is *identifiable* when the best candidate is inside the
    search range and the error rises by at least ``min_rise`` (relative) at
    both ends of it; a flat curve (a specimen wider than the field of view,
    few tilts) is reported in ``diagnostics["identifiable"]`` and
    :func:`align_tilt_series` then keeps the offset at 0.

    Parameters
    ----------
    stack : ndarray or Signal2D (n_tilts, ny, nx)
        Shift- and rotation-aligned, tilt axis vertical.
    angles_deg : array_like
    search_px : float, optional
        Half-width of the search (default 10% of nx).
    step_px : float
    n_bands, folds, n_iter : int
    min_rise : float
        Relative rise of the error at the search edges that makes the offset identifiable.
    backend : str, optional
        Operator backend (default: that of :func:`chemtomo.projector.make_operator`).
    progress : bool

    Returns
    -------
    offset_px : float
    diagnostics : dict
    """
    from ..geometry import TiltGeometry, sinogram_to_columns
    from ..projector import make_operator
    from ..reconstruct.sirt import sirt, sirt_weights

    data, _ = unwrap(stack, "tilt series")
    ang = np.asarray(angles_deg, dtype=float).ravel()
    n, ny, nx = data.shape
    if n < 4:
        raise ValueError(f"the tilt-axis offset needs at least 4 tilts, got {n}")
    folds = int(min(max(2, folds), n))
    search_px = 0.1 * nx if search_px is None else float(search_px)
    grid = np.arange(-search_px, search_px + step_px / 2, step_px)
    sino = _bands(np.asarray(data, dtype=np.float64), n_bands)  # (n, b, nx)
    keep = slice(int(np.ceil(search_px)) + 1, nx - int(np.ceil(search_px)) - 1)
    fold_of = np.arange(n) % folds
    ops = []
    for f in range(folds):
        tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        kw = {} if backend is None else {"backend": backend}
        Wtr = make_operator(TiltGeometry(ang[tr], nx, 1.0), **kw)
        Wte = make_operator(TiltGeometry(ang[te], nx, 1.0), **kw)
        ops.append((tr, te, Wtr, sirt_weights(Wtr), Wte))
    it = grid
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(grid, desc="tilt-axis offset", unit="shift")
    cost = []
    for c in it:
        shifted = ndimage.shift(sino, (0, 0, c), order=1, mode="nearest")
        err = 0.0
        for tr, te, Wtr, w, Wte in ops:
            res = sirt(Wtr, sinogram_to_columns(shifted[tr]), n_iter, weights=w)
            pred = (Wte.forward(res.x)).reshape(te.size, nx, -1).transpose(0, 2, 1)
            d = pred[..., keep] - shifted[te][..., keep]
            err += float(np.sum(d * d)) / float(np.sum(shifted[te][..., keep] ** 2) + 1e-12)
        cost.append(err / folds)
    cost = np.array(cost)
    best = _parabola_min(grid, cost)
    i = int(np.argmin(cost))
    rise = min(cost[0], cost[-1]) / max(cost[i], 1e-30) - 1.0
    identifiable = bool(0 < i < len(grid) - 1 and rise >= min_rise)
    return best, {"grid_px": grid.tolist(), "cost": cost.tolist(), "folds": folds, "n_bands": int(sino.shape[1]),
                  "n_iter": int(n_iter), "best_px": float(best), "rise": float(rise),
                  "identifiable": identifiable}


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


__all__ = [
    "Alignment", "ROTATION_METHODS", "SHIFT_METHODS", "align_tilt_series", "apply_alignment", "compare_shifts",
    "estimate_shifts", "estimate_tilt_axis_offset", "estimate_tilt_axis_rotation", "reference_tilt",
    "runs_out_of_field", "tomviz_shifts", "transform_image",
]
