"""``grainbench leaderboard build``: rebuild the tables from the run records."""

from __future__ import annotations

import argparse

from ..leaderboard import build_leaderboards
from ._console import console
from ._outputs import add_publish_argument, resolve_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("leaderboard", help="build leaderboard tables from run records")
    sub = p.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="rebuild leaderboards/<dataset>.md and .csv from the records")
    b.add_argument("--records", default=None,
                   help="folder of run records, searched recursively (default <runs>/records; see --publish)")
    b.add_argument("--out", dest="leaderboards", default=None,
                   help="where the tables are written (default <runs>/leaderboards; see --publish)")
    b.add_argument("--dataset", action="append", help="only these datasets (repeatable); default: all with records")
    # with --publish, records from a dirty work tree are refused (marked with a dagger otherwise)
    add_publish_argument(b)
    b.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    resolve_outputs(args)
    written = build_leaderboards(args.records, args.leaderboards, args.dataset, publish=args.publish)
    if not written:
        console.print(f"no records under {args.records}; nothing written")
    for dataset, paths in written.items():
        console.print(f"{dataset}: " + ", ".join(str(p) for p in paths))
    return 0
