"""``grainbench track``: reconstruct the 3D grains of a split, score them, record the run, rebuild the table."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ..errors import TrackingError
from ..io import safe_name
from ..plugins import accepts, parse_assignments
from ..runner import RunSpec
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
    p.add_argument("--tracker-arg", action="append", metavar="KEY=VALUE", default=[],
                   help="tracker constructor argument, repeatable (e.g. min_iou=0.3, epochs=2, arch=resnet18)")
    p.add_argument("--checkpoint", type=Path, help="weights of a trainable tracker (from an earlier run)")
    p.add_argument("--retrain", action="store_true", help="train a trainable tracker even if weights exist")
    p.add_argument("--seed", type=int, default=0, help="seed of the tracker's training (default 0)")
    p.add_argument("--preset", default="quick", help="training preset of a --boundaries method (default quick)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--workdir", type=Path, default=Path("runs"),
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


def boundaries_from_method(name: str, dataset: str, volume: Any, protocol: Any, *, preset: str, seed: int,
                           work_root: Path) -> tuple[np.ndarray, str | None]:
    """Predict the split's boundaries with method ``name`` (its trained weights from an earlier run).

    Returns the post-processed boundaries and the weights file used (None for
    a method without training).
    """
    from ..inference import predict_volume
    from ..methods import create_model, get_model_class
    from ..methods.registry import MethodError
    from ..scoring import prepare_prediction

    try:
        cls = get_model_class(name)
    except MethodError as exc:
        raise TrackingError(f"--boundaries {name!r}: {exc}; or give a saved prediction with --boundaries-file") \
            from None
    method = create_model(name)
    weights = None
    if cls.presets:  # a learned method: reuse the weights `grainbench run` left behind
        weights = RunSpec(model=name, dataset=dataset, preset=preset, seed=seed).work_dir(work_root) / "model.pt"
        if not weights.is_file() or not hasattr(method, "load"):
            raise TrackingError(f"--boundaries {name!r}: no trained weights at {weights}; train the method on "
                                f"{dataset} first (grainbench run) or pass its predictions with --boundaries-file")
        method.load(weights)
    pred = predict_volume(method, volume, mode="chain", protocol=protocol)
    return prepare_prediction(pred.prob, protocol).cpu().numpy(), None if weights is None else str(weights)


# --------------------------------------------------------------------------- trackers

def prepare_tracker(args: argparse.Namespace, tracker_args: dict[str, Any], log: Any) -> tuple[Any, dict, str | None]:
    """Build the tracker; a trainable one loads weights or trains on the train split (val for selection)."""
    from .. import data
    from ..io import atomic_write, sha256_file
    from ..tracking import create_tracker, dataset_ground_truth, get_tracker_class

    cls = get_tracker_class(args.tracker)
    kwargs = dict(tracker_args)
    if args.device and accepts(cls, "device"):
        kwargs.setdefault("device", args.device)
    tracker = create_tracker(args.tracker, **kwargs)
    if not cls.trainable:
        if args.checkpoint is not None:
            raise TrackingError(f"tracker {args.tracker!r} learns nothing; --checkpoint {args.checkpoint} "
                                "does not apply")
        return tracker, {"trained": False}, None
    tag = "default"
    if tracker_args:
        tag = hashlib.sha256(json.dumps(tracker_args, sort_keys=True, default=str).encode()).hexdigest()[:8]
    work = args.workdir / "tracking" / safe_name(args.dataset) / safe_name(args.tracker) / f"{tag}-seed{args.seed}"
    weights = args.checkpoint or work / "model.pt"
    if args.checkpoint is not None or (weights.is_file() and not args.retrain):
        log(f"{args.tracker}: loading weights {weights}")
        try:
            tracker.load(weights)
        except NotImplementedError:
            raise TrackingError(f"tracker {args.tracker!r} cannot load weights ({weights})") from None
        fit_file = work / "fit.json"
        fit = json.loads(fit_file.read_text()) if args.checkpoint is None and fit_file.is_file() else {}
        return tracker, {"trained": True, "source": "checkpoint", **fit}, sha256_file(weights)
    entry = data.get_dataset(args.dataset)
    if "train" not in entry.splits:
        raise TrackingError(f"tracker {args.tracker!r} must be trained, but dataset {args.dataset!r} has no train "
                            "split; pass --checkpoint")
    train = dataset_ground_truth(args.dataset, data.load(args.dataset, "train"))
    val = dataset_ground_truth(args.dataset, data.load(args.dataset, "val")) if "val" in entry.splits else None
    log(f"{args.tracker}: training on {args.dataset}/train ({len(train)} slices) with seed {args.seed}; "
        f"weights go to {weights}")
    fit_kw = {"log": log} if accepts(tracker.fit, "log") else {}
    fit = tracker.fit(train, val, seed=args.seed, **fit_kw)
    info = {k: v for k, v in (fit.to_dict() if hasattr(fit, "to_dict") else dict(fit or {})).items()
            if k != "config"}
    save_kw = {"extra": {"fit": info, "dataset": args.dataset}} if accepts(tracker.save, "extra") else {}
    try:
        sha = tracker.save(weights, **save_kw)
    except NotImplementedError:  # a submitted tracker that cannot save: train again next time
        log(f"{args.tracker}: cannot save its weights; it will be trained again on the next run")
        return tracker, {"source": "trained", **info}, None
    with atomic_write(work / "fit.json", "w") as fh:
        json.dump(info, fh, indent=1, default=str)
    return tracker, {"source": "trained", **info}, sha


# --------------------------------------------------------------------------- the command

def run(args: argparse.Namespace) -> int:
    resolve_outputs(args)
    from .. import data
    from .._backend import resolve_device
    from ..protocol import get_protocol
    from ..records import make_record, write_record
    from ..tracking import (
        TRACKING_PROTOCOL,
        TRACKING_PROTOCOL_ID,
        dataset_ground_truth,
        protocol_crop,
        score_volume,
    )
    from ..tracking.figures import save_orthoslices
    from ..tracking.leaderboard import build_tracking_leaderboard, reported_tracking

    def log(msg: str) -> None:
        err_console.print(msg, highlight=False)

    try:
        device = str(resolve_device(args.device))
    except RuntimeError as exc:
        raise TrackingError(str(exc)) from None
    tracker_args = parse_assignments(args.tracker_arg, "--tracker-arg", error=TrackingError)
    entry = data.get_dataset(args.dataset)
    volume = data.load(args.dataset, args.split)
    gt = dataset_ground_truth(args.dataset, volume)
    protocol = get_protocol(entry.protocol or "wpunet-2019")

    t0 = time.perf_counter()
    source, boundaries_file, method_weights = args.boundaries, None, None
    if args.boundaries_file is not None:
        boundary = boundaries_from_file(args.boundaries_file, volume.shape, protocol, args.key)
        boundaries_file = str(args.boundaries_file)
        if source == "ground-truth":
            source = f"file:{args.boundaries_file.name}"
    elif source == "ground-truth":
        if volume.boundary is None:
            raise TrackingError(f"{args.dataset}/{args.split}: no ground-truth boundaries")
        boundary = np.asarray(volume.boundary, bool)
    else:
        log(f"predicting {args.dataset}/{args.split} boundaries with method {source!r}")
        boundary, method_weights = boundaries_from_method(source, args.dataset, volume, protocol, preset=args.preset,
                                                          seed=args.seed, work_root=args.workdir)
    boundaries_s = time.perf_counter() - t0

    boundary, gt = protocol_crop(boundary, gt)

    tracker, fit_info, checkpoint_sha = prepare_tracker(args, tracker_args, log)
    log(f"{args.tracker}: tracking {len(volume)} slices of {volume.shape[1]} x {volume.shape[2]} "
        f"({source} boundaries)")
    labels = tracker.track(boundary)
    timings = dict(tracker.timings)
    t1 = time.perf_counter()
    scores = score_volume(labels, gt, device=device)
    timings.update(score_s=time.perf_counter() - t1, boundaries_s=boundaries_s,
                   fit_s=float(fit_info.get("seconds", 0.0)) if fit_info.get("source") == "trained" else 0.0)

    config = {"model": args.tracker, "dataset": args.dataset, "split": args.split, "protocol": TRACKING_PROTOCOL_ID,
              "boundaries": source, "boundaries_file": boundaries_file, "boundary_weights": method_weights,
              "boundary_protocol": None if source == "ground-truth" else protocol.id,
              "model_args": tracker_args, "preset": None, "seed": args.seed,
              "mode": f"boundaries={source}", "tracker_config": tracker.config(),
              "trained_from": fit_info.get("source", "none")}
    folder = args.records / args.dataset / "tracking"
    record = make_record(config=config, protocol=dict(TRACKING_PROTOCOL), aggregate=scores, per_slice=[],
                         timings=timings, dataset_hashes=data.dataset_hashes(args.dataset),
                         checkpoint_sha256=checkpoint_sha, device=device,
                         extra={"fit": fit_info, "slices": volume.meta.get("slices")})
    path = write_record(record, folder)

    # the paper's row is shown beside the tracker as published only (no changed arguments)
    _print_result(args, source, scores, timings, reported_tracking(args.dataset).iloc[0:0] if tracker_args
                  else reported_tracking(args.dataset))
    console.print(f"record: {path}")
    if not args.no_leaderboard:
        for p in build_tracking_leaderboard(args.records, args.leaderboards, args.dataset):
            console.print(f"leaderboard: {p}")
    if not args.no_figure:
        figure = args.figure or (args.leaderboards / "figures" / safe_name(args.dataset)
                                 / f"tracking-{safe_name(args.tracker)}-{safe_name(source)}-{safe_name(args.split)}.png")
        title = (f"{args.dataset}/{args.split}: {args.tracker} on {source} boundaries — "
                 f"3D VI {scores['vi']:.4f}, ARI {scores['ari']:.4f}")
        console.print(f"figure: {save_orthoslices({'reconstruction': labels, 'ground truth': gt}, figure, title=title)}")
    if args.save_labels is not None:
        from ..io import atomic_write

        with atomic_write(args.save_labels, "wb") as fh:
            np.save(fh, labels)
        console.print(f"labels: {args.save_labels}")
    return 0


def _print_result(args: argparse.Namespace, source: str, scores: dict[str, float], timings: dict[str, float],
                  reported: Any) -> None:
    table = Table(show_header=True, header_style="bold",
                  title=f"{args.tracker} on {args.dataset}/{args.split}, {source} boundaries")
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
