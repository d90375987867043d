"""Absorption-corrected reconstruction: an outer loop around any method of the registry.

The scheme (issue 14):

1. reconstruct the series with the registry's method (:func:`reconstruct_series`);
2. estimate the density and the composition: by default the absolute partial
   densities from the maps and the series' dose (see
   :func:`estimate_partial_densities_g_cm3`: assumes the simulator's count model);
   or the given density ``density_g_cm3`` times the maps' weight fractions;
3. compute the transmissions of every line towards the detectors through
   ``mu = rho sum_e w_e (mu/rho)_e(E_line)`` (:func:`~chemtomo.projector.attenuated.transmissions`);
4. correct the measured counts ray by ray by the ratio of the plain to the
   attenuated projection of the current map of the line,
   ``b'_i = b_i (W x)_i / (A x)_i`` with ``A`` the
   :class:`~chemtomo.projector.attenuated.AttenuatedOperator`, and reconstruct
   the corrected series with the same method;
   (the particle mask's threshold is the one chosen on the uncorrected maps, kept
   for every corrected reconstruction, so that the mask does not jump);
5. repeat 2-4 until the weight fractions change less than ``tol`` (the largest,
   over elements, mean absolute change inside the particle mask) or after
   ``max_outer`` corrected reconstructions. With ``stop="predicted"`` (the default for EDS-only maps) the
   change is *predicted* rather than made: after each corrected reconstruction the
   next correction (2-3 and the ratios of 4) is computed from its maps, and each
   map is scaled voxel by voxel by the back-projected change of its data,
   ``q_j = [W^T (p r_new)]_j / [W^T (p r_old)]_j`` (``p`` the map's plain projections,
   ``r`` the ratios applied and the new ones); when the fractions of the scaled maps
   differ by less than ``tol / PREDICTION_SAFETY`` (2: the back-projection spreads a
   local change along the rays and underestimates it; measured on ``oxide_supported``,
   n = 16-24, 150-600 nm fields, the change made was 1.1-2.1 times the predicted one)
   the loop stops, without the confirming reconstruction the rule ``stop="measured"``
   makes.

HEBT-SIRT's maps (HAADF units, response ratios fitted to the HAADF) need not carry a
line's counts: it zeroes O Ka on an absorbed ``oxide_supported`` series (support O 0.002
against 0.471), and a correction estimated from them does nothing. For such a method
(``Method.fits_each_line`` False) steps 2-4 take the density, composition and emission
from an EDS-only reconstruction (``ESTIMATE_METHOD``) of the same (corrected) series, and
the loop stops by the measured rule (``stop="auto"``): the prediction, made on the EDS-only
fractions, fell tenfold short of the bimodal method's change (docs/absorption.md). The
fused models fit every line's counts with its own Poisson term and are estimated from
their own maps (:func:`estimate_method`; from EDS-SIRT maps when their HAADF units would
need a HAADF dose the metadata lack).

Warm starts: a method that can (``Method.warm_start``: the regularised solvers) starts each
corrected reconstruction from the previous one's maps and duals with ``WARM_FRACTION`` of
its iteration budget (``warm_start``, ``warm_fraction``; measured in docs/absorption.md).

The HAADF volume (``VolumeResult.haadf_volume``) does not depend on the correction:
it is reconstructed once, with the uncorrected maps, and put in the corrected result.
The transmissions and the density of the result are those of the last correction
computed: with ``stop="predicted"`` from the returned maps (the ones the convergence
test used), with ``"measured"`` the last one applied (from the maps before the last
reconstruction).

Step 4 is a ratio correction rather than a solve with the attenuated operators:
it lets every registered method (EDS-only, bimodal, TV, ...) run unchanged, since
the methods take one projector for all lines. At the fixed point the corrected
data are the plain projections of maps whose attenuated projections are the
measured data, i.e. the maps that the attenuated operators would reconstruct
(exactly so for noiseless data in the range of the operators).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..geometry import columns_to_sinogram, columns_to_volume, volume_to_columns
from ..physics import AVOGADRO, BARN_CM2, Factors
from ..physics.absorption import DetectorGeometry, mass_attenuation_cm2_g
from ..projector import astra_matrix
from ..projector.attenuated import AttenuatedOperator, transmissions
from ..quantify import weight_fractions
from ..reconstruct import get_method
from ..tiltseries import TiltSeries
from .distributed import keep_operator
from .volume import DEFAULT_METHOD, VolumeResult, reconstruct_series

__all__ = ["AbsorptionResult", "estimate_method", "estimate_partial_densities_g_cm3",
           "reconstruct_absorption_corrected"]

NM_CM = 1e-7
#: How the outer loop decides it has converged (see :func:`reconstruct_absorption_corrected`).
STOP_RULES = ("auto", "predicted", "measured")
#: The predicted change is multiplied by this before it is compared with ``tol``: the back-projected
#: change spreads a local change along the rays, so it underestimates what a reconstruction makes
#: (measured on oxide_supported, EDS-SIRT, n 16-24, fields 150-600 nm: made / predicted 1.1-2.1;
#: fused-TV 2.8; HEBT-SIRT 12, where the correction itself fails: docs/absorption.md).
PREDICTION_SAFETY = 2.0
#: The method whose maps estimate the density, composition and emission when the corrected
#: method's maps are not EDS-only (bimodal, HAADF units).
ESTIMATE_METHOD = "eds_sirt"
#: Share of the method's iteration budget a warm-started corrected reconstruction runs (each starts
#: from the previous outer iteration's maps and duals; measured on oxide_supported, fused_tv:
#: docs/absorption.md, "Warm starts").
WARM_FRACTION = 0.5


@dataclass
class AbsorptionResult:
    """An absorption-corrected reconstruction and its uncorrected start.

    Attributes
    ----------
    corrected, uncorrected : VolumeResult
    transmissions : dict line -> ndarray, float32 (1, n_grid**2, n_slices)
        The transmissions of the last correction computed (solid-angle-weighted over
        the detectors; see the module docstring), averaged over the tilts: the
        per-tilt arrays (n_tilts times larger) are dropped once the correction is made,
        before the next reconstruction.
    density_g_cm3 : ndarray, (n_slices, n_grid, n_grid)
        The density of the last correction computed.
    outer_iterations : int
        Corrected reconstructions made (1 to ``max_outer``).
    changes : list of float
        Fraction change made by each corrected reconstruction (see the module docstring).
    converged : bool
        Whether the last change (predicted or made, after ``stop``) was below ``tol``.
    detectors : DetectorGeometry
    parameters : dict
    predicted_changes : list of float
        With ``stop="predicted"``: after each corrected reconstruction, the change the
        next one is predicted to make (the rule compares ``PREDICTION_SAFETY`` times it with ``tol``).
    """

    corrected: VolumeResult
    uncorrected: VolumeResult
    transmissions: dict
    density_g_cm3: np.ndarray
    outer_iterations: int
    changes: list
    converged: bool
    detectors: DetectorGeometry
    parameters: dict = field(default_factory=dict)
    predicted_changes: list = field(default_factory=list)


def estimate_partial_densities_g_cm3(result: VolumeResult, factors: Factors, metadata: dict) -> np.ndarray:
    """Partial densities (g/cm^3) of every element from absolute maps, ``X_A / (K k_A 1e-7)``.

    Assumes the count model of :mod:`chemtomo.simulate` (maps reconstructed with
    paths in nm): EDS-only maps ``X_A = D_eds (Omega / 4 pi) N_A f_A rho_A``
    (``f_A`` in barn units converted to cm^2), bimodal maps in HAADF units
    ``X_A = D_haadf N_A z_A rho_A``. Needs ``eds_dose`` and ``solid_angle_sr``
    (or ``haadf_dose``) in ``metadata``; real data need the detectors' calibration.
    Not restricted to the particle mask (a light support beside a heavy particle
    may fall outside it); negative values are clipped to 0.

    Parameters
    ----------
    result : VolumeResult
    factors : Factors
    metadata : dict
        The series' metadata.

    Returns
    -------
    ndarray, (k, n_slices, n_grid, n_grid)
    """
    lines = result.lines
    if result.factor == "f":
        need, k = ("eds_dose", "solid_angle_sr"), factors.f(lines)
    else:
        need, k = ("haadf_dose",), factors.z(lines)
    missing = [m for m in need if m not in metadata]
    if missing:
        raise ValueError(
            f"the series' metadata lacks {missing}, needed for an absolute density from {result.factor}-maps; "
            "give density_g_cm3 instead"
        )
    if result.factor == "f":
        scale = float(metadata["eds_dose"]) * float(metadata["solid_angle_sr"]) / (4 * np.pi)
    else:
        scale = float(metadata["haadf_dose"])
    maps = np.clip(np.asarray(result.maps, dtype=np.float64), 0, None)
    per = 1.0 / (scale * AVOGADRO * np.asarray(k, dtype=np.float64) * BARN_CM2 * NM_CM)
    return maps * per.reshape((-1,) + (1,) * (maps.ndim - 1))


def _partials(result, factors, metadata, density_g_cm3) -> np.ndarray:
    """Partial densities (k, ...) g/cm^3: estimated, or the given density times the fractions."""
    if density_g_cm3 is None:
        return estimate_partial_densities_g_cm3(result, factors, metadata)
    mask = np.asarray(result.composition.mask)
    rho = np.asarray(density_g_cm3, dtype=np.float64)
    if np.any(rho < 0) or not np.all(np.isfinite(rho)):
        raise ValueError("density_g_cm3 must be finite and >= 0")
    if rho.ndim == 0:
        rho = np.where(mask, float(rho), 0.0)
    elif rho.shape != mask.shape:
        raise ValueError(f"density_g_cm3 must be a number or an array of shape {mask.shape}, got {rho.shape}")
    k = factors.f(result.lines) if result.factor == "f" else factors.z(result.lines)
    return rho * weight_fractions(np.asarray(result.maps), k)


def _fraction_change(a: VolumeResult, b: VolumeResult) -> float:
    """Largest, over elements, mean absolute change of the weight fractions inside ``b``'s mask."""
    mask = np.asarray(b.composition.mask)
    if not mask.any():
        return 0.0
    d = np.abs(np.asarray(a.composition.weight) - np.asarray(b.composition.weight))[:, mask]
    return float(d.mean(axis=1).max())


