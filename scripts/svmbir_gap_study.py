"""The svmbir gap on the diffuse alloy (issue 13): the measurements behind docs/solvers.md's section.

Three parts, on the quick suite's problem (``BenchmarkConfig.quick()``: n = 24, the 8
middle slices, 29 tilts at +-70 degrees, 200 kV, noise seed 0):

- ``mask``: svmbir at the points ``sharpness x snr_db`` and fused_huber at points of ``mu x huber``
  (``--eps``: its ``haadf_model_error``), each scored as the benchmark scores it (inside
  MSE with the ESF mask), with the truth's particle as the mask, and on the particle's and
  the mask's voxels together; the ESF threshold as a fraction of the plateau over the
  background; the particle voxels the mask misses and the ones it adds.
- ``projector``: the noiseless HAADF against the voxel projector applied to the truth's
  ``sum_A z_A rho_A`` on the reconstruction grid (one least-squares scale): the model
  error of a continuous specimen, rms and largest, as fractions of the mean HAADF.

Run (svmbir from the peers' venv)::

    PYTHONPATH=src /work/peersvenv/bin/python scripts/svmbir_gap_study.py mask --specimen diffuse_alloy \
        --dose 0.1 --sharpness -3 -1 0 --snr-db 20 30 --mu 0.24 0.34 --huber 0.3 1 --eps 0.01 0.05
    PYTHONPATH=src python scripts/svmbir_gap_study.py projector
"""

from __future__ import annotations

import argparse

import numpy as np

from chemtomo.geometry import sinogram_to_columns
from chemtomo.metrics import mse
from chemtomo.projector import make_modality_operator
from chemtomo.projector.batched import default_group
from chemtomo.quantify import esf_threshold, total_signal, weight_fractions
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, quantify_maps, sub_series, sweep


def _problem(name: str, dose: float):
    """The quick suite's specimen, truth, occupancy (slices cut) and series at ``dose``."""
    cfg = BenchmarkConfig.quick()
    a, b = cfg.slice_range()
    spec = make_specimen(name, cfg.n, cfg.oversampling, cfg.specimen_seed)
    sim = simulate_series(spec, np.asarray(cfg.angles_deg, float), dose_scale=dose, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    return cfg, spec, Truth.of(spec, (a, b)), spec.occupancy[a:b], sim, sub_series(sim.series, a, b)


def _row(label: str, truth: Truth, occ: np.ndarray, maps: np.ndarray, k: np.ndarray, weight: np.ndarray,
         elements: list[str]) -> str:
    """One line of the ``mask`` table."""
    order = [elements.index(el) for el in truth.elements]
    part = truth.particle

    def err(w, where):
        return float(np.mean([mse(w[i], truth.weight[i], where) for i in range(len(order))]))

    w = np.asarray(weight, np.float64)[order]
    quantified = w.sum(axis=0) > 0
    tot = total_signal(maps, k)
    plateau, bg = float(np.median(tot[occ > 0.99])), float(np.median(tot[occ == 0]))
    th = esf_threshold(tot).value
    wt = weight_fractions(maps, k, part)[order]
    return (f"{label:34s} inside {err(w, part):.2e}  truth-mask {err(wt, part):.2e}  particle-or-mask "
            f"{err(w, part | quantified):.2e}  ESF threshold {(th - bg) / (plateau - bg):.2f} of the plateau  "
            f"missed {int((part & ~quantified).sum())} added {int((quantified & ~part).sum())} of {int(part.sum())}")


def run_mask(args) -> None:
    """The ``mask`` part (see the module)."""
    cfg, _, truth, occ, sim, series = _problem(args.specimen, args.dose)
    lines, fac = series.lines, sim.factors
    elements = [fac[ln].element for ln in lines]
    if args.sharpness and args.snr_db:
        from chemtomo.studies.peers import svmbir_sweep

        pts = [{"sharpness": sh, "snr_db": sn} for sh in args.sharpness for sn in args.snr_db]
        for c in svmbir_sweep(series, pts):
            weight, _ = quantify_maps(c["maps"], fac, lines, "f", cfg.mask_method)
            p = c["params"]
            print(_row(f"svmbir {p['sharpness']:g}, {p['snr_db']:g}", truth, occ, c["maps"], fac.f(lines), weight,
                       elements), flush=True)
    for eps in args.eps:
        for c in sweep(series, fac, "fused_huber", {"mu": tuple(args.mu), "huber": tuple(args.huber)},
                       {"haadf_model_error": eps}, mask_method=cfg.mask_method):
            p = c["params"]
            print(_row(f"fused_huber {p['mu']:g}, {p['huber']:g}, eps {eps:g}", truth, occ, c["maps"], fac.z(lines),
                       c["weight"], elements), flush=True)


def run_projector(args) -> None:
    """The ``projector`` part (see the module)."""
    for name in args.specimens:
        _, spec, truth, _, sim, _ = _problem(name, 1.0)
        a, b = truth.slices
        clean = sub_series(sim.noiseless, a, b)
        W = make_modality_operator(clean.geometry(), None, "batched", group=default_group())
        h = sinogram_to_columns(clean.haadf).astype(np.float64)
        img = np.tensordot(np.asarray(sim.factors.z(sim.lines)), spec.partial[:, a:b], axes=1)
        p = np.asarray(W.forward(np.stack([im.ravel() for im in img], axis=1).astype(np.float32)), np.float64)
        res = h - float((p * h).sum() / (p * p).sum()) * p
        print(f"{name}: projector model error rms {np.sqrt(np.mean(res ** 2)) / h.mean():.4f}, largest "
              f"{np.abs(res).max() / h.mean():.3f} of the mean HAADF; HAADF Poisson noise "
              f"{1 / np.sqrt(h.mean()):.4f}", flush=True)


def main() -> None:
    """Command line (see the module)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    m = sub.add_parser("mask")
    m.add_argument("--specimen", default="diffuse_alloy")
    m.add_argument("--dose", type=float, default=0.1)
    m.add_argument("--sharpness", type=float, nargs="*", default=[], help="svmbir's grid (with --snr-db)")
    m.add_argument("--snr-db", type=float, nargs="*", default=[])
    m.add_argument("--mu", type=float, nargs="+", default=[0.24])
    m.add_argument("--huber", type=float, nargs="+", default=[0.3])
    m.add_argument("--eps", type=float, nargs="*", default=[0.05])
    p = sub.add_parser("projector")
    p.add_argument("--specimens", nargs="+", default=["diffuse_alloy", "core_shell"])
    args = ap.parse_args()
    (run_mask if args.part == "mask" else run_projector)(args)


if __name__ == "__main__":
    main()
