#!/usr/bin/env python
"""HEBT's fitted response ratios against eq 16's theory on the specimen suite (issue 13).

The suite's simulator draws the HAADF and the EDS counts from the same finer-grid
projections with the factors z_A and f_A, so the theory's ``r_A / r_ref = (z_A/f_A) /
(z_ref/f_ref)`` is known exactly and a fit's departure from it is the fit's own error.
For each specimen and EDS dose (n = 24, 29 tilts at +-70 degrees, 200 kV, the paper's
HAADF dose, noise seed 3) the non-negative least-squares fit of
:func:`chemtomo.reconstruct.estimate_response_ratios` is made on the raw counts and on
the counts after the image-plane Gaussian filter HEBT fits on, and
:meth:`~chemtomo.reconstruct.ResponseRatios.against_theory` gives fitted over theory,
each relative to the line of the largest r_A. The last two columns are HEBT's own fit: the
unfiltered HAADF on the image-plane filtered counts (least squares, the pipeline's fit until
issue 13's errors-in-variables correction), and :func:`chemtomo.preprocess.fit_response_ratios`
(the HAADF filtered alike, the counts' noise removed from the normal equations), in the first
column's line order. The table in docs/physics.md comes from:

    .venv/bin/python scripts/response_ratio_check.py      # about a minute
"""

from __future__ import annotations

import argparse

import numpy as np

from chemtomo.preprocess import FILTER_SIGMA_PX, fit_response_ratios, gaussian_filter_stack
from chemtomo.reconstruct import estimate_response_ratios
from chemtomo.simulate.specimens import SPECIMENS, make_specimen, simulate_series


def main(argv=None) -> None:
    """Print the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specimens", nargs="+", default=list(SPECIMENS))
    ap.add_argument("--doses", nargs="+", type=float, default=[1.0, 0.1, 0.01])
    ap.add_argument("--n", type=int, default=24)
    args = ap.parse_args(argv)
    angles = np.arange(-70.0, 70.1, 5.0)
    print("| specimen | dose | relative to | raw counts: fitted / theory (R^2) | filtered: fitted / theory (R^2) "
          "| HEBT's fit until now | HEBT's fit (errors in variables) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.specimens:
        spec = make_specimen(name, args.n, 2, 0)
        for dose in args.doses:
            sim = simulate_series(spec, angles, dose_scale=dose, seed=3, elastic="auto")
            s = sim.series
            cells = []
            for f in (lambda a: a, lambda a: gaussian_filter_stack(a, FILTER_SIGMA_PX, "image")):
                c = estimate_response_ratios(f(s.haadf), {ln: f(s.eds[ln]) for ln in s.lines}).against_theory(
                    sim.factors)
                cells.append(", ".join(f"{ln} {v:.3f}" for ln, v in zip(c["lines"], c["fitted_over_theory"],
                                                                        strict=True)) + f" ({c['r2']:.4f})")
            image = {ln: gaussian_filter_stack(s.eds[ln], FILTER_SIGMA_PX, "image") for ln in s.lines}
            for rr in (estimate_response_ratios(s.haadf, image),
                       fit_response_ratios(s.haadf, image, s.eds, FILTER_SIGMA_PX, "image", 1.0)):
                c = rr.against_theory(sim.factors, c["reference"])
                cells.append(", ".join(f"{v:.3f}" for v in c["fitted_over_theory"]))
            print(f"| {name} | x{dose:g} | {c['reference']} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
