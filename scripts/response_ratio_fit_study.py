#!/usr/bin/env python
"""How the response-ratio fit's bias costs HEBT-SIRT and fused-TV on the specimen suite (issue 13; research).

Until issue 13's errors-in-variables correction the pipeline fitted ``I^H = sum_A r_A I_A`` by
non-negative least squares of the *unfiltered* HAADF on the *Gaussian-filtered* EDS counts.
Two things bias that fit:

- the regressors' Poisson noise (errors in variables: attenuation, worst for nearly
  collinear lines such as the ternary particle's, where Pd's fraction is constant);
- the filter applied to one side only (the HAADF keeps detail the filtered EDS lost).

This script simulates one case of the benchmark (its full configuration: n = 28, the 8 middle
slices, 29 tilts, 200 kV, noise seed 0), fits ``r_A`` several ways and runs the benchmark's
automatic result of each method with each fit given as ``response_ratios``:

- ``lsq_until_now``: the fit the pipeline made until the correction (given explicitly);
- ``pipeline``: the pipeline's own fit now (no ``response_ratios`` given:
  :func:`chemtomo.preprocess.fit_response_ratios`, the HAADF filtered as the EDS are and the
  correction phased in by the directions' whitened eigenvalue,
  :data:`chemtomo.reconstruct.hebt.EIV_RAMP`);
- ``ols_both_filtered``: least squares with the HAADF filtered as the EDS are;
- ``corr_every_direction``: the correction made in every direction (a hard threshold just
  above 1); ``hard_threshold_1.5``: all of it above 1.5, none below (the first rule tried);
- ``corr_raw``, ``ols_raw``: the same on the unfiltered data (printed only);
- the theory (eq 16 with the simulation's own factors) is the reference of the printed
  ratios; it is not an estimator (the simulator uses chemtomo's z_A and f_A).

Only the automatic result is given each fit; the oracle sweep (``oracle``) fits its own,
as the pipeline does now. Commands of docs/solvers.md ("The response ratios' fit", about a
minute per case and method, one thread):

    PYTHONPATH=src python scripts/response_ratio_fit_study.py ternary_gradient 1 hebt_sirt,fused_tv
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from chemtomo.pipeline.volume import reconstruct_series
from chemtomo.preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack, gaussian_filter_variance
from chemtomo.reconstruct import estimate_response_ratios
from chemtomo.simulate.specimens import make_specimen, simulate_series
from chemtomo.studies import benchmark as bm

RUN = ("lsq_until_now", "pipeline")
EVERY = (1.0 + 1e-6, 1.0 + 1e-6)  # the correction in every direction (the ramp must start above 1)


def main(argv=None) -> None:
    """Print each fit's r_A over theory and each method's automatic inside MSE with it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specimen")
    ap.add_argument("dose", type=float)
    ap.add_argument("methods", help="comma-separated, e.g. hebt_sirt,fused_tv")
    ap.add_argument("run", nargs="?", default=",".join(RUN), help=f"fits to run the methods with (default {RUN})")
    a = ap.parse_args(argv)
    methods, run = a.methods.split(","), a.run.split(",")
    cfg = bm.BenchmarkConfig(specimens=(a.specimen,), doses=(a.dose,), methods=tuple(methods))
    lo, hi = cfg.slice_range()
    spec = make_specimen(a.specimen, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = bm.Truth.of(spec, (lo, hi))
    sim = simulate_series(spec, np.asarray(cfg.angles_deg), dose_scale=a.dose, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    series = bm.sub_series(sim.series, lo, hi)
    md = series.metadata
    theory = sim.factors.response_ratios(haadf_dose=md["haadf_dose"], eds_dose=md["eds_dose"],
                                         solid_angle_sr=md["solid_angle_sr"], lines=series.lines)
    sig = FILTER_SIGMA_PX
    filt = {ln: gaussian_filter_stack(series.eds[ln], sig, "image") for ln in series.lines}
    hf = gaussian_filter_stack(series.haadf, sig, "image")
    raw = {ln: series.eds[ln] for ln in series.lines}
    noise = np.array([gaussian_filter_variance(raw[ln], sig, "image").sum() for ln in series.lines])
    fits = {
        "lsq_until_now": estimate_response_ratios(series.haadf, filt),
        "pipeline": fit_response_ratios(series.haadf, filt, raw, sig, "image", 1.0),
        "ols_both_filtered": estimate_response_ratios(hf, filt),
        "corr_every_direction": estimate_response_ratios(hf, filt, noise_energy=noise, ramp=EVERY),
        "hard_threshold_1.5": estimate_response_ratios(hf, filt, noise_energy=noise, ramp=(1.5, 1.5)),
        "corr_raw": estimate_response_ratios(series.haadf, raw, ramp=EVERY,
                                             noise_energy=[float(np.sum(raw[ln])) for ln in series.lines]),
        "ols_raw": estimate_response_ratios(series.haadf, raw),
    }
    for name, rr in fits.items():
        rel = rr.r / theory
        print(f"{a.specimen} x{a.dose:g} {name}: r/theory (relative to the last line) "
              f"{np.round(rel / rel[-1], 3).tolist()}", flush=True)
        if name not in run:
            continue
        rec = reconstruct_series if name == "pipeline" else functools.partial(reconstruct_series, response_ratios=rr)
        for m in methods:
            t0 = time.perf_counter()
            try:
                r = bm.run_case(series, sim.factors, truth, m, cfg, rec)
            except ValueError as exc:  # e.g. the fused model refusing r_A = 0
                print(f"  {m:11s} refused: {exc}", flush=True)
                continue
            print(f"  {m:11s} oracle {r['best']['mse_fraction_inside']:.2e} {r['best']['params']}  "
                  f"auto {r['auto']['mse_fraction_inside']:.2e} {r['auto']['params']}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
