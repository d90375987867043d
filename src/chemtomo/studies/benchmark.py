"""The specimen-suite benchmark (issue 13): every method, oracle-best and automatic, per specimen and dose.

For each specimen of :data:`chemtomo.simulate.specimens.SPECIMENS` (built on a grid
``oversampling`` times finer than the reconstruction's and projected there), each EDS
dose (the paper's, 1/10, 1/100) and each registered method:

- *auto*: the method as a user runs it, ``reconstruct_series(series, factors, method,
  auto=True, auto_grid=grid)`` (the volume pipeline: its Gaussian filter, slice block and
  rule), timed; ``grid`` the rule's own candidates
  (:meth:`~chemtomo.reconstruct.registry.Method.rule_candidates`, e.g. fused-TV's 4-point
  ``TV_MU_RULE_GRID``) with the configuration's replacements;
- *best*: the same path at every point of the method's ``default_grid`` (fused-TV's 7-point
  ``TV_MU_GRID``), or the configuration's coarser one, scored against the truth; the point with the
  lowest inside-particle weight-fraction MSE is the oracle-best. A grid with ``n``
  (iterations) is swept by one solve to the largest ``n`` with snapshots.

Scores (:func:`score`): inside-particle weight-fraction MSE (mean over elements, on the
specimen's particle: voxels at least half filled), region means against the truth's
(``{region: {element: value}}``), the SSIM structure term of each line's map against the
truth's partial density, and the wall time.

Peers (:mod:`chemtomo.studies.peers`, ``BenchmarkConfig.peers``): svmbir reconstructs
each line of the same series (all its slices at once), over its regularisation grid and at
its automatic setting, and :func:`run_peer_case` quantifies and scores its maps as the
methods' (``suite.<specimen>.<dose>.peers.<peer>.best|auto``); :func:`summarise` sets
chemtomo's best method with automatic parameters against each peer's best.

Layering: studies sit below the pipeline (DESIGN.md), so :func:`run_benchmark` takes the
pipeline's ``reconstruct_series`` as an argument (the CLI hands it in); the best sweep
repeats the pipeline's in-process arithmetic with the layers below it (the tests check
that a sweep point equals ``reconstruct_series`` at that point).

Over 500 lines on purpose: the benchmark's one study (configuration, truth, the
quantification and scores every method and peer share, the sweep and the run) read in one
place; the peers' adapters live in :mod:`chemtomo.studies.peers`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..geometry import columns_to_volume, sinogram_to_columns
from ..metrics import mse, ssim_structure
from ..physics import Factors
from ..preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack
from ..projector import make_modality_operator
from ..projector.batched import default_group
from ..quantify import ESF_EDGE_LEVEL, ESF_FALLBACK, check_edge_level, quantify
from ..reconstruct import (
    ChannelData,
    estimate_response_ratios,
    estimate_response_ratios_tilts,
    get_method,
    method_names,
)
from ..simulate.specimens import SPECIMENS, Specimen, make_specimen, simulate_series
from ..tiltseries import TiltSeries
from .peers import (
    SVMBIR_AUTO,
    check_peer_names,
    compare_with_peers,
    require_peers,
    svmbir_grid,
    svmbir_points,
    svmbir_sweep,
)

#: The quick run's methods: the SIRT methods and the fused solver.
QUICK_METHODS = ("eds_sirt", "hebt_sirt", "fused_tv")
#: The quick run's coarse grids (subsets of the methods' default grids).
QUICK_GRIDS = {
    "eds_sirt": {"n": (10, 20, 50, 100, 200, 500)},
    "hebt_sirt": {"alpha": (0.0, 0.4, 0.8, 0.9), "n": (50, 100, 200, 500)},
    "fused_tv": {"mu": (0.06, 0.12, 0.24, 0.48)},
    "ls_tv": {"mu": (0.06, 0.12, 0.24, 0.48)},
    "poisson_tv": {"mu": (0.06, 0.12, 0.24, 0.48)},
}

Reconstruct = Callable[..., object]  # chemtomo.pipeline.volume.reconstruct_series


def dose_key(dose: float) -> str:
    """The metrics key of an EDS dose (x the paper's): ``1``, ``0.1``, ``0.01``."""
    return f"{float(dose):g}"


class StudyGrids:
    """Methods, their candidate grids and the slices: what the benchmark's study configs share.

    A mixin of the study dataclasses (:class:`BenchmarkConfig`,
    :class:`~chemtomo.studies.tilt_sets.TiltSetsConfig`), which hold the fields
    ``methods``, ``grids``, ``n`` and ``n_slices``.
    """

    def _check_methods_and_slices(self) -> None:
        """Resolve ``methods`` to registered names; ValueError for one without a rule or bad ``n_slices``."""
        self.methods = tuple(get_method(m).name for m in self.methods)
        no_rule = [m for m in self.methods if not get_method(m).default_grid]
        if no_rule or not self.methods:
            raise ValueError(f"methods must be non-empty and each have an automatic rule; {no_rule} have none "
                             f"(with one: {[n for n in method_names() if get_method(n).default_grid]})")
        if self.n_slices is not None and not 1 <= int(self.n_slices) <= int(self.n):
            raise ValueError(f"n_slices must be None or in 1..n={self.n}, got {self.n_slices!r}")

    def grid(self, method: str) -> dict:
        """The candidates of ``method`` here: its ``default_grid`` with the config's replacements."""
        m = get_method(method)
        own = self.grids.get(m.name, {})
        return {k: tuple(own.get(k, v)) for k, v in m.default_grid.items()}

    def rule_grid(self, method: str) -> dict:
        """The candidates of ``method``'s automatic rule here: its rule candidates with the config's replacements.

        The oracle (:meth:`grid`) keeps the method's ``default_grid``; a method with a
        coarser ``rule_grid`` (the TV weight rule) runs its rule on that, as a user's run does.
        """
        return get_method(method).rule_candidates(self.grids.get(get_method(method).name, {}))

    def slice_range(self) -> tuple[int, int]:
        """``(a, b)``: the slices reconstructed (the middle ``n_slices``, or all)."""
        s = self.n if self.n_slices is None else int(self.n_slices)
        a = (self.n - s) // 2
        return a, a + s


@dataclass
class BenchmarkConfig(StudyGrids):
    """What the benchmark runs.

    The defaults are the full benchmark: the whole suite, three doses, every method with
    a rule on its default grid, ``n = 28`` and the 8 middle slices, sized to about an
    hour on 2 cores (the quick run's CPU time scaled by grid sizes and ``n**2``);
    ``n = 40`` with 16 slices is about 5x that.

    Attributes
    ----------
    specimens : tuple of str
        Names in :data:`~chemtomo.simulate.specimens.SPECIMENS`.
    doses : tuple of float
        EDS doses relative to the paper's (HAADF dose fixed).
    methods : tuple of str
        Registered methods with an automatic rule (a ``default_grid``).
    n : int
        Reconstruction voxels across the field (and detector pixels).
    oversampling : int
        Fine voxels per reconstruction voxel along each axis (the data's grid).
    n_slices : int or None
        Reconstruct only this many slices (along the tilt axis) through the middle of
        the volume; None: all ``n``. The truth is cut to the same slices.
    angles_deg : tuple of float
        Tilt angles (degrees).
    beam_kev : float
        Beam energy (keV); z_A from chemtomo's elastic model for it (``elastic="auto"``).
    grids : dict
        Method -> {parameter: candidates} replacing its ``default_grid`` entries.
    params : dict
        Method -> fixed parameters (e.g. ``{"fused_tv": {"n_iter": 200}}``); default the
        method's defaults.
    auto_slices : int
        Slices the automatic rules choose on (``reconstruct_series(auto_slices=...)``).
    mask_method : {"esf", "otsu", "multiotsu"}
        Particle mask of the quantification (the pipeline's default ``esf``; a
        reconstruction whose ESF fit finds no edge falls back to
        :data:`chemtomo.quantify.ESF_FALLBACK`, three-class Otsu, and says so).
    mask_edge_level : float
        Where on the fitted particle-background step the ESF threshold lies
        (:func:`chemtomo.quantify.esf_threshold`'s ``edge_level``; default
        :data:`chemtomo.quantify.ESF_EDGE_LEVEL`, 0.35 of the step's height; 0.5 its centre); lower
        than the centre keeps the half-filled edge voxels a blurred reconstruction puts
        below the step's centre. The sweeps and the automatic result are quantified with it.
    specimen_seed, noise_seed : int
        Seeds of the specimens' random placements and of the Poisson noise.
    label : str
    peers : tuple of str
        Peers of :data:`chemtomo.studies.peers.PEERS` run beside the methods on the same
        series (default none; each must be installed: ``pip install -e ".[bench-peers]"``).
    peer_grids : dict
        Peer -> {parameter: candidates} replacing entries of its grid
        (:data:`~chemtomo.studies.peers.SVMBIR_GRID`).
    """

    specimens: tuple = tuple(SPECIMENS)
    doses: tuple = (1.0, 0.1, 0.01)
    methods: tuple = field(default_factory=lambda: tuple(n for n in method_names() if get_method(n).default_grid))
    n: int = 28
    oversampling: int = 2
    n_slices: int | None = 8
    angles_deg: tuple = tuple(np.arange(-70.0, 70.1, 5.0))
    beam_kev: float = 200.0
    grids: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    auto_slices: int = 8
    mask_method: str = "esf"
    mask_edge_level: float = ESF_EDGE_LEVEL
    specimen_seed: int = 0
    noise_seed: int = 0
    label: str = "full"
    peers: tuple = ()
    peer_grids: dict = field(default_factory=dict)

    @classmethod
    def quick(cls) -> BenchmarkConfig:
        """A few minutes on 2 cores.

        2 specimens, 2 doses, the SIRT methods and fused-TV, coarse grids, ``n = 24`` and
        8 middle slices.
        """
        return cls(specimens=("core_shell", "diffuse_alloy"), doses=(1.0, 0.1), methods=QUICK_METHODS, n=24,
                   n_slices=8, grids={k: v for k, v in QUICK_GRIDS.items() if k in QUICK_METHODS},
                   label="quick")

    def __post_init__(self):
        unknown = sorted(set(self.specimens) - set(SPECIMENS))
        if unknown or not self.specimens:
            raise ValueError(f"specimens must be a non-empty subset of {sorted(SPECIMENS)}, got {list(self.specimens)}")
        if not self.doses or not all(np.isfinite(d) and d > 0 for d in self.doses):
            raise ValueError(f"doses must be positive numbers (1 = the paper's dose), got {list(self.doses)}")
        self._check_methods_and_slices()
        self.mask_edge_level = check_edge_level(self.mask_edge_level)
        if self.mask_edge_level != ESF_EDGE_LEVEL and self.mask_method != "esf":  # named by the config's field
            raise ValueError(f"mask_edge_level {self.mask_edge_level:g} places the ESF threshold: it needs "
                             f"mask_method 'esf', got {self.mask_method!r}")
        self.peers = check_peer_names(self.peers)
        for peer, g in self.peer_grids.items():
            check_peer_names([peer])
            svmbir_points(g)

    def as_dict(self) -> dict:
        """JSON-friendly copy (grids resolved per method)."""
        d = asdict(self)
        d["angles_deg"] = [float(a) for a in self.angles_deg]
        d["grids"] = {m: {k: list(v) for k, v in self.grid(m).items()} for m in self.methods}
        d["rule_grids"] = {m: {k: list(v) for k, v in self.rule_grid(m).items()} for m in self.methods}
        d["peer_grids"] = {p: {k: list(v) for k, v in svmbir_grid(self.peer_grids.get(p)).items()} for p in self.peers}
        return d


# ----------------------------------------------------------------------------- truth and scores

@dataclass
class Truth:
    """The specimen's truth on the reconstructed slices ``slices`` (axes: element, slice, z, x)."""

    elements: list[str]
    weight: np.ndarray
    partial: np.ndarray
    particle: np.ndarray
    regions: dict
    slices: tuple[int, int]

    @classmethod
    def of(cls, specimen: Specimen, slices: tuple[int, int] | None = None) -> Truth:
        """Cut ``specimen``'s truth to ``slices`` (default all)."""
        a, b = (0, specimen.n) if slices is None else slices
        return cls(list(specimen.elements), specimen.weight[:, a:b], specimen.partial[:, a:b],
                   specimen.particle[a:b], {r: m[a:b] for r, m in specimen.regions.items()}, (a, b))

    def region_means(self, weight: np.ndarray | None = None) -> dict[str, dict[str, float]]:
        """``{region: {element: mean weight fraction}}`` of ``weight`` (default the truth); NaN: empty region."""
        w = self.weight if weight is None else weight
        return {r: {el: float(w[i][m].mean()) if m.any() else float("nan") for i, el in enumerate(self.elements)}
                for r, m in self.regions.items()}


def score(truth: Truth, maps: np.ndarray, weight: np.ndarray, elements: list[str]) -> dict:
    """Score a reconstruction against ``truth``.

    Parameters
    ----------
    truth : Truth
    maps : ndarray, (k, s, n, n)
        The method's maps (any units), one per line.
    weight : ndarray, (k, s, n, n)
        Weight fractions.
    elements : list of str
        The element of each map (any order of the truth's elements).

    Returns
    -------
    dict
        ``mse_fraction_inside`` (mean over elements inside the particle),
        ``mse_fraction_inside_per_element``, ``mse_fraction_on_mask`` (the same MSE on the
        particle voxels the quantification's mask keeps), ``particle_missed_by_mask`` and
        ``mask_outside_particle`` (voxels the mask misses / adds, as fractions of the
        particle's: a missed voxel's weight fractions are 0, so it costs its truth fraction
        squared), ``mse_fraction_particle_or_mask`` (the MSE on the particle's voxels and the
        mask's together, against the truth's fractions, 0 where there is no matter: a voxel the
        mask adds in vacuum costs its fractions squared as a missed one does, so a mask grown
        past the particle is not free as it is for the inside MSE), ``region_means``,
        ``truth_region_means``, ``ssim`` (structure term of each map against the truth's
        partial density).
    """
    order = [elements.index(el) for el in truth.elements]
    w = np.asarray(weight, np.float64)[order]
    mp = np.asarray(maps)[order]
    per = {el: mse(w[i], truth.weight[i], truth.particle) for i, el in enumerate(truth.elements)}
    # the quantification's mask: weight fractions are 0 outside it, so a particle voxel it misses costs its whole
    # truth fraction squared; the inside MSE is split into that and the error where both hold the particle
    quantified = w.sum(axis=0) > 0
    both = truth.particle & quantified
    n_particle = int(truth.particle.sum())
    either = truth.particle | quantified
    return {
        "mse_fraction_inside": float(np.mean(list(per.values()))),
        "mse_fraction_inside_per_element": per,
        "mse_fraction_on_mask": (float(np.mean([mse(w[i], truth.weight[i], both) for i in range(len(per))]))
                                 if both.any() else float("nan")),
        "particle_missed_by_mask": float((n_particle - int(both.sum())) / max(n_particle, 1)),
        "mask_outside_particle": float(int((quantified & ~truth.particle).sum()) / max(n_particle, 1)),
        "mse_fraction_particle_or_mask": float(np.mean([mse(w[i], truth.weight[i], either) for i in range(len(per))])),
        "region_means": truth.region_means(w),
        "truth_region_means": truth.region_means(),
        "ssim": {el: ssim_structure(mp[i], truth.partial[i]) for i, el in enumerate(truth.elements)},
    }


def sub_series(series: TiltSeries, a: int, b: int) -> TiltSeries:
    """Slices ``a:b`` (along the tilt axis) of ``series`` (a HAADF at tilts of its own keeps them)."""
    return dataclasses.replace(series, eds={k: v[:, a:b] for k, v in series.eds.items()},
                               haadf=None if series.haadf is None else series.haadf[:, a:b],
                               metadata={**series.metadata, "slices": [int(a), int(b)]})


# ----------------------------------------------------------------------------- the sweep

def quantify_maps(maps: np.ndarray, factors: Factors, lines: list[str], factor: str = "f",
                  mask_method: str = "esf", edge_level: float = ESF_EDGE_LEVEL) -> tuple[np.ndarray, str]:
    """Weight fractions of ``maps`` as the benchmark quantifies every method's (and peer's) maps.

    Parameters
    ----------
    maps : ndarray, (k, s, n, n)
        One map per line of ``lines``.
    factors : Factors
    lines : list of str
    factor : {"f", "z"}
        The maps' factors: ``f_A`` (EDS maps) or ``z_A`` (HAADF-scaled maps).
    mask_method : {"esf", "otsu", "multiotsu"}
        The particle mask; when the ESF fit fails, :data:`chemtomo.quantify.ESF_FALLBACK`
        (three-class Otsu; the returned mask says so).
    edge_level : float
        The ESF threshold's place on the particle-background step (default
        :data:`chemtomo.quantify.ESF_EDGE_LEVEL`; 0.5 its centre).

    Returns
    -------
    weight : ndarray, (k, s, n, n)
    mask : str
        The mask used: ``mask_method``, or e.g. ``"multiotsu (the ESF fit failed)"`` (the
        fallback's own method: ``"otsu"`` where three classes cannot be formed).
    """
    q = factors.f(lines) if factor == "f" else factors.z(lines)
    elements = [factors[ln].element for ln in lines]
    try:
        return (quantify(maps, q, factors.atomic_weights(lines), lines, elements, mask_method, None, edge_level).weight,
                mask_method)
    except ValueError:
        if mask_method != "esf":
            raise
        comp = quantify(maps, q, factors.atomic_weights(lines), lines, elements, ESF_FALLBACK, None)
        return comp.weight, f"{comp.threshold.method} (the ESF fit failed)"


def _columns(series: TiltSeries, lines: list[str], r) -> ChannelData:
    eds = np.stack([sinogram_to_columns(series.eds[ln]) for ln in lines])
    haadf = None if series.haadf is None else sinogram_to_columns(series.haadf)
    return ChannelData(list(lines), eds, haadf, r)


def sweep(series: TiltSeries, factors: Factors, method: str, grid: dict, base: dict | None = None,
          filter_sigma: float | None = FILTER_SIGMA_PX, mask_method: str = "esf",
          edge_level: float = ESF_EDGE_LEVEL) -> list[dict]:
    """``method`` at every point of ``grid`` on ``series``, as ``reconstruct_series`` computes it in process.

    The same arithmetic as :func:`chemtomo.pipeline.volume.reconstruct_series` with
    ``params = base | point`` (its defaults otherwise: the image-plane Gaussian filter,
    the ``batched`` backend, one chunk, the ESF mask), so a point equals that call's
    result; a HAADF at tilts of its own gets its own projector and ``r_A`` as there.
    A grid holding ``n`` (iterations) is run once per other point to the largest
    ``n`` with snapshots.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
    method : str
    grid : dict
        Parameter -> candidates (names of the method's rule: ``n``, ``alpha``, ``mu``).
    base : dict, optional
        Fixed parameters of the method.
    filter_sigma : float or None
        Gaussian filter (pixels) of the EDS stacks of methods that do not take raw counts.
    mask_method : {"esf", "otsu", "multiotsu"}
        The particle mask; when the ESF fit fails the point falls back to
        :data:`chemtomo.quantify.ESF_FALLBACK` and says so in ``mask``.
    edge_level : float
        The ESF threshold's place on the particle-background step (default
        :data:`chemtomo.quantify.ESF_EDGE_LEVEL`; 0.5 its centre).

    Returns
    -------
    list of dict
        ``{"params": point, "maps": (k, s, n, n), "weight": (k, s, n, n), "elements": [...],
        "seconds": float, "mask": str, "factor": "f" or "z"}`` per point; ``seconds`` is the
        point's share of its solve, ``factor`` the one the maps are quantified by.
    """
    m = get_method(method)
    lines = series.lines
    p0 = m.params(base or {})
    prepared = series if not filter_sigma else dataclasses.replace(
        series, eds={k: gaussian_filter_stack(v, filter_sigma, "image") for k, v in series.eds.items()},
        metadata=dict(series.metadata))
    solve_series = series if m.raw_counts else prepared
    geom = series.geometry()
    # a HAADF at tilts of its own: a projector per modality, r_A on the shared tilts or through a reconstruction
    haadf_geom = None if series.shares_angles or series.haadf is None else series.haadf_geometry()
    r = None
    if m.needs_haadf and haadf_geom is not None:
        r = estimate_response_ratios_tilts(
            prepared.haadf, {ln: prepared.eds[ln] for ln in lines}, series.angles_deg, series.haadf_angles,
            W=make_modality_operator(geom, haadf_geom, "batched", group=default_group())).r
    elif m.needs_haadf:  # as reconstruct_series fits them
        r = fit_response_ratios(prepared.haadf, {ln: prepared.eds[ln] for ln in lines}, series.eds, filter_sigma,
                                "image", 1.0).r
    W = make_modality_operator(geom, haadf_geom if m.needs_haadf else None, "batched", group=default_group())
    data = _columns(solve_series, lines, r)
    constants = m.setup(W, data, p0) if m.has_setup else None
    elements = [factors[ln].element for ln in lines]
    n_grid = geom.n_grid

    def finish(point, cols, factor, seconds):
        maps = np.stack([columns_to_volume(c, n_grid) for c in cols]).astype(np.float32, copy=False)
        weight, mask = quantify_maps(maps, factors, lines, factor, mask_method, edge_level)
        return {"params": point, "maps": maps, "weight": weight, "elements": elements, "seconds": seconds,
                "mask": mask, "factor": factor}

    names = list(grid)
    others = [k for k in names if k != "n"]
    out = []
    for values in itertools.product(*(grid[k] for k in others)):
        fixed = dict(zip(others, values, strict=True))
        t0 = time.perf_counter()
        if "n" in grid:
            ns = sorted(int(v) for v in grid["n"])
            res = m.solve(W, data, m.apply_choice(p0, {**fixed, "n": ns[-1]}), constants=constants, snapshots=ns)
            seconds = (time.perf_counter() - t0) / len(ns)
            for n in ns:
                cols = res.snapshots.get(n, res.maps if n == ns[-1] else None)
                out.append(finish({**fixed, "n": n}, cols, res.factor, seconds))
        else:
            res = m.solve(W, data, m.apply_choice(p0, fixed), constants=constants)
            out.append(finish(fixed, res.maps, res.factor, time.perf_counter() - t0))
    return out


def _json_params(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer))
                and not isinstance(v, bool) else v) for k, v in d.items()}


