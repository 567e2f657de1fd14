"""``grainbench check RECORD --reference REF``: the CI regression gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from ..records import read_record
from ..regression import compare_records, latest_matching, parse_tolerances
from ._console import console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check", help="fail (exit 1) when a run regresses against a reference record",
        description="Compare the aggregate metrics of RECORD with a reference record of the same run (dataset, "
                    "split, protocol, model, preset, mode, model arguments, preset overrides and dataset hashes "
                    "must match). By default the headline metrics (VI, ARI, mAP, BF1; IoU, accuracy) are gated "
                    "with per-metric tolerances. Exit 0 when no gated metric is worse than the reference by more "
                    "than its tolerance, 1 on a regression or a NaN/inf in the record, 2 on unusable input "
                    "(incomparable records, NaN/inf in the reference, nothing to gate, a bad tolerance).",
    )
    p.add_argument("record", help="run record (JSON) to check, or a folder: its newest record of the "
                                  "reference's run")
    p.add_argument("--reference", required=True, help="reference run record (JSON)")
    p.add_argument("--tolerance", action="append", metavar="[METRIC=]NUMBER",
                   help="allowed worsening, absolute; repeatable; a bare number replaces every per-metric "
                        "default (finite, >= 0)")
    p.add_argument("--metric", action="append",
                   help="gate these metrics instead of the headline ones (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reference = read_record(args.reference)
    path = Path(args.record)
    record = read_record(latest_matching(path, reference) if path.is_dir() else path)
    default, per_metric = parse_tolerances(args.tolerance)
    changes = compare_records(record, reference, tolerance=default, tolerances=per_metric, metrics=args.metric)
    table = Table(title=f"{record['run_id']} vs {reference['run_id']}", header_style="bold")
    for col in ("metric", "reference", "value", "change", "tolerance", "status"):
        table.add_column(col, justify="left" if col in ("metric", "status") else "right")
    for c in changes:
        if not c.finite:
            status = "[red]REGRESSED (not finite)[/]"
        else:
            status = "[red]REGRESSED[/]" if c.regressed else ("[green]better[/]" if c.worse_by < 0 else "ok")
        table.add_row(c.metric, f"{c.reference:.4f}", f"{c.value:.4f}", f"{c.delta:+.4f}", str(c.tolerance),
                      status)
    console.print(table)
    regressed = [c.metric for c in changes if c.regressed]
    if regressed:
        console.print(f"[bold red]regression[/] in {', '.join(regressed)}")
        return 1
    console.print(f"[bold green]no regression[/] ({len(changes)} metrics checked)")
    return 0
