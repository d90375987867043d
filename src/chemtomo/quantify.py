"""Quantification: particle masks and the normalisations of Yuan 2020 eqs 12 and 18.

EDS-only SIRT reconstructs ``X_A = n f_A C_A rho`` and HEBT ``X^b_A ∝ z_A C_A rho``;
either way, with ``k_A`` the matching factor (``f_A`` or ``z_A``),

    C_A = (X_A / k_A) / sum_B (X_B / k_B)          (eqs 12, 18)

inside the particle. The particle is the region where ``sum_B X_B / k_B`` exceeds a
threshold chosen by the edge-spread-function (ESF) method (Collins et al. 2019):
particle volume versus threshold is fitted by a sum of error-function edges and
the threshold is the point where the fitted curve is flattest between the
background edge and the first particle edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import curve_fit
from scipy.special import erfc


def _check_maps(maps, factors) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64).ravel()
    if maps.shape[0] != factors.size:
        raise ValueError(f"got {maps.shape[0]} maps but {factors.size} factors: one factor per line")
    if np.any(~np.isfinite(factors)) or np.any(factors <= 0):
        raise ValueError(f"quantification factors must be positive and finite, got {factors}")
    if not np.all(np.isfinite(maps)):
        raise ValueError("the maps contain NaN or infinite values")
    return maps, factors


def total_signal(maps, factors) -> np.ndarray:
    """``sum_A X_A / k_A``: the map the particle mask is thresholded on."""
    maps, factors = _check_maps(maps, factors)
    return np.tensordot(1.0 / factors, maps, axes=1)


def weight_fractions(maps, factors, mask=None) -> np.ndarray:
    """Weight fractions ``C_A`` (eqs 12 / 18), 0 outside ``mask``.

    Parameters
    ----------
    maps : ndarray, (k, ...)
        Reconstructed maps of the k lines (negative values are clipped to 0).
    factors : array_like, (k,)
        ``f_A`` for EDS-only reconstructions, ``z_A`` for HEBT (barn mol/g; any
        common unit: only ratios matter).
    mask : ndarray of bool, optional
        Particle mask, shape ``maps.shape[1:]`` (default: everywhere).

    Returns
    -------
    ndarray, (k, ...)
        Fractions in [0, 1] that sum to 1 inside the mask where any signal is present.
    """
    maps, factors = _check_maps(maps, factors)
    w = np.clip(maps, 0, None) / factors.reshape((-1,) + (1,) * (maps.ndim - 1))
    s = w.sum(axis=0)
    inside = s > 0
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != maps.shape[1:]:
            raise ValueError(f"mask shape {mask.shape} does not match maps {maps.shape[1:]}")
        inside &= mask
    out = np.zeros_like(w)
    np.divide(w, s, out=out, where=inside)  # the same quotients as w[:, inside] / s[inside], without the gathers
    return out


def atomic_fractions(weight, atomic_weights) -> np.ndarray:
    """Atomic fractions ``x_A = (C_A / M_A) / sum_B (C_B / M_B)`` from weight fractions."""
    weight, m = _check_maps(weight, atomic_weights)
    n = weight / m.reshape((-1,) + (1,) * (weight.ndim - 1))
    s = n.sum(axis=0)
    out = np.zeros_like(n)
    np.divide(n, s, out=out, where=s > 0)
    return out


def _edges(v, b, *p):
    # background b plus descending error-function steps: a_i * erfc((v - c_i) / (sqrt2 w_i)) / 2
    out = np.full_like(v, b)
    for a, c, w in zip(p[0::3], p[1::3], p[2::3], strict=True):
        out += a * 0.5 * erfc((v - c) / (np.sqrt(2) * abs(w) + 1e-12))
    return out


@dataclass
class Threshold:
    """A particle threshold and how it was chosen.

    Attributes
    ----------
    value : float
        Threshold on the total signal.
    method : str
        ``"esf"``, ``"otsu"``, ``"multiotsu"`` or ``"given"``.
    volume_fraction : float
        Fraction of voxels above the threshold.
    stability : float
        Relative change of the particle volume for a +-10 % change of the
        threshold: ``(V(0.9 t) - V(1.1 t)) / V(t)``. Small means a clear plateau.
    curve : dict
        For ESF: ``volumes`` (fractions), ``thresholds`` (the signal at which that
        fraction of voxels lies above) and ``fitted`` (the edge model).
    """

    value: float
    method: str
    volume_fraction: float
    stability: float
    curve: dict = field(default_factory=dict)

    def as_dict(self, with_curve: bool = False) -> dict:
        """The threshold as a JSON-ready dict; with ``with_curve``, the curve too (arrays as lists)."""
        d = {"value": float(self.value), "method": self.method,
             "volume_fraction": float(self.volume_fraction), "stability": float(self.stability)}
        if with_curve:
            d["curve"] = {k: np.asarray(v).tolist() for k, v in self.curve.items()}
        return d


def _volume(total, t):
    return float(np.count_nonzero(total > t)) / total.size


def _stability(total, t) -> float:
    v = _volume(total, t)
    return (_volume(total, 0.9 * t) - _volume(total, 1.1 * t)) / v if v > 0 else float("inf")


# The ESF threshold's voxel subsample: at most this many voxels, drawn with this seed (the
# chunked quantification of pipeline.store draws the very same ones).
ESF_MAX_VOXELS = 4_000_000
ESF_SEED = 0


#: The ESF threshold's default place on the particle-background step, as a fraction of the step's
#: fitted height above the background: 0.35, below the step's centre (0.5), so the mask keeps the
#: half-filled edge voxels a blurred reconstruction puts below the centre (issue 13: on the quick
#: specimen suite the best automatic result's inside MSE 2.3-6x lower than at 0.5; docs/solvers.md).
ESF_EDGE_LEVEL = 0.35


def check_edge_level(edge_level) -> float:
    """The ESF threshold's level on the particle-background step as a float, refused outside (0, 1).

    Parameters
    ----------
    edge_level : float
        Fraction of the fitted step's height above the background side.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Not a number strictly between 0 and 1.
    """
    try:
        q = float("nan") if isinstance(edge_level, (bool, str)) else float(edge_level)
    except (TypeError, ValueError):
        q = float("nan")
    if not (0.0 < q < 1.0):
        raise ValueError(f"edge_level must be a number strictly between 0 and 1 (the fraction of the fitted "
                         f"particle-background step above the background; default {ESF_EDGE_LEVEL}, 0.5 its "
                         f"half-way point), "
                         f"got {edge_level!r}")
    return q


def check_mask_options(method: str, threshold, edge_level) -> float:
    """``edge_level`` checked (:func:`check_edge_level`) and refused beside another mask than the ESF's.

    A level other than the default (:data:`ESF_EDGE_LEVEL`) places the ESF threshold, so it
    needs ``method`` ``"esf"`` and no given ``threshold``.

    Parameters
    ----------
    method : {"esf", "otsu", "multiotsu"}
        The mask's method.
    threshold : float or None
        A given threshold, or None.
    edge_level : float
        The ESF threshold's level on the particle-background step.

    Returns
    -------
    float
        ``edge_level`` as a float.

    Raises
    ------
    ValueError
        A bad level, or a level other than the default with Otsu's mask or a given threshold.
    """
    edge_level = check_edge_level(edge_level)
    if edge_level != ESF_EDGE_LEVEL and (threshold is not None or method != "esf"):
        raise ValueError(f"edge_level {edge_level:g} places the ESF threshold: it needs method 'esf' and no given "
                         f"threshold, got method {method!r}, threshold {threshold!r}")
    return edge_level


def esf_threshold(total, n_samples: int = 256, max_edges: int = 3, max_voxels: int = ESF_MAX_VOXELS,
                  seed: int = ESF_SEED, edge_level: float = ESF_EDGE_LEVEL) -> Threshold:
    """Threshold by the edge-spread-function (ESF) method.

    Sorting the voxels by signal, the threshold ``t(V)`` at which a volume
    fraction ``V`` lies above it is an edge-spread function: plateaus (particle
    phases, background) joined by blurred steps. It is fitted by a background
    plus 1..``max_edges`` error-function steps (lowest BIC wins); the threshold
    is placed on the step at the largest volume (the particle-background edge),
    by default (:data:`ESF_EDGE_LEVEL`) at 0.35 of its height above the background,
    below its centre: there the fitted ``dt/dV`` is steepest, i.e. the particle
    volume changes least with the threshold (Collins et al., APL Materials 7 (2019)
    091111; Yuan et al. 2020, section 2.1), and ``edge_level=0.5`` puts the
    threshold exactly there.

    Parameters
    ----------
    total : ndarray
        The total signal, ``sum_A X_A / k_A``.
    n_samples : int
        Volume fractions sampled in [0, 1].
    max_edges : int
        Most steps tried in the fit (a core-shell particle has two phases).
    max_voxels : int
        Larger maps are subsampled (fixed seed) to this many voxels for the fit.
    seed : int
        Seed of that subsample.
    edge_level : float
        Where on the particle-background step the threshold lies, as a fraction of the
        step's fitted height above the background side: 0.5 its centre (the default
        before issue 13); the default 0.35 (:data:`ESF_EDGE_LEVEL`) and lower keep more
        of the particle's edge voxels (a voxel half filled by the
        particle reconstructs below the step's half-way point when the reconstruction
        blurs a convex edge). The threshold is the fitted curve at the step's centre
        minus ``(0.5 - edge_level)`` times the step's height.

    Returns
    -------
    Threshold
        ``method`` ``"esf"``; ``curve`` holds ``volumes``, ``thresholds``, ``fitted``,
        ``edges`` (height, centre, width per step) and ``background``.

    Raises
    ------
    ValueError
        Too small a map or no positive signal; the fit does not converge; no
        particle-background edge; ``edge_level`` outside (0, 1).
    """
    edge_level = check_edge_level(edge_level)
    total = np.asarray(total, dtype=np.float64)
    if total.size < 16 or not np.any(total > 0):
        raise ValueError("esf_threshold needs a map with at least 16 voxels and some positive signal")
    flat = total.ravel()
    if flat.size > max_voxels:
        flat = np.random.default_rng(seed).choice(flat, max_voxels, replace=False)
    srt = np.sort(flat)[::-1]
    v = (np.arange(n_samples) + 0.5) / n_samples
    t_abs = srt[np.minimum((v * srt.size).astype(int), srt.size - 1)]
    # fit in units of a high percentile, clipped: the choice does not depend on the maps' unit,
    # and a few very bright voxels (a heavy-metal cap, a hot pixel) do not dominate the fit
    scale = float(np.percentile(flat, 99.5)) or float(t_abs[0]) or 1.0
    t = np.minimum(t_abs / scale, 1.5)
    hi = 1.5
    # Otsu's split places the particle-background step to start from
    from skimage.filters import threshold_otsu

    c_edge = float(np.clip(np.mean(flat > threshold_otsu(flat)), 1.0 / n_samples, 1 - 1.0 / n_samples))
    best = None
    for n_edges in range(1, max_edges + 1):
        p0, lower, upper = [float(t[-1])], [-hi], [hi]
        for c in c_edge * np.arange(1, n_edges + 1) / n_edges:  # the last step at the particle edge
            p0 += [float(t[0] - t[-1]) / n_edges, float(c), 0.02]
            lower += [0.0, 0.0, 1e-4]
            upper += [2 * hi, 1.0, 0.5]
        try:
            p, _ = curve_fit(_edges, v, t, p0=p0, bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(np.sum((_edges(v, *p) - t) ** 2))
        bic = v.size * np.log(rss / v.size + 1e-300) + (3 * n_edges + 1) * np.log(v.size)
        if best is None or bic < best[0]:
            best = (bic, p)
    if best is None:
        raise ValueError("the ESF fit of volume versus threshold did not converge; "
                         "use the Otsu mask (mask_method='otsu', --mask otsu) or give a threshold")
    p = best[1]
    edges = np.asarray(p[1:]).reshape(-1, 3)
    edges = edges[np.argsort(edges[:, 1])]
    c_last, w_last = edges[-1, 1], abs(edges[-1, 2])
    if not (c_last - 2 * w_last > 0 and c_last + w_last < 1):  # the step and background beyond it
        raise ValueError(
            f"no particle-background edge in the volume-threshold curve (fitted step at volume fraction "
            f"{c_last:.3f} with width {w_last:.3f}): the signal falls off without a plateau, as for a "
            "sample wider than the field of view; use the Otsu mask (--mask otsu; --mask multiotsu keeps a light "
            "support beside a heavy particle) or give a threshold"
        )
    # the step's centre, moved down (edge_level < 0.5) by that fraction of its height; 0.5 subtracts exactly 0
    value = scale * (float(_edges(np.array([c_last]), *p)[0]) - (0.5 - edge_level) * float(edges[-1, 0]))
    edges[:, 0] *= scale
    fit = {"edges": edges.tolist(), "background": scale * float(p[0]), "fitted": scale * _edges(v, *p)}
    return Threshold(value, "esf", _volume(total, value), _stability(total, value),
                     {"volumes": v, "thresholds": t_abs, **fit})


def otsu(total) -> Threshold:
    """Otsu's threshold (scikit-image) on the total signal."""
    from skimage.filters import threshold_otsu

    total = np.asarray(total, dtype=np.float64)
    value = float(threshold_otsu(total))
    return Threshold(value, "otsu", _volume(total, value), _stability(total, value))