def run_case(series: TiltSeries, factors: Factors, truth: Truth, method: str, cfg: BenchmarkConfig,
             reconstruct: Reconstruct) -> dict:
    """One method on one series: ``{"best": ..., "auto": ..., "sweep": [...]}`` (see the module)."""
    m = get_method(method)
    grid, rule_grid = cfg.grid(m.name), cfg.rule_grid(m.name)
    base = dict(cfg.params.get(m.name, {}))
    t0 = time.perf_counter()
    cands = sweep(series, factors, m.name, grid, base, mask_method=cfg.mask_method, edge_level=cfg.mask_edge_level)
    sweep_seconds = time.perf_counter() - t0
    scored = []
    for c in cands:
        s = score(truth, c["maps"], c["weight"], c["elements"])
        scored.append({**s, "params": _json_params(c["params"]), "seconds": c["seconds"], "mask": c["mask"]})
    best = min(scored, key=lambda e: e["mse_fraction_inside"])
    best = {**best, "params": {**base, **best["params"]}, "sweep_seconds": sweep_seconds}
    t0 = time.perf_counter()
    mask = cfg.mask_method
    try:
        res = reconstruct(series, factors, m.name, base, auto=True, auto_grid=rule_grid, auto_slices=cfg.auto_slices,
                          mask_method=mask, edge_level=cfg.mask_edge_level)
    except ValueError as exc:
        if mask != "esf" or "edge" not in str(exc):
            raise
        res = reconstruct(series, factors, m.name, base, auto=True, auto_grid=rule_grid, auto_slices=cfg.auto_slices,
                          mask_method=ESF_FALLBACK)
        mask = f"{res.composition.threshold.method} (the ESF fit failed)"
    seconds = time.perf_counter() - t0
    auto = score(truth, np.asarray(res.maps), np.asarray(res.composition.weight), list(res.elements))
    chosen = res.parameters.get("auto", {})
    auto = {**auto, "params": {**base, **_json_params(dict(chosen.get("params", {})))},
            "rule": chosen.get("rule"), "at_grid_edge": chosen.get("at_grid_edge"),
            "seconds": seconds, "mask": mask}
    return {"best": best, "auto": auto,
            "sweep": [{"params": e["params"], "mse_fraction_inside": e["mse_fraction_inside"],
                       "mse_fraction_on_mask": e["mse_fraction_on_mask"],
                       "mse_fraction_particle_or_mask": e["mse_fraction_particle_or_mask"],
                       "particle_missed_by_mask": e["particle_missed_by_mask"]} for e in scored]}


