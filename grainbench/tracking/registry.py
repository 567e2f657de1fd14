"""Finding trackers by name, in the style of :mod:`grainbench.methods.registry`.

Four sources, in order:

1. classes registered in this process with :func:`register_tracker`;
2. grainbench's own trackers (``max_overlap``, ``min_centroid``,
   ``vgg13_bn``, ``densenet161``), imported on first use;
3. the ``grainbench.trackers`` entry-point group of every installed distribution;
4. a ``package.module:Class`` (or ``package.module.Class``) path, imported on demand.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ..errors import TrackingError
from ..plugins import import_object
from .api import Tracker

ENTRY_POINT_GROUP = "grainbench.trackers"

#: grainbench's own trackers; imported lazily so listing them never imports torch or timm.
BUILTIN: dict[str, str] = {
    "max_overlap": "grainbench.tracking.classical:MaxOverlapTracker",
    "min_centroid": "grainbench.tracking.classical:MinCentroidTracker",
    "vgg13_bn": "grainbench.tracking.cnn:VGG13BNTracker",
    "densenet161": "grainbench.tracking.cnn:DenseNet161Tracker",
}

_REGISTRY: dict[str, type[Tracker]] = {}

T = TypeVar("T", bound=type)


def register_tracker(cls: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Register a :class:`Tracker` subclass under ``name`` (default ``cls.name``); usable as a decorator."""

    def wrap(c: T) -> T:
        if not (isinstance(c, type) and issubclass(c, Tracker)):
            raise TypeError(f"{c!r} is not a subclass of grainbench.tracking.Tracker")
        key = name or c.name
        if not key:
            raise ValueError(f"{c.__name__} has no name; set the class attribute or pass name=")
        _REGISTRY[key] = c
        return c

    return wrap(cls) if cls is not None else wrap


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_trackers(pattern: str = "*") -> list[str]:
    """Names of the known trackers (registered, built in and entry points) matching a glob ``pattern``."""
    names = set(_REGISTRY) | set(BUILTIN) | set(_entry_points())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_tracker_class(name: str) -> type[Tracker]:
    """The :class:`Tracker` subclass behind a name, an entry point or a ``module:Class`` path."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN:
        obj = _import(BUILTIN[name])
    else:
        eps = _entry_points()
        if name in eps:
            try:
                obj = eps[name].load()
            except ImportError as exc:
                raise TrackingError(f"tracker {name!r} cannot be loaded: {exc}") from None
        elif ":" in name or "." in name:
            obj = _import(name)
        else:
            known = ", ".join(list_trackers()) or "none"
            raise TrackingError(f"unknown tracker {name!r}; known: {known}; or pass 'package.module:Class'")
    if not (isinstance(obj, type) and issubclass(obj, Tracker)):
        raise TrackingError(f"{name!r} resolves to {obj!r}, which is not a grainbench.tracking.Tracker subclass")
    return obj


def create_tracker(name: str, **kwargs: Any) -> Tracker:
    """Instantiate a tracker by name (``"max_overlap"``) or path (``"mypkg.mod:MyTracker"``).

    Keyword arguments go to the class constructor (e.g. ``min_overlap=0.2``,
    or ``arch="resnet18", input_size=64`` for a CNN tracker).
    """
    cls = get_tracker_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TrackingError(f"tracker {name!r} does not take {sorted(kwargs)}: {exc}") from None
    except ImportError as exc:  # optional dependency of the tracker itself
        raise TrackingError(f"tracker {name!r} needs a package that is not installed: {exc}") from None


def _import(path: str):
    return import_object(path, what="tracker", error=TrackingError)
