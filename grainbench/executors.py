"""Where the runs of ``grainbench run`` execute: one after another in this process, or as Ray tasks.

:func:`execute` takes the :class:`~grainbench.runner.RunSpec` list that
:func:`grainbench.runner.run_many` builds and runs every spec through
:func:`grainbench.runner.run_one`, the one code path of a run (records,
checkpoints, skip and resume rules):

- ``local`` (the default): in order, in this process, the dataset loaded once;
  an error stops the sweep (as it always did).
- ``ray`` (:class:`RayExecutor`): each run is one Ray task (``--cpus-per-run``,
  ``--gpus-per-run``); without an address Ray starts a local cluster for the
  call and stops it after, with one (``auto`` or ``HOST:PORT``) grainbench
  joins that cluster. A failed run is reported with its error (one line) and
  the others go on (:attr:`RunOutcome.status` ``"failed"``).

Ray, step by step:

1. The driver (this process) fetches (or generates) the dataset into its
   cache once, so workers sharing that cache do not all download it at the
   same time; it skips the runs whose records exist
   (:func:`grainbench.runner.finished_outcome`, the same rule as a local run)
   and sends the rest, each with the records of it that exist already (a
   propagation method with one mode recorded scores only the other).
2. A worker checks that it runs the driver's code version and sees the
   driver's dataset hashes (else a record it made would never count as
   finished, and the sweep would rerun forever), then calls ``run_one``
   with a private temporary records folder. Checkpoints go to the driver's
   ``work_root`` (made absolute): on a filesystem every node mounts, an
   interrupted run resumes wherever its next task lands; otherwise on the
   node that ran it.
3. The worker returns its records (and overlay figures) as data; the driver
   validates and writes them into the records folder atomically
   (:func:`grainbench.records.write_record`) as each run finishes, so the
   nodes need no shared records folder.

Workers get the data through the registry and the cache like any run: the
driver's ``GRAINBENCH_*`` variables (``GRAINBENCH_DATA`` made absolute,
``GRAINBENCH_MIRROR``, ``GRAINBENCH_REGISTRY``, ...) and the thread settings
are passed explicitly to every task (``runtime_env`` ``env_vars``,
:func:`forwarded_env`).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GrainbenchError
from .runner import DataCache, RunError, RunOutcome, RunSpec, finished_outcome, run_one

#: Executor names of ``grainbench run --executor``.
EXECUTORS = ("local", "ray")
#: Variables passed to every Ray task besides the ``GRAINBENCH_*`` ones.
FORWARDED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
#: ``GRAINBENCH_*`` variables that hold a folder or file; made absolute, since a worker's folder is not ours.
PATH_VARIABLES = ("GRAINBENCH_DATA", "GRAINBENCH_RUNS", "GRAINBENCH_REGISTRY")


@dataclass(frozen=True)
class RunContext:
    """What every run of one sweep shares: where things go and the options of :func:`run_one`."""

    records_dir: Path
    work_root: Path
    device: str | None = None
    figures_dir: Path | None = None
    progress: bool = True
    max_epochs: int | None = None
    tolerant: bool = False
    force: bool = False
    metrics: str = "standard"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`run_one` besides the spec and the folders."""
        return {"device": self.device, "progress": self.progress, "max_epochs": self.max_epochs,
                "tolerant": self.tolerant, "force": self.force, "metrics": self.metrics}


def execute(specs: list[RunSpec], context: RunContext, executor: str | RayExecutor = "local", *,
            existing: list[tuple[Path, dict]], log: Callable[[str], None] = print) -> list[RunOutcome]:
    """Run every spec with ``executor`` (``"local"``, ``"ray"`` or a :class:`RayExecutor`); outcomes in spec order.

    ``existing`` are the dataset's records already read; records written are appended to it.
    """
    if executor == "local":
        return run_local(specs, context, existing=existing, log=log)
    if executor == "ray":
        executor = RayExecutor()
    if not isinstance(executor, RayExecutor):
        raise RunError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    return executor.run(specs, context, existing=existing, log=log)


