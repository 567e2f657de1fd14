"""Settings files: ``--set`` / ``--model-arg`` overrides kept in a TOML or JSON file (``grainbench run --config``).

A settings file has up to three tables::

    [set]            # preset fields, as --set KEY=VALUE (validated like them)
    lr = 0.00107
    patch_size = 96
    augment = "flips"

    [model_arg]      # constructor arguments, as --model-arg KEY=VALUE
    margin = 16

    [source]         # where the settings came from (written by grainbench tune; informational, never applied)
    study = "unet-synthetic-20261202T0430"

The same content as a JSON object (``.json``) works too. ``grainbench tune``
writes the best trial's settings in this form (``best.toml``), so that
``grainbench run --config best.toml`` trains the chosen configuration; options
given on the command line win over the file. A file with an unknown table, a
``set`` key that is not a preset field, a value of the wrong type or out of
range is refused with one line naming the file and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputFileError
from .io import atomic_write

#: The tables of a settings file.
TABLES = ("set", "model_arg", "source")


def read_table_file(path: str | Path, what: str = "settings file") -> dict[str, Any]:
    """The top-level table of a TOML (``.toml``) or JSON (``.json``) file; a bad file is one line naming it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise InputFileError(f"{path}: a {what} must be .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: unreadable {what} ({exc})") from None
    try:
        doc = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: not valid TOML ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputFileError(f"{path}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise InputFileError(f"{path}: a {what} must hold a table (a JSON object), not {type(doc).__name__}")
    return doc


def check_tables(doc: dict[str, Any], path: Path, allowed: tuple[str, ...]) -> None:
    """Refuse top-level keys outside ``allowed`` and tables that are not tables."""
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise InputFileError(f"{path}: unknown table(s) {', '.join(map(repr, unknown))}; known: {', '.join(allowed)}")
    for key in allowed:
        if key in doc and not isinstance(doc[key], dict):
            raise InputFileError(f"{path}: {key!r} must be a table of KEY = VALUE, not {type(doc[key]).__name__}")


def is_scalar(value: Any) -> bool:
    """A value a model argument (or a written settings file) may hold: bool, int, finite float or str."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (bool, int, str))


def check_preset_values(values: dict[str, Any], path: Path, where: str = "set") -> None:
    """Check preset field names and values (every preset validates them the same way; see presets.py)."""
    from .training.presets import PRESETS, get_preset

    try:
        get_preset(PRESETS["paper"], **values)
    except ConfigError as exc:
        why = str(exc).removeprefix("preset 'paper': ")
        raise InputFileError(f"{path}: [{where}] {why}") from None


def check_model_args(values: dict[str, Any], path: Path, where: str = "model_arg") -> None:
    """Model arguments must be scalars (records keep them as such); the method checks the rest when built."""
    for key, value in values.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InputFileError(f"{path}: [{where}] {key!r} is not an argument name")
        if not is_scalar(value):
            raise InputFileError(f"{path}: [{where}] {key} = {value!r} must be a number, a string or a boolean")


def load_run_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(overrides, model_args)`` of a settings file (module doc), checked.

    Raises
    ------
    InputFileError
        Unreadable file, unknown table, unknown preset field, a value of the
        wrong type or out of range; the message names the file and the key.
    """
    path = Path(path)
    doc = read_table_file(path)
    check_tables(doc, path, TABLES)
    overrides, model_args = dict(doc.get("set", {})), dict(doc.get("model_arg", {}))
    check_preset_values(overrides, path)
    check_model_args(model_args, path)
    return overrides, model_args


def run_config_settings(path: str | Path) -> dict[str, Any]:
    """What a run records of its ``--config`` file: the file's name, its ``set`` and ``model_arg``
    tables and its ``[source]`` (e.g. the ``grainbench tune`` study and trial), for ``config.settings_from``."""
    path = Path(path)
    overrides, model_args = load_run_config(path)
    source = read_table_file(path).get("source", {})
    return {"file": path.name, "set": overrides, "model_arg": model_args,
            "source": source if isinstance(source, dict) else {}}


def _toml_value(value: Any, path: Path, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and is_scalar(value):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise ConfigError(f"{path}: {key} = {value!r} cannot be written to TOML; write a .json file instead")


def write_run_config(path: str | Path, overrides: dict[str, Any], model_args: dict[str, Any],
                     source: dict[str, Any] | None = None) -> Path:
    """Write a settings file (TOML or JSON by the suffix) atomically; returns its path."""
    path = Path(path)
    tables = {"set": overrides, "model_arg": model_args, "source": source or {}}
    if path.suffix.lower() == ".json":
        text = json.dumps({k: v for k, v in tables.items() if v}, indent=1, sort_keys=True) + "\n"
    else:
        lines = ["# grainbench settings: grainbench run --config THIS_FILE (command-line options win)"]
        for name, table in tables.items():
            if table:
                lines += ["", f"[{name}]"]
                lines += [f"{k} = {_toml_value(v, path, f'{name}.{k}')}" for k, v in sorted(table.items())]
        text = "\n".join(lines) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path
