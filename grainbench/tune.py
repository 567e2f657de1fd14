"""Hyperparameter search on Ray Tune with the ASHA scheduler (seed 004's two-step HPO), behind ``grainbench tune``.

A *study* samples configurations from a search space (:mod:`grainbench.space`)
and trains one grainbench run per configuration (a *trial*), through the
runner's own code path (:func:`grainbench.runner.run_many`): same presets,
checkpoints, scoring and records. Each trial scores the ``val`` split (its
training then selects and stops on a held-out part of train; the test split
is never looked at), and after every epoch hands its validation loss to
Ray Tune (:mod:`grainbench.training.hooks`), where ASHA (asynchronous
successive halving, Li et al. 2018) stops the trials whose loss is in the
worse half of those that reached the same epoch rung before. A trial that
finishes writes its record, tagged ``config.tune = {study, trial}``.

The best finished trial is the one with the best value of the protocol's
primary metric on ``val`` (VI for boundaries, IoU for phases; ``metric``
chooses another); its settings are written as a settings file
(``best.toml``, :mod:`grainbench.runconfig`) that ``grainbench run --config``
takes, and ``study.json`` lists every trial (settings, epochs run, whether
ASHA stopped it, its metric and record).

Two steps, as in the paper: (1) a study trained on pseudo-labels
(``pseudo_labels``: an earlier run's predictions, :mod:`grainbench.pseudo`),
(2) a fine-tuning study from step 1's best checkpoint (``init_from``) on the
hand labels, with step 1's best settings as its fixed base (``overrides``,
``model_args``) and a smaller space (the paper kept patch and batch size).

Folder of a study ``<root>/<study>/``: ``records/<dataset>/`` (trial
records), ``work/`` (trial checkpoints and cached pseudo-labels), ``ray/``
(Ray Tune's own results), ``best.toml``, ``study.json``.

Ray: without ``address`` a local Ray instance is started with ``num_cpus``
cores (default: every trial's cores times the concurrency), no dashboard and
its temporary files under the runs folder, and stopped at the end; with
``address`` (``auto`` or ``HOST:PORT``) the study joins an existing cluster,
whose nodes must have grainbench and the data installed. Ray is imported
here only, and only when a study runs (the ``tune`` extra).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data
from .errors import GrainbenchError
from .io import atomic_write
from .names import path_component, validate_name
from .paths import runs_root
from .runconfig import write_run_config
from .space import Space, to_ray

#: Where studies go by default: ``<runs>/tune``.
TUNE_DIR = "tune"
#: The per-epoch metric ASHA compares (the trainer's validation loss) and its time axis.
ASHA_METRIC, ASHA_TIME = "val_loss", "epoch"
#: Longest path of Ray's temporary folder whose sockets still fit a Unix socket name (107 bytes).
_MAX_RAY_TMP = 40


class TuneError(GrainbenchError):
    """A study cannot be set up or produced no finished trial."""


@dataclass
class TrialSummary:
    """One trial of a study, as ``study.json`` lists it.

    ``stopped_early``: ASHA stopped it before it was scored (no record); that can be after its
    last epoch, when that epoch is a rung (``epochs`` then equals its planned epochs).
    ``status``: ``finished`` (scored, record written), ``stopped`` or ``error``.
    """

    trial: str
    settings: dict[str, dict[str, Any]]
    epochs: int
    planned_epochs: int | None
    stopped_early: bool
    status: str
    val_loss: float | None = None
    score: float | None = None
    record: str | None = None
    checkpoint: str | None = None
    error: str | None = None


@dataclass
class StudyResult:
    """What a study produced."""

    study: str
    folder: Path
    metric: str
    lower_is_better: bool
    trials: list[TrialSummary] = field(default_factory=list)
    best: TrialSummary | None = None
    best_config: Path | None = None
    summary: Path | None = None

    @property
    def stopped(self) -> list[TrialSummary]:
        """The trials ASHA stopped before their last epoch."""
        return [t for t in self.trials if t.stopped_early]


def default_study_name(model: str, dataset: str) -> str:
    """``<model>-<dataset>-<UTC time>``, a valid name."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{path_component(model, 'model')}-{path_component(dataset, 'dataset')}-{stamp}"


def selection_metric(protocol_id: str, metric: str | None) -> tuple[str, bool]:
    """(metric, lower is better) that picks the best trial: ``metric`` or the protocol's primary one."""
    from .leaderboard import PRIMARY
    from .protocol import get_protocol
    from .regression import HIGHER_IS_BETTER, LOWER_IS_BETTER

    if metric is None:
        name, ascending = PRIMARY.get(get_protocol(protocol_id).task, PRIMARY["boundary"])
        return name, ascending
    if metric not in LOWER_IS_BETTER | HIGHER_IS_BETTER:
        known = ", ".join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))
        raise TuneError(f"--metric {metric!r}: not a metric with a better direction; known: {known}")
    return metric, metric in LOWER_IS_BETTER


