"""Run records: one typed model (:class:`Record`), one JSON file per run, written atomically, never overwritten.

A record carries what is needed to re-create its row: the configuration
(with every field of the preset used), the protocol (all its settings),
per-slice and aggregate metrics, timings, the environment (grainbench,
Python, the library versions that change numbers, device, precision and
determinism switches), the git commit and whether the tree was dirty, the
code version, and the hashes of the dataset and checkpoint.

``run``, ``submit`` and ``track`` build records only through
:func:`make_record`; every reader goes through :func:`read_record` /
:func:`load_records`, which validate each field's type and report a bad file
(corrupt JSON, wrong types, nesting too deep, an older schema) as one
:class:`RecordError` naming it. ``grainbench schema record`` prints the JSON
Schema of :class:`Record`.

**Code version** (:func:`code_version`): ``<grainbench version>+git.<commit>``,
plus ``.dirty.<hash>`` of the uncommitted diff of tracked files when the tree
is dirty (the published ``leaderboards/`` folder excluded), or the grainbench
version alone outside a git checkout. A rerun of the same code gives the same
code version (and is skipped); any code change gives another (and reruns).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import uuid
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .errors import GrainbenchError
from .io import atomic_write
from .names import is_valid_name, path_component

SCHEMA_VERSION = 2
RECORD_KINDS = ("run", "submission")
#: Deepest nesting of objects and arrays a record file may have (records are a few levels deep).
MAX_DEPTH = 32
#: Distributions whose versions change numbers (record key -> distribution names to try).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",), "scipy": ("scipy",), "scikit-image": ("scikit-image",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "torch": ("torch",), "timm": ("timm",), "segmentation-models-pytorch": ("segmentation-models-pytorch",),
    "PyMaxflow": ("PyMaxflow",), "gudhi": ("gudhi",),
}
#: The published folder, left out of "dirty" and of the code version (rebuilding tables changes it).
_PUBLISHED_PATHSPEC = ":(top,exclude)leaderboards"


class RecordError(GrainbenchError):
    """A record file is missing, corrupt, of an unknown schema or would be overwritten."""


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, _ . - @ : +; no '..')")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Scalar = Union[bool, int, float, str, None]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitFromInfo(BaseModel):
    """The parent of a fine-tune: the weights its training started from."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(description="the checkpoint file the weights were read from (as resolved on this machine)")
    sha256: str = Field(description="sha256 of that checkpoint file")
    run_id: str | None = Field(default=None, description="the record of the run that made it, when known")
    model: str | None = Field(default=None, description="the parent run's method, when known")
    dataset: str | None = Field(default=None, description="the dataset the parent was trained on, when known")


class TuneInfo(_Part):
    """The ``grainbench tune`` trial a run was."""

    study: Name = Field(description="the study's name (its folder under the tune root)")
    trial: Name = Field(description="Ray Tune's id of the trial within the study")


class RecordConfig(BaseModel):
    """What was run. Method-specific fields (``context``, ``method_config``, ...) are kept as extras."""

    model_config = ConfigDict(extra="allow")

    model: Name
    dataset: Name
    split: Name
    protocol: Name
    preset: Name | None = None
    seed: int | None = None
    mode: Literal["oracle", "chain", "no-prior"] | None = None
    model_args: dict[str, Scalar] = Field(default_factory=dict)
    preset_overrides: dict[str, Any] = Field(default_factory=dict)
    preset_config: dict[str, Any] | None = Field(
        default=None, description="every field of the training preset used (None for methods without training)")
    boundaries: str | None = Field(default=None, description="tracking: source of the 2D boundaries")
    init_from: InitFromInfo | None = Field(
        default=None, description="fine-tune: the weights training started from (None: trained from scratch)")
    selected_on: str | None = Field(
        default=None, description="the split whose loss chose the kept weights (None: the last epoch's weights, "
                                  "as when the scored split is val)")
    grey: bool = Field(
        default=False, description="the images were reduced to one grey (luma) channel before the method saw them "
                                   "(--grey on a colour dataset)")
    post: Name | None = Field(
        default=None, description="post-processor that turned the probabilities into boundaries "
                                  "(grainbench.postprocessors; None in older records: 'protocol', the protocol's own "
                                  "threshold, closing and skeletonisation)")
    post_params: dict[str, Scalar] = Field(
        default_factory=dict, description="every parameter of the post-processor, as used (defaults filled in)")
    pseudo_labels: InitFromInfo | None = Field(
        default=None, description="the trained run whose predictions over the training images were the training "
                                  "labels (None: the dataset's own labels)")
    tune: TuneInfo | None = Field(
        default=None, description="the grainbench tune study and trial this run was (None: not a tuning trial)")
    settings_from: dict[str, Any] | None = Field(
        default=None, description="the settings file of `grainbench run --config` (its name, its set and "
                                  "model_arg tables, its [source], e.g. the tune study; None: no file)")


