"""``grainbench schema record``: print the JSON Schema of the run record."""

from __future__ import annotations

import argparse
import json

from ._console import console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schema", help="print the JSON Schema of grainbench files",
                              description="Print the published JSON Schema of a grainbench file type.")
    p.add_argument("kind", choices=("record",), help="record: a run record (leaderboards/records/**/*.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..records import record_schema

    console.print_json(json.dumps(record_schema()))
    return 0
