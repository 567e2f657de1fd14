"""Progress of long phases (training, predicting, generating, importing), one way for all of them.

On a terminal a rich bar moves per step (a training batch, a slice batch);
when stderr is not a terminal (a CI log, ``2> log``) no bar is drawn and
each :meth:`Progress.line` (an epoch, a slice batch) is printed as one plain
line instead, so a log shows that work goes on without carriage-return noise.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


class Progress:
    """Handle of one phase: :meth:`advance` moves the bar, :meth:`line` reports a milestone."""

    def __init__(self, bar, task, label: str, total: int | None, plain: bool) -> None:
        self._bar, self._task, self.label, self.total, self._plain = bar, task, label, total, plain
        self.done, self._t0 = 0, time.perf_counter()

    def advance(self, n: int = 1) -> None:
        """``n`` more steps done (drawn on a terminal only)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def line(self, text: str) -> None:
        """A milestone: the bar's description on a terminal, else one line ``label: text (elapsed)`` on stderr."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.label} {text}")
        elif self._plain:
            print(f"{self.label}: {text} ({time.perf_counter() - self._t0:.0f} s)", file=sys.stderr, flush=True)


@contextmanager
def progress(label: str, total: int | None = None, *, enabled: bool = True) -> Iterator[Progress]:
    """A :class:`Progress` for one phase of ``total`` steps (None: unknown); nothing at all when not ``enabled``."""
    if not enabled:
        yield Progress(None, None, label, total, plain=False)
        return
    if not sys.stderr.isatty():
        yield Progress(None, None, label, total, plain=True)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with RichProgress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield Progress(bar, bar.add_task(label, total=total), label, total, plain=False)
