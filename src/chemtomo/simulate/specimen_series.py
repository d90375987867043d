"""Tilt series of a 3-D specimen: fine-grid projection (ASTRA), thin-film counts, Poisson noise.

The specimen's fine partial densities are projected slice by slice (parallel beam:
slices along the tilt axis are independent) in one batched call of chemtomo's
projector on the refined geometry (fine grid, reconstruction-size detector pixels,
ASTRA strip kernel), like :func:`chemtomo.simulate.forward.simulate_tilt_series`;
the ``oversampling`` fine slices of each detector row are then averaged. Counts
follow Yuan 2020 eqs 6-7, 10 and 14 (see :mod:`chemtomo.simulate.forward`).

Units: projected partial densities g/cm^2; doses electrons per beam position
(``eds_dose``, ``haadf_dose``) and per nm^2 (``*_e_per_nm2``, the per-position
dose over the pixel area) in the series' metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..geometry import TiltGeometry, columns_to_sinogram
from ..physics import AVOGADRO, BARN_CM2, Factors, compute_factors
from ..projector import make_operator
from ..tiltseries import TiltSeries
from .forward import NM_CM, Acquisition, line_for_elements
from .specimen_model import Specimen

#: The X-ray line simulated for each element by default (L lines of the heavy metals at 200-300 kV).
DEFAULT_LINES = {
    "Ag": "Ag_La", "Au": "Au_La", "Pt": "Pt_La", "Pd": "Pd_La", "Cu": "Cu_Ka", "Ni": "Ni_Ka",
    "Co": "Co_Ka", "Zn": "Zn_Ka", "Fe": "Fe_Ka", "Ti": "Ti_Ka", "O": "O_Ka", "Al": "Al_Ka", "Mg": "Mg_Ka",
}


@dataclass
class SpecimenSimulation:
    """A simulated tilt series of a specimen, with its truth.

    Attributes
    ----------
    series : TiltSeries
        Counts with Poisson noise, ``(n_tilts, n, n)`` per stack, pixel ``specimen.pixel_nm``.
    noiseless : TiltSeries
        Expected counts.
    specimen : Specimen
        The truth (partial densities, weight fractions, regions on the reconstruction grid).
    lines : list of str
        EDS line of each element, in ``specimen.elements`` order.
    factors : Factors
        The factors the counts were made with.
    projected_g_cm2 : ndarray, (k, n_tilts, n, n)
        Projected partial densities (g/cm^2), pixel-averaged.
    """

    series: TiltSeries
    noiseless: TiltSeries
    specimen: Specimen
    lines: list[str]
    factors: Factors
    projected_g_cm2: np.ndarray


def lines_for(elements: list[str]) -> list[str]:
    """The default line (:data:`DEFAULT_LINES`) of each element."""
    missing = [el for el in elements if el not in DEFAULT_LINES]
    if missing:
        raise ValueError(f"no default X-ray line for {missing}; pass lines=[...] (known: {sorted(DEFAULT_LINES)})")
    return [DEFAULT_LINES[el] for el in elements]


def project_specimen(specimen: Specimen, angles_deg) -> np.ndarray:
    """Projected partial densities (g/cm^2) of ``specimen``, ``(k, n_tilts, n_slices, n_pixels)``.

    The fine grid is projected with the strip kernel onto detector bins of the
    reconstruction pixel size; each detector row averages ``oversampling`` fine slices.
    """
    s = specimen
    k, nf, f, n = len(s.elements), s.n * s.oversampling, s.oversampling, s.n
    geom = TiltGeometry(angles_deg, n, s.pixel_nm, n).refined(f)
    W = make_operator(geom)
    # columns: (nf*nf pixels, k*nf slices); column c*nf + j is element c, fine slice j
    cols = np.ascontiguousarray(s.partial_fine.reshape(k * nf, nf * nf).T)
    rays = W.forward(cols).astype(np.float64)  # (n_tilts*n, k*nf), g/cm^3 nm
    rays = rays.reshape(geom.n_rays, k, n, f).mean(axis=3) * NM_CM  # (rays, k, n) g/cm^2
    return np.stack([columns_to_sinogram(rays[:, c], geom.n_tilts, n) for c in range(k)])


def simulate_series(
    specimen: Specimen,
    angles_deg,
    dose_scale: float = 1.0,
    beam_kev: float = 200.0,
    seed: int | None = 0,
    *,
    lines: list[str] | None = None,
    factors: Factors | None = None,
    acquisition: Acquisition | None = None,
    scale_haadf: bool = False,
    noise: bool = True,
    detector=0.96,
    elastic: str = "browning1991",
    haadf_mrad: tuple[float, float] | None = None,
) -> SpecimenSimulation:
    """Simulate a HAADF + EDS tilt series of ``specimen``.

    Parameters
    ----------
    specimen : Specimen
    angles_deg : array_like
        Tilt angles (degrees), e.g. ``np.arange(-70, 71, 5.0)``.
    dose_scale : float
        EDS dose relative to the paper's (100 pA x 0.5 s = 3.12e8 electrons per
        position): 1 down to 0.01.
    beam_kev : float
        Beam energy (keV) for :func:`chemtomo.physics.compute_factors` (200, 300).
        Browning's elastic fit is extrapolated above 100 keV (its source says so).
    seed : int or None
        Seed of the Poisson noise.
    lines : list of str, optional
        One line per element (default :data:`DEFAULT_LINES`).
    factors : Factors, optional
        Precomputed factors (then ``beam_kev``, ``detector``, ``elastic``,
        ``haadf_mrad`` are not used).
    acquisition : Acquisition, optional
        Probe current, dwell, HAADF dose, solid angle; ``dose_scale`` replaces its
        ``eds_dose_scale``.
    scale_haadf : bool
        Scale the HAADF dose by ``dose_scale`` too (default: HAADF dose fixed, as in
        the paper's dose sweep).
    noise : bool
        False: the "noisy" series is the expected counts.
    detector, elastic, haadf_mrad
        Passed to :func:`~chemtomo.physics.compute_factors`.

    Returns
    -------
    SpecimenSimulation
    """
    if not (np.isfinite(dose_scale) and dose_scale > 0):
        raise ValueError(f"dose_scale must be a positive number (1 = the paper's dose), got {dose_scale!r}")
    if factors is None:
        lines = list(lines) if lines is not None else lines_for(specimen.elements)
        factors = compute_factors(lines, beam_kev, detector, elastic=elastic, haadf_mrad=haadf_mrad)
    elif lines is not None:
        factors = factors.subset(lines)
    lines = line_for_elements(factors, specimen.elements)  # one line per element, in element order
    acq = replace(acquisition or Acquisition(), eds_dose_scale=float(dose_scale))
    haadf_dose = acq.haadf_dose * (dose_scale if scale_haadf else 1.0)
    proj = project_specimen(specimen, angles_deg)  # (k, t, s, p) g/cm^2
    f = factors.f(lines) * BARN_CM2
    z = factors.z(lines) * BARN_CM2
    eds_mean = acq.eds_dose * acq.solid_angle_sr / (4 * np.pi) * AVOGADRO * proj * f[:, None, None, None]
    haadf_mean = haadf_dose * AVOGADRO * np.tensordot(z, proj, axes=1)
    rng = np.random.default_rng(seed)

    def draw(mean):
        return rng.poisson(mean).astype(np.float32) if noise else mean.astype(np.float32)

    area_nm2 = specimen.pixel_nm**2
    meta = {
        **asdict(acq),
        "haadf_dose": haadf_dose,
        "eds_dose": acq.eds_dose,
        "eds_dose_e_per_nm2": acq.eds_dose / area_nm2,
        "haadf_dose_e_per_nm2": haadf_dose / area_nm2,
        "beam_kev": float(factors[lines[0]].beam_kev),
        "elastic_source": factors[lines[0]].sources.get("sigma_elastic", ""),
        "seed": seed,
        "noise": "poisson" if noise else "none",
        "refine": specimen.oversampling,
        "specimen": specimen.name,
        "specimen_seed": specimen.seed,
        "specimen_n": specimen.n,
        "elements": list(specimen.elements),
        "lines": list(lines),
    }
    angles = np.asarray(angles_deg, dtype=np.float64)
    eds_noisy = {ln: draw(eds_mean[i]) for i, ln in enumerate(lines)}
    noisy = TiltSeries(angles, specimen.pixel_nm, eds=eds_noisy, haadf=draw(haadf_mean), metadata=meta)
    clean = TiltSeries(angles, specimen.pixel_nm, eds={ln: eds_mean[i] for i, ln in enumerate(lines)},
                       haadf=haadf_mean, metadata={**meta, "noise": "none"})
    return SpecimenSimulation(noisy, clean, specimen, lines, factors, proj)
