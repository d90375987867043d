"""Denoising filters applied to stacks before reconstruction."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

FilterAxes = Literal["sinogram", "image"]
# The Gaussian pre-filter of the EDS stacks (pixels), as the paper (Yuan 2020) filters its
# sinograms before SIRT and HEBT: the default of the pipeline, the CLI and the studies.
FILTER_SIGMA_PX = 0.8


def gaussian_filter_stack(stack: np.ndarray, sigma: float, axes: FilterAxes = "sinogram") -> np.ndarray:
    """Gaussian filter of a ``(n_tilts, n_slices, n_pixels)`` stack (SciPy).

    Parameters
    ----------
    stack : ndarray
    sigma : float
        Standard deviation in pixels (Yuan 2020 use 0.8 on the EDS sinograms).
    axes : {"sinogram", "image"}
        ``"sinogram"`` filters each slice's sinogram over (tilt, pixel), as the
        paper did for its single-slice phantom; ``"image"`` filters each tilt
        image over (slice, pixel), the natural choice for a 3-D series.
    """
    stack = np.asarray(stack, dtype=np.float32)
    s = _filter_sigmas(sigma, axes)
    if sigma == 0:
        return stack.copy()
    return gaussian_filter(stack, s, mode="nearest").astype(np.float32)


def _filter_sigmas(sigma: float, axes: FilterAxes) -> tuple[float, float, float]:
    """Per-axis sigmas of :func:`gaussian_filter_stack` (ValueError for a bad ``sigma`` or ``axes``)."""
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a non-negative number of pixels, got {sigma}")
    if axes == "sinogram":
        return (sigma, 0, sigma)
    if axes == "image":
        return (0, sigma, sigma)
    raise ValueError(f"axes must be 'sinogram' or 'image', got {axes!r}")


def gaussian_filter_variance(variance: np.ndarray, sigma: float, axes: FilterAxes = "sinogram") -> np.ndarray:
    """Per-sample variance of :func:`gaussian_filter_stack`'s output for independent samples of ``variance``.

    A filtered sample is ``sum_j F_ij b_j``; with independent ``b_j`` its variance is
    ``sum_j F_ij^2 Var(b_j)``. ``F`` is the filter's own matrix per axis (SciPy's
    :func:`~scipy.ndimage.gaussian_filter1d` of the identity, ``mode="nearest"``, so the
    edges' repeated samples are counted as the filter counts them), squared element-wise.

    Parameters
    ----------
    variance : ndarray, (n_tilts, n_slices, n_pixels)
        Each sample's variance (for Poisson counts: their mean, estimated by the counts).
    sigma : float
    axes : {"sinogram", "image"}
        As :func:`gaussian_filter_stack`'s.

    Returns
    -------
    ndarray (float64)
    """
    v = np.asarray(variance, dtype=np.float64)
    for ax, sg in enumerate(_filter_sigmas(sigma, axes)):
        if sg > 0:
            f2 = gaussian_filter1d(np.eye(v.shape[ax]), sg, axis=0, mode="nearest") ** 2
            v = np.moveaxis(np.tensordot(f2, v, axes=([1], [ax])), 0, ax)
    return v
