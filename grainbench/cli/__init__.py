"""The ``grainbench`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the
handler ``func(args) -> int``. Adding a subcommand means adding its module
name to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from typing import Sequence

from rich.markup import escape

from .. import __version__
from ..errors import GrainbenchError
from ..threads import configure_threads
from ._console import err_console

THREADS_HELP = ("CPU threads for torch (default: the free cores, from the core count and the 1-minute load "
                "average; or GRAINBENCH_THREADS; an explicit OMP_NUM_THREADS is respected)")
SUBCOMMANDS = ("run", "score", "data", "leaderboard", "check", "submit", "models", "track", "schema", "tune", "export",
               "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grainbench",
        description="Benchmark and dataset harness for grain-boundary segmentation of micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"grainbench {__version__}")
    parser.add_argument("--threads", type=int, metavar="N", default=None, help=THREADS_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    _add_threads_everywhere(subparsers)  # also after the subcommand: grainbench run --threads 2 ...
    return parser


def _add_threads_everywhere(subparsers: argparse._SubParsersAction) -> None:
    """``--threads`` on every (nested) subcommand too; SUPPRESS keeps a value given before the subcommand."""
    for sub in subparsers.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _add_threads_everywhere(action)
        if not nested:
            sub.add_argument("--threads", type=int, metavar="N", default=argparse.SUPPRESS, help=THREADS_HELP)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        configure_threads(args.threads)
        return int(args.func(args) or 0)
    except GrainbenchError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"[bold red]error:[/] {escape(where)}no space left on the device", highlight=False)
        return 2
    except MemoryError:
        err_console.print("[bold red]error:[/] out of memory; use smaller inputs or a machine with more memory",
                          highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
