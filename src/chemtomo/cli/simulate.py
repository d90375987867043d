"""`chemtomo simulate`: write the paper's phantom tilt series to .hspy files."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    """Add the ``simulate`` subcommand and its options to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``chemtomo`` subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    p = sub.add_parser("simulate", help="write the phantom's simulated tilt series (.hspy) and its truth (.h5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dose-scale", type=float, default=1.0, help="EDS dose relative to 100 pA x 0.5 s (default 1)")
    p.add_argument("--seed", type=int, default=0, help="Poisson noise seed (default 0)")
    p.add_argument("--noiseless", action="store_true", help="write expected counts without noise")
    p.add_argument("--factors", choices=("physics", "paper"), default="physics")
    p.add_argument("--slices", type=int, default=1, help="identical slices along the tilt axis (default 1)")
    return p


def run(args) -> int:
    """Run ``chemtomo simulate``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit code (0).

    Raises
    ------
    ValueError
        ``--slices`` below 1, a negative ``--seed``, ``--dose-scale`` not
        positive, or an ``--out`` that cannot be written (checked before any
        work). The files are written all or none: on a failure (or Ctrl-C,
        SIGTERM) none is left, nor a folder the run created.
    """
    import h5py
    import numpy as np

    from chemtomo.geometry import TiltGeometry
    from chemtomo.io.hspy import write_tilt_series
    from chemtomo.simulate import Acquisition, core_shell_phantom, simulate_tilt_series
    from chemtomo.studies.paper_phantom import StudyConfig, study_factors
    from chemtomo.tiltseries import TiltSeries

    from ._outputs import check_output, staged_output

    if args.slices < 1:
        raise ValueError(f"--slices must be >= 1, got {args.slices}")
    if args.seed < 0:
        raise ValueError(f"--seed must be an integer >= 0 (a NumPy random seed), got {args.seed}")
    if not (np.isfinite(args.dose_scale) and args.dose_scale > 0):
        raise ValueError(f"--dose-scale must be a positive number, got {args.dose_scale:g}")
    check_output(args.out, kind="folder")
    cfg = StudyConfig(factors=args.factors)
    factors = study_factors(cfg)
    geom = TiltGeometry(np.asarray(cfg.angles_deg), cfg.n_pixels, cfg.pixel_nm)
    fine = core_shell_phantom(cfg.n_pixels * cfg.refine, cfg.pixel_nm / cfg.refine)
    sim = simulate_tilt_series(fine, geom, factors, Acquisition(eds_dose_scale=args.dose_scale),
                               seed=args.seed, noise=not args.noiseless)
    s = sim.series
    rep = lambda a: np.repeat(a, args.slices, axis=1)  # noqa: E731
    series = TiltSeries(s.angles_deg, s.pixel_nm, {k: rep(v) for k, v in s.eds.items()}, rep(s.haadf), s.metadata,
                        haadf_angles_deg=s.haadf_angles_deg)
    out = Path(args.out)
    with staged_output(out) as stage:  # every file or none: staged, then moved into place together
        staged = write_tilt_series(stage, series)
        with h5py.File(stage / "truth.h5", "w") as f:
            for i, el in enumerate(sim.phantom.elements):
                f[f"fractions/weight/{el}"] = np.repeat(sim.phantom.weight[i][None], args.slices,
                                                        0).astype(np.float32)
            f["density_g_cm3"] = np.repeat(sim.phantom.density_g_cm3[None], args.slices, 0).astype(np.float32)
            f.attrs["pixel_nm"] = sim.phantom.pixel_nm
    paths = {name: out / p.name for name, p in staged.items()}
    for name, pth in {**paths, "truth": out / "truth.h5"}.items():
        print(f"{name}: {pth}", file=sys.stderr)
    return 0
