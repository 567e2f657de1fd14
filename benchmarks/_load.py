"""Machine-load helpers shared by the benchmarks: the load average, and a second process keeping one core busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator


def load() -> str:
    """The 1-, 5- and 15-minute load averages, as the closing notes quote them."""
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unavailable"


@contextmanager
def busy_core() -> Iterator[None]:
    """Inside the block a second Python process spins on one core (the issue's one-busy-core condition)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()
