"""Command-line interface: thin; every command is a function of the library first.

Each subcommand lives in its own module of this package, which exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Add a new command by
writing such a module and naming it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = (
    "demo",
    "simulate",
    "reconstruct",
    "factors",
    "show",
    "benchmark",
)


class UserError(Exception):
    """Bad input from the user: printed as one clear line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The ``chemtomo`` argument parser, with one subcommand per module named in ``COMMANDS``."""
    from chemtomo import __version__

    parser = argparse.ArgumentParser(
        prog="chemtomo",
        description="Quantitative chemical electron tomography (EDS-SIRT, HEBT, quantified maps).",
    )
    parser.add_argument("--version", action="version", version=f"chemtomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"chemtomo.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``chemtomo`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: the command's (0 on success), or 2 after printing a
        :class:`UserError`, ValueError, KeyError or FileNotFoundError as one line
        on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (UserError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"chemtomo {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
