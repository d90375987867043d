#!/usr/bin/env python
"""Region means' bias from the estimator's response to a region-constant model (issue 15, idea (b)).

The calibration study's set-up, as ``scripts/uncertainty_interval_dump.py`` (the benchmark's
quick configuration, n = 24, the 8 middle slices, 29 tilts, the paper's dose, each method's
parameters from its automatic rule). Per realisation, besides the bootstrap's region means
(value, percentile bounds, SE, the plug-in ``b1 = T(x) - x`` averaged over the region), the
bias of a region mean is estimated from the estimator's resolution at region level:

- the *region model*: every line's map set to its region mean inside each labelled region
  (and inside ``rest``, the mask's voxels in no label), zero outside the measured mask;
- its reconstruction ``T(model)``: forward projected (scaled per line to the measured
  counts, as the plug-in's model data), filtered and
  reconstructed as the data were (same method, parameters, set-up constants, response
  ratios, mask threshold: :func:`model_response`). For a linear estimator with resolution
  operator ``M`` this is ``sum_r x_r M 1_r``: each region's mass moved out of it and its
  neighbours' moved in, weighted by the regions' contrasts;
- the region bias ``bR = mean_R w(T(model)) - w(model_R)``: the mean of the reconstructed
  model's voxel fractions minus the model's own fraction there;
- the contrasts are the estimate's region means at iteration 0 (plug-in, blurred), then
  deconvolved at region level, ``x_{i+1} = x_i xhat_R / mean_R T(x_i)`` per line (a
  multiplicative step on the region means; ``--iters``), so the model's contrasts approach
  those whose reconstruction reproduces the estimate's region means.

Everything goes to ``outdir/<specimen>.<method>.<noise_seed>.npz`` (region arrays of shape
(realisations, iterations + 1, elements) for the model's terms); the intervals are compared
by ``scripts/uncertainty_region_bias_eval.py``.

Usage::

    python scripts/uncertainty_region_bias.py core_shell eds_sirt,hebt_sirt 12 12 1000 rb/ [--iters 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    """Run ``specimen methods seeds replicas noise_seed outdir [--iters N]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("specimen", "methods", "seeds", "replicas", "noise_seed", "outdir"):
        ap.add_argument(name)
    ap.add_argument("--iters", type=int, default=2, help="region-level deconvolution steps after the plug-in (0: none)")
    ap.add_argument("--uniform-sd", type=float, default=None,
                    help="also the hybrid model (region.<r>.bH...): labels whose true fraction varies by at most this "
                         "standard deviation are constants, the others keep the estimate's voxels (as a user "
                         "declaring the uniform phases)")
    ap.add_argument("--oracle", action="store_true",
                    help="also reconstruct the truth's partial densities (scaled per line to the estimate's total) "
                         "as the region model is: the bias the response would give with the truth known "
                         "(region.<r>.oracle), and reconstruct the noiseless simulated series once: the estimator's "
                         "bias without noise (region.<r>.clean)")
    a = ap.parse_args(argv)

    from uncertainty_interval_dump import auto_parameters, reconstruct_or_otsu

    from chemtomo.pipeline.region_bias import model_response, region_model_bias
    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.reconstruct import get_method
    from chemtomo.simulate.specimens import make_specimen, simulate_series
    from chemtomo.studies.benchmark import BenchmarkConfig, Truth, sub_series
    from chemtomo.studies.calibration import UncertaintyStudyConfig, _draw

    cfg = dataclasses.replace(BenchmarkConfig.quick(), specimens=(a.specimen,))
    ucfg = UncertaintyStudyConfig(seeds=int(a.seeds), replicas=int(a.replicas), noise_seed=int(a.noise_seed))
    s0, s1 = cfg.slice_range()
    sp = make_specimen(a.specimen, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = Truth.of(sp, (s0, s1))
    sim = simulate_series(sp, np.asarray(cfg.angles_deg, float), dose_scale=1.0, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    clean = sub_series(sim.noiseless, s0, s1)
    reg_names = [r for r, mm in truth.regions.items() if mm.any()]
    Path(a.outdir).mkdir(parents=True, exist_ok=True)
    for method in a.methods.split(","):
        m = get_method(method)
        t0 = time.perf_counter()
        params = auto_parameters(sim, cfg, m.name, s0, s1)
        mask_method = cfg.mask_method
        d: dict = {}
        clean_bias = {}
        if a.oracle:  # the estimator on the noiseless simulated series: its bias without noise
            from chemtomo.quantify import weight_fractions

            rc = reconstruct_series(clean, sim.factors, m.name, dict(params), mask_method=mask_method)
            mc = np.asarray(rc.composition.mask, bool)
            qc = sim.factors.f(rc.lines) if rc.factor == "f" else sim.factors.z(rc.lines)
            wc = weight_fractions(np.asarray(rc.maps, np.float64), qc, mc)[[list(rc.elements).index(el)
                                                                            for el in truth.elements]]
            clean_bias = {r: (wc[:, truth.regions[r] & mc] - truth.weight[:, truth.regions[r] & mc]).mean(axis=1)
                          for r in reg_names if (truth.regions[r] & mc).any()}
        for j in range(int(ucfg.seeds)):
            ser = _draw(clean, ucfg.noise_seed, j)
            res, mask_method = reconstruct_or_otsu(ser, sim.factors, m.name, params, mask_method)
            mask = np.asarray(res.composition.mask, bool)
            given = {r: truth.regions[r] & mask for r in reg_names}
            given = {r: v for r, v in given.items() if v.any()}
            u = bootstrap_uncertainty(ser, sim.factors, m.name, dict(params), replicas=int(ucfg.replicas), seed=j,
                                      regions=given, result=res, bias=True, mask_method=mask_method,
                                      haadf_sigma=ucfg.haadf_sigma, interval_method="percentile")
            rb = region_model_bias(res, ser, sim.factors, given, iters=a.iters)
            variants = [("", rb)]
            if a.uniform_sd is not None:
                flat = [r for r in given if float(truth.weight[:, given[r]].std(axis=1).max()) <= a.uniform_sd]
                variants.append(("H", region_model_bias(res, ser, sim.factors, given, iters=a.iters, uniform=flat)))
            order = [list(res.elements).index(el) for el in truth.elements]
            oracle = None
            if a.oracle:  # the response's bias with the truth known: T(truth) - truth, region means
                from chemtomo.quantify import weight_fractions

                maps = np.asarray(res.maps, np.float64)
                part = np.asarray(truth.partial, np.float64)[[list(truth.elements).index(el) for el in res.elements]]
                xt = part * (maps.sum(axis=(1, 2, 3)) / part.sum(axis=(1, 2, 3)))[:, None, None, None]
                q = sim.factors.f(res.lines) if res.factor == "f" else sim.factors.z(res.lines)
                oracle = weight_fractions(model_response(res, ser, sim.factors, xt), q, mask)[order] - \
                    truth.weight
            qorder = [list(rb.elements).index(el) for el in truth.elements]
            for r in reg_names:
                nan = np.full(len(order), np.nan)
                g = u.bootstrap.regions.get(r)
                vals = (nan,) * 5 if g is None else (g["weight"].value, g["weight"].se, g["weight"].low,
                                                     g["weight"].high, g["weight"].bias)
                for k, v in zip(("value", "se", "low", "high", "b1"), vals, strict=True):
                    d.setdefault(f"region.{r}.{k}", []).append(np.asarray(v, np.float64)[order])
                mm = given.get(r)
                d.setdefault(f"region.{r}.truth", []).append(
                    nan if mm is None else truth.weight[:, mm].mean(axis=1))
                if oracle is not None:
                    d.setdefault(f"region.{r}.oracle", []).append(nan if mm is None else oracle[:, mm].mean(axis=1))
                    d.setdefault(f"region.{r}.clean", []).append(clean_bias.get(r, nan))
                d.setdefault(f"region.{r}.true_sd", []).append(
                    nan if mm is None else truth.weight[:, mm].std(axis=1))
                nit = a.iters + 1
                for tag, rv in variants:
                    for k, v in (("bR", rv.bias), ("wmodel", rv.model_fraction), ("wT", rv.response_fraction)):
                        arr = np.full((nit, len(order)), np.nan) if r not in rv.names else \
                            np.asarray(v[:, :, rv.names.index(r)], np.float64)[:, qorder]
                        key = {"bR": "bH", "wmodel": "wmodelH", "wT": "wTH"}[k] if tag else k
                        d.setdefault(f"region.{r}.{key}", []).append(arr)
            d.setdefault("mask", []).append(mask)
            print(f"{a.specimen} {method} seed {j} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        arrays = {k: np.stack(v) for k, v in d.items()}
        np.savez_compressed(Path(a.outdir) / f"{a.specimen}.{method}.{a.noise_seed}.npz", truth=truth.weight,
                            particle=truth.particle, elements=np.array(truth.elements),
                            params=np.array(repr(params)), iters=a.iters, **arrays)


if __name__ == "__main__":
    main()
