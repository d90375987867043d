#!/usr/bin/env python
"""One specimen of the bootstrap calibration study with a chosen noise-seed set (issue 15).

The benchmark's quick configuration (n = 24, the 8 middle slices, 29 tilts, 200 keV) for one
specimen; :func:`chemtomo.studies.calibration.run_uncertainty_study` at the paper's dose with
``seeds`` realisations drawn from ``SeedSequence([noise_seed, j])`` and ``replicas`` replicas
each; each method's parameters from its automatic rule. Writes the study's
``uncertainty`` entry as JSON (every interval definition's coverage, the calibration
factors) to ``out``.

Usage::

    python scripts/uncertainty_calibration_run.py janus eds_sirt,hebt_sirt 6 12 2000 janus.json
"""

from __future__ import annotations

import dataclasses
import json
import sys


def main(argv=None) -> None:
    """Run the study for ``specimen methods seeds replicas noise_seed out``."""
    from chemtomo.pipeline.uncertainty import bootstrap_uncertainty
    from chemtomo.pipeline.volume import reconstruct_series
    from chemtomo.studies.benchmark import BenchmarkConfig
    from chemtomo.studies.calibration import UncertaintyStudyConfig, run_uncertainty_study

    spec, methods, seeds, replicas, noise_seed, out = argv if argv is not None else sys.argv[1:]
    cfg = dataclasses.replace(BenchmarkConfig.quick(), specimens=(spec,))
    ucfg = UncertaintyStudyConfig(seeds=int(seeds), replicas=int(replicas), dose=1.0,
                                  methods=tuple(methods.split(",")), noise_seed=int(noise_seed))
    r = run_uncertainty_study(cfg, ucfg, reconstruct_series, bootstrap_uncertainty, say=lambda m: print(m, flush=True))
    with open(out, "w") as f:
        json.dump(r, f, indent=1, default=float)


if __name__ == "__main__":
    main()
