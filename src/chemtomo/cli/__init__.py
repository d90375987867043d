"""Command-line interface: thin; every command is a function of the library first.

Each subcommand lives in its own module of this package, which exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Add a new command by
writing such a module and naming it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading

COMMANDS = (
    "demo",
    "simulate",
    "reconstruct",
    "factors",
    "quantify",
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


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM handler: raise SystemExit(143) so every ``finally`` and context manager cleans up.

    A second SIGTERM while cleaning up kills the process the default way.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_as_exit():
    """Within the block, SIGTERM ends the process like Ctrl-C does: by an exception, after cleanup.

    Only in the main thread (where Python runs signal handlers); the previous
    handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        :class:`UserError`, ValueError, KeyError, FileNotFoundError or
        MemoryError (with the memory needed, where known) as one line on stderr.

    Raises
    ------
    SystemExit
        With code 143 on SIGTERM, raised where the command was, so that its
        temporary files are removed on the way out (as on Ctrl-C).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_as_exit():  # temporary files are removed on SIGTERM as on Ctrl-C
            return int(args._run(args) or 0)
    except (UserError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"chemtomo {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # the memory model's estimate (pipeline.memory), or NumPy's allocation size
        print(f"chemtomo {args.command}: error: out of memory: {exc or 'an allocation failed'}; use fewer slices "
              "per chunk (--chunk-slices), bin the images, or a machine or workers with more memory",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
