"""Simulated tilt series with X-ray absorption in the specimen, by an independent path.

The reconstruction side computes transmissions by a plane sweep on the
reconstruction grid (:mod:`chemtomo.projector.attenuated`). The simulator
computes them separately, so that the correction is not tested against itself:
a direct ray march from every emitting voxel of the specimen's *fine* grid
(``oversampling`` times finer), sampling the fine linear attenuation map
trilinearly every ``step_fraction`` fine voxels until the ray leaves the
volume (midpoint rule). Only the detector directions
(:func:`~chemtomo.projector.attenuated.detector_directions`: the geometry
convention, beam along +z at tilt 0 with the electron source on the row-0
side) are shared.

Each line's emission ``partial_A * T`` is then projected tilt by tilt on the
fine geometry like :func:`~chemtomo.simulate.specimen_series.project_specimen`,
and the counts are those of :func:`~chemtomo.simulate.specimen_series.simulate_series`
scaled by the attenuated over the plain projection. HAADF is not absorbed.
Several detectors: the solid-angle-weighted mean transmission (the acquisition's
``solid_angle_sr`` still sets the count rate).
"""

from __future__ import annotations

import numpy as np

from ..geometry import TiltGeometry, columns_to_sinogram
from ..physics.absorption import DetectorGeometry, mass_attenuation_cm2_g
from ..projector import make_operator
from ..projector.attenuated import detector_directions
from ..tiltseries import TiltSeries
from .forward import NM_CM
from .specimen_model import Specimen
from .specimen_series import SpecimenSimulation, simulate_series

__all__ = ["fine_attenuation_per_nm", "raymarch_transmissions", "simulate_series_absorbed"]


def fine_attenuation_per_nm(specimen: Specimen, line: str) -> np.ndarray:
    """Linear attenuation coefficient (1/nm) of ``line``'s photons on the fine grid, ``(N, N, N)``."""
    mu = np.zeros(specimen.partial_fine.shape[1:], dtype=np.float64)
    for c, el in enumerate(specimen.elements):
        mu += specimen.partial_fine[c] * (mass_attenuation_cm2_g(el, line) * 1e-7)
    return mu


def raymarch_transmissions(mu_per_nm: np.ndarray, h_nm: float, directions, emitters: np.ndarray | None = None,
                           step_fraction: float = 0.5) -> np.ndarray:
    """Transmission from every voxel centre along each direction, by direct ray marching.

    Parameters
    ----------
    mu_per_nm : ndarray, (n0, n1, n2)
        Linear attenuation coefficient (1/nm) of cubic voxels of ``h_nm``; zero outside.
    h_nm : float
        Voxel size (nm).
    directions : array_like, (n_dir, 3)
        Unit directions in the array's index frame.
    emitters : ndarray of bool, optional
        Voxels to march from (default: all); the others get transmission 1.
    step_fraction : float
        Step along the ray in voxels (midpoint rule), in (0, 1].

    Returns
    -------
    ndarray, float32, (n_dir, n0, n1, n2)
    """
    from scipy.ndimage import map_coordinates

    mu = np.asarray(mu_per_nm, dtype=np.float64)
    if not (0 < step_fraction <= 1):
        raise ValueError(f"step_fraction must be in (0, 1], got {step_fraction}")
    dirs = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    emitters = np.ones(mu.shape, bool) if emitters is None else np.asarray(emitters, bool)
    idx = np.argwhere(emitters).astype(np.float64)  # (M, 3)
    shape = np.array(mu.shape, dtype=np.float64)
    out = np.ones((dirs.shape[0],) + mu.shape, dtype=np.float32)
    for k, d in enumerate(dirs):
        d = d / np.linalg.norm(d)
        tau = np.zeros(idx.shape[0])
        alive = np.arange(idx.shape[0])
        s = 0.5 * step_fraction
        while alive.size:
            p = idx[alive] + s * d
            inside = np.all((p > -0.5) & (p < shape - 0.5), axis=1)
            alive, p = alive[inside], p[inside]
            if not alive.size:
                break
            tau[alive] += map_coordinates(mu, p.T, order=1, mode="nearest", prefilter=False) * step_fraction * h_nm
            s += step_fraction
        t = np.ones(mu.shape, dtype=np.float32)
        t[emitters] = np.exp(-tau)
        out[k] = t
    return out


