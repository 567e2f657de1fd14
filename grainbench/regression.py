"""The CI gate: compare a run record with a reference record and report regressions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GrainbenchError

LOWER_IS_BETTER = frozenset({"vi", "vi_split", "vi_merge", "bde", "betti0_error", "betti1_error", "size_js",
                             "shape_js"})
HIGHER_IS_BETTER = frozenset({"ari", "map", "bf1", "bf1_precision", "bf1_recall", "dice", "cldice", "accuracy",
                              "iou", "gauss_precision", "gauss_recall", "gauss_f1"})
GATED = LOWER_IS_BETTER | HIGHER_IS_BETTER  # counts and mean diameters are informative, not better/worse


@dataclass(frozen=True)
class MetricChange:
    metric: str
    reference: float
    value: float
    tolerance: float

    @property
    def delta(self) -> float:
        return self.value - self.reference

    @property
    def worse_by(self) -> float:
        """How much worse than the reference (positive = worse), in the metric's own units."""
        return self.delta if self.metric in LOWER_IS_BETTER else -self.delta

    @property
    def regressed(self) -> bool:
        return self.worse_by > self.tolerance + 1e-12


def parse_tolerances(items: list[str] | None, default: float) -> tuple[float, dict[str, float]]:
    """``["0.02", "vi=0.05"]`` -> (0.02, {"vi": 0.05}); a bare number sets the default."""
    per_metric: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if sep:
                per_metric[name.strip()] = float(value)
            else:
                default = float(name)
        except ValueError:
            raise GrainbenchError(f"tolerance {item!r}: expected NUMBER or METRIC=NUMBER") from None
    return default, per_metric


def compare_records(record: dict[str, Any], reference: dict[str, Any], *, tolerance: float = 0.0,
                    tolerances: dict[str, float] | None = None,
                    metrics: list[str] | None = None) -> list[MetricChange]:
    """Compare the aggregate metrics of ``record`` with ``reference``.

    Both must be scored on the same dataset and under the same protocol
    (name and version); otherwise the numbers are not comparable and a
    :class:`GrainbenchError` is raised. Only metrics with a direction
    (lower or higher is better) present in the reference are compared,
    unless ``metrics`` names them; a named metric missing from the record is
    an error.
    """
    tolerances = tolerances or {}
    for key in ("dataset", "split"):
        a, b = record["config"].get(key), reference["config"].get(key)
        if a != b:
            raise GrainbenchError(f"cannot compare: {key} differs (record {a!r}, reference {b!r})")
    pa = f"{record['protocol'].get('name')}@{record['protocol'].get('version')}"
    pb = f"{reference['protocol'].get('name')}@{reference['protocol'].get('version')}"
    if pa != pb:
        raise GrainbenchError(f"cannot compare: protocol differs (record {pa}, reference {pb})")
    new = record["metrics"]["aggregate"]
    ref = reference["metrics"]["aggregate"]
    names = metrics or [m for m in ref if m in GATED]
    unknown = [m for m in tolerances if m not in ref]
    if unknown:
        raise GrainbenchError(f"tolerance given for metrics the reference lacks: {unknown}")
    changes = []
    for m in names:
        if m not in new:
            raise GrainbenchError(f"metric {m!r} is missing from the record")
        if m not in ref:
            raise GrainbenchError(f"metric {m!r} is missing from the reference")
        if m not in GATED:
            raise GrainbenchError(f"metric {m!r} has no better/worse direction; it cannot be gated")
        changes.append(MetricChange(m, float(ref[m]), float(new[m]), tolerances.get(m, tolerance)))
    return changes


def latest_matching(directory: str | os.PathLike, reference: dict[str, Any]) -> Path:
    """The newest record under ``directory`` of the reference's model, dataset, split, protocol and mode.

    Lets a CI job gate the run it just made without knowing the record's file
    name (``grainbench check ci-records/ --reference ref.json``).
    """
    from .records import load_records

    directory = Path(directory)
    records, _ = load_records(directory)
    keys = ("model", "dataset", "split", "protocol", "mode")
    want = {k: reference["config"].get(k) for k in keys}
    hits = [(rec["created"], path) for path, rec in records
            if {k: rec["config"].get(k) for k in keys} == want]
    if not hits:
        described = ", ".join(f"{k}={v}" for k, v in want.items() if v is not None)
        raise GrainbenchError(f"{directory}: no record matching the reference ({described})")
    return max(hits)[1]