def _data_scales(W, plain: dict, old: dict | None, new: dict) -> dict:
    """Line -> ``q = W^T (p r_new) / W^T (p r_old)`` (columns, ``(n_vox, n_slices)``; 1 where undefined).

    The voxel-by-voxel factor by which a reconstruction locally linear in its data moves a
    map when its data go from ratios ``old`` (None: 1, the uncorrected data) to ``new``
    (``p`` the map's plain projections).
    """
    out = {}
    for ln, p in plain.items():
        num = np.asarray(W.T @ (p * new[ln]), dtype=np.float64)
        den = np.asarray(W.T @ (p if old is None else p * old[ln]), dtype=np.float64)
        out[ln] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return out


def _predicted_change(current: VolumeResult, factors: Factors, q: dict) -> float:
    """The fraction change that reconstructing with the ratios ``new`` instead of ``old`` would make.

    Each map is scaled voxel by voxel by the back-projected change of its data,
    ``q_j = [W^T (p r_new)]_j / [W^T (p r_old)]_j`` (``q``: :func:`_data_scales`; ``p`` the plain
    projections of the current map, ``r`` the ratio columns): a reconstruction that is locally linear
    in its data moves the voxel by this factor. The change is measured as
    :func:`_fraction_change` (inside the current mask).
    """
    mask = np.asarray(current.composition.mask)
    if not mask.any():
        return 0.0
    maps = np.clip(np.asarray(current.maps, dtype=np.float64), 0, None)
    scaled = np.empty_like(maps)
    for i, ln in enumerate(current.lines):
        scaled[i] = maps[i] * columns_to_volume(q[ln], current.geometry.n_grid)
    k = factors.f(current.lines) if current.factor == "f" else factors.z(current.lines)
    d = np.abs(weight_fractions(scaled, k) - weight_fractions(maps, k))[:, mask]
    return float(d.mean(axis=1).max())


