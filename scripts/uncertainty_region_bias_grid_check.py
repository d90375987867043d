#!/usr/bin/env python
"""Where the truth's own response misses the estimator's bias: the specimen's sub-voxel structure (issue 15).

For each specimen and method (the calibration study's quick configuration and each
method's automatic parameters, as ``scripts/uncertainty_region_bias.py``), the bias of
every labelled region's mean weight fraction (first element), noiseless:

- ``clean``: the estimator on the noiseless simulated series of the specimen (its fine
  grid, ``oversampling`` times finer than the reconstruction's);
- ``grid``: the same, but the specimen's fine grid replaced by its truth on the
  reconstruction grid, repeated ``oversampling`` times along each axis (each voxel's
  block-averaged densities, uniform inside it);
- ``oracle``: the truth on the reconstruction grid put through the reconstruction's own
  operator and estimator (:func:`chemtomo.pipeline.region_bias.model_response`).

``grid`` equal to ``oracle`` but not to ``clean`` means the operator is not at fault: what
the grid's truth loses (where inside a boundary voxel the interface lies) changes the
region means' bias.

Usage::

    python scripts/uncertainty_region_bias_grid_check.py core_shell,janus eds_sirt,hebt_sirt
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np


def main(argv=None) -> None:
    """Run ``specimens methods`` (comma-separated) and print one markdown table."""
    from chemtomo.pipeline.region_bias import model_response
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.quantify import weight_fractions
    from chemtomo.reconstruct import get_method
    from chemtomo.simulate.specimens import make_specimen, simulate_series
    from chemtomo.studies.benchmark import BenchmarkConfig, Truth, sub_series

    specs, methods = argv if argv is not None else sys.argv[1:]
    print("| specimen | method | region | clean | grid | oracle |\n|---|---|---|---|---|---|")
    for spec in specs.split(","):
        cfg = dataclasses.replace(BenchmarkConfig.quick(), specimens=(spec,))
        s0, s1 = cfg.slice_range()
        sp = make_specimen(spec, cfg.n, cfg.oversampling, cfg.specimen_seed)
        truth = Truth.of(sp, (s0, s1))
        o = sp.oversampling
        grid = dataclasses.replace(sp, partial_fine=np.repeat(np.repeat(np.repeat(
            np.asarray(sp.partial, np.float32), o, 1), o, 2), o, 3))
        sims = [simulate_series(s, np.asarray(cfg.angles_deg, float), dose_scale=1.0, beam_kev=cfg.beam_kev,
                                seed=cfg.noise_seed, elastic="auto") for s in (sp, grid)]
        for method in methods.split(","):
            m = get_method(method)
            res0 = reconstruct_series(sub_series(sims[0].series, s0, s1), sims[0].factors, m.name,
                                      dict(cfg.params.get(m.name, {})), auto=True, auto_grid=cfg.grid(m.name),
                                      auto_slices=cfg.auto_slices, mask_method=cfg.mask_method)
            params = {k: res0.parameters[k] for k in m.Params.names() if k in res0.parameters}
            out = []
            for sim in sims:
                clean = sub_series(sim.noiseless, s0, s1)
                res = reconstruct_series(clean, sim.factors, m.name, dict(params), mask_method=cfg.mask_method)
                mask = np.asarray(res.composition.mask, bool)
                q = sim.factors.f(res.lines) if res.factor == "f" else sim.factors.z(res.lines)
                order = [list(res.elements).index(el) for el in truth.elements]
                out.append((mask, weight_fractions(np.asarray(res.maps, np.float64), q, mask)[order]))
                if len(out) == 1:
                    part = np.asarray(truth.partial, np.float64)[[list(truth.elements).index(el)
                                                                  for el in res.elements]]
                    t = model_response(res, clean, sim.factors, part)
                    out.append((mask, weight_fractions(np.asarray(t, np.float64), q, mask)[order]))
            (m1, w1), (_, wo), (m2, w2) = out
            for name, r in truth.regions.items():
                if not (r & m1).any() or not (r & m2).any():
                    continue
                cells = [w[0][r & mk].mean() - truth.weight[0][r & mk].mean()
                         for mk, w in ((m1, w1), (m2, w2), (m1, wo))]
                print(f"| {spec} | {method} | {name} | " + " | ".join(f"{c:+.4f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
