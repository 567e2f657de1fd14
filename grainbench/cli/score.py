"""``grainbench score PRED GT``: score two files and print a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.table import Table

from .._backend import resolve_device
from ..errors import ConfigError, InputFileError, OutputError
from ..io import atomic_write, read_array
from ..plugins import parse_assignments
from ..postprocessors import get_postprocessor, list_postprocessors
from ..protocol import METRIC_GROUPS, get_protocol, list_protocols
from ..scoring import score
from ._console import console

HEADLINE = ("vi", "vi_split", "vi_merge", "ari", "map", "bf1", "bde", "dice")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="score a prediction file against a ground-truth file",
        description="Score a boundary prediction (probability or binary; PNG, TIFF, NPY, HDF5 or a folder "
                    "of PNGs) against a ground-truth boundary map under a protocol.",
    )
    p.add_argument("pred", nargs="?", help="prediction file or folder")
    p.add_argument("gt", nargs="?", help="ground-truth boundary file or folder")
    p.add_argument("--protocol", default="wpunet-2019",
                   help=f"scoring protocol (default wpunet-2019; known: "
                        f"{', '.join(x.name for x in list_protocols())})")
    p.add_argument("--post", default=None, metavar="NAME",
                   help=f"post-processor of a probability map (default protocol; known: "
                        f"{', '.join(list_postprocessors())})")
    p.add_argument("--post-param", action="append", metavar="KEY=VALUE",
                   help="parameter of the post-processor, e.g. h_distance=2 (repeatable)")
    p.add_argument("--pred-key", help="HDF5 dataset of the prediction")
    p.add_argument("--gt-key", help="HDF5 dataset of the ground truth")
    p.add_argument("--axes", default="ZHW", choices=["ZHW", "HWZ"],
                   help="axis order of 3D inputs (the pure-iron HDF5 is HWZ)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_metrics_argument(p)
    p.add_argument("--per-slice", action="store_true", help="print one row per slice")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    p.add_argument("--example", action="store_true",
                   help="score a generated example (Voronoi grains, flawed prediction) instead of files")
    p.set_defaults(func=run)


def add_metrics_argument(p: argparse.ArgumentParser) -> None:
    """``--metrics standard|extended``, shared by ``score`` and ``run``."""
    p.add_argument("--metrics", default="standard", choices=METRIC_GROUPS,
                   help="metric group: standard (default) or extended, which adds the Rand index, Pratt's figure "
                        "of merit, completeness/correctness/quality, mean and frequency-weighted IoU and Dice of "
                        "grain pixels (boundary task)")


def _load(path: str, key: str | None, axes: str, what: str) -> np.ndarray:
    arr = read_array(path, key=key, mask=True)  # values: the input contract, applied by score()
    if arr.ndim == 3 and axes == "HWZ":
        arr = np.moveaxis(arr, -1, 0)
    if arr.ndim not in (2, 3):
        raise InputFileError(f"{path}: {what} must be an image or a stack, got shape {arr.shape}")
    return arr


def run(args: argparse.Namespace) -> int:
    protocol = get_protocol(args.protocol)
    post = get_postprocessor(args.post, **parse_assignments(args.post_param, "--post-param", error=ConfigError))
    resolve_device(args.device)  # a bad --device fails before anything is read
    if args.json is not None and args.json.is_dir():
        raise OutputError(f"{args.json}: --json is a folder; give a file name")
    if args.example:
        from ..examples import example_pair

        pred, gt = example_pair()
        source = "example (Voronoi, 60 grains, 256 x 256, with gaps, scratches and a 1 px shift)"
    else:
        if not args.pred or not args.gt:
            raise InputFileError("score needs PRED and GT files (or --example)")
        pred = _load(args.pred, args.pred_key, args.axes, "prediction")
        gt = _load(args.gt, args.gt_key, args.axes, "ground truth")
        if pred.shape != gt.shape:
            raise InputFileError(f"{args.pred}: shape {pred.shape} differs from {args.gt}: shape {gt.shape}")
        source = f"{args.pred} vs {args.gt}"
    try:
        result = score(pred, gt, protocol, device=args.device, metrics=args.metrics, post=post)
    except ValueError as exc:
        raise InputFileError(f"{args.pred or 'example'}: {exc}") from None

    print_aggregate(result, source, per_slice=args.per_slice)
    if args.json:
        with atomic_write(args.json, "w") as fh:
            json.dump(result.to_dict(), fh, indent=2, default=float)
        console.print(f"written {args.json}")
    return 0


def print_aggregate(result, source: str, *, per_slice: bool = False) -> None:
    """Print a score result as a rich table: the mean of each metric, or one row per slice."""
    protocol = result.protocol
    post = result.post
    using = f", post-processor [cyan]{post.name}[/] {post.params}" if post is not None and not post.is_default else ""
    console.print(f"[bold]{source}[/] — protocol [cyan]{protocol.id}[/]{using}, {len(result.per_slice)} slice(s)")
    table = Table(show_header=True, header_style="bold")
    if per_slice:
        columns = [c for c in result.per_slice.columns if c != "slice"]
        table.add_column("slice")
        for c in columns:
            table.add_column(c, justify="right")
        for _, row in result.per_slice.iterrows():
            table.add_row(str(row["slice"]), *(f"{row[c]:.4f}" for c in columns))
    else:
        table.add_column("metric")
        table.add_column("mean", justify="right")
        keys = [k for k in HEADLINE if k in result.aggregate] + [k for k in result.aggregate if k not in HEADLINE]
        for k in keys:
            table.add_row(k, f"{result.aggregate[k]:.4f}")
    console.print(table)
