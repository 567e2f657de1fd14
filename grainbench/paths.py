"""Where grainbench writes by default: a user's runs, and the published folder only when asked.

A user's ordinary ``run``, ``submit`` and ``track`` write records, tables
and figures under the runs folder (``GRAINBENCH_RUNS``, default ``runs/``,
ignored by git), beside the checkpoints. The repository's ``leaderboards/``
is the published artifact: it is written only by the explicit publishing
step (``--publish``), never by tests or ordinary runs.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS_ENV = "GRAINBENCH_RUNS"
PUBLISHED_DIR = Path("leaderboards")


def runs_root() -> Path:
    """The runs folder: checkpoints ``<root>/<dataset>/<model>/...``, records and tables."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def user_records_dir() -> Path:
    """Default records folder of ordinary runs: ``<runs>/records/<dataset>/<run_id>.json``."""
    return runs_root() / "records"


def user_leaderboards_dir() -> Path:
    """Default tables and figures of ordinary runs: ``<runs>/leaderboards/``."""
    return runs_root() / "leaderboards"


def published_records_dir() -> Path:
    """Records the published ``leaderboards/`` is built from."""
    return PUBLISHED_DIR / "records"
