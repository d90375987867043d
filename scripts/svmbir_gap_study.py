"""The svmbir gap on the diffuse alloy (issue 13): the measurements behind docs/solvers.md's section.

The parts, on the quick suite's problem (``BenchmarkConfig.quick()``: n = 24, the 8
middle slices, 29 tilts at +-70 degrees, 200 kV, noise seed 0):

- ``mask``: svmbir at the points ``sharpness x snr_db`` and fused_huber at points of ``mu x huber``
  (``--eps``: its ``haadf_model_error``), each scored as the benchmark scores it (inside
  MSE with the ESF mask), with the truth's particle as the mask, and on the particle's and
  the mask's voxels together; the ESF threshold as a fraction of the plateau over the
  background; the particle voxels the mask misses and the ones it adds.
- ``masks``: every method's sweep (the benchmark's quick grid; ``fused_huber`` its default
  grid), its automatic result and (``--svmbir``) svmbir's sweep, each solved once and
  quantified under every mask of :data:`MASKS` (the ESF at edge levels 0.5-0.3 on each
  result's own total, on the HAADF SIRT volume, or on EDS-SIRT's automatic total: one mask
  per data set); ``--summary`` prints one table over the cases' JSON files (``--union``:
  each method's union score).
- ``projector``: the noiseless HAADF against the voxel projector applied to the truth's
  ``sum_A z_A rho_A`` on the reconstruction grid (one least-squares scale): the model
  error of a continuous specimen, rms and largest, as fractions of the mean HAADF.

Run (svmbir from the peers' venv)::

    PYTHONPATH=src /work/peersvenv/bin/python scripts/svmbir_gap_study.py mask --specimen diffuse_alloy \
        --dose 0.1 --sharpness -3 -1 0 --snr-db 20 30 --mu 0.24 0.34 --huber 0.3 1 --eps 0.01 0.05
    PYTHONPATH=src python scripts/svmbir_gap_study.py projector
    PYTHONPATH=src /work/peersvenv/bin/python scripts/svmbir_gap_study.py masks --specimen core_shell --dose 1 \
        --svmbir --out /tmp/masks/cs1.json
    PYTHONPATH=src python scripts/svmbir_gap_study.py masks --summary /tmp/masks/{cs1,cs01,da1,da01}.json
"""

from __future__ import annotations

import argparse

import numpy as np

from chemtomo.geometry import sinogram_to_columns
from chemtomo.metrics import mse
from chemtomo.projector import make_modality_operator
from chemtomo.projector.batched import default_group
from chemtomo.quantify import esf_threshold, otsu, total_signal, weight_fractions
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies.benchmark import BenchmarkConfig, Truth, quantify_maps, score, sub_series, sweep


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


#: The masks the ``masks`` part compares: (name, drawn on, ESF edge level). "own": each result's
#: total signal (the benchmark's mask); "haadf": the series' HAADF SIRT volume, one mask per data set;
#: "eds_sirt": the total of EDS-SIRT's automatic result, one mask per data set.
MASKS = tuple((f"{on} {q:g}", on, q) for on in ("own", "haadf", "eds_sirt") for q in (0.5, 0.45, 0.4, 0.35, 0.3))


def _masked_scores(truth: Truth, maps: np.ndarray, k: np.ndarray, elements: list[str], fixed: dict) -> dict:
    """The benchmark's scores of ``maps`` under each mask of :data:`MASKS` (``fixed``: the per-data-set masks)."""
    tot = total_signal(maps, k)
    out = {}
    for name, on, q in MASKS:
        try:
            mask = tot > esf_threshold(tot, edge_level=q).value if on == "own" else fixed[(on, q)]
        except ValueError:  # no ESF edge: Otsu's, as the benchmark falls back
            mask = tot > otsu(tot).value
        sc = score(truth, maps, weight_fractions(maps, k, mask), elements)
        out[name] = {key: sc[key] for key in ("mse_fraction_inside", "mse_fraction_particle_or_mask",
                                              "particle_missed_by_mask", "mask_outside_particle")}
    return out