def _correction(current: VolumeResult, factors: Factors, metadata: dict, density_g_cm3, W, det, mode, slice_nm):
    """Density, tilt-mean transmissions, plain projections and ratio columns of every line from the current maps."""
    geom = current.geometry
    partial = _partials(current, factors, metadata, density_g_cm3)
    # mu = sum_e rho_e (mu/rho)_e = rho sum_e w_e (mu/rho)_e, one map per line, swept in one call
    mus = np.stack([sum(mass_attenuation_cm2_g(el, ln) * partial[j] for j, el in enumerate(current.elements))
                    * NM_CM for ln in current.lines])
    T_all = dict(zip(current.lines, transmissions(mus, geom, det, mode=mode, slice_nm=slice_nm), strict=True))
    plain, ratios = {}, {}
    for i, ln in enumerate(current.lines):
        x = volume_to_columns(np.clip(np.asarray(current.maps[i], dtype=np.float32), 0, None))
        p = np.asarray(W @ x, dtype=np.float64)
        att = AttenuatedOperator(W, T_all[ln]).forward(x).astype(np.float64)
        ok = (att > 1e-6 * max(float(att.max()), 1e-30)) & (p > 0)
        plain[ln], ratios[ln] = p, np.where(ok, p / np.where(ok, att, 1.0), 1.0)
    T_mean = {ln: np.asarray(T, dtype=np.float32).mean(axis=0, keepdims=True) for ln, T in T_all.items()}
    return partial.sum(axis=0), T_mean, plain, ratios


