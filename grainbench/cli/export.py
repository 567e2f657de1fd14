"""``grainbench export RUN``: a trained run's weights as safetensors plus a model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from ..paths import runs_root, user_records_dir
from ..weights import export_weights
from ._console import console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a trained run's weights as safetensors plus a model card (JSON)",
        description="Write the network weights of a finished run as <name>.safetensors (the model card is also "
                    "in the file's metadata) and <name>.json (method, constructor arguments, in_channels, dataset "
                    "and split, preset and overrides, record id, metrics, sha256 of the weights, grainbench "
                    "version). `grainbench run --weights FILE_OR_URL` predicts and scores with them, no training.",
    )
    p.add_argument("run", metavar="RUN", help="a run id, its record file, or its work folder")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the two files (default <runs>/weights/<dataset>)")
    p.add_argument("--name", default=None, help="file name stem (default: the record's run id)")
    p.add_argument("--records", type=Path, default=None, help="where to look up run ids (default <runs>/records)")
    p.add_argument("--workdir", type=Path, default=None, help="where the run's checkpoints are (default <runs>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    records = args.records or user_records_dir()
    work = args.workdir or runs_root()
    out = args.out
    if out is None:
        from ..weights import record_for

        out = runs_root() / "weights" / record_for(args.run, records_dir=records, work_root=work)[1]["config"]["dataset"]
    weights, card = export_weights(args.run, out, records_dir=records, work_root=work, stem=args.name)
    console.print(f"weights: {escape(str(weights))}", highlight=False)
    console.print(f"model card: {escape(str(card))}", highlight=False)
    return 0
