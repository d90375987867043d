#!/usr/bin/env python
"""Why fused-TV with a dense HAADF does not halve the inside MSE of an 11-tilt EDS set (issue 16).

Runs the tilt-sets study's quick cells (core_shell, n = 24, slices 10:14, +-70 degrees:
11x71, 71x71, 11x11) through ``reconstruct_series(method="fused_tv")`` at fixed mu and
splits the inside-particle weight-fraction MSE into the particle's interior (eroded by
one voxel) and its one-voxel boundary layer, for

1. noisy data at the paper's dose and 1/10, and noiseless data (simulated as the
   study does: on a 2x finer grid);
2. noiseless data projected on the reconstruction grid itself (no discretisation
   mismatch), at 100 (fused-TV's default), 1000 and 3000 iterations.

Usage::

    PYTHONPATH=src python scripts/tilt_sets_diagnostics.py     # about 5 minutes on 2 cores

Prints one line per run: inside / interior / boundary MSE.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.ndimage import binary_erosion

from chemtomo.metrics import mse
from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.simulate.specimens import make_specimen
from chemtomo.simulate.tilt_sets import simulate_specimen_tilt_sets, tilt_set_angles
from chemtomo.studies.benchmark import Truth

N, SLICES = 24, (10, 14)
CELLS = ((11, 71), (71, 71), (11, 11))


def split_mse(res, truth: Truth) -> str:
    """Inside / interior / boundary-layer weight-fraction MSE (mean over elements) of a result."""
    part = truth.particle
    inner = binary_erosion(part, iterations=1)
    els = list(res.elements)
    w = np.asarray(res.composition.weight)[[els.index(e) for e in truth.elements]]
    vals = [float(np.mean([mse(w[i], truth.weight[i], m) for i in range(len(els))]))
            for m in (part, inner, part & ~inner)]
    return " / ".join(f"{v:.2e}" for v in vals)


def run(spec, truth: Truth, label: str, dose: float, noise: bool, params: dict) -> None:
    """fused-TV at ``params`` on every cell of :data:`CELLS`; one printed line each."""
    for cell in CELLS:
        eds_deg, haadf_deg = tilt_set_angles(70, *cell)
        sim = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, dose, 200.0, 0, noise=noise, elastic="auto")
        res = reconstruct_series(sim.series(SLICES), sim.factors, "fused_tv", params)
        print(f"{label:34s} dose x{dose:g} {cell[0]}x{cell[1]:<3d} {params}: {split_mse(res, truth)}", flush=True)


def main() -> None:
    """Run the two diagnostics and print their lines."""
    warnings.simplefilter("ignore")
    spec = make_specimen("core_shell", N, 2, 0)
    truth = Truth.of(spec, SLICES)
    inner = binary_erosion(truth.particle, iterations=1)
    print(f"particle voxels {int(truth.particle.sum())}, interior {int(inner.sum())}, "
          f"boundary layer {int((truth.particle & ~inner).sum())}; columns: inside / interior / boundary MSE")
    for dose, noise in ((1.0, True), (1.0, False), (0.1, True)):
        for mu in (0.06, 0.48):
            run(spec, truth, f"fine-grid data, {'noisy' if noise else 'noiseless'}", dose, noise, {"mu": mu})
    # the inverse crime on purpose: data projected on the reconstruction grid (no discretisation mismatch)
    coarse = dataclasses.replace(spec, partial_fine=np.ascontiguousarray(spec.partial, spec.partial_fine.dtype),
                                 oversampling=1)
    for n_iter in (100, 1000, 3000):
        run(coarse, truth, "model-grid data, noiseless", 1.0, False, {"mu": 0.48, "n_iter": n_iter})


if __name__ == "__main__":
    main()
