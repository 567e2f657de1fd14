"""The runner behind ``grainbench run``: data -> fit (or load) -> predict -> score -> record.

A run is one (dataset, method, preset, seed, protocol) with its scoring
modes; each mode gives one record. Runs are resumable at two levels:

- a run whose records all exist (same model, dataset, split, protocol,
  preset, seed, mode, model arguments and preset overrides, the same
  dataset hashes and the same code version, :func:`grainbench.records.code_version`)
  is skipped, unless ``force``;
- training writes ``last.pt`` every epoch under the run's work folder, so an
  interrupted fit continues from its last finished epoch, and a finished one
  leaves ``model.pt``, which later runs load instead of training again.

Scored split (``RunSpec.split``): ``test`` by default; ``val`` holds the
test files back. Nothing is ever selected on the split that is scored:
scoring ``val`` holds a part of the training split out instead
(:func:`selection_holdout`: every 4th training slice, or the last quarter
of a serial stack), which chooses the kept epoch and stops training early;
the record says which (``config.selected_on``: ``val``, ``train-holdout``,
or None for the last epoch's weights).

Fine-tuning (``RunSpec.init_from``, :func:`resolve_init_from`): training
starts from the weights of an earlier run or checkpoint (fresh optimizer);
the parent is part of the run's identity and work folder, and recorded in
``config.init_from``.

Pseudo-labels (``RunSpec.pseudo_labels``, :mod:`grainbench.pseudo`): the
training split's ground truth is replaced by an earlier run's post-processed
predictions on its images (seed 004's first step trained on SegNet outputs);
validation and scoring keep the hand labels. The earlier run is named like
``--init-from``, is part of the identity and work folder, and recorded in
``config.pseudo_labels``.

Tuning (``RunSpec.tune``): ``grainbench tune`` runs each trial through
:func:`run_one`; the study and trial names are part of the run's identity and
work folder (two trials never share weights) and recorded in ``config.tune``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import data
from .data.volume import Volume
from .errors import GrainbenchError
from .io import atomic_write, sha256_file
from .names import is_valid_name, path_component
from .methods import create_model
from .methods.registry import get_model_class
from .plugins import accepts
from .paths import runs_root, user_records_dir
from .postprocessors import DEFAULT_POST, get_postprocessor
from .protocol import Protocol, get_protocol
from .records import code_version, load_records, make_record, write_record

#: Split roles of a run.
TRAIN, VAL, TEST = "train", "val", "test"
HOLDOUT = "train-holdout"  # the part of train that selects the weights when val is scored


def selection_holdout(train: Volume, every: int = 4) -> tuple[Volume, Volume]:
    """Split a training volume into (fit, select) slices, for runs that score val.

    Independent images (``serial`` False) give every ``every``-th slice to the
    selection set, starting at the last of the first group (as tbm's val rule);
    a serial stack gives it its last ``1/every`` as one block, so neither part
    loses its neighbours. At least one slice stays on each side.
    """
    z = len(train)
    if z < 2:
        raise ValueError(f"{train.name}: {z} training slice(s), too few to hold some out for selection")
    if train.serial:
        cut = min(z - 1, max(1, z - z // every))
        held = np.arange(z) >= cut
    else:
        held = (np.arange(z) % every) == every - 1
        if not held.any():
            held[-1] = True
    return train.take(np.flatnonzero(~held), "fit"), train.take(np.flatnonzero(held), "select")


def _selected_on(fit_info: dict[str, Any]) -> str | None:
    if "selected_on" in fit_info:
        return fit_info["selected_on"]
    return VAL if int(fit_info.get("best_epoch", -1)) >= 0 else None  # fit.json of older code


class RunError(GrainbenchError):
    """A run cannot be set up (unknown preset for a method, bad option value)."""


def config_tag(base: str, settings: Any) -> str:
    """``base``, or ``base-<hash8>`` of the JSON of ``settings`` when they are not empty: work-folder names."""
    if not settings or (isinstance(settings, (list, tuple)) and not any(settings)):
        return base
    blob = json.dumps(settings, sort_keys=True, default=str)
    return f"{base}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class InitFrom:
    """The weights a fine-tune starts from: a checkpoint file, its sha256 and the run that made it (if known)."""

    path: str
    sha256: str
    run_id: str | None = None
    model: str | None = None
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """What identifies a run; two runs with equal specs give the same records (up to timings).

    Attributes
    ----------
    model : str
        Registry name or ``package.module:Class``.
    dataset : str
        Registry name of the dataset.
    preset : str
        Training preset (``quick`` or ``paper``); recorded for methods without
        training too, so they share the table of the learned methods they floor.
    seed : int
    protocol : str
        Protocol id (``wpunet-2019@1``).
    modes : tuple of str or None
        Scoring modes of ``2d+prev`` methods (default both ``oracle`` and ``chain``).
    model_args : dict
        Keyword arguments of the method's constructor (e.g. ``{"width": 8}``).
    overrides : dict
        Preset fields changed for this run (e.g. ``{"epochs": 2}``).
    split : str
        The split that is scored (``test``; ``val`` trains without a validation split, see the module doc).
    init_from : InitFrom, optional
        Fine-tune: start training from these weights (:func:`resolve_init_from`).
    grey : bool
        Reduce a colour dataset's images to one grey channel (luma) before the
        method sees them (the grey baseline of a colour set); part of the
        identity and of the work folder.
    post : str
        Post-processor of the probabilities (:mod:`grainbench.postprocessors`).
    post_params : dict
        Every parameter of ``post``, defaults filled in. Part of the run's
        identity (its own records), not of its work folder: another
        post-processor reuses the trained checkpoint.
    pseudo_labels : InitFrom, optional
        Train on this earlier run's predictions over the training images
        instead of their ground truth (:mod:`grainbench.pseudo`).
    tune : dict, optional
        ``{"study": NAME, "trial": ID}`` of a ``grainbench tune`` trial.
    settings_from : dict, optional
        The ``--config`` file the settings came from
        (:func:`grainbench.runconfig.run_config_settings`); recorded, not part of the identity.
    """

    model: str
    dataset: str
    preset: str = "quick"
    seed: int = 0
    protocol: str = "wpunet-2019@1"
    modes: tuple[str, ...] | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    split: str = TEST
    init_from: InitFrom | None = None
    grey: bool = False
    post: str = "protocol"
    post_params: dict[str, Any] = field(default_factory=dict)
    pseudo_labels: InitFrom | None = None
    tune: dict[str, str] | None = None
    weights: Any = None  # grainbench.weights.ExternalWeights: predict with these, no training
    settings_from: dict[str, Any] | None = None

    def identity(self, mode: str | None) -> dict[str, Any]:
        """The config fields that make a record belong to this run (and mode)."""
        return {"model": self.model, "dataset": self.dataset, "split": self.split, "protocol": self.protocol,
                "preset": self.preset, "seed": self.seed, "mode": mode,
                "model_args": dict(self.model_args), "preset_overrides": dict(self.overrides),
                "init_from": self.init_from.to_dict() if self.init_from else None, "grey": self.grey,
                "post": self.post, "post_params": dict(self.post_params),
                "pseudo_labels": self.pseudo_labels.to_dict() if self.pseudo_labels else None,
                "tune": dict(self.tune) if self.tune else None,
                "weights": self.weights.to_dict() if self.weights is not None else None}

    def work_dir(self, root: Path) -> Path:
        """Folder of this run's checkpoints: ``<root>/<dataset>/<model>/<preset>[-<settings hash>]-seed<S>``.

        The hash covers the model arguments and preset overrides, and, when set,
        a scored split other than ``test`` (training then has no validation
        split) and the parent checkpoint of a fine-tune, so none of these runs
        overwrites another's weights.
        """
        settings: list[Any] = [self.model_args, self.overrides]
        if self.split != TEST or self.init_from is not None:
            settings.append({"split": self.split, "init_from": self.init_from.sha256 if self.init_from else None})
        if self.grey:
            settings.append({"grey": True})
        if self.pseudo_labels is not None:
            settings.append({"pseudo_labels": self.pseudo_labels.sha256})
        if self.tune:
            settings.append({"tune": dict(self.tune)})
        if self.weights is not None:
            settings.append({"weights": self.weights.sha256})
        tag = config_tag(path_component(self.preset, "preset"), settings)
        return (root / path_component(self.dataset, "dataset") / path_component(self.model, "model")
                / f"{tag}-seed{self.seed}")


@dataclass
class RunOutcome:
    """What happened to one run."""

    spec: RunSpec
    status: str  # "done", "skipped" (records existed), "interrupted" (fit stopped early), "failed" (ray executor)
    records: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    fit_source: str = ""  # "trained", "resumed", "checkpoint", "none"
    error: str = ""  # why a "failed" run failed, one line


def modes_for(context: str, modes: tuple[str, ...] | None, serial: bool = True) -> tuple[str | None, ...]:
    """Scoring modes a method gets: both (or the chosen) for ``2d+prev``, one ``None`` otherwise.

    On a stack that is not serial (``serial = false``: slice z-1 is another
    sample) a ``2d+prev`` method has one mode, ``"no-prior"`` (an empty
    previous mask for every slice); oracle and chain would feed it an
    unrelated image's mask.
    """
    from .inference import MODES, NO_PRIOR

    if context != "2d+prev":
        return (None,)
    if not serial:
        if modes and set(modes) != {NO_PRIOR}:
            raise RunError(f"mode(s) {list(modes)} need a serial stack; this dataset is not serial, so "
                           f"propagation methods run in the one mode {NO_PRIOR!r} (drop --mode)")
        return (NO_PRIOR,)
    chosen = tuple(modes or MODES)
    unknown = [m for m in chosen if m not in MODES]
    if unknown:
        raise RunError(f"unknown mode(s) {unknown}; known: {MODES}")
    return chosen


def existing_records(records_dir: Path, dataset: str) -> list[tuple[Path, dict]]:
    """The readable records under ``records_dir / dataset`` (unreadable ones are the leaderboard's to report)."""
    folder = records_dir / dataset
    return load_records(folder)[0] if folder.exists() else []


def completed_records(spec: RunSpec, records: list[tuple[Path, dict]], context: str,
                      dataset_hashes: dict[str, str] | None = None, code: str | None = None
                      ) -> dict[str | None, Path]:
    """Records of ``spec`` among ``records``, by mode (the newest when there are several).

    A record counts only when it was made on the same data (``dataset_hashes``,
    default: the dataset's hashes now) by the same code (``code``, default:
    :func:`grainbench.records.code_version` now).
    """
    found: dict[str | None, tuple[str, Path]] = {}
    wanted = {m: spec.identity(m) for m in modes_for(context, spec.modes, data.get_dataset(spec.dataset).serial)}
    hashes = data.dataset_hashes(spec.dataset) if dataset_hashes is None else dataset_hashes
    code = code_version() if code is None else code
    missing = {"model_args": {}, "preset_overrides": {}, "post": DEFAULT_POST, "post_params": {}, "grey": False}
    for path, rec in records:
        if rec.get("kind") != "run" or rec["dataset"]["hashes"] != hashes or rec["code_version"] != code:
            continue
        cfg = rec["config"]
        for mode, ident in wanted.items():
            same = all(_same_field(k, cfg.get(k) if cfg.get(k) is not None else missing.get(k), v)
                       for k, v in ident.items())
            if same and (mode not in found or rec["created"] > found[mode][0]):
                found[mode] = (rec["created"], path)
    return {m: p for m, (_, p) in found.items()}


def _same_field(key: str, recorded: Any, wanted: Any) -> bool:
    if key in ("init_from", "pseudo_labels", "weights"):  # the same weights, wherever the file was found
        return (recorded or {}).get("sha256") == (wanted or {}).get("sha256")
    return recorded == wanted


# --------------------------------------------------------------------------- fine-tuning

def resolve_init_from(ref: str | Path, *, records_dir: Path | None = None, work_root: Path | None = None,
                      option: str = "--init-from") -> InitFrom:
    """What ``--init-from REF`` names: a checkpoint file, a run's work folder, a record file or a run id.

    A record (file or run id, looked up under ``records_dir``) names its run's
    ``model.pt`` under ``work_root``, whose sha256 must still be the one
    recorded. For a checkpoint file or folder, the parent run is the record
    under ``records_dir`` whose checkpoint has the same sha256, if any.

    ``option`` names the option in messages (``--pseudo-labels`` resolves the same way).

    Raises
    ------
    RunError
        Nothing found under that name, no finished weights, or weights changed since the record.
    """
    from .records import read_record

    records_dir = user_records_dir() if records_dir is None else Path(records_dir)
    work_root = runs_root() if work_root is None else Path(work_root)
    path = Path(ref).expanduser()
    if path.is_dir():
        checkpoint = path / "model.pt"
        if not checkpoint.is_file():
            raise RunError(f"{option} {path}: no model.pt in this folder (training not finished?)")
        return _init_from_checkpoint(checkpoint, records_dir)
    if path.is_file() and path.suffix.lower() == ".json":
        return _init_from_record(path, read_record(path), work_root, option)
    if path.is_file():
        return _init_from_checkpoint(path, records_dir)
    if not is_valid_name(str(ref)):
        raise RunError(f"{option} {ref}: no such file or folder")
    found = sorted(records_dir.glob(f"*/{ref}.json")) if records_dir.is_dir() else []
    if not found:
        raise RunError(f"{option} {ref}: not a file, a folder, or a run id with a record under {records_dir}")
    return _init_from_record(found[0], read_record(found[0]), work_root, option)


def _init_from_record(path: Path, rec: dict[str, Any], work_root: Path, option: str = "--init-from") -> InitFrom:
    cfg = rec["config"]
    want = rec["checkpoint"]["sha256"]
    if rec["kind"] != "run" or not want:
        raise RunError(f"{option} {path}: this record has no trained weights (method without training?)")
    parent, pseudo = cfg.get("init_from"), cfg.get("pseudo_labels")
    spec = RunSpec(model=cfg["model"], dataset=cfg["dataset"], preset=cfg.get("preset") or "quick",
                   seed=cfg.get("seed") or 0, model_args=dict(cfg.get("model_args") or {}),
                   overrides=dict(cfg.get("preset_overrides") or {}), split=cfg["split"],
                   init_from=InitFrom(**parent) if parent else None, grey=bool(cfg.get("grey")),
                   pseudo_labels=InitFrom(**pseudo) if pseudo else None, tune=cfg.get("tune"))
    checkpoint = spec.work_dir(work_root) / "model.pt"
    if not checkpoint.is_file():
        raise RunError(f"{option} {path}: its weights {checkpoint} are not there (another --workdir?); "
                       "pass the checkpoint file instead")
    got = sha256_file(checkpoint)
    if got != want:
        raise RunError(f"{option} {path}: {checkpoint} has sha256 {got}, not the recorded {want} "
                       "(retrained since?); pass the checkpoint file to use it anyway")
    return InitFrom(str(checkpoint.resolve()), got, rec["run_id"], cfg["model"], cfg["dataset"])


def _init_from_checkpoint(path: Path, records_dir: Path) -> InitFrom:
    from .records import load_records

    sha = sha256_file(path)
    matches = sorted(((rec["created"], rec) for _, rec in (load_records(records_dir)[0] if records_dir.is_dir()
                                                              else [])
                      if rec["kind"] == "run" and rec["checkpoint"]["sha256"] == sha), key=lambda t: t[0])
    if matches:
        rec = matches[-1][1]
        return InitFrom(str(path.resolve()), sha, rec["run_id"], rec["config"]["model"], rec["config"]["dataset"])
    return InitFrom(str(path.resolve()), sha)


def _check_init_method(init: InitFrom, models: list[str]) -> None:
    """Refuse a checkpoint of another method before any work (its architecture is checked when training starts)."""
    from .training.checkpoint import load_checkpoint

    state = load_checkpoint(init.path)
    try:
        name = state["config"]["method"]["name"]
    except (KeyError, TypeError):
        raise RunError(f"{init.path}: not a checkpoint of a grainbench method (no method config)") from None
    for model in models:
        cls = get_model_class(model)
        if not cls.presets:
            raise RunError(f"--init-from: method {model!r} does not train, so it cannot start from weights")
        if getattr(cls, "name", model) != name:
            raise RunError(f"{init.path}: checkpoint of method {name!r}, not {model!r}; fine-tune it with "
                           f"--model {name}")


def _check_pseudo_parent(parent: InitFrom, models: list[str]) -> None:
    """The pseudo-label source must be a trained method's checkpoint; only learned methods use labels."""
    from .training.checkpoint import load_checkpoint

    state = load_checkpoint(parent.path)
    try:
        get_model_class(state["config"]["method"]["name"])
    except (KeyError, TypeError):
        raise RunError(f"--pseudo-labels {parent.path}: not a checkpoint of a grainbench method") from None
    for model in models:
        if not get_model_class(model).presets:
            raise RunError(f"--pseudo-labels: method {model!r} does not train, so it takes no training labels")


class DataCache:
    """Loads each (dataset, split) once per process."""

    def __init__(self) -> None:
        self._volumes: dict[tuple[str, str, bool], Volume] = {}

    def get(self, dataset: str, split: str, *, grey: bool = False) -> Volume:
        """The split's Volume; ``grey`` gives its images as one luma channel (:meth:`Volume.grey`)."""
        key = (dataset, split, grey)
        if key not in self._volumes:
            if grey:
                vol = self.get(dataset, split)
                self._volumes[key] = dataclasses.replace(vol, image=vol.grey(), meta={**vol.meta, "grey": True})
            else:
                self._volumes[key] = data.load(dataset, split)
        return self._volumes[key]

    def has_split(self, dataset: str, split: str) -> bool:
        return split in data.get_dataset(dataset).splits


def finished_outcome(spec: RunSpec, existing: list[tuple[Path, dict]], *, force: bool = False,
                     log: Callable[[str], None] = print, hashes: dict[str, str] | None = None
                     ) -> tuple[RunOutcome | None, dict[str | None, Path]]:
    """The skip rule of a run: ``(outcome "skipped", records)`` when every mode of ``spec`` has a record
    among ``existing`` (:func:`completed_records`; never with ``force``), else ``(None, the modes recorded)``."""
    cls = get_model_class(spec.model)
    done = {} if force else completed_records(spec, existing, cls.context, hashes)
    modes = modes_for(cls.context, spec.modes, data.get_dataset(spec.dataset).serial)
    if all(m in done for m in modes):
        log(f"{spec.model}: skipped: a record of this run exists ({done[modes[0]]}); pass --force to rerun")
        return RunOutcome(spec, "skipped", [done[m] for m in modes], fit_source="none"), done
    return None, done


def run_one(spec: RunSpec, *, records_dir: Path, work_root: Path, device: str | None = None,
            figures_dir: Path | None = None, cache: DataCache | None = None, progress: bool = True,
            max_epochs: int | None = None, tolerant: bool = False, log: Callable[[str], None] = print,
            existing: list[tuple[Path, dict]] | None = None, force: bool = False,
            metrics: str = "standard") -> RunOutcome:
    """Run (or resume, or skip) one :class:`RunSpec`; returns its :class:`RunOutcome`.

    Parameters
    ----------
    records_dir : path
        Records go to ``records_dir / dataset``.
    work_root : path
        Checkpoints go to ``spec.work_dir(work_root)``.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"``/None; for the network and the scoring.
    figures_dir : path, optional
        Where the overlay of the middle test slice goes (``<figures_dir>/<dataset>/``).
    max_epochs : int, optional
        Stop training after this many epochs in total (the run is then
        ``"interrupted"`` and writes no record; the next call resumes).
    tolerant : bool
        Also record seed 003's normalised-Gaussian tolerant scores (``gauss_*``).
    metrics : {"standard", "extended"}
        ``"extended"`` also records the extended metric group
        (:data:`grainbench.protocol.EXTENDED_METRICS`; see :func:`grainbench.scoring.score`).
        Like ``tolerant``, not part of a run's identity: use ``force`` to add
        the group to a run whose records exist.
    existing : list, optional
        The dataset's records already read (:func:`existing_records`); the
        records this run writes are appended to it. Default: read the folder.
    force : bool
        Run even when records of this run exist (same config, data and code);
        the new records are added beside the old ones (the newest counts).
    """
    from ._backend import resolve_device
    from .inference import evaluate

    cache = cache or DataCache()
    protocol = get_protocol(spec.protocol)
    cls = get_model_class(spec.model)
    if existing is None:
        existing = existing_records(records_dir, spec.dataset)
    from .training.determinism import use_deterministic
    from .training.presets import get_preset

    use_deterministic()
    post = get_postprocessor(spec.post, **spec.post_params)
    hashes = data.dataset_hashes(spec.dataset)
    skipped, done = finished_outcome(spec, existing, force=force, log=log, hashes=hashes)
    if skipped is not None:
        return skipped
    modes = modes_for(cls.context, spec.modes, data.get_dataset(spec.dataset).serial)

    learns = bool(cls.presets)
    if learns and spec.preset not in cls.presets:
        raise RunError(f"method {spec.model!r} has presets {cls.presets}, not {spec.preset!r}")
    kwargs = dict(spec.model_args)
    if device is not None and accepts(cls, "device"):
        kwargs.setdefault("device", device)
    kwargs.update(channel_args(cls, spec.model, data.get_dataset(spec.dataset), grey=spec.grey))
    try:
        method = create_model(spec.model, **kwargs)
    except TypeError as exc:
        raise RunError(f"method {spec.model!r} does not take {sorted(spec.model_args)}: {exc}") from None

    test = cache.get(spec.dataset, spec.split, grey=spec.grey)
    work = spec.work_dir(work_root)
    final = work / "model.pt"
    fit_info: dict[str, Any] = {"preset": "none"}
    train_seconds = 0.0
    checkpoint_sha: str | None = None
    source = "none"
    if spec.weights is not None:  # published weights: predict and score, never train
        from .weights import apply_weights

        log(f"{spec.model}: using weights {spec.weights.source} (sha256 {spec.weights.sha256[:12]}...)")
        apply_weights(method, spec.weights, spec.model)
        checkpoint_sha = spec.weights.sha256
        fit_info = {"preset": spec.preset, "weights_from": spec.weights.card.get("record_id")}
        source = "weights"
    elif learns and final.exists() and hasattr(method, "load"):
        log(f"{spec.model}: loading trained weights {final}")
        method.load(final)
        checkpoint_sha = sha256_file(final)
        fit_info = _read_fit_info(work / "fit.json")
        train_seconds = float(fit_info.get("seconds", 0.0))  # the training that made these weights, all segments
        source = "checkpoint"
    elif learns:
        train = cache.get(spec.dataset, TRAIN, grey=spec.grey)
        if spec.pseudo_labels is not None:
            train = _pseudo_labelled(train, spec, protocol, hashes, work_root, device, progress, log)
        # Never select (or stop early) on the split that is scored: scoring val selects on a part of train.
        if spec.split == VAL:
            train, val = selection_holdout(train)
            selected_on = HOLDOUT
        else:
            val = cache.get(spec.dataset, VAL, grey=spec.grey) if cache.has_split(spec.dataset, VAL) else None
            selected_on = VAL
        source = "resumed" if (work / "last.pt").exists() else "trained"
        start = f", starting from {spec.init_from.path}" if spec.init_from else ""
        log(f"{spec.model}: {'resuming' if source == 'resumed' else 'training'} with preset {spec.preset!r}, "
            f"seed {spec.seed} ({len(train)} training slices{start}, checkpoints in {work})")
        init = {"init_from": spec.init_from.path} if spec.init_from else {}
        fit = method.fit(train, val, preset=spec.preset, seed=spec.seed, checkpoint_dir=work, progress=progress,
                         max_epochs=max_epochs, **init, **spec.overrides)
        # The preset the method actually used (methods may adjust it, e.g. 3D patch sizes).
        planned = (fit.config.get("preset") or {}).get("epochs") or get_preset(spec.preset, **spec.overrides).epochs
        if fit.epochs < planned and not fit.stopped_early:
            log(f"{spec.model}: stopped after epoch {fit.epochs}; run again to resume")
            return RunOutcome(spec, "interrupted", fit_source=source)
        if fit.stopped_early:
            log(f"{spec.model}: stopped early after epoch {fit.stop_epoch} (best epoch {fit.best_epoch + 1})")
        fit_info = {k: v for k, v in fit.to_dict().items() if k != "config"}
        fit_info["selected_on"] = selected_on if val is not None and fit.best_epoch >= 0 else None
        fit_info["preset_config"] = fit.config.get("preset")  # every field, as the method used it
        # the training engine and data pipeline version (2: per-index crops through a DataLoader); absent before
        fit_info["engine"] = fit.config.get("engine")
        train_seconds = fit.seconds
        if hasattr(method, "save"):
            checkpoint_sha = method.save(final)
            with atomic_write(work / "fit.json", "w") as fh:
                json.dump(fit_info, fh, indent=1, default=str)

    overlay_slice = len(test) // 2
    figures: list[Path] = []
    overlay_of: dict[str | None, Path] = {}

    def draw(pred: Any) -> None:
        if figures_dir is None or test.boundary is None:
            return
        from .figures import save_overlay_figure
        from .io import safe_name
        from .scoring import prepare_ground_truth, prepare_prediction

        z = overlay_slice
        binary = prepare_prediction(pred.prob[z:z + 1], protocol, post=post).cpu().numpy()[0]
        truth = prepare_ground_truth(test.boundary[z:z + 1], protocol).cpu().numpy()[0]  # thinned traces
        suffix = f"-{pred.mode}" if pred.mode else ""
        preset = spec.preset + "".join(f"_{k}={v}" for k, v in sorted(spec.overrides.items()))
        name = safe_name(f"{path_component(spec.model, 'model')}{suffix}-{preset}"
                         + (f"-{config_tag(post.name, post.params)}" if not post.is_default else ""))
        path = figures_dir / path_component(spec.dataset, "dataset") / f"{name}-overlay.png"
        label = spec.model + (f" ({', '.join(f'{k}={v}' for k, v in sorted(spec.model_args.items()))})"
                              if spec.model_args else "") + (f" [{pred.mode}]" if pred.mode else "")
        title = (f"{label} on {spec.dataset}/{spec.split}, slice {z} (0-based) of {len(test)}; protocol {protocol.id}"
                 + ("" if post.is_default else f", post {post.name}") + f"; preset {spec.preset}")
        figures.append(save_overlay_figure(test.image[z], binary, truth, path, tolerance=2.0, title=title))
        overlay_of[pred.mode] = path

    using = "" if post.is_default else f", post-processor {post.name} {post.params}"
    log(f"{spec.model}: predicting and scoring {spec.dataset}/{spec.split} ({len(test)} slices{using})")
    todo = tuple(m for m in modes if m not in done)
    results = evaluate(method, test, protocol=protocol, modes=todo if cls.context == "2d+prev" else None,
                       device=str(resolve_device(device)), on_prediction=draw if spec.seed == 0 else None,
                       tolerant=tolerant, metrics=metrics, progress=progress, post=post)
    paths = [done[m] for m in modes if m in done]
    preset_config = None
    if learns:
        preset_config = fit_info.get("preset_config") or get_preset(
            spec.preset, task=data.get_dataset(spec.dataset).task, **spec.overrides).to_dict()
    for res in results:
        config = {**spec.identity(res["mode"]), "context": cls.context, "method_config": res["config"],
                  "trained_from": source, "first_prev": res["first_prev"],
                  "train_split": ((spec.weights.card.get("train_split") or TRAIN) if spec.weights else TRAIN)
                  if learns else None, "preset_config": preset_config, "settings_from": spec.settings_from,
                  # which split's loss chose the kept weights (never the scored one)
                  "selected_on": _selected_on(fit_info) if learns else None}
        overlay = overlay_of.get(res["mode"])
        record = make_record(
            config=config, protocol=protocol.to_dict(), aggregate=res["aggregate"], per_slice=res["per_slice"],
            timings={"train_s": train_seconds, "predict_s": res["predict_seconds"],
                     "score_s": res["score_seconds"], "slices_per_s": res["slices_per_s"]},
            dataset_hashes=hashes, checkpoint_sha256=checkpoint_sha,
            device=str(resolve_device(device)), figures={"overlay": str(overlay)} if overlay else None,
            extra={"fit": fit_info, "parameters": method.num_parameters()})
        paths.append(write_record(record, records_dir / spec.dataset))
        existing.append((paths[-1], record))
    return RunOutcome(spec, "done", paths, figures, source)


def _pseudo_labelled(train: Volume, spec: RunSpec, protocol: Protocol, hashes: dict[str, str], work_root: Path,
                     device: str | None, progress: bool, log: Callable[[str], None]) -> Volume:
    """The training split with ``spec.pseudo_labels``'s predictions as its labels (cached under ``work_root``)."""
    from .pseudo import pseudo_label, pseudo_label_key

    parent = spec.pseudo_labels
    key = pseudo_label_key(parent.sha256, hashes, TRAIN + ("-grey" if spec.grey else ""), protocol.id)
    log(f"{spec.model}: training labels of {spec.dataset}/{TRAIN} are the predictions of "
        f"{parent.run_id or parent.path} (pseudo-labels)")
    return pseudo_label(train, parent.path, protocol=protocol, device=device, progress=progress,
                        cache_dir=work_root / "pseudo-labels" / path_component(spec.dataset, "dataset"), key=key)


def _read_fit_info(path: Path) -> dict[str, Any]:
    """The training summary saved beside a checkpoint ({} when absent); a corrupt file is an error naming it."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: corrupt training summary ({exc}); delete it and its model.pt to retrain") from None
    if not isinstance(info, dict):
        raise RunError(f"{path}: corrupt training summary (not a JSON object); delete it and its model.pt to retrain")
    return info


def post_for(cls: type, post: str | None = None, post_params: dict[str, Any] | None = None) -> Any:
    """The post-processor a run of method class ``cls`` uses: ``post`` (the CLI's ``--post``) or the
    class's ``post`` attribute, with the class's ``post_params`` (when its own post-processor is used)
    updated by ``post_params``; checked (:class:`~grainbench.errors.ConfigError`)."""
    name = post or getattr(cls, "post", DEFAULT_POST)
    own = dict(getattr(cls, "post_params", {}) or {}) if name == getattr(cls, "post", DEFAULT_POST) else {}
    return get_postprocessor(name, **{**own, **(post_params or {})})


def validate_run(models: list[str], dataset: str, *, preset: str, modes: tuple[str, ...] | None,
                 model_args: dict[str, Any], overrides: dict[str, Any], device: str | None,
                 split: str = TEST, init_from: InitFrom | None = None,
                 post: str | None = None, post_params: dict[str, Any] | None = None, grey: bool = False,
                 pseudo_labels: InitFrom | None = None) -> None:
    """Everything a run can check before any work: names, device, preset after overrides, model
    arguments, post-processor, modes on non-serial data, the scored split, the method of ``init_from``,
    the dataset's lock file. Raises a GrainbenchError naming it."""
    from ._backend import resolve_device
    from .training.presets import get_preset

    resolve_device(device)
    entry = data.get_dataset(dataset)
    if split not in entry.splits:
        raise RunError(f"dataset '{dataset}' has no split '{split}' to score (known: {', '.join(entry.splits)})")
    if split == TRAIN and any(get_model_class(m).presets for m in models):
        raise RunError(f"--split {TRAIN}: learned methods train on it; score val or test")
    if init_from is not None:
        _check_init_method(init_from, models)
    if pseudo_labels is not None:
        _check_pseudo_parent(pseudo_labels, models)
    data.dataset_hashes(dataset)  # a corrupt locks.toml fails now, not after predicting and scoring
    for name in models:
        cls = get_model_class(name)  # fail on a typo before any training starts
        modes_for(cls.context, modes, entry.serial)
        post_for(cls, post, post_params)
        if cls.presets:
            if preset not in cls.presets:
                raise RunError(f"method {name!r} has presets {cls.presets}, not {preset!r}")
            get_preset(preset, task=entry.task, **overrides)
        args = {**{k: v for k, v in model_args.items() if accepts(cls, k)}, **channel_args(cls, name, entry, grey=grey)}
        try:
            create_model(name, **args)  # constructors check their arguments (e.g. width >= 1); nets build lazily
        except TypeError as exc:
            raise RunError(f"method {name!r} does not take {sorted(args)}: {exc}") from None


def channel_args(cls: type, name: str, entry: Any, *, grey: bool = False) -> dict[str, Any]:
    """``{"in_channels": C}`` for the dataset's image channels; a grey-only method on colour data is refused.

    ``grey``: the run reduces the images to one channel (C = 1 whatever the dataset has).

    Network methods and methods naming ``in_channels`` always get it; a method
    that only takes ``**kwargs`` gets it on colour data (grey is the default).
    """
    import inspect

    from .methods import TorchMethod

    try:
        named = "in_channels" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        named = False
    channels = 1 if grey else entry.channels
    if named or issubclass(cls, TorchMethod) or (channels != 1 and accepts(cls, "in_channels")):
        return {"in_channels": channels}
    if channels != 1:
        raise RunError(f"method {name!r} takes no in_channels, but dataset {entry.name!r} has {entry.channels} "
                       "image channels; add an in_channels keyword to the method")
    return {}


def run_many(models: list[str], dataset: str, seeds: list[int], *, preset: str = "quick",
             protocol: str | Protocol | None = None, modes: tuple[str, ...] | None = None,
             model_args: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
             records_dir: Path | None = None, work_root: Path | None = None,
             device: str | None = None, figures_dir: Path | None = None, progress: bool = True,
             max_epochs: int | None = None, tolerant: bool = False,
             log: Callable[[str], None] = print, force: bool = False, split: str = TEST,
             init_from: str | Path | InitFrom | None = None, metrics: str = "standard",
             post: str | None = None, post_params: dict[str, Any] | None = None,
             grey: bool = False, pseudo_labels: str | Path | InitFrom | None = None,
             tune: dict[str, str] | None = None, executor: Any = "local", weights: Any = None,
             settings_from: dict[str, Any] | None = None) -> list[RunOutcome]:
    """Every (model, seed) of one dataset, in order; the dataset is loaded once.

    ``protocol`` defaults to the dataset's protocol in the registry; ``split``
    is the split scored (``test``, or ``val`` to hold the test files back);
    ``init_from`` (a checkpoint, run folder, record or run id, see
    :func:`resolve_init_from`) makes every run a fine-tune of those weights.
    ``post`` and ``post_params`` override each method's post-processor (:func:`post_for`);
    ``grey`` reduces a colour dataset to one channel for every method.
    ``pseudo_labels`` (named like ``init_from``) trains every run on that run's
    predictions over the training images (:mod:`grainbench.pseudo`); ``tune``
    tags the runs as a trial of a ``grainbench tune`` study; ``settings_from``
    (:func:`grainbench.runconfig.run_config_settings`) records the settings file they came from.
    ``executor`` (``"local"``, ``"ray"`` or a :class:`grainbench.executors.RayExecutor`)
    says where the runs go (:func:`grainbench.executors.execute`): in this
    process, or one Ray task each, gathered as they finish (failed runs then
    come back with status ``"failed"`` instead of stopping the others).
    ``weights`` (:class:`grainbench.weights.ExternalWeights`, from
    :func:`grainbench.weights.resolve_weights`) predicts with published weights
    instead of training: one learned model, the one the weights are of.
    """
    from .executors import RunContext, execute

    records_dir = user_records_dir() if records_dir is None else records_dir
    work_root = runs_root() if work_root is None else work_root
    entry = data.get_dataset(dataset)
    protocol_id = get_protocol(protocol or entry.protocol or "wpunet-2019").id
    if init_from is not None and not isinstance(init_from, InitFrom):
        init_from = resolve_init_from(init_from, records_dir=records_dir, work_root=work_root)
    if pseudo_labels is not None and not isinstance(pseudo_labels, InitFrom):
        pseudo_labels = resolve_init_from(pseudo_labels, records_dir=records_dir, work_root=work_root,
                                          option="--pseudo-labels")
    validate_run(models, dataset, preset=preset, modes=modes, model_args=model_args or {},
                 overrides=overrides or {}, device=device if executor == "local" else None,  # a worker's device
                 split=split, init_from=init_from, post=post, post_params=post_params, grey=grey,
                 pseudo_labels=pseudo_labels)
    if weights is not None:
        from .weights import WeightsError

        if len(models) != 1 or models[0] != weights.card["method"]:
            raise WeightsError(f"{weights.source}: weights of method {weights.card['method']!r}, not "
                               f"{', '.join(models)!r}")
        if not get_model_class(models[0]).presets:
            raise WeightsError(f"{weights.source}: method {models[0]!r} is not trained; it takes no weights")
        if init_from is not None:
            raise RunError("--weights and --init-from exclude each other (fine-tune from weights with --init-from)")
    existing = existing_records(records_dir, dataset)  # read once; each run adds what it writes
    specs = []
    for name in models:
        cls = get_model_class(name)
        # Shared arguments (e.g. width) go to the models whose constructor takes them.
        args = {k: v for k, v in (model_args or {}).items() if accepts(cls, k)}
        ignored = sorted(set(model_args or {}) - set(args))
        if ignored:
            log(f"{name}: takes no {', '.join(ignored)}; ignored for it")
        chosen = post_for(cls, post, post_params)
        for seed in seeds:
            spec = RunSpec(model=name, dataset=dataset, preset=preset, seed=seed, protocol=protocol_id,
                           modes=modes, model_args=args, overrides=dict(overrides or {}), split=split,
                           init_from=init_from, grey=grey, post=chosen.name, post_params=chosen.params,
                           pseudo_labels=pseudo_labels, tune=dict(tune) if tune else None,
                           weights=weights, settings_from=settings_from)
            specs.append(spec)
    context = RunContext(Path(records_dir), Path(work_root), device, figures_dir, progress, max_epochs, tolerant,
                         force, metrics)
    return execute(specs, context, executor, existing=existing, log=log)


def summary_table(outcomes: list[RunOutcome]) -> Any:
    """Mean and spread per (model, mode) over the seeds of these runs (a pandas DataFrame).

    Ranked like the leaderboard: fair rows best first, degenerate predictions
    (``flag``) last, then the ``oracle`` rows (an upper bound, not ranked).
    """
    import pandas as pd

    from .leaderboard import ORACLE, collect, summarise
    from .records import read_record

    paths = [p for o in outcomes for p in o.records]
    if not paths:
        return pd.DataFrame()
    runs = collect([(p, read_record(p)) for p in paths])
    parts = [summarise(part) for part in (runs[runs["mode"] != ORACLE], runs[runs["mode"] == ORACLE])
             if not part.empty]
    return pd.concat(parts, ignore_index=True)
