"""Search spaces of ``grainbench tune``: which settings a study varies, and how, read from a TOML or JSON file.

A space file has the two tables of a settings file (:mod:`grainbench.runconfig`):
``[set]`` for preset fields and ``[model_arg]`` for constructor arguments.
Each key holds either a fixed value or one distribution::

    [set]
    lr = { loguniform = [1e-5, 1e-2] }     # learning rate
    patch_size = { choice = [64, 96, 128] } # patch width (training crops, px)
    patch_depth = { choice = [1, 2, 4] }    # z-depth of 3D training patches (seed 004 found 4 best)
    batch_size = { choice = [4, 8] }
    augment = { choice = ["flips", "none"] }
    epochs = { randint = [2, 6] }           # 2..5: the upper bound is excluded, as in Ray Tune
    [model_arg]
    margin = { choice = [8, 16] }           # patch overlap of inference tiles (2 x margin px)

Distributions (Ray Tune's): ``uniform = [low, high]``, ``loguniform = [low,
high]`` (low > 0), ``randint = [low, high]`` (integers, high excluded),
``choice = [v, ...]`` (sampled), ``grid = [v, ...]`` (every value, once per
sample). The seven settings above are what seed 004 tuned; any preset field
or model argument can be searched. Every fixed value, bound and choice is
checked like ``--set`` / ``--model-arg`` before Ray starts, so a bad file is
one line naming the file and the key (exit status 2).

This module does not import Ray; :func:`to_ray` converts a checked space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputFileError
from .runconfig import check_model_args, check_preset_values, check_tables, is_scalar, read_table_file

#: Distribution name -> what its arguments are.
DISTRIBUTIONS = {
    "uniform": "[low, high] numbers, low < high",
    "loguniform": "[low, high] numbers, 0 < low < high",
    "randint": "[low, high] integers, low < high (high excluded)",
    "choice": "a non-empty list of values",
    "grid": "a non-empty list of values",
}
TABLES = ("set", "model_arg")


@dataclass(frozen=True)
class Dimension:
    """One searched (or fixed) setting: ``kind`` is ``fixed`` or a key of :data:`DISTRIBUTIONS`."""

    table: str
    key: str
    kind: str
    args: tuple[Any, ...]

    @property
    def name(self) -> str:
        """``set.lr``, ``model_arg.margin``: the setting's name in results."""
        return f"{self.table}.{self.key}"

    def values_to_check(self) -> list[Any]:
        """Values this dimension can take that bound the rest (every choice, both bounds, the fixed value)."""
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return list(self.args)


@dataclass(frozen=True)
class Space:
    """A checked search space: its dimensions, by table."""

    dimensions: tuple[Dimension, ...] = field(default_factory=tuple)
    source: str = ""

    def fixed(self, table: str) -> dict[str, Any]:
        """The fixed values of ``table``."""
        return {d.key: d.args[0] for d in self.dimensions if d.table == table and d.kind == "fixed"}

    @property
    def searched(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.dimensions if d.kind != "fixed")

    def max_value(self, table: str, key: str, default: Any = None) -> Any:
        """The largest value ``table.key`` can take (``epochs``: the scheduler's horizon), or ``default``."""
        for d in self.dimensions:
            if d.table == table and d.key == key:
                values = [v for v in d.values_to_check() if isinstance(v, (int, float)) and not isinstance(v, bool)]
                return max(values) if values else default
        return default


def _dimension(table: str, key: str, spec: Any, path: Path) -> Dimension:
    where = f"{path}: [{table}] {key}"
    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise InputFileError(f"{where}: a list is not a value; write {{ choice = [...] }} to search over it")
        return Dimension(table, key, "fixed", (spec,))
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise InputFileError(f"{where}: {spec!r} is not a distribution; use exactly one of "
                             f"{', '.join(DISTRIBUTIONS)} (e.g. {{ loguniform = [1e-5, 1e-2] }})")
    kind, args = next(iter(spec.items()))
    bad = InputFileError(f"{where}: {kind} needs {DISTRIBUTIONS[kind]}, got {args!r}")
    if not isinstance(args, list) or not args:
        raise bad
    if kind in ("choice", "grid"):
        if not all(is_scalar(v) for v in args):
            raise bad
        return Dimension(table, key, kind, tuple(args))
    if len(args) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                 for v in args):
        raise bad
    low, high = args
    if not low < high or (kind == "loguniform" and low <= 0) or (kind == "randint" and not
                                                                  all(isinstance(v, int) for v in args)):
        raise bad
    if kind != "randint":
        low, high = float(low), float(high)
    return Dimension(table, key, kind, (low, high))


def load_space(path: str | Path) -> Space:
    """Read and check a search-space file (module doc).

    Raises
    ------
    InputFileError
        One line naming the file and the problem: unreadable, unknown table,
        unknown distribution or bad arguments, a value (fixed, bound or choice)
        that the preset or a model argument would refuse, or nothing searched.
    """
    path = Path(path)
    doc = read_table_file(path, "search-space file")
    check_tables(doc, path, TABLES)
    dims = [_dimension(table, key, spec, path) for table in TABLES for key, spec in doc.get(table, {}).items()]
    for d in dims:
        for value in d.values_to_check():
            if d.table == "set":
                check_preset_values({d.key: value}, path)
            else:
                check_model_args({d.key: value}, path)
    space = Space(tuple(dims), str(path))
    if not space.searched:
        raise InputFileError(f"{path}: nothing to search: give at least one setting a distribution "
                             f"({', '.join(DISTRIBUTIONS)})")
    return space


def to_ray(space: Space) -> dict[str, dict[str, Any]]:
    """The ``param_space`` of a Ray Tune ``Tuner``: ``{"set": {...}, "model_arg": {...}}`` of Ray's samplers."""
    from .extras import require

    tune = require("ray.tune", what="grainbench tune")
    make = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint,
            "choice": lambda *v: tune.choice(list(v)), "grid": lambda *v: tune.grid_search(list(v)),
            "fixed": lambda v: v}
    out: dict[str, dict[str, Any]] = {table: {} for table in TABLES}
    for d in space.dimensions:
        out[d.table][d.key] = make[d.kind](*d.args)
    return out
