"""The statistics of the automatic rules: Poisson and composition deviances, held-out ray folds.

:mod:`.autoparam` chooses parameters with these: the discrepancy principle compares
:func:`poisson_deviance` with :func:`expected_deviance`; cross-validation splits the
rays into :func:`ray_folds`, filters the training rays alone (:func:`filter_training`)
and scores held-out rays by :func:`heldout_deviance`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import poisson

from ..projector.base import DTYPE

DEFAULT_FOLDS = 4
DEFAULT_SEED = 20240607


# ----------------------------------------------------------------------------- Poisson statistics

def poisson_deviance(counts, mean) -> np.ndarray:
    """Elementwise Poisson deviance ``2 (mu - b + b log(b / mu))`` (0 where ``b = mu``).

    ``mean`` is floored at 1e-9 so that a zero prediction with counts is large, not infinite.
    """
    b = np.asarray(counts, np.float64)
    mu = np.maximum(np.asarray(mean, np.float64), 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(b > 0, b * np.log(np.where(b > 0, b, 1.0) / mu), 0.0)
    return 2.0 * (mu - b + t)


def composition_deviance(counts, mean) -> np.ndarray:
    """Deviance of the line *ratios*: the multinomial deviance of ``(k, n, m)`` counts given their totals.

    For ray ``i``, with ``n_i = sum_A b_A,i`` and predicted shares ``p_A,i = mu_A,i / sum_B mu_B,i``::

        2 sum_A b_A,i log(b_A,i / (n_i p_A,i))

    Poisson counts conditioned on their total are multinomial, so this is the
    likelihood of what quantification uses (the ratios between lines), blind to the
    total intensity. Returns ``(n, m)``.
    """
    b = np.asarray(counts, np.float64)
    mu = np.maximum(np.asarray(mean, np.float64), 1e-9)
    n = b.sum(axis=0, keepdims=True)
    expect = n * mu / mu.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(b > 0, b * np.log(np.where(b > 0, b, 1.0) / np.maximum(expect, 1e-300)), 0.0)
    return 2.0 * t.sum(axis=0)


def expected_deviance(mean) -> np.ndarray:
    """``E[poisson_deviance(b, mu)]`` for ``b ~ Poisson(mu)``, elementwise.

    Exact sum over counts for ``mu < 30``; ``1 + 1/(6 mu) + 1/(6 mu^2)`` above (McCullagh
    & Nelder 1989, section 6.2). About 1 for a few counts or more, less for fewer.
    """
    mu = np.asarray(mean, np.float64)
    out = np.empty_like(mu)
    small = mu < 30
    m = mu[small]
    n = np.arange(0, 130)[:, None]
    nlogn = np.where(n > 0, n * np.log(np.maximum(n, 1)), 0.0)
    pmf = poisson.pmf(n, m[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        mlogm = np.where(m > 0, m * np.log(np.where(m > 0, m, 1.0)), 0.0)
    out[small] = 2.0 * (np.sum(pmf * nlogn, axis=0) - mlogm)
    big = mu[~small]
    out[~small] = 1.0 + 1.0 / (6 * big) + 1.0 / (6 * big * big)
    return out


def discrepancy_ratio(counts, mean, noise_factor: float = 1.0, per_column: bool = True):
    """Poisson deviance over ``noise_factor`` times its expectation.

    Per column of ``(k, n_rays, m)`` data (an ``(m,)`` array), or over all of it
    (a float) with ``per_column=False``: the discrepancy principle's statistic.
    """
    b = np.asarray(counts, np.float64)
    mu = np.asarray(mean, np.float64)
    axes = tuple(range(b.ndim - 1)) if per_column else None
    out = poisson_deviance(b, mu).sum(axis=axes) / (noise_factor * expected_deviance(mu).sum(axis=axes))
    return out if per_column else float(out)


# ----------------------------------------------------------------------------- folds

def ray_folds(n_rays: int, n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """A balanced random fold index in ``[0, n_folds)`` for every ray."""
    if int(n_folds) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    if n_rays < 2 * n_folds:
        raise ValueError(f"{n_rays} rays are too few for {n_folds} folds")
    return np.random.default_rng(seed).permutation(n_rays) % int(n_folds)


def training_masks(folds: np.ndarray) -> np.ndarray:
    """``(n_rays, K)``: column ``f`` is 1 on the rays fold ``f`` trains on, 0 on its held-out rays."""
    K = int(folds.max()) + 1
    return np.stack([(folds != f) for f in range(K)], axis=1).astype(DTYPE)


def filter_training(counts: np.ndarray, masks: np.ndarray, n_tilts: int, n_pixels: int,
                    sigma: float, axes: str = "sinogram") -> np.ndarray:
    """Gaussian filter of the training rays only (normalised convolution), per fold.

    Parameters
    ----------
    counts : ndarray, (k, n_rays, s)
        Raw counts (rays ordered tilt-major, as :func:`~chemtomo.geometry.sinogram_to_columns`).
    masks : ndarray, (n_rays, K)
    n_tilts, n_pixels : int
    sigma : float
        Filter std in pixels (0: no filter, the training data are the raw counts).
    axes : {"sinogram", "image"}
        As :func:`chemtomo.preprocess.gaussian_filter_stack`.

    Returns
    -------
    ndarray, (k, n_rays, K * s)
        Column ``f * s + j``: slice ``j`` filtered from the rays of fold ``f``'s training set
        (held-out rays hold the interpolated value; they are masked out of the solve anyway).
    """
    k, n_rays, s = counts.shape
    K = masks.shape[1]
    if n_tilts * n_pixels != n_rays:
        raise ValueError(f"{n_tilts} tilts x {n_pixels} pixels != {n_rays} rays")
    out = np.empty((k, n_rays, K * s), DTYPE)
    if axes == "sinogram":
        sig = (sigma, 0, sigma)
    elif axes == "image":
        sig = (0, sigma, sigma)
    else:
        raise ValueError(f"axes must be 'sinogram' or 'image', got {axes!r}")
    for f in range(K):
        m = np.broadcast_to(masks[:, f][:, None], (n_rays, s)).astype(np.float64)
        m3 = m.reshape(n_tilts, n_pixels, s).transpose(0, 2, 1)
        den = gaussian_filter(m3, sig, mode="nearest") if sigma > 0 else m3
        for a in range(k):
            c3 = counts[a].astype(np.float64).reshape(n_tilts, n_pixels, s).transpose(0, 2, 1)
            num = gaussian_filter(c3 * m3, sig, mode="nearest") if sigma > 0 else c3 * m3
            filt = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
            out[a, :, f * s:(f + 1) * s] = filt.transpose(0, 2, 1).reshape(n_rays, s)
    return out


def heldout_deviance(counts: np.ndarray, pred: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Held-out score per column: composition deviance for ``k >= 2`` lines, else Poisson deviance.

    Parameters
    ----------
    counts, pred : ndarray, (k, n_rays, m)
        Raw counts and predicted means.
    held : ndarray, (n_rays, m) or (n_rays, 1)
        1 on held-out rays.

    Returns
    -------
    ndarray, (m,)
    """
    held = np.asarray(held, np.float64)
    if counts.shape[0] >= 2:
        return np.sum(composition_deviance(counts, pred) * held, axis=0)
    return np.sum(poisson_deviance(counts, pred)[0] * held, axis=0)