class ProtocolInfo(BaseModel):
    """The scoring protocol with all its settings."""

    model_config = ConfigDict(extra="allow")

    name: Name
    version: int
    task: Literal["boundary", "phase", "tracking"] = "boundary"


class Metrics(_Part):
    aggregate: dict[str, float]
    per_slice: list[dict[str, Scalar]]


class Environment(BaseModel):
    model_config = ConfigDict(extra="allow")

    grainbench: str
    python: str
    platform: str
    device: str
    device_name: str
    cpu_threads: int
    cuda: str | None = None
    libraries: dict[str, str | None] = Field(description="versions of the libraries that change numbers")
    precision: Literal["fp32", "bf16-autocast"]
    determinism: dict[str, Scalar]


class GitInfo(_Part):
    commit: str | None
    dirty: bool | None


class DatasetInfo(_Part):
    name: Name
    hashes: dict[str, str]


class CheckpointInfo(_Part):
    sha256: str | None = None


class Record(_Part):
    """One run record (schema version 2)."""

    schema_version: Literal[2]
    run_id: Name
    kind: Literal["run", "submission"]
    created: str
    code_version: str
    config: RecordConfig
    protocol: ProtocolInfo
    metrics: Metrics
    timings: dict[str, float] = Field(default_factory=dict)
    environment: Environment
    git: GitInfo
    dataset: DatasetInfo
    checkpoint: CheckpointInfo = Field(default_factory=CheckpointInfo)
    figures: dict[str, str] = Field(default_factory=dict, description="pictures of this run, by kind")
    extra: dict[str, Any] = Field(default_factory=dict)