#: Bins of the total signal's histogram the three-class Otsu split is computed on (scikit-image's
#: default for a float image; the chunked path, ``pipeline.store_quantify``, builds the same histogram).
MULTIOTSU_BINS = 256


def multiotsu_from_histogram(counts, centres) -> float | None:
    """The lowest of the three-class Otsu thresholds of a histogram, or None if it has fewer than 3 occupied bins.

    Parameters
    ----------
    counts : ndarray of int, (MULTIOTSU_BINS,)
        Voxels per bin of the total signal, ``np.histogram(total, bins=MULTIOTSU_BINS)``'s counts.
    centres : ndarray, (MULTIOTSU_BINS,)
        The bins' centres.

    Returns
    -------
    float or None
        ``skimage.filters.threshold_multiotsu(total, classes=3)[0]`` (the counts are normalised
        as scikit-image normalises its own histogram, so the value is the same bit for bit);
        None when three classes cannot be formed.
    """
    from skimage.filters import threshold_multiotsu

    counts = np.asarray(counts)
    if np.count_nonzero(counts) < 3:
        return None
    return float(threshold_multiotsu(hist=(counts / np.sum(counts), np.asarray(centres)), classes=3)[0])


def multiotsu(total) -> Threshold:
    """The lowest of the three-class Otsu thresholds (scikit-image) on the total signal.

    Three classes split the signal into background, a light phase and a heavy one; the
    lowest threshold separates the background from both, so a light support (alumina under
    a Pt particle) is kept in the mask where two-class Otsu (:func:`otsu`) splits the heavy
    particle from support and background together.

    Parameters
    ----------
    total : ndarray
        The total signal, ``sum_A X_A / k_A``.

    Returns
    -------
    Threshold
        ``method`` ``"multiotsu"``; or, for a map whose histogram (:data:`MULTIOTSU_BINS`
        bins over its range) has fewer than 3 occupied bins, where three classes cannot be
        formed, two-class Otsu's threshold with ``method`` ``"otsu"``.
    """
    total = np.asarray(total, dtype=np.float64)
    counts, edges = np.histogram(total, bins=MULTIOTSU_BINS)  # scikit-image's binning of a float map
    value = multiotsu_from_histogram(counts, (edges[:-1] + edges[1:]) / 2.0)
    if value is None:
        return otsu(total)
    return Threshold(value, "multiotsu", _volume(total, value), _stability(total, value))