def make_executor(name: str = "local", *, address: str | None = None, cpus_per_run: float | None = None,
                  gpus_per_run: float | None = None) -> str | RayExecutor:
    """The executor ``grainbench run --executor NAME [--address A] [--cpus-per-run N] [--gpus-per-run N]`` names.

    The Ray options given with ``local`` are refused (they would be ignored silently).
    """
    if name == "local":
        given = [o for o, v in (("--address", address), ("--cpus-per-run", cpus_per_run),
                                ("--gpus-per-run", gpus_per_run)) if v is not None]
        if given:
            raise RunError(f"{', '.join(given)} only apply with --executor ray")
        return "local"
    if name == "ray":
        return RayExecutor(address=address, cpus_per_run=1.0 if cpus_per_run is None else cpus_per_run,
                           gpus_per_run=gpus_per_run)
    raise RunError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")


def run_local(specs: list[RunSpec], context: RunContext, *, existing: list[tuple[Path, dict]],
              log: Callable[[str], None] = print) -> list[RunOutcome]:
    """The specs one after another in this process (the data loaded once); an error stops the sweep."""
    cache = DataCache()
    outcomes = []
    for spec in specs:
        t0 = time.perf_counter()
        outcome = run_one(spec, records_dir=context.records_dir, work_root=context.work_root,
                          figures_dir=context.figures_dir, cache=cache, log=log, existing=existing,
                          **context.options())
        log(f"{spec.model} seed {spec.seed}: {outcome.status} in {time.perf_counter() - t0:.1f} s")
        outcomes.append(outcome)
    return outcomes


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables every Ray task gets: ``GRAINBENCH_*`` (paths made absolute) and :data:`FORWARDED`."""
    environ = dict(os.environ if environ is None else environ)
    out = {k: v for k, v in environ.items() if k.startswith("GRAINBENCH_") or k in FORWARDED}
    for key in PATH_VARIABLES:
        if out.get(key):
            out[key] = str(Path(out[key]).expanduser().absolute())
    return out


def error_line(exc: BaseException) -> str:
    """One line for a run's failure: the message of a grainbench error, else ``Type: first line``.

    A Ray task error carries the worker's exception as ``cause``; that is what is described.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, GrainbenchError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")


