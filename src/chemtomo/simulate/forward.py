"""The thin-film forward model with Poisson noise (Yuan 2020, eqs 4-10 and 13-14).

For a line A and a ray i,

    I_A,i  = D_e (Omega / 4 pi) N_V f_A  sum_j w_ij C_A,j rho_j          (eqs 6, 7, 10)
    I^H_i  = D_e^H N_V sum_A z_A sum_j w_ij C_A,j rho_j                   (eq 14)

with ``f_A`` and ``z_A`` in barn mol/g, ``w_ij`` path lengths (cm), ``rho`` in g/cm^3.
The phantom is projected on a grid finer than the reconstruction grid so that
reconstructing the simulated data is not an inverse crime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from ..physics import AVOGADRO, BARN_CM2, Factors
from ..projector import make_operator
from ..tiltseries import TiltSeries
from .phantom import Phantom

ELEMENTARY_CHARGE_C = 1.602176634e-19
NM_CM = 1e-7


@dataclass(frozen=True)
class Acquisition:
    """Acquisition settings of a simulated STEM-EDS tilt series.

    Parameters
    ----------
    beam_current_pa : float
        EDS probe current (pA); the paper uses 100 pA.
    dwell_s : float
        EDS dwell time per beam position (s); the paper uses 0.5 s.
    haadf_dose : float
        Electrons per beam position for the HAADF image; the paper simulates 1e5.
    solid_angle_sr : float
        EDS detector solid angle (sr). The paper gives none; 0.7 sr is a
        four-quadrant (Super-X class) detector.
    eds_dose_scale : float
        Multiplies the EDS dose (1, 0.1, 0.01 for a dose sweep).
    """

    beam_current_pa: float = 100.0
    dwell_s: float = 0.5
    haadf_dose: float = 1e5
    solid_angle_sr: float = 0.7
    eds_dose_scale: float = 1.0

    def __post_init__(self):
        for name in ("beam_current_pa", "dwell_s", "haadf_dose", "solid_angle_sr", "eds_dose_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if self.solid_angle_sr > 4 * np.pi:
            raise ValueError(f"solid_angle_sr cannot exceed 4 pi, got {self.solid_angle_sr}")

    @property
    def eds_dose(self) -> float:
        """Electrons per beam position for EDS: ``I t / e`` times the dose scale."""
        return self.beam_current_pa * 1e-12 * self.dwell_s / ELEMENTARY_CHARGE_C * self.eds_dose_scale


@dataclass
class Simulation:
    """A simulated tilt series with what it was made from.

    Attributes
    ----------
    series : TiltSeries
        Noisy counts (what a microscope gives).
    noiseless : TiltSeries
        Expected counts.
    phantom : Phantom
        The phantom on the reconstruction grid (the reference for metrics).
    lines : list of str
        EDS lines, one per phantom element.
    """

    series: TiltSeries
    noiseless: TiltSeries
    phantom: Phantom
    lines: list[str]


def line_for_elements(factors: Factors, elements: list[str]) -> list[str]:
    """The line of ``factors`` measuring each element (one line per element)."""
    by_el = {}
    for line in factors:
        el = factors[line].element
        if el in by_el:
            raise ValueError(f"factors hold two lines for {el} ({by_el[el]}, {line}); give one per element")
        by_el[el] = line
    missing = [el for el in elements if el not in by_el]
    if missing:
        raise KeyError(f"no X-ray line given for element(s) {missing}; factors have {list(factors)}")
    return [by_el[el] for el in elements]


def simulate_tilt_series(
    phantom_fine: Phantom,
    geometry: TiltGeometry,
    factors: Factors,
    acquisition: Acquisition = Acquisition(),
    *,
    seed: int | None = 0,
    noise: bool = True,
) -> Simulation:
    """Project a fine phantom through ``geometry`` and draw Poisson counts.

    Parameters
    ----------
    phantom_fine : Phantom
        Phantom on a grid an integer factor finer than ``geometry.n_grid``.
    geometry : TiltGeometry
        The detector and reconstruction grid.
    factors : Factors
        One line per phantom element (their f_A and z_A drive the signals).
    acquisition : Acquisition
    seed : int
        Seed of the Poisson noise.
    noise : bool
        False gives the expected counts as the "noisy" series too.
    """
    n_fine = phantom_fine.weight.shape[1]
    if n_fine % geometry.n_grid:
        raise ValueError(f"phantom grid {n_fine} is not a multiple of the reconstruction grid {geometry.n_grid}")
    refine = n_fine // geometry.n_grid
    if not np.isclose(phantom_fine.pixel_nm * refine, geometry.grid_pixel_nm):
        raise ValueError(
            f"phantom pixel {phantom_fine.pixel_nm} nm x {refine} does not match the grid pixel "
            f"{geometry.grid_pixel_nm} nm"
        )
    lines = line_for_elements(factors, phantom_fine.elements)
    W = make_operator(geometry.refined(refine))
    # projected partial densities: (n_rays, k) in g/cm^2
    proj = W.forward(volume_to_columns(phantom_fine.mass).astype(np.float32)).astype(np.float64) * NM_CM
    f = factors.f(lines) * BARN_CM2
    z = factors.z(lines) * BARN_CM2
    eds_mean = acquisition.eds_dose * acquisition.solid_angle_sr / (4 * np.pi) * AVOGADRO * proj * f
    haadf_mean = acquisition.haadf_dose * AVOGADRO * proj @ z
    rng = np.random.default_rng(seed)

    def draw(mean):
        return rng.poisson(mean).astype(np.float32) if noise else mean.astype(np.float32)

    nt, npx = geometry.n_tilts, geometry.n_pixels
    to_stack = lambda col: columns_to_sinogram(col, nt, npx)  # noqa: E731
    meta = {
        **asdict(acquisition),
        "eds_dose": acquisition.eds_dose,
        "beam_kev": float(factors[lines[0]].beam_kev),
        "seed": seed,
        "noise": "poisson" if noise else "none",
        "refine": refine,
    }
    noisy = TiltSeries(
        geometry.angles_deg, geometry.pixel_nm,
        eds={ln: to_stack(draw(eds_mean[:, i])) for i, ln in enumerate(lines)},
        haadf=to_stack(draw(haadf_mean)), metadata=meta,
    )
    clean = TiltSeries(
        geometry.angles_deg, geometry.pixel_nm,
        eds={ln: to_stack(eds_mean[:, i]) for i, ln in enumerate(lines)},
        haadf=to_stack(haadf_mean), metadata={**meta, "noise": "none"},
    )
    return Simulation(noisy, clean, phantom_fine.downsample(refine), lines)


def simulate_tilt_sets(
    phantom_fine: Phantom,
    eds_geometry: TiltGeometry,
    haadf_geometry: TiltGeometry,
    factors: Factors,
    acquisition: Acquisition = Acquisition(),
    *,
    seed: int | None = 0,
    noise: bool = True,
) -> Simulation:
    """A tilt series whose HAADF has tilts of its own: EDS through one geometry, HAADF through another.

    Each modality is simulated as :func:`simulate_tilt_series` (the same phantom,
    dose and factors): the EDS lines from ``eds_geometry`` with noise seed ``seed``,
    the HAADF from ``haadf_geometry`` with seed ``seed + 1``. The returned series
    carry ``haadf_angles_deg`` (None when the two angle sets are equal).

    Parameters
    ----------
    phantom_fine : Phantom
    eds_geometry, haadf_geometry : TiltGeometry
        Same detector and grid; their angles are the two tilt sets.
    factors : Factors
    acquisition : Acquisition
    seed : int or None
    noise : bool

    Returns
    -------
    Simulation
    """
    if (eds_geometry.n_pixels, eds_geometry.pixel_nm, eds_geometry.n_grid) != (
            haadf_geometry.n_pixels, haadf_geometry.pixel_nm, haadf_geometry.n_grid):
        raise ValueError("the EDS and HAADF geometries must share the detector and grid (n_pixels, pixel_nm, "
                         "n_grid); only their angles differ")
    e = simulate_tilt_series(phantom_fine, eds_geometry, factors, acquisition, seed=seed, noise=noise)
    h = simulate_tilt_series(phantom_fine, haadf_geometry, factors, acquisition,
                             seed=None if seed is None else seed + 1, noise=noise)

    def combine(a: TiltSeries, b: TiltSeries) -> TiltSeries:
        return TiltSeries(a.angles_deg, a.pixel_nm, eds=a.eds, haadf=b.haadf, metadata=dict(a.metadata),
                          haadf_angles_deg=b.angles_deg)

    return Simulation(combine(e.series, h.series), combine(e.noiseless, h.noiseless), e.phantom, e.lines)
