"""Helpers shared by the method and tracker registries and their command lines.

Both registries are :class:`Registry` instances and accept ``package.module:Class`` paths; both command lines
take ``KEY=VALUE`` settings and pass keyword arguments only to callables
that accept them; this module holds that logic once.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
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
    dotted = module_name.split(".") + attr.split(".")
    if not module_name or not attr or not all(part.isidentifier() for part in dotted):
        # also keeps relative imports and path-like names ("../../etc") away from importlib
        raise error(f"{path!r} is not a 'package.module:Class' path")
    try:
        module = _import_from_cwd_too(module_name)
    except GrainbenchError:  # a missing extra, already named
        raise
    except ImportError as exc:
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.partition(".")[0]:
            hint = (f" (looked on sys.path and in the current folder {os.getcwd()}; run from the folder that "
                    f"holds {exc.name}.py or its package, or add that folder to PYTHONPATH)")
        raise error(f"cannot import module {module_name!r} for {what} {path!r}: {exc}{hint}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise error(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _import_from_cwd_too(module_name: str) -> Any:
    """``importlib.import_module``, falling back to the current folder as ``python -m`` would have it.

    The ``grainbench`` console script does not put the current folder on
    ``sys.path`` (``python -m grainbench`` does), so ``--model mymodule:MyClass``
    run beside ``mymodule.py`` would fail; the folder is appended (never in front
    of installed packages) only when the top-level module is found nowhere else.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module_name.partition(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


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


class Registry:
    """Classes found by name: registered in-process, built in, entry points, or ``module:Class`` paths.

    One instance serves methods and one trackers; each names its base class,
    entry-point group and error type, so both resolve names the same way.

    Parameters
    ----------
    kind : str
        What is registered (``"method"``), for messages.
    base : type
        Every resolved class must subclass it.
    group : str
        Entry-point group of installed distributions.
    error : type
        Raised for names that resolve to nothing usable.
    builtin : dict, optional
        Name -> ``module:Class`` path of classes imported on first use.
    base_name : str, optional
        How messages name ``base`` (its public path, e.g. ``grainbench.methods.Method``).
    """

    def __init__(self, kind: str, base: type, group: str, error: type[GrainbenchError],
                 builtin: dict[str, str] | None = None, base_name: str | None = None) -> None:
        self.kind, self.base, self.group, self.error = kind, base, group, error
        self.base_name = base_name or f"{base.__module__}.{base.__name__}"
        self.builtin = dict(builtin or {})
        self.classes: dict[str, type] = {}

    def register(self, cls: type | None = None, *, name: str | None = None) -> Any:
        """Register a subclass of ``base`` under ``name`` (default ``cls.name``); usable as a decorator."""

        def wrap(c: type) -> type:
            if not (isinstance(c, type) and issubclass(c, self.base)):
                raise TypeError(f"{c!r} is not a subclass of {self.base_name}")
            key = name or getattr(c, "name", "")
            if not key:
                raise ValueError(f"{c.__name__} has no name; set the class attribute or pass name=")
            self.classes[key] = c
            return c

        return wrap(cls) if cls is not None else wrap

    def entry_points(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self, pattern: str = "*") -> list[str]:
        """Known names (registered, built in and entry points) matching a glob ``pattern``."""
        import fnmatch

        names = set(self.classes) | set(self.builtin) | set(self.entry_points())
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> type:
        """The class behind a registered name, a built-in, an entry point or a ``module:Class`` path."""
        if name in self.classes:
            return self.classes[name]
        if name in self.builtin:
            obj = import_object(self.builtin[name], what=self.kind, error=self.error)
        else:
            eps = self.entry_points()
            if name in eps:
                try:
                    obj = eps[name].load()
                except GrainbenchError:  # a missing extra, named by the entry point's module
                    raise
                except ImportError as exc:
                    raise self.error(f"{self.kind} {name!r} cannot be loaded: {exc}") from None
            elif ":" in name or "." in name:
                obj = import_object(name, what=self.kind, error=self.error)
            else:
                known = ", ".join(self.names()) or "none"
                raise self.error(f"unknown {self.kind} {name!r}; known: {known}; or pass 'package.module:Class'")
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise self.error(f"{name!r} resolves to {obj!r}, which is not a {self.base_name} subclass")
        return obj
