"""Run records: one JSON file per run, versioned, written atomically, never overwritten silently.

A record carries what is needed to re-create its row: the configuration, the
protocol (all its settings), per-slice and aggregate metrics, timings, the
environment (grainbench, torch, CUDA, Python, device), the git commit, and
the hashes of the dataset and checkpoint.
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
from pathlib import Path
from typing import Any

from . import __version__
from .errors import GrainbenchError
from .io import atomic_write

SCHEMA_VERSION = 1
RECORD_KINDS = ("run", "submission")
REQUIRED = {
    "schema_version": int,
    "run_id": str,
    "kind": str,
    "created": str,
    "config": dict,
    "protocol": dict,
    "metrics": dict,
    "environment": dict,
}
REQUIRED_CONFIG = ("model", "dataset", "split", "protocol")


class RecordError(GrainbenchError):
    """A record file is missing, corrupt, of an unknown schema or would be overwritten."""


def git_commit(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The current git commit and whether the work tree has changes (None outside a checkout)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def environment(device: str | None = None) -> dict[str, Any]:
    """Versions and hardware a result depends on."""
    import numpy
    import torch

    env: dict[str, Any] = {
        "grainbench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device or "cpu",
        "device_name": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device and device.startswith("cuda") and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


def make_record(*, config: dict[str, Any], protocol: dict[str, Any], aggregate: dict[str, float],
                per_slice: list[dict[str, Any]], kind: str = "run", timings: dict[str, float] | None = None,
                dataset_hashes: dict[str, str] | None = None, checkpoint_sha256: str | None = None,
                device: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble a record (not yet written). ``run_id`` is derived from the config and the time."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"record kind must be one of {RECORD_KINDS}, got {kind!r}")
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise ValueError(f"record config lacks {missing}")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    # A random nonce keeps ids unique when the same run is recorded twice within one second.
    nonce = uuid.uuid4().hex
    digest = hashlib.sha256(json.dumps([config, created, nonce], sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [config["dataset"], config["model"], config.get("preset") or kind, f"seed{config.get('seed', 0)}"]
    if config.get("mode"):
        parts.append(config["mode"])
    run_id = "-".join(str(p).replace("/", "_").replace(":", "_") for p in parts) + f"-{digest}"
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "kind": kind,
        "created": created,
        "config": config,
        "protocol": protocol,
        "metrics": {"aggregate": aggregate, "per_slice": per_slice},
        "timings": timings or {},
        "environment": environment(device),
        "git": git_commit(),
        "dataset": {"name": config["dataset"], "hashes": dataset_hashes or {}},
        "checkpoint": {"sha256": checkpoint_sha256},
    }
    if extra:
        record["extra"] = extra
    return record


def validate_record(record: Any, source: str = "record") -> dict[str, Any]:
    """Check the shape of a record; raise :class:`RecordError` naming ``source`` and the problem."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record must be a JSON object, got {type(record).__name__}")
    for key, typ in REQUIRED.items():
        if key not in record:
            raise RecordError(f"{source}: missing field '{key}'")
        if not isinstance(record[key], typ):
            raise RecordError(f"{source}: field '{key}' should be {typ.__name__}, got {type(record[key]).__name__}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema version {record['schema_version']} is not supported "
                          f"(this grainbench reads version {SCHEMA_VERSION})")
    if record["kind"] not in RECORD_KINDS:
        raise RecordError(f"{source}: kind must be one of {RECORD_KINDS}, got {record['kind']!r}")
    missing = [k for k in REQUIRED_CONFIG if k not in record["config"]]
    if missing:
        raise RecordError(f"{source}: config lacks {missing}")
    aggregate = record["metrics"].get("aggregate")
    if not isinstance(aggregate, dict) or not all(isinstance(v, (int, float)) for v in aggregate.values()):
        raise RecordError(f"{source}: metrics.aggregate must map metric names to numbers")
    return record


def write_record(record: dict[str, Any], directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``<directory>/<run_id>.json`` atomically; refuse to replace an existing file unless asked."""
    validate_record(record)
    path = Path(directory) / f"{record['run_id']}.json"
    if path.exists() and not overwrite:
        raise RecordError(f"{path}: a record with this run id exists already; not overwriting it")
    with atomic_write(path, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=False, default=_json_default)
        fh.write("\n")
    return path


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one record; a corrupt file is an error naming it, never half-read."""
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
