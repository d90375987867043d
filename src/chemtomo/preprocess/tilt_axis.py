"""Tilt-axis estimation: the rotation that makes the axis vertical and its offset from the centre column.

Split from :mod:`chemtomo.preprocess.align` (which chains these estimators with
the shift estimation in :func:`~chemtomo.preprocess.align.align_tilt_series`):

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

from typing import Literal

import numpy as np
from scipy import ndimage

from ._signals import unwrap
from .transform import transform_image


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
    return np.stack([data[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)


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




__all__ = ["MIN_SIDE_FOR_PATCHES", "ROTATION_METHODS", "estimate_tilt_axis_offset", "estimate_tilt_axis_rotation"]
