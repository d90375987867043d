"""`chemtomo show RESULT`: draw the figures of a result file (orthoslices, 3-D rendering, alignment)."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    """Add the ``show`` subcommand and its options to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``chemtomo`` subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    p = sub.add_parser(
        "show", help="draw the figures of a result file (PNG files; no window)",
        description="Draw the figures a chemtomo result file allows: preprocessed tilt series (as the paper's "
                    "Fig. 14), orthoslices of the reconstructed maps and of the weight fractions (Figs 15-16), "
                    "a 3-D rendering of the quantified volume (Fig. 17) and the alignment; for a result with an "
                    "uncertainty (reconstruct --replicas), error maps beside the weight fractions, region "
                    "compositions with their intervals and a markdown table. Files only, headless.")
    p.add_argument("result", help="a result file (.h5) or the folder holding result.h5")
    p.add_argument("--out", help="folder for the figures (default: figures/ beside the result)")
    p.add_argument("--slices", type=int, nargs="+", metavar="N",
                   help="slice indices (along the tilt axis) of the orthoslices (default: 25/50/75%% of the particle)")
    return p


def run(args) -> int:
    """Run ``chemtomo show``.

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
        An empty ``--out`` or an output folder that cannot be written (checked
        before drawing); a result that cannot be drawn. On any failure no figure
        is left: they are drawn into a staging folder and moved into place together.
    FileNotFoundError
        No result file at ``RESULT``.
    ValueError
        ``RESULT`` is not a chemtomo result file.
    """
    from chemtomo.report.volume import draw_result_figures

    from ._outputs import check_output, is_chemtomo_result, staged_output

    if args.out is not None and not str(args.out).strip():
        raise ValueError("--out is empty: give a folder for the figures, or leave it out (figures/ beside the result)")
    path = Path(args.result)
    if path.is_dir():
        path = path / "result.h5"
    if not path.is_file():
        raise FileNotFoundError(f"no result file at {path}")
    if not is_chemtomo_result(path):
        raise ValueError(f"{path} is not a chemtomo result file (not HDF5, damaged, or no format='chemtomo-result' "
                         "attribute)")
    out = Path(args.out) if args.out else path.parent / "figures"
    check_output(out, kind="folder")
    with staged_output(out) as stage:  # all the figures or none
        staged = draw_result_figures(path, stage, slices=args.slices, processes=None)
    paths = [out / p.relative_to(stage) for p in staged]
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    if not any(p.name.startswith("fig17") for p in paths):
        print("note: no 3-D rendering (fig17): the volume has fewer than 2 voxels along an axis "
              "(a one-slice result)", file=sys.stderr)
    return 0
