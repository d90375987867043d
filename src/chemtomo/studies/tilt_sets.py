"""The tilt-sets study (issue 16): dense HAADF, sparse EDS, full and limited tilt ranges.

One specimen of the suite, simulated by :func:`chemtomo.simulate.tilt_sets.simulate_specimen_tilt_sets`
with the HAADF at ``n_haadf`` and the EDS at ``n_eds`` evenly spaced tilts over
``+-range_deg`` (the EDS tilts placed on the nearest HAADF tilts), at each EDS dose
(per tilt, x the paper's; HAADF dose per tilt fixed). Each cell ``<n_eds>x<n_haadf>``
runs every method of the config (EDS-SIRT reconstructs the EDS alone; the others fuse
the HAADF at its own tilts) two ways, as in the specimen-suite benchmark
(:mod:`.benchmark`):

- *oracle*: the lowest inside-particle weight-fraction MSE over the method's grid (its
  ``default_grid`` or the config's), by the benchmark's sweep (:func:`~.benchmark.sweep`:
  ``reconstruct_series``'s arithmetic at every point, SIRT by snapshots, a projector per
  modality when the HAADF has tilts of its own);
- *auto*: ``reconstruct_series(auto=True, auto_grid=cfg.rule_grid(method))``: the registry's rule on its own candidates.

The metrics' keys are
``tilt_sets.<range_deg>.<dose>.<n_eds>x<n_haadf>.methods.<method>.<oracle|auto>.mse_fraction_inside``
(range and dose as :func:`~.benchmark.dose_key` writes numbers: ``70``, ``0.1``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..quantify import ESF_FALLBACK
from ..reconstruct import get_method, method_names
from ..simulate.specimens import SPECIMENS, make_specimen
from ..simulate.tilt_sets import simulate_specimen_tilt_sets, tilt_set_angles
from .benchmark import QUICK_GRIDS, Reconstruct, StudyGrids, Truth, _json_params, dose_key, score, sweep

#: EDS tilts x HAADF tilts of the full study: EDS at 7, 11, 16, 31 with HAADF at 31, 71,
#: 141, and the references with both modalities at 71 and both at 11 tilts.
FULL_CELLS = tuple((e, h) for h in (31, 71, 141) for e in (7, 11, 16, 31)) + ((71, 71), (11, 11))
#: The quick run's cells: issue 16's claim (11x71 against 71x71 and 11x11).
QUICK_CELLS = ((11, 71), (71, 71), (11, 11))
#: The quick run's methods: EDS alone and the fused solver of issue 16's claim.
QUICK_TILT_METHODS = ("eds_sirt", "fused_tv")
#: The cell whose reconstructions the report shows (the first cell when absent).
EXAMPLE_CELL = (11, 71)


def cell_key(n_eds: int, n_haadf: int) -> str:
    """The metrics key of a cell: ``11x71`` (EDS tilts x HAADF tilts)."""
    return f"{int(n_eds)}x{int(n_haadf)}"


def range_key(range_deg: float) -> str:
    """The metrics key of a tilt range ``+-range_deg``: ``70``, ``40``."""
    return f"{float(range_deg):g}"


@dataclass
class TiltSetsConfig(StudyGrids):
    """What the tilt-sets study runs.

    The defaults are the full study: ``+-70`` and ``+-40`` degrees, two doses, the 14
    cells of :data:`FULL_CELLS` (56 in all), every method with a rule on its default
    grid; ``n = 24`` and 4 middle slices (the quick run's size: the cells, not the
    volume, are what this study varies).

    Attributes
    ----------
    specimen : str
        A name in :data:`~chemtomo.simulate.specimens.SPECIMENS`.
    ranges_deg : tuple of float
        Largest tilts (degrees): each range runs ``-r..+r``.
    doses : tuple of float
        EDS doses per tilt relative to the paper's.
    cells : tuple of (int, int)
        ``(n_eds, n_haadf)`` tilt counts.
    methods : tuple of str
        Registered methods with an automatic rule.
    n, oversampling, n_slices, beam_kev, grids, params, auto_slices, mask_method
        As in :class:`~chemtomo.studies.benchmark.BenchmarkConfig` (here ``n = 24``,
        4 slices, rules on 4 slices).
    eds_on_haadf : bool
        EDS tilts on the nearest HAADF tilts (:func:`~chemtomo.simulate.tilt_sets.tilt_set_angles`).
    specimen_seed, noise_seed : int
    label : str
    """

    specimen: str = "core_shell"
    ranges_deg: tuple = (70.0, 40.0)
    doses: tuple = (1.0, 0.1)
    cells: tuple = FULL_CELLS
    methods: tuple = field(default_factory=lambda: tuple(n for n in method_names() if get_method(n).default_grid))
    n: int = 24
    oversampling: int = 2
    n_slices: int | None = 4
    beam_kev: float = 200.0
    grids: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    auto_slices: int = 4
    mask_method: str = "esf"
    eds_on_haadf: bool = True
    specimen_seed: int = 0
    noise_seed: int = 0
    label: str = "full"

    @classmethod
    def quick(cls) -> TiltSetsConfig:
        """A few minutes on 2 cores: issue 16's claim only.

        11x71, 71x71 and 11x11 over +-70 degrees at the paper's dose; EDS-SIRT and
        fused-TV on the benchmark's coarse grids (HEBT's automatic rule with a HAADF at
        tilts of its own takes minutes alone); ``n = 24``, 4 middle slices.
        """
        return cls(ranges_deg=(70.0,), doses=(1.0,), cells=QUICK_CELLS, methods=QUICK_TILT_METHODS,
                   grids={k: v for k, v in QUICK_GRIDS.items() if k in QUICK_TILT_METHODS}, label="quick")

    def __post_init__(self):
        if self.specimen not in SPECIMENS:
            raise ValueError(f"specimen must be one of {sorted(SPECIMENS)}, got {self.specimen!r}")
        if not self.ranges_deg or not all(np.isfinite(r) and 0 < r < 90 for r in self.ranges_deg):
            raise ValueError(f"ranges_deg must be tilt ranges in (0, 90) degrees, got {list(self.ranges_deg)}")
        if not self.doses or not all(np.isfinite(d) and d > 0 for d in self.doses):
            raise ValueError(f"doses must be positive numbers (1 = the paper's dose), got {list(self.doses)}")
        cells = []
        for c in self.cells:
            if len(c) != 2 or any(int(v) != v or v < 3 for v in c):
                raise ValueError(f"cells must be (n_eds, n_haadf) pairs of at least 3 tilts each, got {c!r}")
            if self.eds_on_haadf and c[0] > c[1]:
                raise ValueError(f"cell {cell_key(*c)}: with eds_on_haadf the EDS tilts are HAADF tilts, so "
                                 f"n_eds <= n_haadf (got {c[0]} > {c[1]})")
            cells.append((int(c[0]), int(c[1])))
        if not cells or len(set(cells)) != len(cells):
            raise ValueError(f"cells must be non-empty and distinct, got {list(self.cells)}")
        self.cells = tuple(cells)
        self._check_methods_and_slices()

    def as_dict(self) -> dict:
        """JSON-friendly copy (grids resolved per method, cells as keys)."""
        d = asdict(self)
        d["cells"] = [cell_key(*c) for c in self.cells]
        d["grids"] = {m: {k: list(v) for k, v in self.grid(m).items()} for m in self.methods}
        return d


def _reconstruct_scored(reconstruct: Reconstruct, series, factors, truth: Truth, method: str, params,
                        mask_method: str, **kw) -> tuple[dict, object]:
    """``reconstruct`` then :func:`~.benchmark.score`; an ESF fit without an edge falls back to ESF_FALLBACK.

    :data:`chemtomo.quantify.ESF_FALLBACK` is three-class Otsu; the returned ``mask`` says so.
    """
    mask = mask_method
    try:
        res = reconstruct(series, factors, method, params, mask_method=mask, **kw)
    except ValueError as exc:
        if mask != "esf" or "edge" not in str(exc):
            raise
        res = reconstruct(series, factors, method, params, mask_method=ESF_FALLBACK, **kw)
        mask = f"{res.composition.threshold.method} (the ESF fit failed)"
    s = score(truth, np.asarray(res.maps), np.asarray(res.composition.weight), list(res.elements))
    return {**s, "mask": mask}, res


def run_cell(series, factors, truth: Truth, method: str, cfg: TiltSetsConfig, reconstruct: Reconstruct,
             keep: Callable[[str, np.ndarray], None] | None = None) -> dict:
    """One method on one cell: the oracle over the grid and the automatic choice.

    Parameters
    ----------
    series : TiltSeries
        The cell's series (slices cut to the truth's).
    factors : Factors
    truth : Truth
    method : str
    cfg : TiltSetsConfig
    reconstruct : callable
        :func:`chemtomo.pipeline.volume.reconstruct_series`.
    keep : callable, optional
        ``keep(which, weight)`` receives the weight fractions ``(k, s, n, n)`` of the
        automatic run (``which = "auto"``), in the truth's element order.

    Returns
    -------
    dict
        ``oracle`` and ``auto`` (each :func:`~.benchmark.score`'s entries, ``params``,
        ``seconds``, ``mask``; auto also ``rule`` and ``at_grid_edge``) and ``sweep``
        (``params``, ``mse_fraction_inside`` of every grid point).
    """
    m = get_method(method)
    grid = cfg.grid(m.name)
    base = dict(cfg.params.get(m.name, {}))
    t0 = time.perf_counter()
    scored = []
    for c in sweep(series, factors, m.name, grid, base, mask_method=cfg.mask_method):
        s = score(truth, c["maps"], c["weight"], c["elements"])
        scored.append({**s, "params": _json_params(c["params"]), "seconds": c["seconds"], "mask": c["mask"]})
    sweep_seconds = time.perf_counter() - t0
    oracle = min(scored, key=lambda e: e["mse_fraction_inside"])
    oracle = {**oracle, "params": {**base, **oracle["params"]}, "sweep_seconds": sweep_seconds}
    t0 = time.perf_counter()
    auto, res = _reconstruct_scored(reconstruct, series, factors, truth, m.name, base, cfg.mask_method, auto=True,
                                    auto_grid=cfg.rule_grid(m.name), auto_slices=cfg.auto_slices)
    chosen = res.parameters.get("auto", {})
    auto = {**auto, "params": {**base, **_json_params(dict(chosen.get("params", {})))},
            "rule": chosen.get("rule"), "at_grid_edge": chosen.get("at_grid_edge"),
            "seconds": time.perf_counter() - t0}
    if keep is not None:
        els = list(res.elements)
        keep("auto", np.asarray(res.composition.weight)[[els.index(el) for el in truth.elements]])
    return {"oracle": oracle, "auto": auto,
            "sweep": [{"params": e["params"], "mse_fraction_inside": e["mse_fraction_inside"]} for e in scored]}


def summarise_tilt_sets(study: dict) -> dict:
    """Winners per cell, the fusion's gain over EDS-SIRT, and issue 16's claim on the measured numbers.

    The claim, per range and dose holding the cells 11x71, 71x71 and 11x11 and fused-TV:
    fused-TV's automatic inside MSE at 11x71 within 1.5x of its 71x71 value and at most
    1/2 of its 11x11 value (the oracle's ratios beside, to tell the rule from the data).

    Parameters
    ----------
    study : dict
        ``metrics["tilt_sets"]``.

    Returns
    -------
    dict
        ``cases``: ``{range: {dose: {cell: {winner_oracle, winner_auto, auto_over_eds_sirt_auto}}}}``;
        ``claim``: ``{range: {dose: {...ratios, holds}}}``; ``acceptance``: booleans.
    """
    cases: dict = {}
    claim: dict = {}
    for rk, doses in study.items():
        for dk, cells in doses.items():
            for ck, entry in cells.items():
                ms = entry["methods"]
                c = {"winner_oracle": min(ms, key=lambda n: ms[n]["oracle"]["mse_fraction_inside"]),
                     "winner_auto": min(ms, key=lambda n: ms[n]["auto"]["mse_fraction_inside"])}
                if "eds_sirt" in ms:
                    ref = ms["eds_sirt"]["auto"]["mse_fraction_inside"]
                    c["auto_over_eds_sirt_auto"] = {n: v["auto"]["mse_fraction_inside"] / ref for n, v in ms.items()}
                cases.setdefault(rk, {}).setdefault(dk, {})[ck] = c
            need = [cell_key(*EXAMPLE_CELL), cell_key(71, 71), cell_key(11, 11)]
            if all(k in cells and "fused_tv" in cells[k]["methods"] for k in need):
                v = {w: [cells[k]["methods"]["fused_tv"][w]["mse_fraction_inside"] for k in need]
                     for w in ("auto", "oracle")}
                c = {"fused_tv_auto_11x71_over_71x71": v["auto"][0] / v["auto"][1],
                     "fused_tv_auto_11x71_over_11x11": v["auto"][0] / v["auto"][2],
                     "fused_tv_oracle_11x71_over_71x71": v["oracle"][0] / v["oracle"][1],
                     "fused_tv_oracle_11x71_over_11x11": v["oracle"][0] / v["oracle"][2]}
                c["holds"] = bool(c["fused_tv_auto_11x71_over_71x71"] <= 1.5
                                  and c["fused_tv_auto_11x71_over_11x11"] <= 0.5)
                claim.setdefault(rk, {})[dk] = c
    acc = {}
    if "70" in claim and "1" in claim["70"]:
        acc["fused_tv_auto_11x71_within_1.5x_of_71x71_and_at_most_half_of_11x11_at_70deg_dose_1"] = \
            claim["70"]["1"]["holds"]
    return {"cases": cases, "claim": claim, "acceptance": acc}


def run_tilt_sets(cfg: TiltSetsConfig, reconstruct: Reconstruct, say: Callable[[str], None] | None = None) -> dict:
    """Run the tilt-sets study; return its part of the benchmark's metrics.

    Parameters
    ----------
    cfg : TiltSetsConfig
    reconstruct : callable
        :func:`chemtomo.pipeline.volume.reconstruct_series`.
    say : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``tilt_sets``: ``{range: {dose: {cell: {eds_angles_deg, haadf_angles_deg, series,
        methods: {method: {oracle, auto, sweep}}}}}}``; ``tilt_sets_config``;
        ``tilt_sets_slices``: per range, the middle slice of the truth's and each method's
        automatic weight fraction (the last element) at the first dose and
        :data:`EXAMPLE_CELL` (or the first cell); ``tilt_sets_summary``
        (:func:`summarise_tilt_sets`); ``tilt_sets_seconds``.
    """
    say = say or (lambda msg: None)
    t_all = time.perf_counter()
    a, b = cfg.slice_range()
    spec = make_specimen(cfg.specimen, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = Truth.of(spec, (a, b))
    mid = (b - a) // 2
    el = truth.elements[-1]
    example = EXAMPLE_CELL if EXAMPLE_CELL in cfg.cells else cfg.cells[0]
    study: dict = {}
    slices: dict = {}
    for rng_deg in cfg.ranges_deg:
        rk = range_key(rng_deg)
        for dose in cfg.doses:
            for n_eds, n_haadf in cfg.cells:
                t0 = time.perf_counter()
                eds_deg, haadf_deg = tilt_set_angles(rng_deg, n_eds, n_haadf, eds_on_haadf=cfg.eds_on_haadf)
                sim = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, dose, cfg.beam_kev, cfg.noise_seed,
                                         elastic="auto")
                series = sim.series((a, b))
                entry = {"eds_angles_deg": eds_deg.tolist(), "haadf_angles_deg": haadf_deg.tolist(),
                         "series": {"lines": sim.lines, "eds_dose_e_per_nm2": sim.metadata["eds_dose_e_per_nm2"],
                                    "mean_counts_per_pixel": {ln: float(v.mean()) for ln, v in series.eds.items()},
                                    "simulate_seconds": time.perf_counter() - t0},
                         "methods": {}}
                show = (n_eds, n_haadf) == example and dose == cfg.doses[0]
                if show:
                    slices[rk] = {"cell": cell_key(n_eds, n_haadf), "dose": dose_key(dose), "element": el,
                                  "slice": a + mid, "truth": truth.weight[-1, mid], "methods": {}}
                for method in cfg.methods:
                    t0 = time.perf_counter()
                    kept: dict = {}
                    r = run_cell(series, sim.factors, truth, method, cfg, reconstruct,
                                 (lambda which, weight, kept=kept: kept.update({which: weight})) if show else None)
                    if show:
                        slices[rk]["methods"][method] = kept["auto"][-1, mid]
                    entry["methods"][method] = r
                    say(f"tilt sets +-{rk} deg, dose x{dose_key(dose)}, {cell_key(n_eds, n_haadf)} {method}: "
                        f"oracle {r['oracle']['mse_fraction_inside']:.2e} {r['oracle']['params']}, "
                        f"auto {r['auto']['mse_fraction_inside']:.2e} {r['auto']['params']} "
                        f"({time.perf_counter() - t0:.1f} s)")
                study.setdefault(rk, {}).setdefault(dose_key(dose), {})[cell_key(n_eds, n_haadf)] = entry
    return {
        "tilt_sets": study,
        "tilt_sets_config": {**cfg.as_dict(), "slices": [a, b], "particle_voxels": int(truth.particle.sum())},
        "tilt_sets_slices": slices,
        "tilt_sets_summary": summarise_tilt_sets(study),
        "tilt_sets_seconds": time.perf_counter() - t_all,
    }
