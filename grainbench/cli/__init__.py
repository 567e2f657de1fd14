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
from ._console import err_console

SUBCOMMANDS = ("run", "score", "data", "leaderboard", "check", "submit", "models", "track", "schema")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grainbench",
        description="Benchmark and dataset harness for grain-boundary segmentation of micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"grainbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
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
