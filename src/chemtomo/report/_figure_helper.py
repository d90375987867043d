"""A helper process of :func:`chemtomo.report.volume.draw_result_figures`: draws the figures it claims.

``python -m chemtomo.report._figure_helper RESULT FOLDER CLAIMS [--slices S ...]`` reads
the result file and walks :data:`~chemtomo.report.volume.FIGURE_TASKS` from the front,
drawing each figure it claims first (:func:`~chemtomo.report.volume.claim` in the
shared folder ``CLAIMS``), and prints one JSON line per figure drawn: ``{"name": ...,
"paths": [...]}``. It runs in a fresh interpreter (not a fork or a spawn of the
caller's), so it neither inherits numba's thread pools nor re-runs the caller's script.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Draw the claimed figures of one result; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        ``RESULT FOLDER CLAIMS [--slices S ...]`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every claimed figure was drawn; an exception propagates otherwise
        (the caller draws what is left).
    """
    from ..io.experimental_result import read_experimental
    from .volume import FIGURE_TASKS, _figure_context, claim, draw_figure

    ap = argparse.ArgumentParser(prog="python -m chemtomo.report._figure_helper")
    ap.add_argument("result")
    ap.add_argument("folder")
    ap.add_argument("claims")
    ap.add_argument("--slices", type=int, nargs="+")
    args = ap.parse_args(argv)
    res = read_experimental(args.result)
    ctx = _figure_context(res, args.slices)
    for name in FIGURE_TASKS:
        if claim(args.claims, name):
            paths = draw_figure(res, name, args.folder, ctx)
            print(json.dumps({"name": name, "paths": [str(p) for p in paths]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
