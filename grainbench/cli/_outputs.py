"""Output folders of the writing subcommands: the user's runs folder by default, ``leaderboards/`` on --publish."""

from __future__ import annotations

import argparse

from ..paths import PUBLISHED_DIR, published_records_dir, runs_root, user_leaderboards_dir, user_records_dir


def add_publish_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--publish", action="store_true",
                   help=f"write records and tables into the published {PUBLISHED_DIR}/ folder "
                        "instead of the runs folder (an explicit publishing step)")


def resolve_outputs(args: argparse.Namespace) -> None:
    """Fill the folders left unset: the runs folder by default, the published folder with ``--publish``."""
    publish = bool(getattr(args, "publish", False))
    if getattr(args, "records", "unset") is None:
        args.records = published_records_dir() if publish else user_records_dir()
    if getattr(args, "leaderboards", "unset") is None:
        args.leaderboards = PUBLISHED_DIR if publish else user_leaderboards_dir()
    if getattr(args, "workdir", "unset") is None:
        args.workdir = runs_root()