def _corrected(series: TiltSeries, ratios: dict, n_tilts: int, n_pixels: int) -> TiltSeries:
    """``series`` with each line's counts multiplied by its ratio columns (sinogram layout)."""
    r = {ln: columns_to_sinogram(v, n_tilts, n_pixels) for ln, v in ratios.items()}
    eds = {ln: (v * r[ln]).astype(np.float32) if ln in r else v for ln, v in series.eds.items()}
    return TiltSeries(series.angles_deg, series.pixel_nm, eds, series.haadf, dict(series.metadata),
                      haadf_angles_deg=series.haadf_angles_deg)


def estimate_method(method, factor: str, density_g_cm3, metadata: dict, estimate: str | None = "auto") -> str | None:
    """The method whose maps estimate each correction (None: the corrected method's own); see ``estimate``.

    Parameters
    ----------
    method : Method
        The corrected method.
    factor : {"f", "z"}
        Its maps' factor.
    density_g_cm3 : number, array or None
        The given density (None: estimated from the maps).
    metadata : dict
        The series' metadata.
    estimate : str or None
        As in :func:`reconstruct_absorption_corrected`.

    Returns
    -------
    str or None
    """
    if estimate != "auto":
        return None if estimate is None else get_method(estimate).name
    # a method whose fit may give a line no weight (HEBT) is estimated from EDS-only maps, and so are
    # HAADF-unit maps when an absolute density would need a HAADF dose the metadata lack
    own = method.fits_each_line and (factor == "f" or density_g_cm3 is not None or "haadf_dose" in metadata)
    return None if own else ESTIMATE_METHOD