MaskMethod = Literal["esf", "otsu", "multiotsu"]

#: The mask the studies (benchmark suite, tilt sets, calibration) fall back to when the ESF fit
#: finds no particle-background edge. Three-class Otsu's lowest threshold, not two-class Otsu:
#: on the suite's oxide_supported (a heavy Pt particle on a light alumina support) two-class
#: Otsu splits the particle from support + background and leaves the support out of the mask,
#: while the lowest three-class threshold splits the background from support + particle
#: (docs/solvers.md, "Mask fallback when the ESF fit fails").
ESF_FALLBACK = "multiotsu"


def check_threshold(threshold, signal_range: tuple[float, float] | None = None) -> float:
    """A given mask threshold as a float, refused if it is not finite or selects nothing or everything.

    Parameters
    ----------
    threshold : float
        Threshold on the total signal ``sum_A X_A / k_A``: a voxel is particle where the
        signal exceeds it.
    signal_range : (float, float), optional
        The total signal's minimum and maximum; with it, a threshold that leaves an
        empty mask (``>= max``) or takes the whole grid (``< min``) is refused.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Not a number, NaN or infinite; an empty mask or the whole grid.
    """
    try:
        t = float("nan") if isinstance(threshold, (bool, str)) else float(threshold)
    except (TypeError, ValueError):
        t = float("nan")
    if not np.isfinite(t):
        raise ValueError(f"threshold must be a finite number (the total signal sum_A X_A/k_A above which a voxel "
                         f"is particle), got {threshold!r}; or leave it out to choose it by mask_method "
                         "(esf, otsu, multiotsu)")
    if signal_range is not None:
        lo, hi = (float(v) for v in signal_range)
        if t >= hi or t < lo:
            what = "an empty mask (volume fraction 0)" if t >= hi else "the whole grid (volume fraction 1)"
            allowed = (f"allowed: a value in [{lo:.6g}, {hi:.6g}), the total signal's range" if hi > lo
                       else f"the total signal is {hi:.6g} everywhere, so no threshold separates a particle")
            raise ValueError(f"threshold {t:g} gives {what}: no particle/background split to quantify; {allowed}; "
                             "or leave it out to choose it by mask_method (esf, otsu, multiotsu)")
    return t