def _trial(config: dict[str, Any], job: dict[str, Any]) -> None:
    """One trial (runs in a Ray worker): a grainbench run of the sampled settings, reporting every epoch."""
    from ray import tune

    from .records import read_record
    from .runner import run_many
    from .threads import configure_threads
    from .training.hooks import on_epoch

    configure_threads(job["threads"])
    trial_id = tune.get_context().get_trial_id()
    overrides = {**job["overrides"], **config.get("set", {})}
    model_args = {**job["model_args"], **config.get("model_arg", {})}

    def report(epoch: int, metrics: dict[str, float]) -> None:
        tune.report({ASHA_TIME: epoch, ASHA_METRIC: metrics["val_loss"], "train_loss": metrics["train_loss"]})

    with on_epoch(report):
        outcome = run_many([job["model"]], job["dataset"], [job["seed"]], preset=job["preset"],
                           protocol=job["protocol"], model_args=model_args, overrides=overrides,
                           records_dir=Path(job["records"]), work_root=Path(job["work"]), device=job["device"],
                           progress=False, split="val", init_from=job["init_from"],
                           pseudo_labels=job["pseudo_labels"], tune={"study": job["study"], "trial": trial_id},
                           log=lambda msg: None)[0]
    path = outcome.records[0]
    rec = read_record(path)
    fit = rec["extra"].get("fit", {})
    history = fit.get("history", {}).get("val_loss") or [math.nan]
    score = rec["metrics"]["aggregate"].get(job["metric"], math.nan)
    work = outcome.spec.work_dir(Path(job["work"])) / "model.pt"
    tune.report({ASHA_TIME: int(fit.get("epochs") or len(history)), ASHA_METRIC: float(history[-1]),
                 "score": float(score), "record": str(path), "checkpoint": str(work) if work.is_file() else "",
                 "planned_epochs": int((rec["config"].get("preset_config") or {}).get("epochs") or 0)})


def _ray_temp_dir(root: Path) -> tuple[str, bool]:
    """(folder, made here) for Ray's session files: ``<runs>/.ray`` when short enough for Ray's socket
    names, else a new folder under the system temp dir (removed when the study ends)."""
    here = root.resolve() / ".ray"
    if len(str(here)) <= _MAX_RAY_TMP:
        here.mkdir(parents=True, exist_ok=True)
        return str(here), False
    return tempfile.mkdtemp(prefix="gb-ray-"), True


