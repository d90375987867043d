"""The pure part of the bootstrap: seeded replicas of noisy data and the statistics of their results.

A parametric bootstrap estimates how a reconstruction's noise propagates to its maps:
draw replicas of the data from the noise model around the measured values (or around
the fitted model's prediction), reconstruct each replica exactly as the data were, and
read the spread of the replica results. This module holds what does not depend on the
pipeline:

- the replicas' random generators (:func:`replica_generators`): one
  :class:`numpy.random.SeedSequence` child per replica, so replica ``i`` is the same
  bits whichever pass, chunk or thread computes it;
- the noise models: Poisson counts (:func:`poisson_replica`, with a variance-over-mean
  factor for scaled counts), Gaussian signals (:func:`gaussian_replica`) and a Gaussian
  noise level measured on the data (:func:`estimate_gaussian_sigma`);
- the summaries (:func:`summarize`): standard error and central interval of bootstrap
  replicas (percentile interval) or of leave-one-out replicas (jackknife standard error,
  normal interval), and region means (:func:`region_means`).

The volume-level driver is :func:`chemtomo.pipeline.uncertainty.bootstrap_uncertainty`.
This module imports numpy only (and scipy's normal CDF inside :func:`calibrate_widening`).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "BIAS_SCALES", "INTERVAL_METHODS", "MAX_WIDENING", "Spread", "bias_scale", "calibrate_widening", "check_interval",
    "check_replicas", "estimate_gaussian_sigma", "gaussian_replica", "poisson_fluctuation", "poisson_replica",
    "region_means", "replica_generators", "summarize",
]

# median of a chi-square variable with one degree of freedom
_CHI2_1_MEDIAN = 0.4549364231195724


def check_replicas(replicas) -> int:
    """``replicas`` as an int >= 2 (a spread needs two replicas); ValueError otherwise."""
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or int(replicas) < 2:
        raise ValueError(f"replicas must be an integer >= 2 (a standard error needs two replicas), got {replicas!r}")
    return int(replicas)


def check_interval(interval) -> float:
    """``interval`` (the central interval's probability) as a float in (0, 1); ValueError otherwise."""
    try:
        v = float(interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be a probability in (0, 1), e.g. 0.9, got {interval!r}") from None
    if isinstance(interval, bool) or not (0.0 < v < 1.0):
        raise ValueError(f"interval must be a probability in (0, 1), e.g. 0.9, got {interval!r}")
    return v


def replica_generators(seed: int, replicas: int, start: int = 0, stop: int | None = None
                       ) -> list[np.random.Generator]:
    """The generators of replicas ``start:stop`` of ``replicas`` seeded by ``seed``.

    Replica ``i`` always draws from ``default_rng(SeedSequence(seed).spawn(replicas)[i])``,
    so its bits do not depend on which other replicas are drawn with it.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole bootstrap.
    replicas : int
        Replicas in the bootstrap.
    start, stop : int
        The replicas wanted (default: all).

    Returns
    -------
    list of numpy.random.Generator
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(int(replicas))
    return [np.random.default_rng(c) for c in children[start:stop]]


def _noise_factor(noise_factor) -> float:
    """``noise_factor`` as a float, or ValueError when it is not a positive finite number."""
    f = float(noise_factor)
    if not (np.isfinite(f) and f > 0):
        raise ValueError(f"noise_factor (variance over mean) must be a positive number, got {noise_factor!r}")
    return f


def poisson_replica(mean: np.ndarray, rng: np.random.Generator, noise_factor: float = 1.0) -> np.ndarray:
    """A replica of counts: ``f * Poisson(mean / f)`` (variance ``f * mean``), float32.

    Parameters
    ----------
    mean : ndarray
        Expected counts (negative values are taken as 0).
    rng : numpy.random.Generator
    noise_factor : float
        ``f``, variance over mean of the counts (1: raw Poisson counts).

    Returns
    -------
    ndarray, float32, shape of ``mean``
    """
    f = _noise_factor(noise_factor)
    lam = np.clip(np.asarray(mean, np.float64), 0.0, None) / f
    return (f * rng.poisson(lam)).astype(np.float32)


def poisson_fluctuation(mean: np.ndarray, rng: np.random.Generator, noise_factor: float = 1.0) -> np.ndarray:
    """A replica of a background-subtracted map: ``mean`` plus a zero-mean Poisson fluctuation, float32.

    ``mean + f * Poisson(m+ / f) - m+`` with ``m+ = max(mean, 0)``: the variance
    ``f * m+`` of :func:`poisson_replica`, but centred on ``mean`` itself, negative
    values included. A map whose negative pixels are clipped only later (after a
    filter) then has replicas whose expectation is the map the estimate was made
    from, so the filter and the clipping act on them as they did on the data. Pixels
    with ``mean <= 0`` get no noise (their level is not known from the map).

    Parameters
    ----------
    mean : ndarray
        The measured map (any sign).
    rng : numpy.random.Generator
    noise_factor : float
        ``f``, variance over mean (1: raw Poisson counts).

    Returns
    -------
    ndarray, float32, shape of ``mean``
    """
    f = _noise_factor(noise_factor)
    m = np.asarray(mean, np.float64)
    pos = np.clip(m, 0.0, None)
    return (m + (f * rng.poisson(pos / f) - pos)).astype(np.float32)


def gaussian_replica(mean: np.ndarray, rng: np.random.Generator, sigma) -> np.ndarray:
    """A replica of a signal with Gaussian noise of standard deviation ``sigma``, float32.

    Parameters
    ----------
    mean : ndarray
        The signal.
    rng : numpy.random.Generator
    sigma : float or ndarray
        Noise std in the signal's units: one number, or per sample (broadcastable to ``mean``).
    """
    s = np.asarray(sigma, np.float64)
    if not (np.all(np.isfinite(s)) and np.all(s >= 0)):
        raise ValueError(f"sigma (Gaussian noise std) must be finite and >= 0, got {sigma!r}")
    mean = np.asarray(mean, np.float64)
    return (mean + s * rng.standard_normal(mean.shape)).astype(np.float32)


def estimate_gaussian_sigma(stack: np.ndarray) -> float:
    """Standard deviation of signal-independent Gaussian noise, from second differences along the last axis.

    For ``r = b[i-1] - 2 b[i] + b[i+1]`` of independent noise of variance ``sigma^2``,
    ``E[r^2] = 6 sigma^2`` plus the signal's curvature; the median of ``r^2`` divided by
    ``6`` times the median of a chi-square with one degree of freedom estimates
    ``sigma^2`` while ignoring the few edges where the curvature dominates (it
    over-estimates the noise of a signal curved everywhere).

    Parameters
    ----------
    stack : ndarray
        Images (any shape; differences along the last axis, which needs 3 or more samples).

    Returns
    -------
    float
    """
    b = np.asarray(stack, np.float64)
    if b.ndim < 1 or b.shape[-1] < 3:
        raise ValueError(f"estimating a noise level needs 3 or more samples along the last axis, got {b.shape}")
    r = b[..., :-2] - 2 * b[..., 1:-1] + b[..., 2:]
    return float(np.sqrt(np.median(r * r) / (6.0 * _CHI2_1_MEDIAN)))


@dataclass
class Spread:
    """The uncertainty of one quantity (any shape ``S``).

    Attributes
    ----------
    value : ndarray, S
        The estimate from the measured data.
    mean : ndarray, S
        Mean over the replicas (``mean - value``: the bootstrap's estimate of the
        estimator's bias for bootstrap replicas).
    se : ndarray, S
        Standard error.
    low, high : ndarray, S
        The central interval of probability ``interval``.
    interval : float
    kind : {"bootstrap", "jackknife"}
    n_replicas : int
    bias : ndarray, S, or None
        The plug-in estimate of the estimator's bias, ``T(value) - value``, where ``T``
        reconstructs the fitted model's expected data exactly as the data were
        (:func:`chemtomo.pipeline.uncertainty.bootstrap_uncertainty` with
        ``bias=True``); None when not estimated.
    method : str
        How ``low``/``high`` were made (:data:`INTERVAL_METHODS`).
    bias_bound : ndarray, S, or None
        The size of bias the ``"bias_widened"`` interval allows for: ``|bias|`` per voxel;
        for a region mean, the mean over its voxels of their ``|bias|`` (the plug-in
        estimate's sign is not trusted, so a region's voxel biases are not let cancel).
    bias2 : ndarray, S, or None
        The plug-in bias one level down, ``T(T(value)) - T(value)`` (the double bootstrap's;
        a region's: the mean of its voxels'); None when not computed.
    """

    value: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray
    interval: float
    kind: str
    n_replicas: int
    bias: np.ndarray | None = None
    method: str = "percentile"
    bias_bound: np.ndarray | None = None
    bias2: np.ndarray | None = None

    def contains(self, truth) -> np.ndarray:
        """Where ``truth`` lies in ``[low, high]`` (bool, shape ``S``)."""
        truth = np.asarray(truth)
        return (truth >= self.low) & (truth <= self.high)


#: The interval definitions of :func:`summarize` (the last four need a bias estimate).
INTERVAL_METHODS = ("percentile", "basic", "bias_widened", "bias_corrected", "bias_calibrated", "bias_scaled")

#: The voxel scale ``k`` of the ``"bias_scaled"`` interval per method: the percentile interval widened by ``k`` times
#: the plug-in bias size ``|T(x) - x|`` (its region means are widened by the double bootstrap's data-only factor, as
#: ``"bias_calibrated"``'s). Calibrated against the truth of the specimen suite (weight fractions, the benchmark's quick
#: configuration at the paper's dose): ``k`` is the smallest factor whose coverage of the truth, pooled over the
#: voxels of every realisation of the five specimens measured, is 0.875 (the middle of the issue's 80-95 %); leaving
#: each specimen out of the fit in turn gives the coverage on specimens it was not fitted to (docs/uncertainty.md,
#: ``scripts/uncertainty_interval_eval.py``, its ``--loso`` "all" row, rounded up to 0.01). Fitted with the default
#: ESF mask, :data:`chemtomo.quantify.ESF_EDGE_LEVEL` 0.35 (with the mask at 0.5: 2.95 and 3.39). A method not here
#: has no calibrated scale.
BIAS_SCALES: dict[str, float] = {
    "eds_sirt": 2.93,
    "hebt_sirt": 3.37,
}


def bias_scale(method: str, scale=None) -> float:
    """The ``"bias_scaled"`` interval's voxel scale for ``method``: ``scale`` when given, else :data:`BIAS_SCALES`'.

    Parameters
    ----------
    method : str
        A registered method name.
    scale : float, optional
        The scale (finite, >= 0).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        No scale given and none calibrated for ``method``; a scale that is not a finite number >= 0.
    """
    if scale is None:
        if method not in BIAS_SCALES:
            raise ValueError(f"the 'bias_scaled' interval has no calibrated scale for {method!r} (calibrated: "
                             f"{sorted(BIAS_SCALES)}): pass bias_scale_voxel=k")
        return float(BIAS_SCALES[method])
    try:
        ok = not isinstance(scale, bool) and np.isfinite(float(scale)) and float(scale) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"the bias scale must be a finite number >= 0, got {scale!r}")
    return float(scale)


#: The largest widening factor :func:`calibrate_widening` returns (where the second-level bias is too small to reach
#: the target, the factor is capped here rather than infinite).
MAX_WIDENING = 1000.0


def calibrate_widening(offset_low, offset_high, se, bias, bound, interval: float = 0.9) -> float:
    """The factor ``c`` of the double-bootstrap calibrated bias widening.

    The plug-in world takes the estimate ``x`` as the truth: its estimator's expectation
    is ``T(x) = x + b1`` (the plug-in bias ``b1``), its noise the bootstrap's, and its own
    plug-in bias estimate ``b2 = T(T(x)) - T(x)``. An interval ``[est - offset_low - c B2,
    est + offset_high + c B2]`` (the percentile interval widened by ``c`` times the
    second-level bias size ``B2``) contains that world's truth when ``b1 + eps`` lies in
    ``[-offset_high - c B2, offset_low + c B2]``, ``eps ~ N(0, se^2)``. ``c`` is the smallest
    factor whose coverage, averaged over the entries, is ``interval``. Used in the real
    world on ``B1 = |b1|`` (:data:`INTERVAL_METHODS` ``"bias_calibrated"``), it carries over
    how much the plug-in bias understates the bias one level down (Beran's prepivoting /
    Hall's iterated bootstrap, applied to the bias size); that assumes the estimator blurs
    the estimate as it blurs the truth.

    Parameters
    ----------
    offset_low, offset_high : array_like
        ``value - low`` and ``high - value`` of the percentile intervals (>= 0 expected).
    se : array_like
        Standard errors (entries with ``se = 0`` count as covered when the bias is inside).
    bias : array_like
        The first-level plug-in bias ``b1`` (signed).
    bound : array_like
        The second-level bias size ``B2`` (``|b2|``; a region's mean of its voxels' ``|b2|``).
    interval : float
        The nominal coverage (0.9).

    Returns
    -------
    float
        ``c >= 0`` (0: the percentile intervals already cover; at most :data:`MAX_WIDENING`).
    """
    from scipy.special import ndtr

    p = check_interval(interval)
    dl, dh, se, b1, b2 = (np.asarray(a, np.float64).ravel() for a in (offset_low, offset_high, se, bias, bound))
    if not (dl.size == dh.size == se.size == b1.size == b2.size) or dl.size == 0:
        raise ValueError(f"calibrate_widening needs entries of one size (> 0), got {dl.size}, {dh.size}, {se.size}, "
                         f"{b1.size}, {b2.size}")
    s = np.maximum(se, 1e-300)

    def coverage(c: float) -> float:
        hi, lo = (dl + c * b2 - b1) / s, (-dh - c * b2 - b1) / s
        return float(np.mean(ndtr(hi) - ndtr(lo)))

    if coverage(0.0) >= p:
        return 0.0
    lo_c, hi_c = 0.0, 1.0
    while coverage(hi_c) < p:
        if hi_c >= MAX_WIDENING:
            return MAX_WIDENING
        hi_c = min(2 * hi_c, MAX_WIDENING)
    for _ in range(60):
        mid = 0.5 * (lo_c + hi_c)
        lo_c, hi_c = (mid, hi_c) if coverage(mid) < p else (lo_c, mid)
    return hi_c


def summarize(samples, value, interval: float = 0.9, kind: str = "bootstrap", method: str = "percentile",
              bias=None, bias_bound=None) -> Spread:
    """Standard error and central interval of replica results.

    Parameters
    ----------
    samples : ndarray, (R, *S)
        One result per replica.
    value : ndarray, S
        The estimate from the measured data.
    interval : float
        Probability of the central interval (0.9: the 5th to 95th percentiles).
    kind : {"bootstrap", "jackknife"}
        ``"bootstrap"``: standard deviation of the replicas (ddof 1) and their
        percentile interval. ``"jackknife"`` (leave-one-out replicas):
        ``se = sqrt((R - 1) / R * sum (x_i - mean)^2)`` and the normal interval
        ``value +- z se``.
    method : {"percentile", "basic", "bias_widened", "bias_corrected", "bias_calibrated", "bias_scaled"}
        The bootstrap interval: the replicas' percentiles ``[q_low, q_high]``; the basic
        (reverse percentile) interval ``[2 value - q_high, 2 value - q_low]``, which
        corrects the first-order bias of a non-linear estimator (the percentile interval
        is centred on ``value + bias``, the basic one on ``value - bias``); with a bias
        estimate ``b`` (``bias``): ``"bias_widened"`` ``[q_low - B, q_high + B]`` with
        ``B = bias_bound`` (default ``|b|``): the percentile interval widened on both
        sides by the estimated bias' size, not trusting its sign; ``"bias_corrected"``
        ``[q_low - b, q_high - b]`` (shifted onto the bias-corrected value);
        ``"bias_calibrated"`` ``[q_low - B, q_high + B]`` with the given ``bias_bound``
        ``B = c |b|``, ``c`` from :func:`calibrate_widening`; ``"bias_scaled"`` the same with
        ``B = k |b|``, ``k`` a method's calibrated scale (:data:`BIAS_SCALES`; a region's ``B``:
        :func:`calibrate_widening`'s ``c`` times its mean ``|b|``).
    bias : ndarray, S, optional
        The estimator's bias estimated elsewhere (e.g. the plug-in ``T(value) - value``);
        needed by the bias methods, kept in the result.
    bias_bound : ndarray, S, optional
        The bias size ``"bias_widened"`` allows for (default ``|bias|``); kept in the result.

    Returns
    -------
    Spread
    """
    p = check_interval(interval)
    samples = np.asarray(samples, np.float64)
    value = np.asarray(value, np.float64)
    n = check_replicas(samples.shape[0])
    if samples.shape[1:] != value.shape:
        raise ValueError(f"replica results {samples.shape[1:]} and the estimate {value.shape} differ in shape")
    mean = samples.mean(axis=0)
    if kind == "bootstrap":
        se = samples.std(axis=0, ddof=1)
        low, high = np.quantile(samples, [(1 - p) / 2, (1 + p) / 2], axis=0)
        if method == "basic":
            low, high = 2 * value - high, 2 * value - low
        elif method in ("bias_widened", "bias_corrected", "bias_calibrated", "bias_scaled"):
            given = method in ("bias_calibrated", "bias_scaled")
            if bias is None or (given and bias_bound is None):
                extra = " and its calibrated bound (bias_bound=...)" if given else ""
                raise ValueError(f"the interval method {method!r} needs a bias estimate (bias=...){extra}")
            b = np.asarray(bias, np.float64)
            bb = np.abs(b) if bias_bound is None else np.asarray(bias_bound, np.float64)
            low, high = (low - b, high - b) if method == "bias_corrected" else (low - bb, high + bb)
        elif method != "percentile":
            raise ValueError(f"the bootstrap interval method must be one of {INTERVAL_METHODS}, got {method!r}")
    elif kind == "jackknife":
        se = np.sqrt((n - 1) / n * ((samples - mean) ** 2).sum(axis=0))
        z = NormalDist().inv_cdf((1 + p) / 2)
        low, high = value - z * se, value + z * se
    else:
        raise ValueError(f"kind must be 'bootstrap' or 'jackknife', got {kind!r}")
    b = None if bias is None else np.broadcast_to(np.asarray(bias, np.float64), value.shape)
    bb = None if b is None else (np.abs(b) if bias_bound is None else
                                 np.broadcast_to(np.asarray(bias_bound, np.float64), value.shape))
    return Spread(value, mean, se, low, high, p, kind, n, b, method if kind == "bootstrap" else "normal", bb)


def region_means(values, labels) -> np.ndarray:
    """Means of ``values`` over labelled regions.

    Parameters
    ----------
    values : ndarray, (..., *V)
        Leading axes (replicas, lines) then the volume ``V``.
    labels : list of bool ndarrays, each V
        The regions.

    Returns
    -------
    ndarray, (..., n_regions)
        NaN for an empty region.
    """
    values = np.asarray(values)
    out = []
    for m in labels:
        m = np.asarray(m, bool)
        lead = values.shape[: values.ndim - m.ndim]
        if values.shape[values.ndim - m.ndim:] != m.shape:
            raise ValueError(f"region shape {m.shape} does not match the volume {values.shape[len(lead):]}")
        n = int(m.sum())
        out.append(values[..., m].astype(np.float64).sum(axis=-1) / n if n else np.full(lead, np.nan))
    return np.stack(out, axis=-1)