def particle_mask(total, method: MaskMethod = "esf", threshold: float | None = None,
                  edge_level: float = ESF_EDGE_LEVEL):
    """``(mask, Threshold)`` for the total signal; ``threshold`` overrides the method.

    Parameters
    ----------
    total : ndarray
        The total signal (:func:`total_signal`).
    method : {"esf", "otsu", "multiotsu"}
        How the threshold is chosen when none is given.
    threshold : float, optional
        A given threshold, checked by :func:`check_threshold` (finite, leaving
        neither an empty mask nor the whole grid).
    edge_level : float
        The ESF threshold's place on the particle-background step
        (:func:`esf_threshold`; default :data:`ESF_EDGE_LEVEL`, 0.35 of the step's
        height; 0.5 its centre); another level than the default only with ``"esf"``.

    Returns
    -------
    mask : ndarray of bool
    threshold : Threshold
    """
    total = np.asarray(total, dtype=np.float64)
    edge_level = check_mask_options(method, threshold, edge_level)
    if threshold is not None:
        t = check_threshold(threshold, (float(total.min()), float(total.max())) if total.size else None)
        th = Threshold(t, "given", _volume(total, t), _stability(total, t))
    elif method == "esf":
        th = esf_threshold(total, edge_level=edge_level)
    elif method == "otsu":
        th = otsu(total)
    elif method == "multiotsu":
        th = multiotsu(total)
    else:
        raise ValueError(f"mask method must be 'esf', 'otsu' or 'multiotsu', got {method!r}")
    return total > th.value, th


