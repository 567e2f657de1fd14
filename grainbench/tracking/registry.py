"""Finding trackers by name, in the style of :mod:`grainbench.methods.registry`.

Four sources, in order:

1. classes registered in this process with :func:`register_tracker`;
2. grainbench's own trackers (``max_overlap``, ``min_centroid``,
   ``vgg13_bn``, ``densenet161``), imported on first use;
3. the ``grainbench.trackers`` entry-point group of every installed distribution;
4. a ``package.module:Class`` (or ``package.module.Class``) path, imported on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import TrackingError
from ..plugins import Registry
from .api import Tracker

ENTRY_POINT_GROUP = "grainbench.trackers"

#: grainbench's own trackers; imported lazily so listing them never imports torch or timm.
BUILTIN: dict[str, str] = {
    "max_overlap": "grainbench.tracking.classical:MaxOverlapTracker",
    "min_centroid": "grainbench.tracking.classical:MinCentroidTracker",
    "vgg13_bn": "grainbench.tracking.cnn:VGG13BNTracker",
    "densenet161": "grainbench.tracking.cnn:DenseNet161Tracker",
}

REGISTRY = Registry("tracker", Tracker, ENTRY_POINT_GROUP, TrackingError, BUILTIN,
                    base_name="grainbench.tracking.Tracker")

T = TypeVar("T", bound=type)


def register_tracker(cls: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Register a :class:`Tracker` subclass under ``name`` (default ``cls.name``); usable as a decorator."""
    return REGISTRY.register(cls, name=name)


def list_trackers(pattern: str = "*") -> list[str]:
    """Names of the known trackers (registered, built in and entry points) matching a glob ``pattern``."""
    return REGISTRY.names(pattern)


def get_tracker_class(name: str) -> type[Tracker]:
    """The :class:`Tracker` subclass behind a name, an entry point or a ``module:Class`` path."""
    return REGISTRY.get(name)


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

