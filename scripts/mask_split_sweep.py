#!/usr/bin/env python
r"""One method swept on one suite specimen and dose, the inside MSE split into the mask's share and the rest.

Builds the specimen as the benchmark does (``n = 24``, the 8 middle slices, 29 tilts at
+-70 degrees, 200 kV), runs :func:`chemtomo.studies.benchmark.sweep` over the grid given
and prints, per point, the benchmark's inside-particle weight-fraction MSE, the particle
voxels the quantification's mask misses and adds, the MSE on the mask's particle voxels
and the region means. The numbers of docs/solvers.md ("HEBT's alpha, the TV weight and
the Gaussian filter on the suite") come from:

    .venv/bin/python scripts/mask_split_sweep.py diffuse_alloy 0.1 hebt_sirt --n 50 100 200 500 \
        --alpha 0 0.2 0.4 0.6 0.8 0.9   # and dose 1
    .venv/bin/python scripts/mask_split_sweep.py core_shell 1 fused_tv --mu 0.12 0.24 0.48 0.68 0.96 1.36
    .venv/bin/python scripts/mask_split_sweep.py small_core 1 eds_sirt \
        --n 3 5 7 10 15 20 30 50 75 100 150 200 300 500 --filter-sigma 0 0.5 0.8 1.2   # and dose 0.1
"""

from __future__ import annotations

import argparse

import numpy as np

from chemtomo.simulate.specimens import SPECIMENS, make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, score, sub_series, sweep


def main() -> int:
    """Sweep and print the split; exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specimen", choices=sorted(SPECIMENS))
    p.add_argument("dose", type=float)
    p.add_argument("method")
    p.add_argument("--n", nargs="+", type=int, help="iteration counts (SIRT methods)")
    p.add_argument("--alpha", nargs="+", type=float, help="HEBT's alpha")
    p.add_argument("--mu", nargs="+", type=float, help="TV weights")
    p.add_argument("--filter-sigma", nargs="+", type=float, default=[0.8],
                   help="Gaussian filter of the SIRT methods' input (pixels; default 0.8)")
    args = p.parse_args()
    grid = {k: v for k, v in (("n", args.n), ("alpha", args.alpha), ("mu", args.mu)) if v}
    if not grid:
        p.error("give a grid: --n, --alpha and/or --mu")
    cfg = BenchmarkConfig(n=24, n_slices=8)
    a, b = cfg.slice_range()
    spec = make_specimen(args.specimen, cfg.n, cfg.oversampling, 0)
    truth = Truth.of(spec, (a, b))
    sim = simulate_series(spec, np.asarray(cfg.angles_deg), dose_scale=args.dose, beam_kev=cfg.beam_kev, seed=0,
                          elastic="auto")
    series = sub_series(sim.series, a, b)
    n_particle = int(truth.particle.sum())
    counts = np.stack([series.eds[ln] for ln in series.lines]).astype(np.float64)
    fill = np.sqrt((counts ** 2).sum() / counts.sum() / counts.mean())
    print(f"sqrt(count-weighted / plain mean count) = {fill:.2f} (how much of the field the rays through the "
          f"particle fill; 1.33 on the paper's phantom)")
    print(f"{args.specimen} dose x{args.dose:g} {args.method}: {n_particle} particle voxels; truth regions "
          f"{ {r: {e: round(v, 3) for e, v in m.items()} for r, m in truth.region_means().items()} }")
    for sigma in args.filter_sigma:
        for pt in sweep(series, sim.factors, args.method, grid, filter_sigma=sigma):
            s = score(truth, pt["maps"], pt["weight"], pt["elements"])
            regions = {r: {e: round(v, 3) for e, v in m.items()} for r, m in s["region_means"].items()}
            print(f"sigma {sigma:g} {pt['params']}: inside {s['mse_fraction_inside']:.2e}, missed "
                  f"{round(s['particle_missed_by_mask'] * n_particle)}, added "
                  f"{round(s['mask_outside_particle'] * n_particle)}, on mask {s['mse_fraction_on_mask']:.2e}, "
                  f"regions {regions}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
