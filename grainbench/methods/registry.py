"""Finding methods by name: a registry in the style of timm's ``list_models``/``create_model``.

Three sources, in order:

1. classes registered in this process with :func:`register_model`;
2. the ``grainbench.methods`` entry-point group of every installed
   distribution (grainbench's own baselines are registered there too);
3. a ``package.module:Class`` (or ``package.module.Class``) path, imported on demand.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from ..errors import GrainbenchError
from ..plugins import import_object
from .api import Method

ENTRY_POINT_GROUP = "grainbench.methods"

_REGISTRY: dict[str, type[Method]] = {}

M = TypeVar("M", bound=type)


class MethodError(GrainbenchError, ValueError):
    """A method name that resolves to nothing, or a method that cannot be built here."""


def register_model(cls: M | None = None, *, name: str | None = None) -> M | Callable[[M], M]:
    """Register a :class:`Method` subclass under ``name`` (default ``cls.name``); usable as a decorator."""

    def wrap(c: M) -> M:
        if not (isinstance(c, type) and issubclass(c, Method)):
            raise TypeError(f"{c!r} is not a subclass of grainbench.methods.Method")
        key = name or c.name
        if not key:
            raise ValueError(f"{c.__name__} has no name; set the class attribute or pass name=")
        _REGISTRY[key] = c
        return c

    return wrap(cls) if cls is not None else wrap


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_models(pattern: str = "*") -> list[str]:
    """Names of the known methods (registered and entry points) matching a glob ``pattern``."""
    names = set(_REGISTRY) | set(_entry_points())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_model_class(name: str) -> type[Method]:
    """The :class:`Method` subclass behind a registry name, an entry point or a ``module:Class`` path."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except ImportError as exc:
            raise MethodError(f"method {name!r} cannot be loaded: {exc}") from None
    elif ":" in name or "." in name:
        obj = _import(name)
    else:
        known = ", ".join(list_models()) or "none"
        raise MethodError(f"unknown method {name!r}; known: {known}; or pass 'package.module:Class'")
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise MethodError(f"{name!r} resolves to {obj!r}, which is not a grainbench.methods.Method subclass")
    return obj


def create_model(name: str, **kwargs: Any) -> Method:
    """Instantiate a method by name (``"wpunet"``) or path (``"mypkg.mymod:MyMethod"``).

    Keyword arguments go to the class constructor (e.g. ``width=16``).
    """
    cls = get_model_class(name)
    try:
        return cls(**kwargs)
    except ImportError as exc:  # optional dependency of the method itself
        raise MethodError(f"method {name!r} needs a package that is not installed: {exc}") from None


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``grainbench models``."""

    name: str
    params: int | None
    context: str
    reference: str
    presets: tuple[str, ...]
    description: str
    available: bool = True
    error: str = ""

    @property
    def params_m(self) -> str:
        """Parameter count in millions, as the papers write it (``31.05M``)."""
        return "-" if self.params is None else f"{self.params / 1e6:.2f}M"


def model_info(name: str) -> ModelInfo:
    """Describe a method with its default configuration (builds it to count parameters)."""
    try:
        cls = get_model_class(name)
    except MethodError as exc:
        return ModelInfo(name, None, "?", "", (), "", available=False, error=str(exc))
    try:
        params: int | None = create_model(name).num_parameters()
        available, error = True, ""
    except MethodError as exc:
        params, available, error = None, False, str(exc)
    return ModelInfo(name, params, cls.context, cls.reference, tuple(cls.presets), cls.description,
                     available, error)


def _import(path: str):
    return import_object(path, what="method", error=MethodError)