@dataclass
class Composition:
    """Quantified maps of k lines.

    Attributes
    ----------
    lines, elements : list of str
    weight, atomic : ndarray, (k, ...)
    mask : ndarray of bool
    threshold : Threshold
    """

    lines: list[str]
    elements: list[str]
    weight: np.ndarray
    atomic: np.ndarray
    mask: np.ndarray
    threshold: Threshold


def check_one_line_per_element(lines, elements) -> None:
    """Refuse two lines of one element: the fractions are normalised over elements, each counted once.

    Parameters
    ----------
    lines, elements : sequence of str
        The lines quantified and the element of each.

    Raises
    ------
    ValueError
        Naming the element and its lines (two lines of one element would count
        it twice in every voxel's normalisation: all fractions wrong).
    """
    by_element: dict = {}
    for ln, el in zip(lines, elements, strict=True):
        by_element.setdefault(el, []).append(ln)
    dup = {el: lns for el, lns in by_element.items() if len(lns) > 1}
    if dup:
        raise ValueError("; ".join(f"lines {lns} are all of element {el}" for el, lns in dup.items())
                         + ": the fractions are normalised over the elements, each counted once, so give one "
                           "line per element (the one with the most counts, or the one the factors are best for)")


def quantify(maps, factors, atomic_weights, lines, elements, mask_method: MaskMethod = "esf",
             threshold: float | None = None, edge_level: float = ESF_EDGE_LEVEL) -> Composition:
    """Mask, then weight and atomic fractions of ``maps`` (k, ...).

    Parameters
    ----------
    maps : ndarray, (k, ...)
        Reconstructed maps of the k lines.
    factors : array_like, (k,)
        ``f_A`` or ``z_A`` of the maps' lines (:func:`weight_fractions`).
    atomic_weights : array_like, (k,)
        Atomic weights of the lines' elements (g/mol).
    lines, elements : sequence of str
        The lines and the element of each (one line per element).
    mask_method : {"esf", "otsu", "multiotsu"}
        How the particle mask's threshold is chosen (:func:`particle_mask`).
    threshold : float, optional
        A given threshold instead of ``mask_method``.
    edge_level : float
        The ESF threshold's place on the particle-background step (:func:`esf_threshold`;
        default :data:`ESF_EDGE_LEVEL`, 0.35 of the step's height; 0.5 its centre).

    Returns
    -------
    Composition

    Raises
    ------
    ValueError
        Two lines of one element (:func:`check_one_line_per_element`); a bad mask threshold
        or edge level.
    """
    check_one_line_per_element(lines, elements)
    total = total_signal(maps, factors)
    mask, th = particle_mask(total, mask_method, threshold, edge_level)
    w = weight_fractions(maps, factors, mask)
    a = atomic_fractions(w, atomic_weights)
    return Composition(list(lines), list(elements), w, a, mask, th)
