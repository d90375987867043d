"""A region mean's bias from the estimator's response to a region-constant model (issue 15).

A region mean of a reconstruction is biased by the estimator's resolution: partial volume
at the region's boundary, the filter, SIRT's early stop. For a linear estimator with
resolution operator ``M`` and a truth that is constant in every region ``r`` (contrast
``x_r``), the expected reconstruction is ``sum_r x_r M 1_r``: the response to the region's
own indicator says how much of its mass the estimator keeps, the responses to its
neighbours' how much of theirs it moves in. :func:`region_model_bias` computes that
response with the estimator itself (same method, parameters, filter, set-up constants,
response ratios and mask threshold; non-negativity and the fractions' ratio included),
on a *region model*: every line's map set to a constant per region, zero outside the
measured mask (or, for the regions not declared ``uniform``, the estimate's own voxel
values there). The bias of a region's mean weight fraction is then the mean of the
reconstructed model's voxel fractions minus the model's own mean fraction there.

The contrasts are not known. Iteration 0 takes the estimate's region means (the
plug-in; blurred, so contrasts are understated); each further iteration is a Van
Cittert-like step on the region means, multiplicative, ``x_r <- x_r xhat_r / mean_r T(x)``,
towards the contrasts whose reconstruction reproduces the estimate's region means. Each
line's model is scaled to the estimate's projected total (the model data, like the
plug-in's, are rescaled to the measured counts, so nothing else fixes its level, on which
the fractions depend). For a linear estimator ``x = R b`` with ``R W`` a projection (the
pseudo-inverse), noiseless data and a region-constant truth, the contrasts converge to
the truth's and the bias to the region means' exact bias (``tests/pipeline/test_region_bias.py``).

Research, not used by :func:`~chemtomo.pipeline.uncertainty.bootstrap_uncertainty`'s
intervals: on the specimen suite it is not calibrated (docs/uncertainty.md, "Region means'
bias from the estimator's response"; ``scripts/uncertainty_region_bias.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from ..physics import Factors
from ..quantify import weight_fractions
from ..reconstruct import get_method
from ..tiltseries import TiltSeries
from .uncertainty import model_projections
from .volume import VolumeResult, prepare_series, reconstruct_series

__all__ = ["RegionModelBias", "model_response", "region_model_bias"]


@dataclass(frozen=True)
class RegionModelBias:
    """Per iteration, the region model's contrasts and the bias of its region means.

    Attributes
    ----------
    names : list of str
        The regions, in the order given (without ``"rest"``).
    elements : list of str
        The quantified elements (the weight fractions' order).
    contrasts : ndarray, (iters + 1, n_lines, n_regions + 1)
        Each line's model map value per region, ``"rest"`` (mask voxels in no region) last.
    model_fraction : ndarray, (iters + 1, n_elements, n_regions)
        The mean over each region of the model's voxel weight fractions.
    response_fraction : ndarray, (iters + 1, n_elements, n_regions)
        The mean over each region of the reconstructed model's voxel weight fractions.
    bias : ndarray, (iters + 1, n_elements, n_regions)
        ``response_fraction - model_fraction``: the region mean's bias in the model world.
    """

    names: list[str]
    elements: list[str]
    contrasts: np.ndarray
    model_fraction: np.ndarray
    response_fraction: np.ndarray
    bias: np.ndarray


def _projections(result: VolumeResult, maps: np.ndarray) -> list[np.ndarray]:
    """Every line's forward projections of ``maps`` (sinograms, float64, clipped at 0)."""
    return model_projections(result, maps, result.parameters["backend"])


def model_response(result: VolumeResult, series: TiltSeries, factors: Factors, maps: np.ndarray,
                   counts: TiltSeries | None = None) -> np.ndarray:
    """The estimator's reconstruction of ``maps``' noiseless forward projections.

    Parameters
    ----------
    result : VolumeResult
        The measured reconstruction: its method, parameters (an automatic choice reused),
        filter, set-up constants, response ratios and mask threshold are reused.
    series : TiltSeries
        The measured series (its angles, pixel size and HAADF are reused).
    factors : Factors
        The physics factors the result was made with.
    maps : ndarray, (n_lines, n_slices, n_grid, n_grid)
        The line maps to project.
    counts : TiltSeries, optional
        The raw counts, when ``series`` is not (as :func:`reconstruct_series`'s ``counts``).

    Returns
    -------
    ndarray, float32, (n_lines, n_slices, n_grid, n_grid)
        The reconstructed maps. Each line's projections are scaled to the measured total
        counts, as the plug-in bias's model data are (HEBT's maps are not in count units).
    """
    pr = result.parameters
    m = get_method(pr["method"])
    maps = np.asarray(maps, np.float32)
    if maps.shape != np.shape(result.maps):
        raise ValueError(f"maps must have the result's shape {np.shape(result.maps)}, got {maps.shape}")
    eds = {}
    for ln, pred in zip(result.lines, _projections(result, maps), strict=True):
        total = float(pred.sum())
        measured = float(np.asarray((series if counts is None else counts).eds[ln], np.float64).sum())
        eds[ln] = (pred * (measured / total if total > 0 else 0.0)).astype(np.float32)
    rep = TiltSeries(series.angles_deg, series.pixel_nm, eds, series.haadf, dict(series.metadata),
                     haadf_angles_deg=None if series.haadf is None else series.haadf_angles_deg)
    chosen = m.params({n: pr[n] for n in m.Params.names() if n in pr})
    out = reconstruct_series(rep if m.raw_counts else prepare_series(rep, pr["filter_sigma"], pr["filter_axes"]),
                             factors, m.name, chosen, filter_sigma=None, mask_method=pr["mask_method"],
                             threshold=result.composition.threshold.value, backend=pr["backend"],
                             constants=pr.get("constants"),
                             response_ratios=result.response_ratios if m.needs_haadf else None, haadf_volume=False)
    return np.asarray(out.maps, np.float32)


def region_model_bias(result: VolumeResult, series: TiltSeries, factors: Factors,
                      regions: Mapping[str, np.ndarray], iters: int = 2,
                      counts: TiltSeries | None = None,
                      uniform: Collection[str] | None = None) -> RegionModelBias:
    """The bias of each region's mean weight fraction, from the estimator's response to a region model.

    Parameters
    ----------
    result : VolumeResult
        The measured reconstruction (its mask is the particle).
    series : TiltSeries
        The measured series it was made from.
    factors : Factors
        The physics factors it was made with.
    regions : mapping of str to ndarray of bool
        Non-overlapping region masks of the volume's shape, inside the mask (voxels outside
        it are dropped); the mask's voxels in no region form ``"rest"``.
    iters : int
        Steps on the region contrasts after the plug-in (iteration 0), each costing one
        reconstruction: ``x_r <- x_r xhat_r / mean_r T(x)`` per line (multiplicative, since
        the model data are rescaled to the measured counts).
    counts : TiltSeries, optional
        The raw counts, when ``series`` is not.
    uniform : collection of str, optional
        The regions modelled as constants (``"rest"`` may be named). The others keep the
        estimate's voxel values inside them, scaled per line by the step above. Default:
        every region and ``"rest"`` constant.

    Returns
    -------
    RegionModelBias
        Per iteration, the contrasts, the model's and the reconstructed model's region
        fractions and their difference, the bias.
    """
    if isinstance(iters, bool) or int(iters) != iters or iters < 0:
        raise ValueError(f"iters must be an integer >= 0, got {iters!r}")
    if uniform is not None and not set(uniform) <= set(regions) | {"rest"}:
        raise ValueError(f"uniform names regions that are not given: {sorted(set(uniform) - set(regions))}; "
                         f"allowed: {sorted(set(regions) | {'rest'})}")
    mask = np.asarray(result.composition.mask, bool)
    names = list(regions)
    parts = []
    for n in names:
        r = np.asarray(regions[n])
        if r.dtype != bool or r.shape != mask.shape:
            raise ValueError(f"region {n!r} must be a bool mask of shape {mask.shape}, got {r.dtype} {r.shape}")
        parts.append(r & mask)
    if any(not p.any() for p in parts):
        raise ValueError(f"every region needs a voxel inside the mask; empty: "
                         f"{[n for n, p in zip(names, parts, strict=True) if not p.any()]}")
    if np.any(np.sum(parts, axis=0) > 1):
        raise ValueError("regions must not overlap")
    rest = mask & ~np.any(parts, axis=0)
    parts.append(rest)
    maps = np.asarray(result.maps, np.float64)
    pr = result.parameters
    qlines = list(pr.get("quantify_lines") or result.lines)
    qi = [result.lines.index(ln) for ln in qlines]
    q = factors.f(qlines) if result.factor == "f" else factors.z(qlines)

    def means(v: np.ndarray) -> np.ndarray:  # (lines, parts), nan for an empty rest
        return np.stack([v[:, p].mean(axis=1) if p.any() else np.full(v.shape[0], np.nan) for p in parts], axis=1)

    target = means(maps)
    flat = [True] * len(parts) if uniform is None else [n in uniform for n in names] + ["rest" in uniform]
    shapes = [None if f else maps[:, p] / np.where(t > 0, t, 1.0)[:, None]  # region mean 1 per line
              for f, p, t in zip(flat, parts, target.T, strict=True)]
    mass = np.array([p.sum() for p in _projections(result, maps)])  # the estimate's projected total per line
    x = target.copy()
    out = {k: [] for k in ("c", "wm", "wt")}
    for it in range(int(iters) + 1):
        model = np.zeros_like(maps)
        for k, p in enumerate(parts):
            if p.any():
                model[:, p] = x[:, k:k + 1] if shapes[k] is None else x[:, k:k + 1] * shapes[k]
        # each line's level: the estimate's projected total (T rescales to the counts, so only this pins it)
        have = np.array([p.sum() for p in _projections(result, model)])
        level = np.where(have > 0, mass / np.where(have > 0, have, 1.0), 1.0)
        model *= level[:, None, None, None]
        x = x * level[:, None]
        t = model_response(result, series, factors, model, counts)
        wt = weight_fractions(t[qi], q, mask)
        wm = weight_fractions(model[qi], q, mask)
        out["c"].append(x.copy())
        out["wm"].append(np.stack([wm[:, p].mean(axis=1) for p in parts[:len(names)]], axis=1))
        out["wt"].append(np.stack([wt[:, p].mean(axis=1) for p in parts[:len(names)]], axis=1))
        if it < iters:  # multiplicative: the level is set above, so only the regions' ratios change
            tm = means(np.asarray(t, np.float64))
            x = np.where(tm > 0, x * target / np.where(tm > 0, tm, 1.0), x)
    wm, wt = np.stack(out["wm"]), np.stack(out["wt"])
    return RegionModelBias(names, list(result.elements), np.stack(out["c"]), wm, wt, wt - wm)
