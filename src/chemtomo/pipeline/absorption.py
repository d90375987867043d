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
   ``max_outer`` corrected reconstructions.

Step 4 is a ratio correction rather than a solve with the attenuated operators:
it lets every registered method (EDS-only, bimodal, TV, ...) run unchanged, since
the methods take one projector for all lines. At the fixed point the corrected
data are the plain projections of maps whose attenuated projections are the
measured data, i.e. the maps that the attenuated operators would reconstruct
(exactly so for noiseless data in the range of the operators).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import columns_to_sinogram, volume_to_columns
from ..physics import AVOGADRO, BARN_CM2, Factors
from ..physics.absorption import DetectorGeometry, mass_attenuation_cm2_g
from ..projector import astra_matrix
from ..projector.attenuated import AttenuatedOperator, transmissions
from ..quantify import weight_fractions
from ..reconstruct import get_method
from ..tiltseries import TiltSeries
from .volume import DEFAULT_METHOD, VolumeResult, reconstruct_series

__all__ = ["AbsorptionResult", "estimate_partial_densities_g_cm3", "reconstruct_absorption_corrected"]

NM_CM = 1e-7


@dataclass
class AbsorptionResult:
    """An absorption-corrected reconstruction and its uncorrected start.

    Attributes
    ----------
    corrected, uncorrected : VolumeResult
    transmissions : dict line -> ndarray, float32 (n_tilts, n_grid**2, n_slices)
        The transmissions of the last correction (solid-angle-weighted over the detectors).
    density_g_cm3 : ndarray, (n_slices, n_grid, n_grid)
        The density of the last correction.
    outer_iterations : int
        Corrected reconstructions made (1 to ``max_outer``).
    changes : list of float
        Fraction change after each corrected reconstruction (see the module docstring).
    converged : bool
        Whether the last change was below ``tol``.
    detectors : DetectorGeometry
    parameters : dict
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
    mask = np.asarray(b.composition.mask)
    if not mask.any():
        return 0.0
    d = np.abs(np.asarray(a.composition.weight) - np.asarray(b.composition.weight))[:, mask]
    return float(d.mean(axis=1).max())


def _corrected(series: TiltSeries, ratios: dict) -> TiltSeries:
    eds = {ln: (v * ratios[ln]).astype(np.float32) if ln in ratios else v for ln, v in series.eds.items()}
    return TiltSeries(series.angles_deg, series.pixel_nm, eds, series.haadf, dict(series.metadata),
                      haadf_angles_deg=series.haadf_angles_deg)


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
        Stop when the fractions change less than this (module docstring), > 0.
    max_outer : int
        Most corrected reconstructions, >= 1.
    mode : {"3d", "slice"}
        Path model of :func:`~chemtomo.projector.attenuated.transmissions`.
    slice_nm : float, optional
        Slice spacing along the tilt axis (default the pixel).
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
    for bad in ("store", "resume", "scheduler"):
        if kwargs.get(bad):
            raise ValueError(f"{bad!r} is not supported by the absorption-corrected reconstruction")
    det = DetectorGeometry.preset(detectors) if isinstance(detectors, str) else detectors
    get_method(method)
    counts = kwargs.pop("counts", None)
    first = reconstruct_series(series, factors, method, counts=counts, **kwargs)
    geom = first.geometry
    # the particle mask's threshold is chosen once, on the uncorrected maps, and kept
    later = {**kwargs, "threshold": float(first.composition.threshold.value)}
    if later.get("auto"):  # the parameters chosen on the uncorrected data are kept, not chosen again
        names = get_method(method).Params.names()
        later["params"] = {k: first.parameters[k] for k in names if k in first.parameters}
        for k in ("auto", "auto_grid", "n_iter", "alpha"):
            later.pop(k, None)
    W = astra_matrix(geom)
    current, changes, T_all, rho = first, [], {}, None
    for _ in range(int(max_outer)):
        partial = _partials(current, factors, series.metadata, density_g_cm3)
        rho = partial.sum(axis=0)
        ratios = {}
        for i, ln in enumerate(current.lines):
            # mu = sum_e rho_e (mu/rho)_e = rho sum_e w_e (mu/rho)_e
            mu = sum(mass_attenuation_cm2_g(el, ln) * partial[j] for j, el in enumerate(current.elements)) * NM_CM
            T_all[ln] = transmissions(mu, geom, det, mode=mode, slice_nm=slice_nm)
            x = volume_to_columns(np.clip(np.asarray(current.maps[i], dtype=np.float32), 0, None))
            plain = np.asarray(W @ x, dtype=np.float64)
            att = AttenuatedOperator(W, T_all[ln]).forward(x).astype(np.float64)
            ok = (att > 1e-6 * max(float(att.max()), 1e-30)) & (plain > 0)
            r = np.where(ok, plain / np.where(ok, att, 1.0), 1.0)
            ratios[ln] = columns_to_sinogram(r, geom.n_tilts, geom.n_pixels)
        nxt = reconstruct_series(_corrected(series, ratios), factors, method,
                                 counts=None if counts is None else _corrected(counts, ratios), **later)
        changes.append(_fraction_change(current, nxt))
        current = nxt
        if changes[-1] < tol:
            break
    params = {"method": method, "detectors": det.key(), "tol": tol, "max_outer": int(max_outer), "mode": mode,
              "density": "estimated from the maps" if density_g_cm3 is None else "given"}
    return AbsorptionResult(current, first, T_all, rho, len(changes), changes, changes[-1] < tol, det, params)
