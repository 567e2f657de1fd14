"""The runner behind ``grainbench track``: boundaries -> tracker (trained or loaded) -> 3D labels -> score -> record.

:func:`run_tracking` is the Python API the CLI is a thin layer over, as
:func:`grainbench.runner.run_one` is for ``grainbench run``. Trainable
trackers keep their weights in :meth:`TrackingSpec.work_dir`, named with the
same configuration hashing as method runs (:func:`grainbench.runner.config_tag`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TrackingError
from ..names import path_component, validate_name
from ..plugins import accepts

GROUND_TRUTH = "ground-truth"


@dataclass(frozen=True)
class TrackingSpec:
    """What identifies a tracking run.

    Attributes
    ----------
    tracker : str
        Registry name or ``package.module:Class``.
    dataset, split : str
        The split whose 3D grains are reconstructed and scored.
    boundaries : str
        ``"ground-truth"``, the label of a saved prediction stack, or a method
        whose weights ``grainbench run`` left (with ``preset`` and ``seed``).
    seed : int
        Seed of a trainable tracker's training (and of the boundary method's run).
    preset : str
        Training preset of a boundary method.
    tracker_args : dict
        Constructor arguments of the tracker.
    """

    tracker: str
    dataset: str
    split: str = "test"
    boundaries: str = GROUND_TRUTH
    seed: int = 0
    preset: str = "quick"
    tracker_args: dict[str, Any] = field(default_factory=dict)

    def work_dir(self, root: Path) -> Path:
        """Weights of a trainable tracker: ``<root>/tracking/<dataset>/<tracker>/default[-<args hash>]-seed<S>``."""
        from ..runner import config_tag

        return (Path(root) / "tracking" / path_component(self.dataset, "dataset")
                / path_component(self.tracker, "tracker") / f"{config_tag('default', self.tracker_args)}-seed{self.seed}")


@dataclass
class TrackingOutcome:
    """What a tracking run produced: the record (written), the volumes and the scores."""

    record_path: Path
    record: dict[str, Any]
    labels: np.ndarray
    ground_truth: np.ndarray
    scores: dict[str, float]
    timings: dict[str, float]


def tracking_inputs(dataset: str, split: str) -> tuple[Any, Any]:
    """The split's volume and the dataset's 2D protocol (how saved predictions are post-processed)."""
    from .. import data
    from ..protocol import get_protocol

    validate_name(dataset, "dataset")
    entry = data.get_dataset(dataset)
    return data.load(dataset, split), get_protocol(entry.protocol or "wpunet-2019")


def boundaries_from_method(name: str, dataset: str, volume: Any, protocol: Any, *, preset: str, seed: int,
                           work_root: Path, weights: Any = None) -> tuple[np.ndarray, str | None]:
    """Predict the split's boundaries with method ``name`` (its trained weights from an earlier run,
    or ``weights``, published :class:`grainbench.weights.ExternalWeights` built with their card's arguments).

    Returns the post-processed boundaries and the weights file used (None for
    a method without training; ``<source>#sha256=<hex>`` for published weights).
    """
    from .. import data
    from ..inference import predict_volume
    from ..methods import create_model, get_model_class
    from ..methods.registry import MethodError
    from ..runner import RunSpec
    from ..scoring import prepare_prediction

    try:
        cls = get_model_class(name)
    except MethodError as exc:
        raise TrackingError(f"--boundaries {name!r}: {exc}; or give a saved prediction with --boundaries-file") \
            from None
    if weights is not None:
        from ..runner import channel_args
        from ..weights import apply_weights

        args = {**dict(weights.card.get("constructor_args") or {}),
                **channel_args(cls, name, data.get_dataset(dataset))}
        method = apply_weights(create_model(name, **args), weights, name)
        pred = predict_volume(method, volume, mode="chain", protocol=protocol)
        return prepare_prediction(pred.prob, protocol).cpu().numpy(), f"{weights.source}#sha256={weights.sha256}"
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


def prepare_tracker(spec: TrackingSpec, *, work_root: Path, device: str | None = None,
                    checkpoint: Path | None = None, retrain: bool = False,
                    log: Callable[[str], None] = print) -> tuple[Any, dict, str | None]:
    """Build the tracker; a trainable one loads weights or trains on the train split (val for selection).

    Returns ``(tracker, fit information, sha256 of its weights or None)``.
    """
    from .. import data
    from ..io import atomic_write, sha256_file
    from . import create_tracker, dataset_ground_truth, get_tracker_class

    cls = get_tracker_class(spec.tracker)
    kwargs = dict(spec.tracker_args)
    if device and accepts(cls, "device"):
        kwargs.setdefault("device", device)
    tracker = create_tracker(spec.tracker, **kwargs)
    if not cls.trainable:
        if checkpoint is not None:
            raise TrackingError(f"tracker {spec.tracker!r} learns nothing; --checkpoint {checkpoint} does not apply")
        return tracker, {"trained": False}, None
    work = spec.work_dir(work_root)
    weights = checkpoint or work / "model.pt"
    if checkpoint is not None or (weights.is_file() and not retrain):
        log(f"{spec.tracker}: loading weights {weights}")
        try:
            tracker.load(weights)
        except NotImplementedError:
            raise TrackingError(f"tracker {spec.tracker!r} cannot load weights ({weights})") from None
        fit_file = work / "fit.json"
        fit = json.loads(fit_file.read_text()) if checkpoint is None and fit_file.is_file() else {}
        return tracker, {"trained": True, "source": "checkpoint", **fit}, sha256_file(weights)
    entry = data.get_dataset(spec.dataset)
    if "train" not in entry.splits:
        raise TrackingError(f"tracker {spec.tracker!r} must be trained, but dataset {spec.dataset!r} has no train "
                            "split; pass --checkpoint")
    train = dataset_ground_truth(spec.dataset, data.load(spec.dataset, "train"))
    val = dataset_ground_truth(spec.dataset, data.load(spec.dataset, "val")) if "val" in entry.splits else None
    log(f"{spec.tracker}: training on {spec.dataset}/train ({len(train)} slices) with seed {spec.seed}; "
        f"weights go to {weights}")
    fit_kw = {"log": log} if accepts(tracker.fit, "log") else {}
    if accepts(tracker.fit, "checkpoint_dir"):  # the training engine's last.pt: an interrupted run resumes
        fit_kw.update(checkpoint_dir=work / "engine", resume=not retrain)
    fit = tracker.fit(train, val, seed=spec.seed, **fit_kw)
    info = {k: v for k, v in (fit.to_dict() if hasattr(fit, "to_dict") else dict(fit or {})).items()
            if k != "config"}
    save_kw = {"extra": {"fit": info, "dataset": spec.dataset}} if accepts(tracker.save, "extra") else {}
    try:
        sha = tracker.save(weights, **save_kw)
    except NotImplementedError:  # a submitted tracker that cannot save: train again next time
        log(f"{spec.tracker}: cannot save its weights; it will be trained again on the next run")
        return tracker, {"source": "trained", **info}, None
    with atomic_write(work / "fit.json", "w") as fh:
        json.dump(info, fh, indent=1, default=str)
    return tracker, {"source": "trained", **info}, sha


def run_tracking(spec: TrackingSpec, *, records_dir: Path, work_root: Path, device: str | None = None,
                 volume: Any = None, protocol: Any = None, boundary: np.ndarray | None = None,
                 boundaries_file: str | None = None, boundaries_seconds: float = 0.0,
                 checkpoint: Path | None = None, retrain: bool = False, weights: Any = None,
                 log: Callable[[str], None] = print) -> TrackingOutcome:
    """Reconstruct, score and record one tracking run; returns its :class:`TrackingOutcome`.

    Parameters
    ----------
    records_dir : path
        The record goes to ``records_dir / dataset / "tracking"``.
    work_root : path
        Tracker weights under ``spec.work_dir(work_root)``; method weights of ``grainbench run`` are read there.
    volume, protocol : optional
        The split and 2D protocol (:func:`tracking_inputs`), when the caller has them already.
    boundary : (Z, H, W) bool array, optional
        Post-processed boundaries read from ``boundaries_file`` by the caller
        (``boundaries_seconds`` it took); otherwise ``spec.boundaries`` says
        where they come from (the ground truth or a trained method).
    weights : grainbench.weights.ExternalWeights, optional
        Published weights of the boundary method ``spec.boundaries`` (``--weights``), used instead of the
        weights of an earlier run; recorded as ``config.boundary_weights`` and ``config.boundary_weights_sha256``.
    """
    from .. import data
    from .._backend import resolve_device
    from ..records import make_record, write_record
    from . import TRACKING_PROTOCOL, TRACKING_PROTOCOL_ID, dataset_ground_truth, protocol_crop, score_volume

    try:
        device = str(resolve_device(device))
    except RuntimeError as exc:
        raise TrackingError(str(exc)) from None
    if volume is None or protocol is None:
        volume, protocol = tracking_inputs(spec.dataset, spec.split)
    gt = dataset_ground_truth(spec.dataset, volume)

    method_weights = None
    if boundary is None:
        t0 = time.perf_counter()
        if spec.boundaries == GROUND_TRUTH:
            if volume.boundary is None:
                raise TrackingError(f"{spec.dataset}/{spec.split}: no ground-truth boundaries")
            boundary = np.asarray(volume.boundary, bool)
        else:
            log(f"predicting {spec.dataset}/{spec.split} boundaries with method {spec.boundaries!r}")
            boundary, method_weights = boundaries_from_method(
                spec.boundaries, spec.dataset, volume, protocol, preset=spec.preset, seed=spec.seed,
                work_root=work_root, weights=weights)
        boundaries_seconds = time.perf_counter() - t0
    boundary, gt = protocol_crop(boundary, gt)

    tracker, fit_info, checkpoint_sha = prepare_tracker(spec, work_root=work_root, device=device,
                                                        checkpoint=checkpoint, retrain=retrain, log=log)
    log(f"{spec.tracker}: tracking {len(volume)} slices of {volume.shape[1]} x {volume.shape[2]} "
        f"({spec.boundaries} boundaries)")
    labels = tracker.track(boundary)
    timings = dict(tracker.timings)
    t1 = time.perf_counter()
    scores = score_volume(labels, gt, device=device)
    timings.update(score_s=time.perf_counter() - t1, boundaries_s=boundaries_seconds,
                   fit_s=float(fit_info.get("seconds", 0.0)) if fit_info.get("source") == "trained" else 0.0)

    from_truth = spec.boundaries == GROUND_TRUTH and boundaries_file is None
    config = {"model": spec.tracker, "dataset": spec.dataset, "split": spec.split, "protocol": TRACKING_PROTOCOL_ID,
              "boundaries": spec.boundaries, "boundaries_file": boundaries_file, "boundary_weights": method_weights,
              "boundary_weights_sha256": weights.sha256 if weights is not None else None,
              "boundary_protocol": None if from_truth else protocol.id,
              "boundary_preset": None if from_truth or boundaries_file else spec.preset,
              "model_args": dict(spec.tracker_args), "preset": None, "seed": spec.seed, "mode": None,
              "tracker_config": tracker.config(), "trained_from": fit_info.get("source", "none")}
    record = make_record(config=config, protocol=dict(TRACKING_PROTOCOL), aggregate=scores, per_slice=[],
                         timings=timings, dataset_hashes=data.dataset_hashes(spec.dataset),
                         checkpoint_sha256=checkpoint_sha, device=device,
                         extra={"fit": fit_info, "slices": volume.meta.get("slices")})
    path = write_record(record, Path(records_dir) / spec.dataset / "tracking")
    return TrackingOutcome(path, record, labels, gt, scores, timings)
