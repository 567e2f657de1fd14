"""The CI gate: compare a run record with a reference record and report regressions; it fails closed.

- Only records of the same run are compared: dataset, split, protocol
  (name and version), model, preset, mode, model arguments, preset
  overrides and dataset hashes must match, else :class:`GateError` (exit 2).
- By default the headline metrics (:data:`HEADLINE`) present in the
  reference are gated, each with its own tolerance (:data:`DEFAULT_TOLERANCES`):
  ``allowed = abs + rel * |reference|`` (relative for counts such as the
  Betti errors). ``--metric`` gates others, ``--tolerance`` changes them.
- A NaN or infinite value in the record is a regression (exit 1); one in
  the reference, a reference with nothing to gate, or a NaN, infinite or
  negative tolerance is unusable input (exit 2).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GrainbenchError

LOWER_IS_BETTER = frozenset({"vi", "vi_split", "vi_merge", "bde", "betti0_error", "betti1_error", "size_js",
                             "shape_js", "astm_g_error", "intercept_js"})
HIGHER_IS_BETTER = frozenset({"ari", "map", "bf1", "bf1_precision", "bf1_recall", "dice", "cldice", "accuracy",
                              "iou", "gauss_precision", "gauss_recall", "gauss_f1",
                              # the extended group (protocol.EXTENDED_METRICS)
                              "rand_index", "pratt_fom", "completeness", "correctness", "quality", "mean_iou",
                              "fw_iou", "dice_grain"})
# grain_count_ratio is best at 1, neither lower nor higher: informative, not gated
GATED = LOWER_IS_BETTER | HIGHER_IS_BETTER  # counts and mean diameters are informative, not better/worse
#: Gated by default (those the reference has): VI, ARI, mAP and BF1 (boundary), IoU and accuracy (phase).
HEADLINE = ("vi", "ari", "map", "bf1", "iou", "accuracy")


@dataclass(frozen=True)
class Tolerance:
    """Allowed worsening ``abs + rel * |reference|``."""

    abs: float = 0.0
    rel: float = 0.0

    def allowed(self, reference: float) -> float:
        return self.abs + self.rel * abs(reference)

    def __str__(self) -> str:
        parts = ([f"{self.abs:g}"] if self.abs or not self.rel else []) + ([f"{self.rel:.0%}"] if self.rel else [])
        return " + ".join(parts)


#: Per-metric defaults, fitted to each metric's scale and to the spread of same-code reruns of the quick
#: preset (VI moves by ~0.005 bits, counts by a fraction of a grain per slice).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "vi": Tolerance(0.02), "vi_split": Tolerance(0.02), "vi_merge": Tolerance(0.02),
    "ari": Tolerance(0.01), "map": Tolerance(0.02), "bf1": Tolerance(0.01), "bf1_precision": Tolerance(0.01),
    "bf1_recall": Tolerance(0.01), "dice": Tolerance(0.01), "cldice": Tolerance(0.01),
    "accuracy": Tolerance(0.005), "iou": Tolerance(0.01), "bde": Tolerance(0.1, 0.05),
    "betti0_error": Tolerance(0.5, 0.25), "betti1_error": Tolerance(0.5, 0.25),
    "size_js": Tolerance(0.05), "shape_js": Tolerance(0.05),
    "astm_g_error": Tolerance(0.1), "intercept_js": Tolerance(0.05),
    "gauss_precision": Tolerance(0.01), "gauss_recall": Tolerance(0.01), "gauss_f1": Tolerance(0.01),
}


class GateError(GrainbenchError):
    """The gate cannot decide: incomparable records, a non-finite reference, nothing to gate, a bad tolerance."""


@dataclass(frozen=True)
class MetricChange:
    metric: str
    reference: float
    value: float
    tolerance: Tolerance

    @property
    def delta(self) -> float:
        return self.value - self.reference

    @property
    def worse_by(self) -> float:
        """How much worse than the reference (positive = worse), in the metric's own units."""
        return self.delta if self.metric in LOWER_IS_BETTER else -self.delta

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    @property
    def regressed(self) -> bool:
        """Worse by more than the tolerance, or not a finite number (fails closed)."""
        return not self.finite or self.worse_by > self.tolerance.allowed(self.reference) + 1e-12


