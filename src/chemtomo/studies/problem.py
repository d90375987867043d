"""The phantom study's problem: the simulated data set, the projector, and the scoring.

A :class:`Problem` is one noise realisation of the paper's core-shell Ag-Au slice
(Yuan 2020, section 3.1) at one dose, prepared for reconstruction;
:func:`evaluate` scores maps against the phantom. The methods' sweeps and rules
(:mod:`.solvers`) and the study (:mod:`.paper_phantom`) build on these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import binary_erosion

from ..geometry import TiltGeometry, columns_to_volume, sinogram_to_columns
from ..metrics import mse, mse_scaled, ssim_structure
from ..physics import DETECTOR_EFFICIENCY, Factors
from ..preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack
from ..projector import make_operator
from ..quantify import quantify
from ..reconstruct import ChannelData, estimate_response_ratios, get_method, method_names
from ..simulate import Acquisition, Phantom, Simulation, core_shell_phantom, simulate_tilt_series

LINES = ("Ag_La", "Au_Ma")


#: Methods the phantom study leaves out by default: fused_huber's prior is 3-D (across slices) and the
#: phantom study one slice; it is measured on the specimen suite (``chemtomo benchmark``, docs/solvers.md).
SUITE_ONLY = ("fused_huber",)


@dataclass
class StudyConfig:
    """Parameters of the phantom study (defaults: the paper's, section 3.1.1)."""

    n_pixels: int = 97
    pixel_nm: float = 1.5
    angles_deg: tuple = tuple(np.arange(-75.0, 75.1, 5.0))
    refine: int = 4
    beam_kev: float = 100.0
    factors: str = "physics"  # "physics" (chemtomo.physics) or "paper" (Table 2)
    detector_efficiency: float = DETECTOR_EFFICIENCY
    filter_sigma: float = FILTER_SIGMA_PX
    seeds: tuple = (0,)
    # sweeps: the candidate grids of the methods' automatic rules (chemtomo.reconstruct.methods)
    eds_n: tuple = get_method("eds_sirt").default_grid["n"]
    hebt_n: tuple = get_method("hebt_sirt").default_grid["n"]
    alphas: tuple = get_method("hebt_sirt").default_grid["alpha"]
    doses: tuple = (1.0, 0.1, 0.01)
    # every registered method (the built-ins: eds_sirt, hebt_sirt, ls_tv, poisson_tv, fused_tv) but
    # those measured on the specimen suite only (SUITE_ONLY)
    methods: tuple = field(default_factory=lambda: tuple(n for n in method_names() if n not in SUITE_ONLY))
    mu: tuple = get_method("fused_tv").default_grid["mu"]  # dimensionless TV weights, factor sqrt 2 apart
    tv_n_iter: int = 300
    erode_px: int = 2
    # bootstrap replicas of the headline reconstructions' core / shell compositions (0: none)
    replicas: int = 20
    replica_seed: int = 0
    acquisition: Acquisition = field(default_factory=Acquisition)
    label: str = "full"

    @classmethod
    def quick(cls) -> StudyConfig:
        """A reduced sweep for CI (well under 2 minutes)."""
        return cls(eds_n=(20, 50, 100, 200), hebt_n=(100, 200), alphas=(0.5, 0.7, 0.8, 0.9),
                   mu=(0.085, 0.12, 0.17, 0.24, 0.34), tv_n_iter=200, replicas=10, label="quick")

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("the study needs at least one noise seed")

    def as_dict(self) -> dict:
        """The config as a JSON-friendly dict (nested dataclasses as dicts, angles as floats)."""
        d = asdict(self)
        d["angles_deg"] = [float(a) for a in self.angles_deg]
        return d


def study_factors(cfg: StudyConfig) -> Factors:
    """Factors for the two lines: from first principles, or the paper's Table 2."""
    if cfg.factors == "paper":
        from ..physics import paper_table2

        return paper_table2(LINES, detector_efficiency=cfg.detector_efficiency)
    if cfg.factors == "physics":
        from ..physics import compute_factors

        return compute_factors(list(LINES), beam_kev=cfg.beam_kev, detector=cfg.detector_efficiency)
    raise ValueError(f"factors must be 'physics' or 'paper', got {cfg.factors!r}")


@dataclass
class Problem:
    """One simulated data set, prepared for reconstruction and scoring."""

    dose: float
    sim: Simulation
    factors: Factors
    geometry: TiltGeometry
    W: object
    data: ChannelData  # filtered EDS, raw HAADF, fitted r
    reference: Phantom
    regions: dict
    response_ratios: dict


def make_problem(cfg: StudyConfig, dose: float, factors: Factors, seed: int = 0) -> Problem:
    """The phantom's simulated tilt series at ``dose`` (x the paper's EDS dose), filtered and fitted.

    Simulates with noise ``seed``, filters the EDS sinograms by
    ``cfg.filter_sigma`` and fits the response ratios on them.
    """
    geom = TiltGeometry(np.asarray(cfg.angles_deg), cfg.n_pixels, cfg.pixel_nm)
    fine = core_shell_phantom(cfg.n_pixels * cfg.refine, cfg.pixel_nm / cfg.refine)
    acq = Acquisition(**{**asdict(cfg.acquisition), "eds_dose_scale": dose})
    sim = simulate_tilt_series(fine, geom, factors, acq, seed=seed)
    lines = sim.lines
    s = sim.series
    filt = {ln: gaussian_filter_stack(s.eds[ln], cfg.filter_sigma, "sinogram") for ln in lines}
    rr = fit_response_ratios(s.haadf, filt, s.eds, cfg.filter_sigma, "sinogram", 1.0)  # as the pipeline fits them
    rr_raw = estimate_response_ratios(s.haadf, s.eds)
    theory = factors.response_ratios(haadf_dose=acq.haadf_dose, eds_dose=acq.eds_dose,
                                     solid_angle_sr=acq.solid_angle_sr, lines=lines)
    data = ChannelData(
        lines, np.stack([sinogram_to_columns(filt[ln]) for ln in lines]),
        sinogram_to_columns(s.haadf), rr.r,
    )
    ref = sim.phantom
    e = cfg.erode_px
    regions = {
        "particle": ref.regions["particle"],
        "core": binary_erosion(ref.regions["core"], iterations=e),
        "shell": binary_erosion(ref.regions["shell"], iterations=e),
    }
    rdict = {
        ln: {"fit": float(rr.r[i]), "theory": float(theory[i]),
             "fit_unfiltered": float(rr_raw.r[i]),
             "rel_error": float(rr.r[i] / theory[i] - 1)}
        for i, ln in enumerate(lines)
    }
    rdict["r2"] = float(rr.r2)
    rdict["r2_unfiltered"] = float(rr_raw.r2)
    return Problem(dose, sim, factors, geom, make_operator(geom), data, ref,
                   regions, rdict)


def evaluate(problem: Problem, maps: np.ndarray, factor: str) -> tuple[dict, dict]:
    """Score maps ``(k, n, n)`` of the lines against the phantom.

    Returns ``(metrics, arrays)``: SSIM-structure and scaled MSE of the maps against
    the partial densities, fraction-map SSIM and MSE, the MSE inside the particle
    (the phantom's region: independent of the mask), mean core / shell Au fraction
    (regions eroded by ``erode_px``), and the threshold chosen.
    """
    f = problem.factors
    lines = problem.data.lines
    els = [f[ln].element for ln in lines]
    q = f.f(lines) if factor == "f" else f.z(lines)
    comp = quantify(maps, q, f.atomic_weights(lines), lines, els)
    ref = problem.reference
    part = problem.regions["particle"]
    m: dict = {"ssim": {}, "mse_scaled": {}, "ssim_fraction": {}, "mse_fraction": {}}
    for i, el in enumerate(els):
        m["ssim"][el] = ssim_structure(maps[i], ref.mass[i])
        m["mse_scaled"][el] = mse_scaled(maps[i], ref.mass[i])
        m["ssim_fraction"][el] = ssim_structure(comp.weight[i], ref.weight[i])
        m["mse_fraction"][el] = mse(comp.weight[i], ref.weight[i])
    m["mse_fraction_inside"] = float(np.mean([mse(comp.weight[i], ref.weight[i], part) for i in range(len(els))]))
    au = els.index("Au")
    m["core_Au"] = float(comp.weight[au][problem.regions["core"]].mean())
    m["shell_Au"] = float(comp.weight[au][problem.regions["shell"]].mean())
    m["core_Au_full"] = float(comp.weight[au][ref.regions["core"]].mean())
    m["shell_Au_full"] = float(comp.weight[au][ref.regions["shell"]].mean())
    m["threshold"] = comp.threshold.as_dict()
    m["mask_dice"] = float(2 * np.sum(comp.mask & part) / (comp.mask.sum() + part.sum()))
    return m, {"maps": maps, "weight": comp.weight, "mask": comp.mask, "threshold": comp.threshold}


def raw_counts(problem: Problem) -> np.ndarray:
    """The measured (unfiltered) EDS counts as operator columns ``(k, n_rays, s)``: data, not truth."""
    eds = problem.sim.series.eds
    return np.stack([sinogram_to_columns(eds[ln]) for ln in problem.data.lines]).astype(np.float32)


def method_data(problem: Problem, method) -> ChannelData:
    """What ``method`` reconstructs.

    The raw counts for a method that models their noise (``raw_counts``),
    else the paper's Gaussian-filtered EDS; the HAADF and ``r_A`` alike.
    """
    if not method.raw_counts:
        return problem.data
    d = problem.data
    return ChannelData(d.lines, raw_counts(problem), d.haadf, d.response_ratios)


def maps_of(x: np.ndarray, n: int) -> np.ndarray:
    """``(k, n_vox)`` or ``(k, n_vox, 1)`` columns -> ``(k, n, n)`` maps."""
    return np.stack([columns_to_volume(c, n)[0] for c in x])


Candidate = dict  # {"params": {...}, "metrics": {...}}