def run_peer_case(series: TiltSeries, factors: Factors, truth: Truth, peer: str, cfg: BenchmarkConfig) -> dict:
    """One peer on one series, quantified and scored as :func:`run_case` does a method's.

    Every line of ``series`` (all its slices at once: the peer's prior couples them) is
    reconstructed at each point of the peer's grid; each point's maps are quantified with
    the methods' factors (``f_A``) and mask (:func:`quantify_maps`) and scored against
    ``truth``. *best*: the lowest inside MSE; *auto*: the peer's automatic setting.

    Parameters
    ----------
    series : TiltSeries
    factors : Factors
    truth : Truth
    peer : str
        One of :data:`chemtomo.studies.peers.PEERS`.
    cfg : BenchmarkConfig

    Returns
    -------
    dict
        ``{"best": ..., "auto": ..., "sweep": [...], "input": str}``, ``best`` and ``auto``
        in the layout of the methods' (``best.at_grid_edge``: the parameters whose best value
        is the smallest or largest of the grid).
    """
    check_peer_names([peer])
    points = svmbir_points(cfg.peer_grids.get(peer))
    t0 = time.perf_counter()
    cands = svmbir_sweep(series, points)
    sweep_seconds = time.perf_counter() - t0
    elements = [factors[ln].element for ln in series.lines]
    scored = []
    for c in cands:
        weight, mask = quantify_maps(c["maps"], factors, series.lines, "f", cfg.mask_method, cfg.mask_edge_level)
        s = score(truth, c["maps"], weight, elements)
        scored.append({**s, "params": _json_params(c["params"]), "seconds": c["seconds"], "mask": mask})
    best = {**min(scored, key=lambda e: e["mse_fraction_inside"]), "sweep_seconds": sweep_seconds}
    values = {k: sorted({pt[k] for pt in points}) for k in points[0]}
    best["at_grid_edge"] = [k for k, v in values.items() if len(v) > 1 and best["params"][k] in (v[0], v[-1])]
    auto = {**next(e for e in scored if e["params"] == SVMBIR_AUTO),
            "rule": "svmbir's defaults: sigma_x from sharpness 0, sigma_y from snr_db 30, per line"}
    return {"best": best, "auto": auto,
            "sweep": [{"params": e["params"], "mse_fraction_inside": e["mse_fraction_inside"],
                       "mse_fraction_particle_or_mask": e["mse_fraction_particle_or_mask"]} for e in scored],
            "input": f"each line's counts with the pipeline's image-plane Gaussian filter (sigma {FILTER_SIGMA_PX:g} "
                     "px), as chemtomo's EDS methods see them; one 3-D reconstruction of all the slices "
                     "(b_interslice 1), positivity, svmbir's stopping rule (100 iterations, 0.02 %)"}