def reconstruct_absorption_corrected(
    series: TiltSeries,
    factors: Factors,
    method: str = DEFAULT_METHOD,
    *,
    detectors: DetectorGeometry | str = "super-x",
    density_g_cm3=None,
    tol: float = 0.005,
    max_outer: int = 5,
    mode: str = "3d",
    slice_nm: float | None = None,
    stop: str = "auto",
    warm_start: bool | None = None,
    warm_fraction: float = WARM_FRACTION,
    estimate: str | None = "auto",
    **kwargs,
) -> AbsorptionResult:
    """Reconstruct ``series`` with ``method``, corrected for X-ray absorption in the specimen.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
    method : str
        Any registered method.
    detectors : DetectorGeometry or str
        The detectors, or a preset name (``"super-x"``, ``"single"``).
    density_g_cm3 : float, ndarray (n_slices, n_grid, n_grid) or None
        The density: a number (inside the particle mask), a map, or None to
        estimate it from the maps each iteration (:func:`estimate_partial_densities_g_cm3`).
    tol : float
        Stop when the fractions change (or are predicted to change) less than this, > 0.
    max_outer : int
        Most corrected reconstructions, >= 1.
    mode : {"3d", "slice"}
        Path model of :func:`~chemtomo.projector.attenuated.transmissions`.
    slice_nm : float, optional
        Slice spacing along the tilt axis (default the pixel).
    stop : {"auto", "predicted", "measured"}
        How convergence is decided (module docstring): from the change the next
        correction is predicted to make, or from the change a further reconstruction
        makes (one more reconstruction at the end). ``"auto"`` (default): predicted for a
        method with EDS-only maps, measured for a bimodal one (whose fractions the
        prediction, made on EDS-only estimates, underestimates tenfold).
    warm_start : bool or None
        Start each corrected reconstruction from the previous one's state (maps and
        duals: ``reconstruct_series(warm_start=...)``) with ``warm_fraction`` of the
        method's iteration budget. None (default): when the method can
        (``Method.warm_start``: the regularised solvers); True for a method that cannot
        is a ValueError. In process only (no ``scheduler``).
    warm_fraction : float
        Share of ``n_iter`` a warm-started corrected reconstruction runs, in (0, 1]
        (at least one iteration).
    estimate : str or None
        Whose maps the density, composition and emission are estimated from: None, the
        corrected method's own; a registered method's name, a reconstruction of the
        (corrected) series by it each outer iteration; ``"auto"`` (default): the
        method's own when it fits every line's counts (``Method.fits_each_line``: the
        EDS-only methods and the fused models) and, for maps in HAADF units, the density
        is given or the metadata hold ``haadf_dose``; else ``ESTIMATE_METHOD`` (HEBT-SIRT,
        and real data without a HAADF dose).
    **kwargs
        Passed to :func:`~chemtomo.pipeline.volume.reconstruct_series` (``params``,
        ``n_iter``, ``filter_sigma``, ``counts``, ...; not ``store`` or ``resume``).

    Returns
    -------
    AbsorptionResult
    """
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if int(max_outer) < 1:
        raise ValueError(f"max_outer must be >= 1, got {max_outer!r}")
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}, got {stop!r}")
    for bad in ("store", "resume", "scheduler"):
        if kwargs.get(bad):
            raise ValueError(f"{bad!r} is not supported by the absorption-corrected reconstruction")
    det = DetectorGeometry.preset(detectors) if isinstance(detectors, str) else detectors
    m = get_method(method)
    warm = m.warm_start if warm_start is None else bool(warm_start)
    if warm and not m.warm_start:
        raise ValueError(f"warm_start=True: method {m.name!r} cannot start from an earlier reconstruction; "
                         "give warm_start=None or False")
    if not (np.isfinite(warm_fraction) and 0 < warm_fraction <= 1):
        raise ValueError(f"warm_fraction must be in (0, 1], got {warm_fraction!r}")
    if estimate is not None and estimate != "auto":
        get_method(estimate)  # an unknown name fails before any work
    with keep_operator():  # every reconstruction of the loop on one projector, built once
        counts = kwargs.pop("counts", None)
        first = reconstruct_series(series, factors, method, counts=counts, keep_warm=warm, **kwargs)
        geom = first.geometry
        # the particle mask's threshold is chosen once, on the uncorrected maps, and kept
        later = {**kwargs, "threshold": float(first.composition.threshold.value)}
        if later.get("auto"):  # the parameters chosen on the uncorrected data are kept, not chosen again
            names = get_method(method).Params.names()
            later["params"] = {k: first.parameters[k] for k in names if k in first.parameters}
            for k in ("auto", "auto_grid", "n_iter", "alpha"):
                later.pop(k, None)
        later["haadf_volume"] = False  # the HAADF volume does not change with the correction: made once, reused
        warm_n_iter = None
        if warm:  # the corrected reconstructions resume from the previous one's state, on a shorter budget
            given = {k: later[k] for k in ("n_iter", "alpha") if later.get(k) is not None}
            full = m.params(later.get("params"), **given)
            later.pop("n_iter", None)
            later.pop("alpha", None)
            warm_n_iter = max(1, int(round(warm_fraction * full.n_iter)))
            later["params"] = full.replace(n_iter=warm_n_iter)
            later["keep_warm"] = True
        W = astra_matrix(geom)
        nt, npix = geom.n_tilts, geom.n_pixels
        # a bimodal method's maps (HAADF units, response ratios fitted) need not carry a line's counts
        # (HEBT zeroes a line the HAADF does not explain): its corrections are estimated from EDS-only maps
        est_method = estimate_method(m, first.factor, density_g_cm3, series.metadata, estimate)
        if stop == "auto":
            stop = "predicted" if est_method is None else "measured"
        est_kw = {k: kwargs[k] for k in ("filter_sigma", "filter_axes", "backend", "chunk_slices", "mask_method")
                  if k in kwargs}

        def estimate(result, corrected_series):
            if est_method is None:
                return result
            return reconstruct_series(corrected_series, factors, est_method, haadf_volume=False, **est_kw)

        current, changes, predicted = first, [], []
        rho, T_all, plain, ratios = _correction(estimate(first, series), factors, series.metadata, density_g_cm3, W,
                                                det, mode, slice_nm)
        converged = False
        for it in range(int(max_outer)):
            now = _corrected(series, ratios, nt, npix)
            # warm: from the previous reconstruction's state (its maps scaled by the data's change, as the predicted
            # rule scales them, were measured no closer: docs/absorption.md)
            start = {"warm_start": current.warm} if warm else {}
            nxt = reconstruct_series(now, factors, method,
                                     counts=None if counts is None else _corrected(counts, ratios, nt, npix),
                                     **start, **later)
            current = replace(current, warm=None)  # the state is used once: not kept beside the next one
            changes.append(_fraction_change(current, nxt))
            current, applied = nxt, ratios
            if stop == "measured":
                converged = changes[-1] < tol
                if converged or it == int(max_outer) - 1:
                    break
                rho, T_all, plain, ratios = _correction(estimate(current, now), factors, series.metadata, density_g_cm3,
                                                        W, det, mode, slice_nm)
                continue
            # the next correction, from the maps just made; stop when it would change the fractions less than tol
            est = estimate(current, now)
            rho, T_all, plain, ratios = _correction(est, factors, series.metadata, density_g_cm3, W, det, mode,
                                                    slice_nm)
            predicted.append(_predicted_change(est, factors, _data_scales(W, plain, applied, ratios)))
            converged = PREDICTION_SAFETY * predicted[-1] < tol
            if converged:
                break
        current, first = replace(current, warm=None), replace(first, warm=None)
        if first.haadf_volume is not None:
            current = replace(current, haadf_volume=first.haadf_volume,
                              parameters={**current.parameters, "haadf_volume": first.parameters.get("haadf_volume")})
        params = {"method": method, "detectors": det.key(), "tol": tol, "max_outer": int(max_outer), "mode": mode,
                  "density": "estimated from the maps" if density_g_cm3 is None else "given", "stop": stop,
                  "predicted_changes": predicted, "warm_start": warm, "warm_n_iter": warm_n_iter,
                  "estimate": est_method or "own maps"}
        return AbsorptionResult(current, first, T_all, rho, len(changes), changes, converged, det, params, predicted)