def run_study(model: str, dataset: str, space: Space, *, samples: int = 8, study: str | None = None,
              preset: str = "quick", seed: int = 0, protocol: str | None = None,
              overrides: dict[str, Any] | None = None, model_args: dict[str, Any] | None = None,
              init_from: str | Path | None = None, pseudo_labels: str | Path | None = None,
              records_dir: Path | None = None, work_root: Path | None = None, root: Path | None = None,
              device: str | None = None, metric: str | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_concurrent: int | None = None,
              num_cpus: int | None = None, address: str | None = None, grace_period: int = 1,
              reduction_factor: float = 2, log: Callable[[str], None] = print) -> StudyResult:
    """Run a study (module doc) and write its ``best.toml`` and ``study.json``.

    Parameters
    ----------
    model, dataset : str
        One method and one dataset (with a ``val`` split).
    space : Space
        The search space (:func:`grainbench.space.load_space`).
    seed : int
        Seed of every trial's training and of the sampling of the settings.
    samples : int
        Configurations drawn (each ``grid`` value is tried ``samples`` times, as in Ray Tune).
    study : str, optional
        Name of the study (default :func:`default_study_name`); an existing study is refused.
    overrides, model_args : dict
        Fixed settings under the space's (e.g. ``--config`` of an earlier study's best).
    init_from, pseudo_labels : optional
        As for ``grainbench run`` (named like ``--init-from``); resolved against
        ``records_dir`` / ``work_root`` (default: the runs folder's).
    root : path
        Studies go to ``<root>/<study>`` (default ``<runs>/tune``).
    metric : str, optional
        Aggregate metric on ``val`` that picks the best trial (default: the protocol's primary).
    cpus_per_trial, gpus_per_trial : float
        Ray resources of each trial (and the torch threads of a trial: ``cpus_per_trial`` rounded up).
    max_concurrent : int, optional
        Trials running at once (default: as many as the resources allow).
    num_cpus : int, optional
        Cores of the local Ray instance (default ``cpus_per_trial * max_concurrent``, or every core).
    address : str, optional
        Join this Ray cluster instead of starting one.
    grace_period, reduction_factor
        ASHA: epochs before a trial may be stopped, and the halving rate.

    Raises
    ------
    TuneError
        Bad options, an existing study, or no trial finished.
    """
    from .extras import require
    from .protocol import get_protocol
    from .runner import RunError, resolve_init_from, validate_run
    from .paths import user_records_dir

    require("ray.tune", what="grainbench tune")
    entry = data.get_dataset(dataset)
    if "val" not in entry.splits:
        raise TuneError(f"dataset {dataset!r} has no val split: trials are scored on val, never on test")
    if samples < 1:
        raise TuneError(f"--samples {samples}: at least one trial is needed")
    if cpus_per_trial <= 0 or gpus_per_trial < 0 or (max_concurrent is not None and max_concurrent < 1):
        raise TuneError("--cpus-per-trial must be > 0, --gpus-per-trial >= 0 and --max-concurrent >= 1")
    if grace_period < 1 or reduction_factor <= 1:
        raise TuneError("--grace-period must be >= 1 and --reduction-factor > 1")
    study = validate_name(study or default_study_name(model, dataset), "study")
    protocol_id = get_protocol(protocol or entry.protocol or "wpunet-2019").id
    metric, lower = selection_metric(protocol_id, metric)
    records_dir = (user_records_dir() if records_dir is None else Path(records_dir)).resolve()
    work_root = (runs_root() if work_root is None else Path(work_root)).resolve()
    root = ((runs_root() / TUNE_DIR) if root is None else Path(root)).resolve()
    folder = root / path_component(study, "study")
    if (folder / "study.json").exists() or (folder / "ray").exists():
        raise TuneError(f"study {study!r} exists ({folder}); pick another --study")
    overrides, model_args = dict(overrides or {}), dict(model_args or {})
    try:
        parent = resolve_init_from(init_from, records_dir=records_dir, work_root=work_root) if init_from else None
        pseudo = (resolve_init_from(pseudo_labels, records_dir=records_dir, work_root=work_root,
                                    option="--pseudo-labels") if pseudo_labels else None)
        # The fixed settings with each dimension's bounds: a bad combination fails before Ray starts.
        for d in space.dimensions:
            for value in d.values_to_check():
                over = {**overrides, **space.fixed("set"), **({d.key: value} if d.table == "set" else {})}
                args = {**model_args, **space.fixed("model_arg"), **({d.key: value} if d.table == "model_arg" else {})}
                validate_run([model], dataset, preset=preset, modes=None, model_args=args, overrides=over,
                             device=device, split="val", init_from=parent, pseudo_labels=pseudo)
    except RunError as exc:
        raise TuneError(str(exc)) from None
    data.load(dataset, "val")  # fetch or generate once here, not in every trial at the same time

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    import ray

    horizon = int(space.max_value("set", "epochs", None) or overrides.get("epochs") or _preset_epochs(model, preset))
    job = {"model": model, "dataset": dataset, "seed": seed, "preset": preset, "protocol": protocol_id,
           "overrides": overrides, "model_args": model_args, "records": str(folder / "records"),
           "work": str(folder / "work"), "device": device, "init_from": parent, "pseudo_labels": pseudo,
           "study": study, "metric": metric, "threads": max(1, math.ceil(cpus_per_trial))}
    started, scratch = False, None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            package_root = str(Path(__file__).resolve().parent.parent)  # workers import this grainbench
            path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
            cores = num_cpus or (math.ceil(cpus_per_trial * max_concurrent) if max_concurrent else os.cpu_count())
            temp, made = _ray_temp_dir(runs_root())
            scratch = temp if made else None
            ray.init(num_cpus=cores, num_gpus=None if gpus_per_trial else 0, include_dashboard=False,
                     _temp_dir=temp, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}})
        started = True
    try:
        log(f"study {study}: {samples} trial(s) of {model} on {dataset}/val, ASHA on {ASHA_METRIC} over "
            f"{horizon} epoch(s) (grace {grace_period}, reduction {reduction_factor:g}); folder {folder}")
        scheduler = ASHAScheduler(time_attr=ASHA_TIME, max_t=max(horizon, 1), grace_period=grace_period,
                                  reduction_factor=reduction_factor, stop_last_trials=False)
        resources = {"cpu": cpus_per_trial, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, job=job), resources),
            param_space=to_ray(space),
            tune_config=tune.TuneConfig(metric=ASHA_METRIC, mode="min", scheduler=scheduler, num_samples=samples,
                                        # the same seed draws the same settings (ASHA's stops depend on timing)
                                        search_alg=BasicVariantGenerator(random_state=seed,
                                                                         max_concurrent=max_concurrent or 0)),
            run_config=tune.RunConfig(name="ray", storage_path=str(folder), verbose=0,
                                      callbacks=[_LogCallback(log)]),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    trials = [_summarise(r) for r in grid]
    return _finish(study, folder, metric, lower, trials, space, overrides, model_args, model, dataset, preset,
                   parent, pseudo, log)