def run_masks(args) -> None:
    """The ``masks`` part: every method's best and automatic result under each mask of :data:`MASKS`."""
    import json

    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.reconstruct import get_method

    cfg, _, truth, _, sim, series = _problem(args.specimen, args.dose)
    lines, fac = series.lines, sim.factors
    elements = [fac[ln].element for ln in lines]
    kf = {"f": np.asarray(fac.f(lines)), "z": np.asarray(fac.z(lines))}
    autos = {}
    for name in args.methods:
        m = get_method(name)
        autos[name] = reconstruct_series(series, fac, m.name, {}, auto=True, auto_grid=cfg.rule_grid(m.name),
                                         auto_slices=cfg.auto_slices)
    ref = {"haadf": np.asarray(next(iter(autos.values())).haadf_volume, np.float64)}
    if "eds_sirt" in autos:
        ref["eds_sirt"] = total_signal(np.asarray(autos["eds_sirt"].maps), kf[autos["eds_sirt"].factor])
    fixed = {}
    for _, on, q in MASKS:
        if on in ref:
            fixed[(on, q)] = ref[on] > esf_threshold(ref[on], edge_level=q).value
    masks = [mk for mk in MASKS if mk[1] == "own" or mk[1] in ref]
    out = {"specimen": args.specimen, "dose": args.dose, "masks": [mk[0] for mk in masks], "methods": {}}
    for name in args.methods:
        res = autos[name]
        auto = _masked_scores(truth, np.asarray(res.maps), kf[res.factor], list(res.elements), fixed)
        pts = [{"params": c["params"], **_masked_scores(truth, c["maps"], kf[c["factor"]], elements, fixed)}
               for c in sweep(series, fac, name, cfg.grid(name))]
        out["methods"][name] = {"auto": {"params": res.parameters.get("auto", {}).get("params"), **auto},
                                "sweep": pts}
    if args.svmbir:
        from chemtomo.studies.peers import svmbir_points, svmbir_sweep

        out["methods"]["svmbir"] = {"sweep": [{"params": c["params"], **_masked_scores(truth, c["maps"], kf["f"],
                                                                                       elements, fixed)}
                                              for c in svmbir_sweep(series, svmbir_points())]}
    with open(args.out, "w") as fh:
        json.dump(out, fh, default=float)
    _print_masks(out)


def _print_masks(out: dict) -> None:
    """The ``masks`` table of one case: per mask and method, best / auto (inside, union) and the mask's voxels."""
    print(f"{out['specimen']} x{out['dose']:g}")
    for mk in out["masks"]:
        row, best_auto = [], {}
        for name, v in out["methods"].items():
            sw = v["sweep"]
            b_in = min(sw, key=lambda e: e[mk]["mse_fraction_inside"])
            b_un = min(sw, key=lambda e: e[mk]["mse_fraction_particle_or_mask"])
            cell = f"{name} best {b_in[mk]['mse_fraction_inside']:.2e}/{b_un[mk]['mse_fraction_particle_or_mask']:.2e}"
            if "auto" in v:
                a = v["auto"][mk]
                best_auto[name] = (a["mse_fraction_inside"], a["mse_fraction_particle_or_mask"])
                cell += (f" auto {a['mse_fraction_inside']:.2e}/{a['mse_fraction_particle_or_mask']:.2e}"
                         f" ({a['mse_fraction_inside'] / b_in[mk]['mse_fraction_inside']:.2f}x,"
                         f" {a['mse_fraction_particle_or_mask'] / b_un[mk]['mse_fraction_particle_or_mask']:.2f}x)"
                         f" missed {a['particle_missed_by_mask']:.3f} added {a['mask_outside_particle']:.3f}")
            else:
                cell += (f" (missed {b_in[mk]['particle_missed_by_mask']:.3f}"
                         f" added {b_in[mk]['mask_outside_particle']:.3f})")
                peer = (b_in[mk]["mse_fraction_inside"], b_un[mk]["mse_fraction_particle_or_mask"])
            row.append(cell)
        if "svmbir" in out["methods"] and best_auto:
            ba = (min(x[0] for x in best_auto.values()), min(x[1] for x in best_auto.values()))
            row.append(f"best-auto/svmbir {ba[0] / peer[0]:.2f}, {ba[1] / peer[1]:.2f}")
        print(f"  [{mk}]\n    " + "\n    ".join(row), flush=True)