def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GateError(f"tolerance {item!r}: expected NUMBER or METRIC=NUMBER") from None
    if not math.isfinite(value) or value < 0:
        raise GateError(f"tolerance {item!r}: must be a finite number >= 0")
    return value


def parse_tolerances(items: list[str] | None, default: float | None = None
                     ) -> tuple[float | None, dict[str, float]]:
    """``["0.02", "vi=0.05"]`` -> (0.02, {"vi": 0.05}); a bare number replaces every default (absolute).

    NaN, infinite or negative values raise :class:`GateError`.
    """
    per_metric: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if sep:
            per_metric[name.strip()] = _number(value, item)
        else:
            default = _number(name, item)
    return default, per_metric


def _label(rec: dict[str, Any], key: str) -> Any:
    if key == "protocol":
        return f"{rec['protocol'].get('name')}@{rec['protocol'].get('version')}"
    if key == "dataset_hashes":
        return rec.get("dataset", {}).get("hashes", {})
    value = rec["config"].get(key)
    return {} if value is None and key in ("model_args", "preset_overrides") else value


#: What must match between a record and its reference.
SAME_RUN = ("dataset", "split", "protocol", "model", "preset", "mode", "model_args", "preset_overrides",
            "dataset_hashes")


def compare_records(record: dict[str, Any], reference: dict[str, Any], *, tolerance: float | None = None,
                    tolerances: dict[str, float] | None = None,
                    metrics: list[str] | None = None) -> list[MetricChange]:
    """Compare the aggregate metrics of ``record`` with ``reference`` (see the module doc for the rules).

    ``tolerance`` (absolute) replaces every default; ``tolerances`` set single
    metrics (absolute). Raises :class:`GateError` when the records are not of
    the same run, the reference has a non-finite value or nothing to gate,
    or a named metric is missing or has no direction.
    """
    tolerances = tolerances or {}
    for key in SAME_RUN:
        a, b = _label(record, key), _label(reference, key)
        if a != b:
            raise GateError(f"cannot compare: {key} differs (record {a!r}, reference {b!r})")
    new = record["metrics"]["aggregate"]
    ref = reference["metrics"]["aggregate"]
    names = metrics or [m for m in HEADLINE if m in ref]
    if not names:
        raise GateError("nothing to gate: the reference has none of the headline metrics "
                        f"({', '.join(HEADLINE)}); name metrics with --metric")
    unknown = [m for m in tolerances if m not in ref]
    if unknown:
        raise GateError(f"tolerance given for metrics the reference lacks: {unknown}")
    changes = []
    for m in names:
        if m not in GATED:
            raise GateError(f"metric {m!r} has no better/worse direction; it cannot be gated")
        if m not in ref:
            raise GateError(f"metric {m!r} is missing from the reference")
        if not math.isfinite(float(ref[m])):
            raise GateError(f"reference metric {m!r} is {ref[m]}; a reference must be finite")
        if m not in new:
            raise GateError(f"metric {m!r} is missing from the record")
        if m in tolerances:
            tol = Tolerance(tolerances[m])
        elif tolerance is not None:
            tol = Tolerance(tolerance)
        else:
            tol = DEFAULT_TOLERANCES.get(m, Tolerance())
        changes.append(MetricChange(m, float(ref[m]), float(new[m]), tol))
    return changes


def latest_matching(directory: str | os.PathLike, reference: dict[str, Any]) -> Path:
    """The newest record under ``directory`` of the reference's run (every :data:`SAME_RUN` field).

    Lets a CI job gate the run it just made without knowing the record's file
    name (``grainbench check ci-records/ --reference ref.json``).
    """
    from .records import load_records

    directory = Path(directory)
    records, _ = load_records(directory)
    want = {k: _label(reference, k) for k in SAME_RUN}
    hits = [(rec["created"], str(path)) for path, rec in records
            if {k: _label(rec, k) for k in SAME_RUN} == want]
    if not hits:
        described = ", ".join(f"{k}={v}" for k, v in want.items() if v not in (None, {}) and k != "dataset_hashes")
        raise GateError(f"{directory}: no record matching the reference ({described}, same dataset hashes)")
    return Path(max(hits)[1])