def _preset_epochs(model: str, preset: str) -> int:
    from .methods.registry import get_model_class
    from .training.presets import get_preset

    defaults = getattr(get_model_class(model), "preset_defaults", {}).get(preset, {})
    return get_preset(preset, **defaults).epochs


class _LogCallback:
    """Ray Tune callback: one line per finished trial (built on first use: Ray is imported lazily).

    Ray pickles it with the study, so ``log`` must pickle: a module-level function, not a closure over a console.
    """

    def __new__(cls, log: Callable[[str], None]) -> Any:
        from ray.tune import Callback

        class _Log(Callback):
            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                res = trial.last_result or {}
                how = f"finished, score {res['score']:.4f}" if "record" in res else \
                    f"stopped by ASHA after epoch {res.get(ASHA_TIME, 0)}"
                log(f"trial {trial.trial_id}: {how} (val loss {res.get(ASHA_METRIC, float('nan')):.4f})")

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                log(f"trial {trial.trial_id}: failed (see {trial.local_path or 'the Ray logs'})")

        return _Log()


def _summarise(result: Any) -> TrialSummary:
    m = result.metrics or {}
    settings = {k: dict(v) for k, v in (result.config or {}).items()}
    finished = bool(m.get("record"))
    error = None if result.error is None else str(result.error).strip().splitlines()[-1][:300]

    def num(key: str) -> float | None:
        v = m.get(key)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    return TrialSummary(trial=str(m.get("trial_id") or Path(str(result.path)).name), settings=settings,
                        epochs=int(m.get(ASHA_TIME) or 0), planned_epochs=int(m["planned_epochs"]) if finished else None,
                        stopped_early=not finished and error is None, status="error" if error else
                        ("finished" if finished else "stopped"), val_loss=num(ASHA_METRIC), score=num("score"),
                        record=m.get("record") or None, checkpoint=m.get("checkpoint") or None, error=error)


def _finish(study: str, folder: Path, metric: str, lower: bool, trials: list[TrialSummary], space: Space,
            overrides: dict[str, Any], model_args: dict[str, Any], model: str, dataset: str, preset: str,
            parent: Any, pseudo: Any, log: Callable[[str], None]) -> StudyResult:
    result = StudyResult(study, folder, metric, lower, trials)
    scored = [t for t in trials if t.record and t.score is not None]
    if scored:
        result.best = min(scored, key=lambda t: t.score if lower else -t.score)
        best = result.best
        source = {"study": study, "trial": best.trial, "model": model, "dataset": dataset, "preset": preset,
                  "metric": metric, "score": best.score, "record": best.record or "",
                  "checkpoint": best.checkpoint or ""}
        if parent is not None:
            source["init_from"] = parent.path
        if pseudo is not None:
            source["pseudo_labels"] = pseudo.path
        result.best_config = write_run_config(folder / "best.toml", {**overrides, **best.settings.get("set", {})},
                                              {**model_args, **best.settings.get("model_arg", {})}, source)
    summary = {"study": study, "model": model, "dataset": dataset, "preset": preset, "split": "val",
               "metric": metric, "lower_is_better": lower, "space": space.source,
               "fixed": {"set": overrides, "model_arg": model_args},
               "init_from": parent.to_dict() if parent else None, "pseudo_labels": pseudo.to_dict() if pseudo else None,
               "asha": {"metric": ASHA_METRIC, "time": ASHA_TIME},
               "best": result.best.trial if result.best else None,
               "best_config": str(result.best_config) if result.best_config else None,
               "trials": [t.__dict__ for t in trials]}
    result.summary = folder / "study.json"
    with atomic_write(result.summary, "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
        fh.write("\n")
    if result.best is None:
        errors = [t.error for t in trials if t.error]
        raise TuneError(f"study {study}: no trial finished" + (f" (first error: {errors[0]})" if errors else "")
                        + f"; see {result.summary}")
    return result
