"""The ``--absorption`` options of ``chemtomo reconstruct`` (stack route): parsing and the stderr summary."""

from __future__ import annotations

import sys

from ._args import given_options

#: the absorption-correction options (stacks with --eds only)
ABSORPTION_OPTIONS = ("--absorption", "--density", "--absorption-tol", "--absorption-max-outer",
                      "--eds-elevation-deg", "--eds-azimuth-deg", "--solid-angle-sr")

#: the choice of --absorption that takes the detectors from the files' metadata
FROM_FILE = "file"


def add_detector_arguments(group) -> None:
    """Add the options that give detector facts a file lacks (``--absorption file``) to ``group``.

    Parameters
    ----------
    group : argparse._ArgumentGroup
    """
    group.add_argument("--eds-elevation-deg", type=float, nargs="+", metavar="DEG",
                       help="with --absorption file: EDS detector elevation (take-off) angle(s), one per detector "
                            "or one for all, if the files do not state it")
    group.add_argument("--eds-azimuth-deg", type=float, nargs="+", metavar="DEG",
                       help="with --absorption file: EDS detector azimuth(s) in HyperSpy's convention (0: "
                            "perpendicular to the tilt axis), one per detector, if the files do not state them")
    group.add_argument("--solid-angle-sr", type=float, metavar="SR",
                       help="with --absorption file: the detectors' total solid angle (sr), if the files do not "
                            "state it (only Velox files do)")


def file_detectors(absorption: dict | None, series, args) -> dict | None:
    """With ``--absorption file``: the detectors from the series' metadata and the options, else unchanged.

    Parameters
    ----------
    absorption : dict or None
        From :func:`absorption_options`.
    series : TiltSeries
        Read from the files (``metadata["eds_detector"]``).
    args : argparse.Namespace

    Returns
    -------
    dict or None
        ``absorption`` with ``detectors`` a :class:`chemtomo.physics.DetectorGeometry`.

    Raises
    ------
    ValueError
        A fact neither in the files nor given, naming the metadata key and the flag.
    """
    if absorption is None or absorption["detectors"] != FROM_FILE:
        return absorption
    from chemtomo.io.detector_meta import DetectorFacts

    facts = DetectorFacts.from_dict(series.metadata.get("eds_detector"))
    geometry = facts.geometry(elevation_deg=args.eds_elevation_deg, azimuth_deg=args.eds_azimuth_deg,
                              solid_angle_sr=args.solid_angle_sr, where="the --eds files")
    return {**absorption, "detectors": geometry}


def absorption_default(name: str):
    """The default of ``name`` in :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`."""
    import inspect

    from chemtomo.pipeline.absorption import reconstruct_absorption_corrected

    return inspect.signature(reconstruct_absorption_corrected).parameters[name].default


def absorption_options(args) -> dict | None:
    """The keyword arguments of the absorption correction from ``--absorption`` and its options, or None.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    dict or None
        ``detectors``, ``density_g_cm3`` and, when given, ``tol`` and ``max_outer``
        for :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`;
        None with ``--absorption none``.

    Raises
    ------
    ValueError
        An absorption option without ``--absorption``; ``--density`` negative or
        not finite; ``--absorption-tol`` not positive; ``--absorption-max-outer`` below 1;
        ``--absorption`` with ``--replicas``, ``--store``, ``--resume`` or ``--scheduler``.
    """
    import math

    if getattr(args, "absorption", "none") == "none":
        stray = given_options(args, ABSORPTION_OPTIONS[1:])
        if stray:
            raise ValueError(f"{', '.join(stray)} apply to the absorption correction: give --absorption single or "
                             "super-x")
        return None
    if args.absorption != FROM_FILE:
        stray = given_options(args, ABSORPTION_OPTIONS[4:])
        if stray:
            raise ValueError(f"{', '.join(stray)} give detector facts for --absorption file, not for the nominal "
                             f"--absorption {args.absorption}")
    clash = given_options(args, ("--replicas", "--store", "--resume", "--scheduler"))
    if clash:
        raise ValueError(f"--absorption does not combine with {', '.join(clash)} (not supported by the "
                         "absorption-corrected reconstruction yet)")
    out: dict = {"detectors": args.absorption, "density_g_cm3": None}
    if args.density is not None:
        if not (math.isfinite(args.density) and args.density >= 0):
            raise ValueError(f"--density must be a finite number >= 0 (g/cm^3), got {args.density:g}")
        out["density_g_cm3"] = float(args.density)
    if args.absorption_tol is not None:
        if not (math.isfinite(args.absorption_tol) and args.absorption_tol > 0):
            raise ValueError(f"--absorption-tol must be a positive number, got {args.absorption_tol:g}")
        out["tol"] = float(args.absorption_tol)
    if args.absorption_max_outer is not None:
        if args.absorption_max_outer < 1:
            raise ValueError(f"--absorption-max-outer must be an integer >= 1, got {args.absorption_max_outer}")
        out["max_outer"] = int(args.absorption_max_outer)
    return out


def print_absorption(absorbed) -> None:
    """On stderr: the outer loop of the absorption correction and each element's mean fraction before and after.

    Parameters
    ----------
    absorbed : AbsorptionResult
        The mean weight fraction of each element is taken in each
        reconstruction's own particle mask.
    """
    import numpy as np

    changes = ", ".join(f"{c:.4g}" for c in absorbed.changes)
    print(f"absorption ({absorbed.detectors.name}, density {absorbed.parameters.get('density')}): "
          f"{absorbed.outer_iterations} outer iteration(s), converged {absorbed.converged} "
          f"(fraction changes {changes}; tol {absorbed.parameters.get('tol')})", file=sys.stderr)

    def means(vr):
        mask = np.asarray(vr.composition.mask)
        w = np.asarray(vr.composition.weight)
        return {el: float(w[i][mask].mean()) if mask.any() else float("nan") for i, el in enumerate(vr.elements)}

    before, after = means(absorbed.uncorrected), means(absorbed.corrected)
    print("mean weight fraction in the mask, uncorrected -> corrected: "
          + ", ".join(f"{el} {before[el]:.4f} -> {after[el]:.4f}" for el in after), file=sys.stderr)
