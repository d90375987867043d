"""Warm-start budget of the absorption correction: corrected results and CPU cost per variant (issue 14).

Simulates ``oxide_supported`` (``FIELD`` nm field, default 300; ``n`` voxels across; 29 tilts -70..70 deg,
the paper's dose, Super-X, absorption by ray marching), reconstructs it uncorrected with ``method`` and then
corrects it once per variant, with numba and BLAS on one thread (CPU seconds of the work, not of the load):

- ``cold``: ``warm_start=False``; ``coldN``: also with ``n_iter = N`` for every solve (``cold1000``: near the
  minimiser);
- ``F``: warm-started with ``warm_fraction = F``;
- a suffix ``:est=NAME`` estimates from method NAME's maps (``:est=own``: the method's own), ``:maps`` drops the
  duals from the warm start (maps only).

Prints, per variant, the CPU seconds and their ratio to the uncorrected reconstruction, the outer iterations,
the changes, the inside MSE and the O means of the regions where the truth holds O.

    FIELD=300 python scripts/absorption_warm_budget.py 24 fused_tv cold 0.3 0.4 0.5 cold300 cold1000
"""

from __future__ import annotations

import os
import sys
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits


def main(argv: list[str]) -> None:
    """Run the variants named in ``argv`` (``n method variant...``) and print one line each."""
    import chemtomo.reconstruct.methods as methods
    from chemtomo.pipeline.absorption import reconstruct_absorption_corrected
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.simulate.absorption import simulate_series_absorbed
    from chemtomo.simulate.specimens import make_specimen
    from chemtomo.studies.benchmark import Truth, score

    numba.set_num_threads(1)
    threadpool_limits(1)
    n, method, variants = int(argv[0]), argv[1], argv[2:]
    spec = make_specimen("oxide_supported", n, 2, 0, field_nm=float(os.environ.get("FIELD", "300")))
    truth = Truth.of(spec)
    sim = simulate_series_absorbed(spec, np.arange(-70.0, 70.1, 5.0), "super-x", 1.0, 200.0, 0, step_fraction=1.0,
                                   elastic="auto")
    kw = {"params": {}, "filter_sigma": None}
    reconstruct_series(sim.series, sim.factors, method, **kw)

    def scored(r):
        s = score(truth, np.asarray(r.maps), np.asarray(r.composition.weight), list(r.elements))
        o = {k: round(v["O"], 4) for k, v in s["region_means"].items() if s["truth_region_means"][k]["O"] > 0}
        return s["mse_fraction_inside"], o

    c0 = time.process_time()
    u = reconstruct_series(sim.series, sim.factors, method, **kw)
    cu = time.process_time() - c0
    mse_u, o_u = scored(u)
    print(f"uncorrected cpu {cu:.2f} mse {mse_u:.3e} O {o_u}", flush=True)
    solver_duals = methods.solver_duals
    for v in variants:
        kv = dict(kw)
        parts = v.split(":")
        if parts[0].startswith("cold"):
            kv["warm_start"] = False
            if parts[0][4:]:
                kv["params"] = {"n_iter": int(parts[0][4:])}
        else:
            kv["warm_fraction"] = float(parts[0])
        methods.solver_duals = (lambda *a, **k: None) if "maps" in parts else solver_duals
        for p in parts[1:]:
            if p.startswith("est="):
                kv["estimate"] = None if p[4:] == "own" else p[4:]
        c0 = time.process_time()
        res = reconstruct_absorption_corrected(sim.series, sim.factors, method, **kv)
        cc = time.process_time() - c0
        mse, o = scored(res.corrected)
        print(f"{v}: cpu {cc:.2f} ratio {cc / cu:.2f} outer {res.outer_iterations} stop {res.parameters['stop']} "
              f"changes {[round(c, 4) for c in res.changes]} mse {mse:.3e} O {o}", flush=True)
    methods.solver_duals = solver_duals


if __name__ == "__main__":
    main(sys.argv[1:])