def _summary_union(outs: list[dict]) -> None:
    """Print the union score (``mse_fraction_particle_or_mask``) table: per mask and case, each method's best / auto."""
    names = list(outs[0]["methods"])
    head = ["mask", "case"] + [f"{m} union best / auto (x)" for m in names]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for mk in outs[0]["masks"]:
        for out in outs:
            row = [mk, f"{out['specimen']} x{out['dose']:g}"]
            for name in names:
                v = out["methods"][name]
                b = min(e[mk]["mse_fraction_particle_or_mask"] for e in v["sweep"])
                if "auto" in v:
                    a = v["auto"][mk]["mse_fraction_particle_or_mask"]
                    row.append(f"{b:.2e} / {a:.2e} ({a / b:.2f})")
                else:
                    row.append(f"{b:.2e} / -")
            print("| " + " | ".join(row) + " |")


def _summary(outs: list[dict]) -> None:
    """Print one markdown table over the cases' ``masks`` JSON files.

    Per mask and case: each method's best and auto inside MSE (auto over best), the best
    automatic result's inside MSE and the lowest automatic union score, both over svmbir's
    best under the same mask, and the voxels the best automatic result's mask misses and adds
    (fractions of the particle).
    """
    methods = [m for m in outs[0]["methods"] if m != "svmbir"]
    head = (["mask", "case"] + [f"{m} best / auto (x)" for m in methods]
            + ["best auto (inside / union)", "/ svmbir best: inside, union", "missed, added"])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for mk in outs[0]["masks"]:
        for out in outs:
            row = [mk, f"{out['specimen']} x{out['dose']:g}"]
            autos = {}
            for name in methods:
                v = out["methods"][name]
                b = min(e[mk]["mse_fraction_inside"] for e in v["sweep"])
                a = v["auto"][mk]
                autos[name] = a
                row.append(f"{b:.2e} / {a['mse_fraction_inside']:.2e} ({a['mse_fraction_inside'] / b:.2f})")
            win = min(autos, key=lambda n: autos[n]["mse_fraction_inside"])
            a = autos[win]
            union = min(x["mse_fraction_particle_or_mask"] for x in autos.values())
            row.append(f"{win} {a['mse_fraction_inside']:.2e} / {union:.2e}")
            sv = out["methods"].get("svmbir")
            if sv:
                pi = min(e[mk]["mse_fraction_inside"] for e in sv["sweep"])
                pu = min(e[mk]["mse_fraction_particle_or_mask"] for e in sv["sweep"])
                row.append(f"{a['mse_fraction_inside'] / pi:.2f}, {union / pu:.2f}")
            else:
                row.append("-")
            row.append(f"{a['particle_missed_by_mask']:.3f}, {a['mask_outside_particle']:.3f}")
            print("| " + " | ".join(row) + " |")


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
    k = sub.add_parser("masks")
    k.add_argument("--specimen", default="diffuse_alloy")
    k.add_argument("--dose", type=float, default=0.1)
    k.add_argument("--methods", nargs="+", default=["eds_sirt", "fused_tv", "fused_huber"])
    k.add_argument("--svmbir", action="store_true", help="svmbir's grid too (from the peers' venv)")
    k.add_argument("--out", help="JSON of every point's scores under every mask")
    k.add_argument("--summary", nargs="+", metavar="JSON", help="one table over these cases' --out files (no solves)")
    k.add_argument("--union", action="store_true", help="with --summary: each method's union score, best / auto")
    k.add_argument("--show", action="store_true", help="print the table of --out (no solves)")
    p = sub.add_parser("projector")
    p.add_argument("--specimens", nargs="+", default=["diffuse_alloy", "core_shell"])
    args = ap.parse_args()
    if args.part == "masks" and (args.show or args.summary):
        import json

        outs = []
        for path in args.summary or [args.out]:
            with open(path) as fh:
                outs.append(json.load(fh))
        if args.summary:
            (_summary_union if args.union else _summary)(outs)
        else:
            _print_masks(outs[0])
        return
    {"mask": run_mask, "masks": run_masks, "projector": run_projector}[args.part](args)


if __name__ == "__main__":
    main()
