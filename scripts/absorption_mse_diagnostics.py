#!/usr/bin/env python
"""What limits the absorption correction's inside MSE (issue 14): one case, split into its parts.

For the absorption study's specimen (``oxide_supported``, Super-X, the paper's EDS dose) at
one size ``n``, field and method, this reconstructs

- ``uncorrected``: the absorbed series with the thin-film model;
- ``corrected``: ``reconstruct_absorption_corrected`` (its defaults: predicted stop);
- ``corrected_5``: the measured rule run to 5 outer iterations (tol 1e-4);
- ``oracle``: one ratio correction computed from the *truth* (its partial densities on the
  reconstruction grid for the transmissions and as the emission), the uncorrected threshold;
- ``thin`` and ``thin_same_threshold``: the same specimen simulated without absorption,
  with its own mask threshold and with the uncorrected one (the reconstruction's floor);

and splits each one's squared fraction error inside the truth's particle into the
particle's surface layer (voxels with a 6-neighbour outside), the interfaces between its
regions, the interior, and the truth-particle voxels the reconstruction's mask leaves out
(weight 0 there: ``miss``). Noiseless runs also give the data-level residual of the
ratio correction: ``|b_abs r - b_thin| / |b_abs - b_thin|`` per line (0: the
thin-film data restored exactly). The numbers of ``docs/absorption.md`` come from::

    python scripts/absorption_mse_diagnostics.py --n 24 --method eds_sirt --field-nm 300 [--noiseless]

(one JSON line on stdout; 29 tilts -70..70 deg for n >= 24, 13 tilts -60..60 deg below).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import ndimage

from chemtomo.geometry import sinogram_to_columns, volume_to_columns
from chemtomo.physics.absorption import DetectorGeometry, mass_attenuation_cm2_g
from chemtomo.pipeline import absorption as A
from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.projector import astra_matrix
from chemtomo.projector.attenuated import AttenuatedOperator, transmissions
from chemtomo.simulate.absorption import simulate_series_absorbed
from chemtomo.simulate.specimen_series import simulate_series
from chemtomo.simulate.specimens import make_specimen
from chemtomo.studies.benchmark import Truth, score


def run(n: int, method: str, noise: bool, field: float) -> dict:
    """One case (module docstring); a JSON-friendly dict."""
    ang = np.arange(-70.0, 70.1, 5.0) if n >= 24 else np.arange(-60.0, 61.0, 10.0)
    spec = make_specimen("oxide_supported", n, 2, 0, field_nm=field)
    truth = Truth.of(spec)
    sim = simulate_series_absorbed(spec, ang, "super-x", 1.0, 200.0, 0, noise=noise, step_fraction=1.0,
                                   elastic="auto")
    thin = simulate_series(spec, ang, 1.0, 200.0, 0, noise=noise, elastic="auto")
    absorbed = {ln: 1 - float(sim.noiseless.eds[ln].sum(dtype=np.float64)
                              / thin.noiseless.eds[ln].sum(dtype=np.float64)) for ln in sim.lines}
    params = {"eds_sirt": {"n_iter": 100}}.get(method, {})
    kw = dict(params=params, filter_sigma=None)
    det = DetectorGeometry.preset("super-x")
    part = truth.particle
    # edge voxels: particle voxels with a 6-neighbour outside the particle or in another region
    lab = np.zeros(part.shape, int)
    for i, m in enumerate(truth.regions.values()):
        lab[m] = i + 1
    surface = part & ~ndimage.binary_erosion(part)
    lp = np.pad(lab, 1, mode="edge")
    inter = np.zeros(part.shape, bool)
    for ax in range(3):
        for sh in (1, -1):
            nb = np.roll(lp, sh, axis=ax)[1:-1, 1:-1, 1:-1]
            inter |= (nb != lab) & (nb > 0) & (lab > 0)
    edge = part & (surface | inter)

    def sc(r):
        s = score(truth, np.asarray(r.maps), np.asarray(r.composition.weight), list(r.elements))
        els = list(r.elements)
        w = np.asarray(r.composition.weight)[[els.index(e) for e in truth.elements]]
        se = ((w - truth.weight) ** 2).mean(axis=0)
        mask = np.asarray(r.composition.mask)
        return {"mse": s["mse_fraction_inside"], "O_support": s["region_means"]["support"]["O"],
                "edge_share": float(se[edge].sum() / se[part].sum()), "mse_interior": float(se[part & ~edge].mean()),
                "mse_edge": float(se[edge].mean()),
                "surface_share": float(se[surface].sum() / se[part].sum()),
                "interface_share": float(se[inter & part & ~surface].sum() / se[part].sum()),
                "miss_share": float(se[part & ~mask].sum() / se[part].sum()), "miss_voxels": int((part & ~mask).sum()),
                "extra_voxels": int((~part & mask).sum()), "mse_in_both": float(se[part & mask].sum() / part.sum() * 1)}

    t0 = time.perf_counter()
    r_thin = reconstruct_series(thin.series, thin.factors, method, **kw)
    res = A.reconstruct_absorption_corrected(sim.series, sim.factors, method, **kw)
    res5 = A.reconstruct_absorption_corrected(sim.series, sim.factors, method, stop="measured", tol=1e-4, max_outer=5,
                                              **kw)
    g = res.uncorrected.geometry
    W = astra_matrix(g)
    # oracle: transmissions and emission from the truth on the reconstruction grid
    mus = np.stack([sum(mass_attenuation_cm2_g(el, ln) * truth.partial[j] for j, el in enumerate(truth.elements))
                    * 1e-7 for ln in sim.lines])
    T = transmissions(mus, g, det)
    orat = {}
    for i, ln in enumerate(sim.lines):
        x = volume_to_columns(truth.partial[i].astype(np.float32))
        p = np.asarray(W @ x, np.float64)
        a = AttenuatedOperator(W, T[i]).forward(x).astype(np.float64)
        ok = (a > 1e-6 * a.max()) & (p > 0)
        orat[ln] = np.where(ok, p / np.where(ok, a, 1.0), 1.0)
    later = {**kw, "threshold": float(res.uncorrected.composition.threshold.value), "haadf_volume": False}
    r_or = reconstruct_series(A._corrected(sim.series, orat, g.n_tilts, g.n_pixels), sim.factors, method, **later)
    # the thin-film mask threshold would differ: also the oracle data = thin series, with the uncorrected threshold
    r_thin_th = reconstruct_series(thin.series, thin.factors, method, **later)
    out = {"n": n, "method": method, "noise": noise, "field_nm": field, "tilts": len(ang),
           "absorbed_O": absorbed["O_Ka"], "absorbed_Al": absorbed["Al_Ka"],
           "truth_O_support": truth.region_means()["support"]["O"],
           "edge_fraction": float(edge.sum() / part.sum()), "particle_voxels": int(part.sum()),
           "surface_fraction": float(surface.sum() / part.sum()), "unassigned": int((part & (lab == 0)).sum()),
           "thin": sc(r_thin), "thin_same_threshold": sc(r_thin_th), "uncorrected": sc(res.uncorrected),
           "corrected": sc(res.corrected),
           "outer": res.outer_iterations, "predicted": res.predicted_changes, "changes": res.changes,
           "corrected_5": sc(res5.corrected), "changes_5": res5.changes, "oracle": sc(r_or)}
    if not noise:
        b_thin = {ln: sinogram_to_columns(thin.noiseless.eds[ln]).astype(np.float64) for ln in sim.lines}
        b_abs = {ln: sinogram_to_columns(sim.noiseless.eds[ln]).astype(np.float64) for ln in sim.lines}
        _, _, _, rat = A._correction(res.uncorrected, sim.factors, sim.series.metadata, None, W, det, "3d", None)
        _, _, _, rat1 = A._correction(res.corrected, sim.factors, sim.series.metadata, None, W, det, "3d", None)

        def resid(r):
            return {ln: float(np.linalg.norm(b_abs[ln] * r[ln] - b_thin[ln]) / np.linalg.norm(b_abs[ln] - b_thin[ln]))
                    for ln in ("O_Ka", "Al_Ka")}

        out["data_residual"] = {"from_uncorrected": resid(rat), "from_corrected": resid(rat1), "oracle": resid(orat)}
    for k in ("thin", "thin_same_threshold", "corrected", "corrected_5", "oracle"):
        out[k]["ratio"] = out[k]["mse"] / out["uncorrected"]["mse"]
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv=None) -> dict:
    """Parse the options, run the case, print it as one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--method", default="eds_sirt")
    ap.add_argument("--field-nm", type=float, default=300.0)
    ap.add_argument("--noiseless", action="store_true")
    args = ap.parse_args(argv)
    out = run(args.n, args.method, not args.noiseless, args.field_nm)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