def summarise(suite: dict) -> dict:
    """Winners and ratios per specimen and dose, and issue 13's targets on the measured numbers.

    Returns
    -------
    dict
        ``cases``: ``{specimen: {dose: {winner_best, winner_auto, auto_over_best {method: ratio},
        auto_over_best_on_mask {method: ratio} (MSE on the mask's particle voxels),
        best_auto_over_eds_sirt_auto}}}``; ``acceptance``: booleans; with peers, ``peers``:
        chemtomo's best-auto against each peer's best
        (:func:`chemtomo.studies.peers.compare_with_peers`), its acceptance merged.
    """
    cases: dict = {}
    ratios_eds = []
    all_within = True
    for spec, doses in suite.items():
        for dose, entry in doses.items():
            ms = entry["methods"]
            aob = {n: v["auto"]["mse_fraction_inside"] / v["best"]["mse_fraction_inside"] for n, v in ms.items()}
            # the same ratio on the mask's voxels (the oracle over the sweep by that score): what a rule controls
            # when the inside MSE is dominated by particle voxels the ESF mask misses
            aob_mask = {n: v["auto"]["mse_fraction_on_mask"]
                        / np.nanmin([e.get("mse_fraction_on_mask", np.nan) for e in v["sweep"]])
                        for n, v in ms.items() if v["auto"].get("mse_fraction_on_mask") is not None}
            all_within &= all(r <= 1.2 for r in aob.values())
            wb = min(ms, key=lambda n: ms[n]["best"]["mse_fraction_inside"])
            wa = min(ms, key=lambda n: ms[n]["auto"]["mse_fraction_inside"])
            c = {"winner_best": wb, "winner_auto": wa, "auto_over_best": aob, "auto_over_best_on_mask": aob_mask}
            if "eds_sirt" in ms:
                c["best_auto_over_eds_sirt_auto"] = (ms[wa]["auto"]["mse_fraction_inside"]
                                                     / ms["eds_sirt"]["auto"]["mse_fraction_inside"])
                ratios_eds.append(c["best_auto_over_eds_sirt_auto"])
            cases.setdefault(spec, {})[dose] = c
    acc = {"auto_within_1.2x_of_best_every_method": bool(all_within)}
    if ratios_eds:
        acc["best_auto_at_most_half_of_eds_sirt_auto_every_case"] = bool(max(ratios_eds) <= 0.5)
        acc["best_auto_median_at_most_quarter_of_eds_sirt_auto"] = bool(np.median(ratios_eds) <= 0.25)
    out = {"cases": cases, "acceptance": acc}
    if any(entry.get("peers") for doses in suite.values() for entry in doses.values()):
        peers = compare_with_peers(suite)
        out["peers"] = peers["cases"]
        acc.update(peers["acceptance"])
    return out


