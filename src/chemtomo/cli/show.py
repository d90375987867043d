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
    """
    from chemtomo.report.volume import draw_result_figures

    path = Path(args.result)
    if path.is_dir():
        path = path / "result.h5"
    if not path.is_file():
        raise FileNotFoundError(f"no result file at {path}")
    out = Path(args.out) if args.out else path.parent / "figures"
    paths = draw_result_figures(path, out, slices=args.slices)
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0