def absorbed_projections(specimen: Specimen, angles_deg, lines: list[str], detectors: DetectorGeometry,
                         step_fraction: float = 0.5) -> np.ndarray:
    """Projected partial densities (g/cm^2) weighted by the transmissions, ``(k, n_tilts, n, n)``.

    Parameters
    ----------
    specimen : Specimen
    angles_deg : array_like
    lines : list of str
        One line per element, in ``specimen.elements`` order.
    detectors : DetectorGeometry
    step_fraction : float
        Ray-march step in fine voxels.
    """
    s = specimen
    if len(lines) != len(s.elements):
        raise ValueError(f"need one line per element {s.elements}, got {lines}")
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    k, f, n = len(s.elements), s.oversampling, s.n
    nf = n * f
    dirs = detector_directions(detectors, angles)  # (t, det, 3)
    w = detectors.weights
    emitters = s.partial_fine.sum(axis=0) > 0
    out = np.zeros((k, angles.size, n, n))
    mus = [fine_attenuation_per_nm(s, ln) for ln in lines]
    for t, angle in enumerate(angles):
        geom = TiltGeometry([angle], n, s.pixel_nm, n).refined(f)
        W = make_operator(geom, backend="sparse")
        cols = np.empty((nf * nf, k * nf), dtype=np.float32)
        for c in range(k):
            T = np.tensordot(w, raymarch_transmissions(mus[c], s.fine_pixel_nm, dirs[t], emitters, step_fraction),
                             axes=1)
            cols[:, c * nf:(c + 1) * nf] = (s.partial_fine[c] * T).reshape(nf, nf * nf).T
        rays = W.forward(cols).astype(np.float64).reshape(n, k, n, f).mean(axis=3) * NM_CM
        for c in range(k):
            out[c, t] = columns_to_sinogram(rays[:, c], 1, n)[0]
    return out


def simulate_series_absorbed(specimen: Specimen, angles_deg, detectors: DetectorGeometry | str = "super-x",
                             dose_scale: float = 1.0, beam_kev: float = 200.0, seed: int | None = 0, *,
                             noise: bool = True, step_fraction: float = 0.5, **kwargs) -> SpecimenSimulation:
    """:func:`~chemtomo.simulate.specimen_series.simulate_series` with absorption of the X-rays.

    Parameters
    ----------
    specimen : Specimen
    angles_deg : array_like
    detectors : DetectorGeometry or str
        The detectors (or a preset name, :data:`~chemtomo.physics.absorption.DETECTOR_GEOMETRIES`).
    dose_scale, beam_kev, seed, noise
        As :func:`~chemtomo.simulate.specimen_series.simulate_series`.
    step_fraction : float
        Ray-march step in fine voxels.
    **kwargs
        Passed to :func:`~chemtomo.simulate.specimen_series.simulate_series` (``lines``, ``factors``, ...).

    Returns
    -------
    SpecimenSimulation
        ``projected_g_cm2`` holds the attenuated projections; the metadata's
        ``absorption`` entry the detector geometry.
    """
    det = DetectorGeometry.preset(detectors) if isinstance(detectors, str) else detectors
    plain = simulate_series(specimen, angles_deg, dose_scale, beam_kev, seed, noise=False, **kwargs)
    proj = plain.projected_g_cm2
    proj_abs = absorbed_projections(specimen, angles_deg, plain.lines, det, step_fraction)
    ratio = np.divide(proj_abs, proj, out=np.zeros_like(proj_abs), where=proj > 0)
    clean = plain.noiseless
    eds_mean = {ln: (clean.eds[ln] * ratio[i]).astype(np.float32) for i, ln in enumerate(plain.lines)}
    rng = np.random.default_rng(seed)

    def draw(mean):
        return rng.poisson(np.clip(mean, 0, None)).astype(np.float32) if noise else np.asarray(mean, np.float32)

    meta = {**clean.metadata, "absorption": {**det.key(), "transmissions": "ray march on the fine grid",
                                             "step_fraction": step_fraction}}
    eds_noisy = {ln: draw(m) for ln, m in eds_mean.items()}
    noisy = TiltSeries(clean.angles_deg, clean.pixel_nm, eds=eds_noisy, haadf=draw(clean.haadf),
                       metadata={**meta, "noise": "poisson" if noise else "none"},
                       haadf_angles_deg=clean.haadf_angles_deg)
    clean_abs = TiltSeries(clean.angles_deg, clean.pixel_nm, eds=eds_mean, haadf=clean.haadf,
                           metadata={**meta, "noise": "none"}, haadf_angles_deg=clean.haadf_angles_deg)
    return SpecimenSimulation(noisy, clean_abs, specimen, plain.lines, plain.factors, proj_abs)