def run_benchmark(cfg: BenchmarkConfig, reconstruct: Reconstruct, say: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; return its metrics (the layout of issue 13).

    Parameters
    ----------
    cfg : BenchmarkConfig
    reconstruct : callable
        :func:`chemtomo.pipeline.volume.reconstruct_series` (passed in: the pipeline
        is a layer above the studies).
    say : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``config``, ``slices``, ``specimens`` (description, elements, pixel, region sizes),
        ``suite.<specimen>.<dose>.methods.<method>.{best,auto,sweep}``, ``.peers.<peer>.{...}``
        (with ``cfg.peers``) and ``.series``, ``summary``, ``seconds``.

    Raises
    ------
    ValueError
        A peer of ``cfg.peers`` that is not installed (before any work).
    """
    require_peers(cfg.peers)
    say = say or (lambda msg: None)
    t_all = time.perf_counter()
    a, b = cfg.slice_range()
    angles = np.asarray(cfg.angles_deg, float)
    suite: dict = {}
    specimens: dict = {}
    for name in cfg.specimens:
        t0 = time.perf_counter()
        spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
        truth = Truth.of(spec, (a, b))
        specimens[name] = {
            "description": spec.description, "tests": spec.tests, "elements": spec.elements,
            "pixel_nm": spec.pixel_nm, "field_nm": spec.field_nm, "n": spec.n, "oversampling": spec.oversampling,
            "region_voxels": {r: int(m.sum()) for r, m in truth.regions.items()},
            "particle_voxels": int(truth.particle.sum()), "build_seconds": time.perf_counter() - t0,
        }
        for dose in cfg.doses:
            t0 = time.perf_counter()
            sim = simulate_series(spec, angles, dose_scale=dose, beam_kev=cfg.beam_kev, seed=cfg.noise_seed,
                                  elastic="auto")
            series = sub_series(sim.series, a, b)
            entry = {"series": {"lines": sim.lines, "eds_dose_e_per_nm2": sim.series.metadata["eds_dose_e_per_nm2"],
                                "mean_counts_per_pixel": {ln: float(series.eds[ln].mean()) for ln in series.lines},
                                "simulate_seconds": time.perf_counter() - t0},
                     "methods": {}}
            if series.haadf is not None and series.shares_angles:
                # HEBT's fitted r_A against the theory that made the data: the fit's own error (noise in the
                # EDS regressors biases it), on the raw counts and on the filtered ones HEBT fits
                entry["series"]["response_ratios"] = {
                    key: estimate_response_ratios(f(series.haadf), {ln: f(series.eds[ln]) for ln in series.lines})
                    .against_theory(sim.factors)
                    for key, f in (("unfiltered", lambda a: a),
                                   ("filtered", lambda a: gaussian_filter_stack(a, FILTER_SIGMA_PX)))}
                entry["series"]["response_ratios"]["pipeline"] = fit_response_ratios(
                    series.haadf, {ln: gaussian_filter_stack(series.eds[ln], FILTER_SIGMA_PX, "image")
                                   for ln in series.lines}, series.eds, FILTER_SIGMA_PX, "image", 1.0,
                ).against_theory(sim.factors)
                entry["series"]["response_ratios"]["filter_sigma_px"] = FILTER_SIGMA_PX
            for method in cfg.methods:
                t0 = time.perf_counter()
                r = run_case(series, sim.factors, truth, method, cfg, reconstruct)
                entry["methods"][method] = r
                say(f"{name} dose x{dose_key(dose)} {method}: best {r['best']['mse_fraction_inside']:.2e} "
                    f"{r['best']['params']}, auto {r['auto']['mse_fraction_inside']:.2e} {r['auto']['params']} "
                    f"({time.perf_counter() - t0:.1f} s)")
            for peer in cfg.peers:
                t0 = time.perf_counter()
                r = entry.setdefault("peers", {})[peer] = run_peer_case(series, sim.factors, truth, peer, cfg)
                say(f"{name} dose x{dose_key(dose)} peer {peer}: best {r['best']['mse_fraction_inside']:.2e} "
                    f"{r['best']['params']}, auto {r['auto']['mse_fraction_inside']:.2e} "
                    f"({time.perf_counter() - t0:.1f} s)")
            suite.setdefault(name, {})[dose_key(dose)] = entry
    return {
        "config": cfg.as_dict(),
        "slices": {"range": [a, b], "n_slices": b - a, "of": cfg.n,
                   "note": ("only slices a:b (along the tilt axis, through the middle of the volume) are "
                            "reconstructed and scored; the truth is cut to the same slices")
                   if (b - a) < cfg.n else "every slice is reconstructed and scored"},
        "specimens": specimens,
        "suite": suite,
        "summary": summarise(suite),
        "seconds": time.perf_counter() - t_all,
    }
