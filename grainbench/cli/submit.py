"""``grainbench submit``: score predictions a user brings as files (no code needed)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import data
from ..leaderboard import build_leaderboards
from ..protocol import get_protocol
from ..names import validate_name
from ..records import make_record, require_clean_tree, write_record
from ..scoring import score
from ..submission import check_submission_name, read_predictions
from ._console import console
from ._outputs import add_publish_argument, resolve_outputs
from .score import print_aggregate


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit", help="score prediction files against a dataset's test split and record them",
        description="Validate and score predictions brought as files: a folder of PNG/TIFF images (one per "
                    "test slice, in name order), a TIFF stack, NPY or HDF5 (Z, H, W). Values: boundary "
                    "probabilities in [0, 1], 8-bit greys, or binary masks. The run record is marked as a "
                    "submission and the dataset's leaderboard is rebuilt.",
    )
    p.add_argument("--dataset", required=True, help="registry name, e.g. synthetic, tbm, pure_iron")
    p.add_argument("--predictions", required=True, type=Path, help="file or folder of predictions")
    p.add_argument("--name", required=True, help="method name shown on the leaderboard")
    p.add_argument("--split", default="test")
    p.add_argument("--key", help="HDF5 dataset holding the predictions")
    p.add_argument("--protocol", help="scoring protocol (default: the dataset's)")
    p.add_argument("--records", type=Path, default=None,
                   help="where records go (default <runs>/records; see --publish)")
    p.add_argument("--leaderboards", type=Path, default=None,
                   help="where tables go (default <runs>/leaderboards; see --publish)")
    p.add_argument("--no-leaderboard", action="store_true", help="only write the record")
    add_publish_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_submission_name(args.name)
    resolve_outputs(args)
    validate_name(args.name, "--name")
    if args.publish:
        require_clean_tree("grainbench submit --publish")
    entry = data.get_dataset(args.dataset)
    protocol = get_protocol(args.protocol or entry.protocol or "wpunet-2019")
    volume = data.load(args.dataset, args.split)
    z, h, w = volume.shape
    preds = read_predictions(args.predictions, expected_slices=z, expected_shape=(h, w), key=args.key)
    t0 = time.perf_counter()
    result = score(preds, volume.boundary, protocol, slice_ids=volume.meta.get("names"))
    config = {"model": args.name, "dataset": args.dataset, "split": args.split, "protocol": protocol.id,
              "preset": None, "seed": None, "mode": None, "predictions": str(args.predictions)}
    record = make_record(config=config, protocol=protocol.to_dict(), aggregate=result.aggregate,
                         per_slice=result.per_slice.to_dict(orient="records"), kind="submission",
                         timings={"score_s": time.perf_counter() - t0},
                         dataset_hashes=data.dataset_hashes(args.dataset))
    path = write_record(record, args.records / args.dataset)
    print_aggregate(result, f"submission {args.name} on {args.dataset}/{args.split}")
    console.print(f"record: {path}")
    if not args.no_leaderboard:
        for p in build_leaderboards(args.records, args.leaderboards, [args.dataset],
                                    publish=args.publish)[args.dataset]:
            console.print(f"leaderboard: {p}")
    return 0