def record_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Record` (what ``grainbench schema record`` prints)."""
    return Record.model_json_schema()


# --------------------------------------------------------------------------- provenance

def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20,
                          check=True).stdout


def _git_state(cwd: str) -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, sha256 of the uncommitted diff) of the checkout holding ``cwd``."""
    where = Path(cwd)
    try:
        commit = _git(["rev-parse", "HEAD"], where).strip()
        diff = _git(["diff", "HEAD", "--binary", "--", ":/", _PUBLISHED_PATHSPEC], where)
    except (OSError, subprocess.SubprocessError):
        return None, None, None
    return commit, bool(diff), hashlib.sha256(diff.encode()).hexdigest() if diff else None


def require_clean_tree(what: str = "publishing") -> None:
    """Raise :class:`RecordError` unless the checkout is clean (tracked files outside ``leaderboards/``)."""
    commit, dirty, _ = _git_state(str(Path(__file__).resolve().parent))
    if commit is None or dirty:
        state = "not in a git checkout" if commit is None else "the work tree has uncommitted changes"
        raise RecordError(f"{what}: {state}; published records come from a clean commit (commit or stash first)")


def code_version(cwd: str | os.PathLike | None = None) -> str:
    """``<version>+git.<commit12>[.dirty.<diff hash12>]``, or the version alone outside git (see module doc)."""
    return _code_version(*_git_state(str(cwd or Path(__file__).resolve().parent)))


def _code_version(commit: str | None, dirty: bool | None, diff: str | None) -> str:
    if commit is None:
        return __version__
    return f"{__version__}+git.{commit[:12]}" + (f".dirty.{diff[:12]}" if dirty else "")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Installed versions of :data:`LIBRARIES` (None when absent), read from package metadata."""
    out: dict[str, str | None] = {}
    for key, dists in LIBRARIES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def precision_for(device: str | None) -> str:
    """The arithmetic a device gets: bf16 autocast on CUDA (training and inference), fp32 elsewhere."""
    return "bf16-autocast" if device and device.startswith("cuda") else "fp32"


def environment(device: str | None = None) -> dict[str, Any]:
    """Versions, hardware, precision and determinism switches a result depends on."""
    import torch

    from .training.determinism import determinism_settings

    env: dict[str, Any] = {
        "grainbench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device or "cpu",
        "device_name": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "libraries": library_versions(),
        "precision": precision_for(device),
        "determinism": determinism_settings(),
    }
    if device and device.startswith("cuda") and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


# --------------------------------------------------------------------------- building and checking

def make_record(*, config: dict[str, Any], protocol: dict[str, Any], aggregate: dict[str, float],
                per_slice: list[dict[str, Any]], kind: str = "run", timings: dict[str, float] | None = None,
                dataset_hashes: dict[str, str] | None = None, checkpoint_sha256: str | None = None,
                device: str | None = None, figures: dict[str, str] | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble and validate a record (not yet written); ``run_id`` comes from the config and the time.

    Raises :class:`RecordError` when a field has the wrong type or a name is not valid.
    """
    if kind not in RECORD_KINDS:
        raise RecordError(f"record kind must be one of {RECORD_KINDS}, got {kind!r}")
    for key in ("model", "dataset", "split", "protocol"):
        if key not in config:
            raise RecordError(f"record config lacks {key!r}")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    # A random nonce keeps ids unique when the same run is recorded twice within one second.
    nonce = uuid.uuid4().hex
    digest = hashlib.sha256(json.dumps([config, created, nonce], sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [config["dataset"], config["model"], config.get("preset") or kind, f"seed{config.get('seed', 0)}"]
    if config.get("mode"):
        parts.append(config["mode"])
    try:
        run_id = "-".join(path_component(str(p), "record field") for p in parts) + f"-{digest}"
    except GrainbenchError as exc:
        raise RecordError(f"record: {exc}") from None
    commit, dirty, diff = _git_state(str(Path(__file__).resolve().parent))  # once: git and code_version agree
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "kind": kind,
        "created": created,
        "code_version": _code_version(commit, dirty, diff),
        "config": config,
        "protocol": protocol,
        "metrics": {"aggregate": aggregate, "per_slice": per_slice},
        "timings": timings or {},
        "environment": environment(device),
        "git": {"commit": commit, "dirty": dirty},
        "dataset": {"name": config["dataset"], "hashes": dataset_hashes or {}},
        "checkpoint": {"sha256": checkpoint_sha256},
        "figures": {k: str(v) for k, v in (figures or {}).items()},
        "extra": extra or {},
    }
    return validate_record(json.loads(json.dumps(record, default=_json_default)), "new record")


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests objects/arrays deeper than ``limit`` (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def validate_record(record: Any, source: str = "record") -> dict[str, Any]:
    """Check every field of a record against :class:`Record`; return it normalised, or raise :class:`RecordError`."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record must be a JSON object, got {type(record).__name__}")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema version {version!r} is not supported (this grainbench reads "
                          f"version {SCHEMA_VERSION}; rerun to make a new record)")
    if _depth_exceeds(record, MAX_DEPTH):
        raise RecordError(f"{source}: nested deeper than {MAX_DEPTH} levels; not a record")
    try:
        model = Record.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecordError(f"{source}: field '{where}': {first['msg']}{more}") from None
    except RecursionError:
        raise RecordError(f"{source}: nested too deeply; not a record") from None
    return model.model_dump()


def write_record(record: dict[str, Any], directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``<directory>/<run_id>.json`` atomically; refuse to replace an existing file unless asked."""
    record = validate_record(record)
    path = Path(directory) / f"{record['run_id']}.json"
    if path.exists() and not overwrite:
        raise RecordError(f"{path}: a record with this run id exists already; not overwriting it")
    with atomic_write(path, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=False, default=_json_default)
        fh.write("\n")
    return path


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one record; a bad file is one :class:`RecordError` naming it, never half-read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: record not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: corrupt record, not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise RecordError(f"{path}: nested too deeply; not a record") from None
    return validate_record(data, str(path))


def load_records(directory: str | os.PathLike) -> tuple[list[tuple[Path, dict]], list[str]]:
    """Read every ``*.json`` under ``directory`` (recursively, sorted) in one pass.

    Returns ``(records, problems)``: the valid ``(path, record)`` pairs, and a
    message for each file that failed to read or validate (never half-read).
    """
    records, problems = [], []
    for path in sorted(Path(directory).rglob("*.json")):
        try:
            records.append((path, read_record(path)))
        except RecordError as exc:
            problems.append(str(exc))
    return records, problems


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

