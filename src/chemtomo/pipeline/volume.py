"""Reconstruct and quantify a whole tilt series, slice-chunk by slice-chunk.

Slices along the tilt axis are independent problems sharing one projector, so
a chunk of slices is one batched solve (all its slices and lines as columns).
The response ratios are estimated once from the whole series; the particle
mask is chosen once on the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import TiltGeometry, columns_to_volume, sinogram_to_columns
from ..physics import Factors
from ..preprocess import gaussian_filter_stack
from ..projector import make_operator
from ..quantify import Composition, quantify
from ..reconstruct import NEEDS_HAADF, ChannelData, ResponseRatios, estimate_response_ratios, get_method
from ..reconstruct.hebt import check_alpha
from ..reconstruct.sirt import check_iterations
from ..tiltseries import TiltSeries


@dataclass
class VolumeResult:
    """Reconstructed and quantified maps of a tilt series.

    Attributes
    ----------
    lines, elements : list of str
    maps : ndarray, (k, n_slices, n_grid, n_grid)
        Reconstructed maps (slices, z, x) per line, in the method's units.
    factor : {"f", "z"}
        The factor the maps are quantified by.
    composition : Composition
        Weight / atomic fractions, mask and threshold.
    response_ratios : ResponseRatios or None
    theory_response_ratios : ndarray or None
    geometry : TiltGeometry
    parameters : dict
    """

    lines: list[str]
    elements: list[str]
    maps: np.ndarray
    factor: str
    composition: Composition
    response_ratios: ResponseRatios | None
    theory_response_ratios: np.ndarray | None
    geometry: TiltGeometry
    parameters: dict = field(default_factory=dict)


def series_to_channel_data(series: TiltSeries, lines: list[str], start: int = 0, stop: int | None = None,
                           r: np.ndarray | None = None) -> ChannelData:
    """Operator columns of slices ``start:stop`` of ``series``."""
    stop = series.n_slices if stop is None else stop
    eds = np.stack([sinogram_to_columns(series.eds[ln][:, start:stop]) for ln in lines])
    haadf = None if series.haadf is None else sinogram_to_columns(series.haadf[:, start:stop])
    return ChannelData(list(lines), eds, haadf, r)


def slice_chunks(n_slices: int, chunk_slices: int | None):
    chunk = n_slices if not chunk_slices else max(1, int(chunk_slices))
    return [(a, min(a + chunk, n_slices)) for a in range(0, n_slices, chunk)]


def prepare_series(series: TiltSeries, filter_sigma: float | None, filter_axes: str) -> TiltSeries:
    """The EDS stacks Gaussian-filtered (HAADF untouched), as the paper feeds both methods."""
    if not filter_sigma:
        return series
    return TiltSeries(series.angles_deg, series.pixel_nm,
                      {k: gaussian_filter_stack(v, filter_sigma, filter_axes) for k, v in series.eds.items()},
                      series.haadf, dict(series.metadata))


def reconstruct_series(
    series: TiltSeries,
    factors: Factors,
    *,
    method: str = "hebt_sirt",
    n_iter: int = 100,
    alpha: float = 0.8,
    filter_sigma: float | None = 0.8,
    filter_axes: str = "image",
    mask_method: str = "esf",
    threshold: float | None = None,
    backend: str = "sparse",
    chunk_slices: int | None = None,
    progress: bool = False,
    method_options: dict | None = None,
) -> VolumeResult:
    """EDS-only or bimodal reconstruction of every slice, then quantification.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
        Must hold every EDS line of ``series``.
    method : str
        A registered method (``eds_sirt``, ``hebt_sirt``, ...).
    n_iter : int
    alpha : float
        HAADF weight for bimodal methods, in [0, 1).
    filter_sigma : float or None
        Gaussian filter of the EDS stacks (pixels); None or 0 for none.
    filter_axes : {"image", "sinogram"}
    mask_method : {"esf", "otsu"}
    threshold : float, optional
        Fixed threshold instead of ``mask_method``.
    backend : str
        Operator backend (see :func:`chemtomo.projector.make_operator`).
    chunk_slices : int, optional
        Slices per batched solve (bounds memory); default all at once.
    progress : bool
        Show a progress bar over chunks.
    method_options : dict, optional
        Extra keyword arguments for the method.
    """
    fn = get_method(method)
    n_iter = check_iterations(n_iter)
    alpha = check_alpha(alpha)
    lines = series.lines
    if not lines:
        raise ValueError("the tilt series has no EDS line to reconstruct")
    missing = [ln for ln in lines if ln not in factors]
    if missing:
        raise KeyError(f"no physics factors for line(s) {missing}; factors hold {list(factors)}")
    needs_haadf = method in NEEDS_HAADF
    if needs_haadf and series.haadf is None:
        raise ValueError(f"method {method!r} needs HAADF images; this series has none (use eds_sirt)")
    prepared = prepare_series(series, filter_sigma, filter_axes)
    rr = theory = None
    if needs_haadf:
        rr = estimate_response_ratios(prepared.haadf, {ln: prepared.eds[ln] for ln in lines})
        md = series.metadata
        if all(k in md for k in ("haadf_dose", "eds_dose", "solid_angle_sr")):
            theory = factors.response_ratios(haadf_dose=md["haadf_dose"], eds_dose=md["eds_dose"],
                                             solid_angle_sr=md["solid_angle_sr"], lines=lines)
    geom = series.geometry()
    W = make_operator(geom, backend)
    k = len(lines)
    maps = np.zeros((k, series.n_slices, geom.n_grid, geom.n_grid), np.float32)
    chunks = slice_chunks(series.n_slices, chunk_slices)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=series.n_slices, desc=f"{method} ({n_iter} it)", unit="slice")
    opts = dict(method_options or {})
    factor_kind = "f"
    for a, b in chunks:
        data = series_to_channel_data(prepared, lines, a, b, None if rr is None else rr.r)
        res = fn(W, data, n_iter=n_iter, alpha=alpha, **opts)
        factor_kind = res.factor
        for i in range(k):
            maps[i, a:b] = columns_to_volume(res.maps[i], geom.n_grid)
        if bar is not None:
            bar.update(b - a)
    if bar is not None:
        bar.close()
    q = factors.f(lines) if factor_kind == "f" else factors.z(lines)
    elements = [factors[ln].element for ln in lines]
    comp = quantify(maps, q, factors.atomic_weights(lines), lines, elements, mask_method, threshold)
    params = {
        "method": method, "n_iter": n_iter, "alpha": alpha if needs_haadf else None,
        "filter_sigma": filter_sigma, "filter_axes": filter_axes, "mask_method": mask_method,
        "threshold": comp.threshold.as_dict(), "backend": backend, "chunk_slices": chunk_slices,
        "lines": lines, "factor": factor_kind, "geometry": geom.key(),
        "factors": factors.subset(lines).as_dict(), **opts,
    }
    return VolumeResult(lines, elements, maps, factor_kind, comp, rr, theory, geom, params)
