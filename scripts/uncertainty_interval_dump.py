#!/usr/bin/env python
"""Dump the bootstrap's per-realisation pieces of the calibration study, for interval definitions offline (issue 15).

The calibration study's set-up (:mod:`chemtomo.studies.calibration`: the benchmark's quick
configuration, n = 24, the 8 middle slices, 29 tilts, the paper's dose, each method's
parameters from its automatic rule on the benchmark's noise seed), but every
realisation's weight-fraction estimate, percentile bounds, SE, plug-in biases ``b1 =
T(x) - x`` and ``b2 = T(T(x)) - T(x)``, the measured mask and, per region, the same for
the region means are written to ``out`` (npz), with the truth. The interval definitions
are then compared on these dumps by ``scripts/uncertainty_interval_eval.py`` without
reconstructing again.

Usage::

    python scripts/uncertainty_interval_dump.py core_shell eds_sirt,hebt_sirt 20 12 1000 dumps/
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np


def auto_parameters(sim, cfg, method, s0: int, s1: int) -> dict:
    """The parameters ``method``'s automatic rule picks on the benchmark's noisy series (slices ``s0:s1``)."""
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.reconstruct import get_method
    from chemtomo.studies.benchmark import sub_series

    m = get_method(method)
    res0 = reconstruct_series(sub_series(sim.series, s0, s1), sim.factors, m.name, dict(cfg.params.get(m.name, {})),
                              auto=True, auto_grid=cfg.grid(m.name), auto_slices=cfg.auto_slices,
                              mask_method=cfg.mask_method)
    return {k: res0.parameters[k] for k in m.Params.names() if k in res0.parameters}


def reconstruct_or_otsu(series, factors, method: str, params: dict, mask_method: str):
    """``(result, mask_method)``: the ESF mask, or Otsu's from then on when a realisation shows no edge to fit."""
    from chemtomo.pipeline.volume import reconstruct_series

    try:
        return reconstruct_series(series, factors, method, dict(params), mask_method=mask_method), mask_method
    except ValueError as exc:
        if mask_method == "otsu" or "edge" not in str(exc):
            raise
    return reconstruct_series(series, factors, method, dict(params), mask_method="otsu"), "otsu"


def main(argv=None) -> None:
    """Run ``specimen methods seeds replicas noise_seed outdir``."""
    from scipy.ndimage import binary_erosion

    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
    from chemtomo.reconstruct import get_method
    from chemtomo.simulate.specimens import make_specimen, simulate_series
    from chemtomo.studies.benchmark import BenchmarkConfig, Truth, sub_series
    from chemtomo.studies.calibration import UncertaintyStudyConfig, _ball, _draw

    spec, methods, seeds, replicas, noise_seed, outdir = argv if argv is not None else sys.argv[1:]
    cfg = dataclasses.replace(BenchmarkConfig.quick(), specimens=(spec,))
    ucfg = UncertaintyStudyConfig(seeds=int(seeds), replicas=int(replicas), noise_seed=int(noise_seed))
    a, b = cfg.slice_range()
    sp = make_specimen(spec, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = Truth.of(sp, (a, b))
    sim = simulate_series(sp, np.asarray(cfg.angles_deg, float), dose_scale=1.0, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    clean = sub_series(sim.noiseless, a, b)
    reg_names = [r for r, mm in truth.regions.items() if mm.any()]
    fp = _ball(int(ucfg.resolution_px))
    interiors = {r: binary_erosion(truth.regions[r], fp) for r in reg_names}
    Path(outdir).mkdir(parents=True, exist_ok=True)
    for method in methods.split(","):
        m = get_method(method)
        t0 = time.perf_counter()
        params = auto_parameters(sim, cfg, m.name, a, b)
        mask_method = cfg.mask_method
        d: dict = {}
        for j in range(int(ucfg.seeds)):
            ser = _draw(clean, ucfg.noise_seed, j)
            res, mask_method = reconstruct_or_otsu(ser, sim.factors, m.name, params, mask_method)
            mask = np.asarray(res.composition.mask, bool)
            given = {**{r: truth.regions[r] & mask for r in reg_names},
                     **{f"{r}_interior": interiors[r] & mask for r in reg_names}}
            u = bootstrap_uncertainty(ser, sim.factors, m.name, dict(params), replicas=int(ucfg.replicas), seed=j,
                                      regions=given, result=res, bias=True, mask_method=mask_method,
                                      haadf_sigma=ucfg.haadf_sigma, interval_method="bias_calibrated")
            order = [list(res.elements).index(el) for el in truth.elements]
            s = u.bootstrap.weight
            for k, v in (("w", s.value), ("se", s.se), ("low", s.low + s.bias_bound), ("high", s.high - s.bias_bound),
                         ("b1", s.bias), ("b2", s.bias2)):
                d.setdefault(k, []).append(np.asarray(v, np.float64)[order])
            d.setdefault("mask", []).append(mask)
            d.setdefault("c_voxel", []).append(u.bootstrap.calibration["weight"]["voxel"])
            d.setdefault("c_region", []).append(u.bootstrap.calibration["weight"]["region"])
            for r in given:
                g = u.bootstrap.regions.get(r)
                mm = given[r]
                nan = np.full(len(order), np.nan)
                vals = (nan,) * 7 if g is None else (
                    g["weight"].value, g["weight"].se, g["weight"].low + g["weight"].bias_bound,
                    g["weight"].high - g["weight"].bias_bound, g["weight"].bias, g["weight"].bias2,
                    np.abs(np.asarray(s.bias))[:, mm].mean(axis=1) if mm.any() else nan)
                for k, v in zip(("value", "se", "low", "high", "b1", "b2", "absb1"), vals, strict=True):
                    d.setdefault(f"region.{r}.{k}", []).append(np.asarray(v, np.float64)[order])
                d.setdefault(f"region.{r}.truth", []).append(truth.weight[:, mm].mean(axis=1) if mm.any() else nan)
            print(f"{spec} {method} seed {j} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        arrays = {k: np.stack(v) for k, v in d.items()}
        np.savez_compressed(Path(outdir) / f"{spec}.{method}.{noise_seed}.npz", truth=truth.weight,
                            particle=truth.particle, elements=np.array(truth.elements),
                            params=np.array(repr(params)), **arrays)


if __name__ == "__main__":
    main()
