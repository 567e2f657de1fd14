"""``grainbench track``: reconstruct the 3D grains of a split, score them, record the run, rebuild the table.

A thin layer over :func:`grainbench.tracking.runner.run_tracking`: it parses
the arguments, reads a saved boundary stack, and prints and draws the result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from ..errors import TrackingError
from ..io import safe_name
from ..names import path_component
from ..plugins import parse_assignments
from ._console import console, err_console
from ._outputs import add_publish_argument, resolve_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "track", help="reconstruct 3D grains by tracking them between slices, and score the volume",
        description="Build the 3D grain label volume of a dataset split from 2D boundaries (the ground truth, a "
                    "saved prediction stack, or a method's prediction) with a grain tracker, score it by 3D VI "
                    "and ARI against the 3D ground truth (seed 000 Tables 3-5), write a run record, the "
                    "tracking leaderboard <dataset>_tracking.md/.csv and an orthogonal-slice picture.",
    )
    p.add_argument("--dataset", required=True, help="registry name with 3D labels: potts_sim, synthetic, pure_iron")
    p.add_argument("--tracker", required=True,
                   help="max_overlap, min_centroid, vgg13_bn, densenet161 or package.module:Class")
    p.add_argument("--split", default="test", help="split to reconstruct and score (default test)")
    p.add_argument("--boundaries", default="ground-truth", metavar="SOURCE",
                   help="'ground-truth' (default), or the name of the boundary source: with --boundaries-file "
                        "the label of that file, without it a method whose trained checkpoint exists "
                        "(or that needs no training)")
    p.add_argument("--boundaries-file", type=Path, metavar="PATH",
                   help="saved boundary prediction stack of the split (NPY, TIFF, HDF5 or a folder of PNGs; "
                        "probabilities are thresholded and thinned like the dataset's scoring protocol)")
    p.add_argument("--key", help="HDF5 dataset holding the boundary predictions")
    p.add_argument("--weights", metavar="PATH_OR_URL",
                   help="published weights of the --boundaries method (from `grainbench export`; a URL pinned as "
                        "URL#sha256=HEX); --boundaries defaults to the weights' method")
    p.add_argument("--weights-sha256", metavar="HEX", help="sha256 the --weights file must have")
    p.add_argument("--tracker-arg", action="append", metavar="KEY=VALUE", default=[],
                   help="tracker constructor argument, repeatable (e.g. min_iou=0.3, epochs=2, arch=resnet18)")
    p.add_argument("--checkpoint", type=Path, help="weights of a trainable tracker (from an earlier run)")
    p.add_argument("--retrain", action="store_true", help="train a trainable tracker even if weights exist")
    p.add_argument("--seed", type=int, default=0, help="seed of the tracker's training (default 0)")
    p.add_argument("--preset", default="quick", help="training preset of a --boundaries method (default quick)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where tracker weights go and method weights of `grainbench run` are read (default runs/)")
    p.add_argument("--records", type=Path, default=None,
                   help="where records go (default <runs>/records; see --publish)")
    p.add_argument("--leaderboards", type=Path, default=None,
                   help="where tables go (default <runs>/leaderboards; see --publish)")
    p.add_argument("--no-leaderboard", action="store_true", help="only write the record")
    p.add_argument("--figure", type=Path,
                   help="orthogonal-slice PNG (default <leaderboards>/figures/<dataset>/tracking-....png)")
    p.add_argument("--no-figure", action="store_true", help="do not draw the orthogonal slices")
    p.add_argument("--save-labels", type=Path, metavar="PATH", help="also save the 3D label volume as NPY")
    add_publish_argument(p)
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- boundary sources

def boundaries_from_file(path: Path, shape: tuple[int, int, int], protocol: Any, key: str | None) -> np.ndarray:
    """Read, validate and post-process (threshold, close, thin per ``protocol``) a saved prediction stack."""
    from ..scoring import prepare_prediction
    from ..submission import read_predictions

    preds = read_predictions(path, expected_slices=shape[0], expected_shape=shape[1:], key=key)
    return prepare_prediction(preds, protocol).cpu().numpy()


# --------------------------------------------------------------------------- the command

def run(args: argparse.Namespace) -> int:
    resolve_outputs(args)
    from ..tracking.figures import save_orthoslices
    from ..tracking.leaderboard import build_tracking_leaderboard, reported_tracking
    from ..tracking.runner import TrackingSpec, run_tracking, tracking_inputs

    def log(msg: str) -> None:
        err_console.print(escape(msg), highlight=False)

    if args.publish:
        from ..records import require_clean_tree

        require_clean_tree("grainbench track --publish")
    tracker_args = parse_assignments(args.tracker_arg, "--tracker-arg", error=TrackingError)
    volume, protocol = tracking_inputs(args.dataset, args.split)

    weights = None
    if args.weights is not None:
        from ..weights import resolve_weights

        if args.boundaries_file is not None:
            raise TrackingError("--weights and --boundaries-file exclude each other")
        weights = resolve_weights(args.weights, args.weights_sha256)
        if args.boundaries == "ground-truth":
            args.boundaries = weights.card["method"]
    elif args.weights_sha256:
        raise TrackingError("--weights-sha256 needs --weights")
    t0 = time.perf_counter()
    source, boundaries_file, boundary = args.boundaries, None, None
    if args.boundaries_file is not None:
        boundary = boundaries_from_file(args.boundaries_file, volume.shape, protocol, args.key)
        boundaries_file = str(args.boundaries_file)
        if source == "ground-truth":
            source = f"file:{args.boundaries_file.name}"
    boundaries_s = time.perf_counter() - t0

    spec = TrackingSpec(tracker=args.tracker, dataset=args.dataset, split=args.split, boundaries=source,
                        seed=args.seed, preset=args.preset, tracker_args=tracker_args)
    outcome = run_tracking(spec, records_dir=args.records, work_root=args.workdir, device=args.device,
                           volume=volume, protocol=protocol, boundary=boundary, boundaries_file=boundaries_file,
                           boundaries_seconds=boundaries_s, checkpoint=args.checkpoint, retrain=args.retrain,
                           weights=weights, log=log)
    scores, timings, labels = outcome.scores, outcome.timings, outcome.labels

    # the paper's row is shown beside the tracker as published only (no changed arguments)
    _print_result(args, source, scores, timings, reported_tracking(args.dataset).iloc[0:0] if tracker_args
                  else reported_tracking(args.dataset))
    console.print(f"record: {escape(str(outcome.record_path))}", highlight=False)
    if not args.no_leaderboard:
        for p in build_tracking_leaderboard(args.records, args.leaderboards, args.dataset):
            console.print(f"leaderboard: {escape(str(p))}", highlight=False)
    if not args.no_figure:
        from ..runner import config_tag

        # the tracker's arguments are part of the name: another setting never overwrites a figure
        tracker = config_tag(path_component(args.tracker, "tracker"), tracker_args)
        figure = args.figure or (args.leaderboards / "figures" / path_component(args.dataset, "dataset")
                                 / f"tracking-{tracker}-{safe_name(source)}-{path_component(args.split, 'split')}.png")
        shown = args.tracker + (f" ({', '.join(f'{k}={v}' for k, v in sorted(tracker_args.items()))})"
                                if tracker_args else "")
        title = (f"{args.dataset}/{args.split}: {shown} on {source} boundaries — "
                 f"3D VI {scores['vi']:.4f}, ARI {scores['ari']:.4f}")
        picture = save_orthoslices({"reconstruction": labels, "ground truth": outcome.ground_truth}, figure,
                                   title=title, reference="ground truth")
        console.print(f"figure: {escape(str(picture))}", highlight=False)
    if args.save_labels is not None:
        from ..io import atomic_write

        with atomic_write(args.save_labels, "wb") as fh:
            np.save(fh, labels)
        console.print(f"labels: {escape(str(args.save_labels))}", highlight=False)
    return 0


def _print_result(args: argparse.Namespace, source: str, scores: dict[str, float], timings: dict[str, float],
                  reported: Any) -> None:
    table = Table(show_header=True, header_style="bold",
                  title=escape(f"{args.tracker} on {args.dataset}/{args.split}, {source} boundaries"))
    table.add_column("metric")
    table.add_column("ours", justify="right")
    rows = reported[(reported["tracker"] == args.tracker) & (reported["boundaries"] == source)] \
        if not reported.empty else reported
    paper = rows.iloc[0] if len(rows) else None
    label = f"reported ({paper['table']})" if paper is not None else None
    if label:
        table.add_column(label, justify="right")
    for key in ("vi", "vi_split", "vi_merge", "ari"):
        cells = [key, f"{scores[key]:.4f}"]
        if label:
            cells.append(f"{paper[key]:g}" if key in ("vi", "ari") else "-")
        table.add_row(*cells)
    cells = ["duration (s)", f"{timings['track_s']:.2f}"]
    if label:
        cells.append("-" if paper["duration_s"] != paper["duration_s"] else f"{paper['duration_s']:g}")
    table.add_row(*cells)
    table.add_row("grains (ours / truth)", f"{scores['grains_pred']:.0f} / {scores['grains_gt']:.0f}",
                  *([""] if label else []))
    console.print(table)
