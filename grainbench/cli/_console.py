"""Shared rich consoles: results to stdout, errors and progress to stderr.

Rich wraps at 80 columns when output is not a terminal (CI logs, pipes);
tables of eight metrics need more, so redirected output gets 160 columns.
"""

import sys

from rich.console import Console


def _width(stream) -> int | None:
    return None if stream.isatty() else 160


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))