@dataclass
class RayExecutor:
    """Runs each spec as one Ray task.

    Parameters
    ----------
    address : str, optional
        A running cluster (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``);
        None starts a local one for the call (``num_cpus`` of this machine)
        and stops it at the end. An already connected Ray session (``ray.init``
        done by the caller) is used as it is and left running.
    cpus_per_run : float
        Ray's ``num_cpus`` of each task; a worker's torch gets that many threads
        (unless ``GRAINBENCH_THREADS`` or ``OMP_NUM_THREADS`` is set).
    gpus_per_run : float, optional
        Ray's ``num_gpus`` of each task (a fraction packs several runs on one
        GPU). Default: 1 when the cluster has GPUs and the device is not
        ``cpu``, else 0. Runs without a GPU run on the CPU (``--device auto``
        then means ``cpu``: a GPU Ray did not give the task may be another's).
    num_cpus : int, optional
        CPUs of the local cluster started without ``address`` (default: all).
    temp_dir : path, optional
        Ray's session folder of a local cluster (default Ray's, ``/tmp/ray``).
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float | None = None
    num_cpus: int | None = None
    temp_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.cpus_per_run > 0:
            raise RunError(f"--cpus-per-run must be > 0, got {self.cpus_per_run}")
        if self.gpus_per_run is not None and not self.gpus_per_run >= 0:
            raise RunError(f"--gpus-per-run must be >= 0, got {self.gpus_per_run}")

    def run(self, specs: list[RunSpec], context: RunContext, *, existing: list[tuple[Path, dict]],
            log: Callable[[str], None] = print) -> list[RunOutcome]:
        """Skip the finished specs here, send the others to Ray, write their records as they finish."""
        from .extras import require

        ray = require("ray", what="--executor ray")
        context = _absolute(context)
        started = self._connect(ray, log)
        try:
            return self._sweep(ray, specs, context, existing, log)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any, log: Callable[[str], None]) -> bool:
        """Join or start the cluster; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            kwargs.update(num_cpus=self.num_cpus, _temp_dir=self.temp_dir)
        try:
            ray.init(address=self.address, **{k: v for k, v in kwargs.items() if v is not None})
        except ConnectionError as exc:
            raise RunError(f"--address {self.address}: cannot join a Ray cluster there ({error_line(exc)}); "
                           "start one with `ray start --head` or drop --address for a local one") from None
        resources = ray.cluster_resources()
        log(f"ray: {'joined ' + self.address if self.address else 'started a local cluster'}: "
            f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
        return True

    def _gpus(self, ray: Any, device: str | None) -> float:
        if self.gpus_per_run is not None:
            gpus = float(self.gpus_per_run)
        else:
            gpus = 1.0 if device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        if gpus == 0 and device is not None and device.startswith("cuda"):
            raise RunError(f"--device {device} with --gpus-per-run 0: give each run a GPU (--gpus-per-run 1)")
        have = ray.cluster_resources()
        for option, want, kind in (("--cpus-per-run", self.cpus_per_run, "CPU"), ("--gpus-per-run", gpus, "GPU")):
            if want > have.get(kind, 0):  # Ray would queue such a task forever
                raise RunError(f"{option} {want:g}: the Ray cluster has {have.get(kind, 0):g} {kind}s in all, "
                               "so no run could ever start; ask for less or add nodes")
        return gpus

    def _sweep(self, ray: Any, specs: list[RunSpec], context: RunContext, existing: list[tuple[Path, dict]],
               log: Callable[[str], None]) -> list[RunOutcome]:
        from . import data
        from .progress import progress
        from .records import code_version

        gpus = self._gpus(ray, context.device)
        device = context.device if gpus > 0 else "cpu"
        # The worker gets only what a run needs; progress bars stay with the driver.
        worker_context = RunContext(context.records_dir, context.work_root, device,
                                    context.figures_dir, False, context.max_epochs, context.tolerant,
                                    context.force, context.metrics)
        task = ray.remote(_remote_run).options(
            num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=0,
            runtime_env={"env_vars": forwarded_env()})
        code = code_version()
        for dataset in dict.fromkeys(s.dataset for s in specs):  # once here, not by every worker at once
            entry = data.get_dataset(dataset)
            wanted = {s.split for s in specs if s.dataset == dataset} | {"train", "val"}
            data.fetch(dataset, splits=[s for s in entry.splits if s in wanted])
        outcomes: list[RunOutcome | None] = [None] * len(specs)
        pending: dict[Any, tuple[int, float]] = {}
        for i, spec in enumerate(specs):
            skipped, done = finished_outcome(spec, existing, force=context.force, log=log)
            if skipped is not None:
                outcomes[i] = skipped
                continue
            mine = [(str(p), rec) for p, rec in existing if str(p) in {str(d) for d in done.values()}]
            ref = task.remote(spec, worker_context, mine, code, data.dataset_hashes(spec.dataset),
                              self.cpus_per_run)
            pending[ref] = (i, time.perf_counter())
        total, finished = len(specs), len(specs) - len(pending)
        if finished:
            log(f"ray: {finished} of {total} run(s) skipped (records exist), {len(pending)} sent")
        try:
            with progress("runs", total=total) as bar:
                bar.advance(finished)
                while pending:
                    [ref], _ = ray.wait(list(pending), num_returns=1)
                    i, t0 = pending.pop(ref)
                    spec = specs[i]
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the task raised or its worker died: report, go on
                        outcome = RunOutcome(spec, "failed", error=error_line(exc))
                        took = f"after {time.perf_counter() - t0:.1f} s"  # queued and running
                    else:
                        outcome = _gather(spec, result, context, existing)
                        took = f"in {result['seconds']:.1f} s on {result['node']}"
                    outcomes[i] = outcome
                    finished += 1
                    note = f": {outcome.error}" if outcome.error else ""
                    log(f"{spec.model} seed {spec.seed}: {outcome.status}{note} {took} ({finished}/{total})")
                    bar.advance()
        except BaseException:  # Ctrl-C or a driver error: leave no run working for nobody
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return [o for o in outcomes if o is not None]


def _absolute(context: RunContext) -> RunContext:
    """The context with absolute folders: a worker's current folder is not the driver's."""
    from dataclasses import replace

    figures = context.figures_dir.absolute() if context.figures_dir is not None else None
    return replace(context, records_dir=context.records_dir.absolute(), work_root=context.work_root.absolute(),
                   figures_dir=figures)


def _remote_run(spec: RunSpec, context: RunContext, existing: list[tuple[str, dict]], code: str,
                hashes: dict[str, str], cpus: float) -> dict[str, Any]:
    """One run on a Ray worker: :func:`run_one` into a temporary records folder; its records come back as data."""
    from . import data
    from .records import code_version, read_record
    from .threads import configure_threads

    t0 = time.perf_counter()
    node = socket.gethostname()
    mine = code_version()
    if mine != code:
        raise RunError(f"the worker on {node} runs grainbench {mine}, the driver {code}: install the same "
                       "grainbench (commit and changes) on every node")
    theirs = data.dataset_hashes(spec.dataset)
    if theirs != hashes:
        raise RunError(f"the worker on {node} sees dataset {spec.dataset!r} with other hashes than the driver "
                       "(another registry or import there?); use the same GRAINBENCH_DATA/GRAINBENCH_REGISTRY")
    env_threads = os.environ.get("GRAINBENCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    configure_threads(None if env_threads else max(1, round(cpus)))
    with tempfile.TemporaryDirectory(prefix="grainbench-ray-") as tmp:
        records_dir = Path(tmp) / "records"
        figures_dir = Path(tmp) / "figures" if context.figures_dir is not None else None
        lines: list[str] = []
        outcome = run_one(spec, records_dir=records_dir, work_root=context.work_root, figures_dir=figures_dir,
                          log=lines.append, existing=[(Path(p), rec) for p, rec in existing],
                          **context.options())
        new = [p for p in outcome.records if records_dir in p.parents]
        figures = {str(p.relative_to(figures_dir)): p.read_bytes() for p in outcome.figures} if figures_dir else {}
        return {"status": outcome.status, "fit_source": outcome.fit_source, "node": node, "log": lines,
                "seconds": time.perf_counter() - t0,
                "kept": [str(p) for p in outcome.records if p not in new],
                "records": [read_record(p) for p in new],
                "figures": figures, "figures_root": str(figures_dir) if figures_dir else None}


def _gather(spec: RunSpec, result: dict[str, Any], context: RunContext,
            existing: list[tuple[Path, dict]]) -> RunOutcome:
    """Write what a worker returned: figures under ``figures_dir``, records (pointing at them) under the records folder."""
    from .io import atomic_write
    from .records import write_record

    figures = []
    root = result["figures_root"]
    for rel, blob in result["figures"].items():
        target = context.figures_dir / rel
        with atomic_write(target) as fh:
            fh.write(blob)
        figures.append(target)
    paths = [Path(p) for p in result["kept"]]
    for rec in result["records"]:
        if root:  # the worker's temporary figure paths become ours
            rec["figures"] = {k: str(context.figures_dir / Path(v).relative_to(root)) if v.startswith(root) else v
                              for k, v in rec["figures"].items()}
        paths.append(write_record(rec, context.records_dir / spec.dataset))
        existing.append((paths[-1], rec))
    return RunOutcome(spec, result["status"], paths, figures, result["fit_source"])
