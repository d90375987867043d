#!/usr/bin/env python
"""The raw route's bootstrap on the NCEM series: are the replicas centred on the estimate? (issue 15).

Runs :func:`chemtomo.pipeline.experimental.run_experimental` as
``chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La
--mask otsu --bin 4 -n 20 --replicas 5`` does (EDS-SIRT and HEBT, seed 0) and prints, per method and
element, the particle's mean weight fraction, the replicas' mean, the bootstrap SE and their
difference in SE; and the share of negative pixels before the filter and of clipped pixels after it.

Usage::

    python scripts/raw_route_bootstrap_check.py [--data ../shared/data/ncem-idp-eds-tilt-series]
"""

from __future__ import annotations

import argparse

LINES = ["O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka", "Pt_La"]


def main(argv=None) -> None:
    """Run the NCEM series with 5 replicas and print the particle means against the replicas' means."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/ncem-idp-eds-tilt-series")
    ap.add_argument("--replicas", type=int, default=5)
    args = ap.parse_args(argv)
    from chemtomo.pipeline.experimental import run_experimental

    exp = run_experimental(args.data, LINES, None, mask_method="otsu", bin_factor=4, n_iter=20,
                           replicas=args.replicas, seed=0, progress=False, figures=False)
    print("negative before the filter", {k: round(float((v < 0).mean()), 3) for k, v in exp.pre.unclipped.items()})
    print("clipped after the filter", {k: round(v["fraction_clipped"], 3) for k, v in exp.pre.clipped.items()})
    for m, u in exp.uncertainty.items():
        s = u.bootstrap.regions["particle"]["weight"]
        print(f"{m}: variance over mean {u.noise_factor:.3f}, bootstrap {u.seconds['replicas']:.1f} s")
        for i, el in enumerate(u.result.elements):
            print(f"  {el}: value {s.value[i]:.4f}, replicas' mean {s.mean[i]:.4f}, se {s.se[i]:.5f}, "
                  f"(mean - value) / se {(s.mean[i] - s.value[i]) / s.se[i]:.2f}")


if __name__ == "__main__":
    main()
