"""Helpers shared by the method and tracker registries and their command lines.

Both registries accept ``package.module:Class`` paths, and both command lines
take ``KEY=VALUE`` settings and pass keyword arguments only to callables
that accept them; this module holds that logic once.
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

from .errors import GrainbenchError


def import_object(path: str, *, what: str = "object", error: type[GrainbenchError] = GrainbenchError) -> Any:
    """The object named by ``"package.module:Attr"`` (or ``"package.module.Attr"``).

    Raises ``error`` naming the path and what went wrong (bad form, failed
    import, missing attribute); ``what`` ("method", "tracker") goes into the message.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise error(f"{path!r} is not a 'package.module:Class' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import module {module_name!r} for {what} {path!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise error(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def parse_assignments(items: list[str] | None, what: str, *,
                      error: type[GrainbenchError] = GrainbenchError) -> dict[str, Any]:
    """``["epochs=2", "lr=1e-3", "loss=bce"]`` -> dict; values parsed as JSON where they parse.

    ``what`` names the option in the error for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def accepts(fn: Any, name: str) -> bool:
    """Whether callable ``fn`` (a class: its ``__init__``) takes keyword ``name`` (or ``**kwargs``)."""
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
