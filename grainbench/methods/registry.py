"""Finding methods by name: a registry in the style of timm's ``list_models``/``create_model``.

Three sources, in order:

1. classes registered in this process with :func:`register_model`;
2. the ``grainbench.methods`` entry-point group of every installed
   distribution (grainbench's own baselines are registered there too);
3. a ``package.module:Class`` (or ``package.module.Class``) path, imported on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..errors import GrainbenchError
from ..extras import MissingExtraError
from ..plugins import Registry
from .api import Method

ENTRY_POINT_GROUP = "grainbench.methods"

M = TypeVar("M", bound=type)


class MethodError(GrainbenchError, ValueError):
    """A method name that resolves to nothing, or a method that cannot be built here."""


REGISTRY = Registry("method", Method, ENTRY_POINT_GROUP, MethodError, base_name="grainbench.methods.Method")


def register_model(cls: M | None = None, *, name: str | None = None) -> M | Callable[[M], M]:
    """Register a :class:`Method` subclass under ``name`` (default ``cls.name``); usable as a decorator."""
    return REGISTRY.register(cls, name=name)


def list_models(pattern: str = "*") -> list[str]:
    """Names of the known methods (registered and entry points) matching a glob ``pattern``."""
    return REGISTRY.names(pattern)


def get_model_class(name: str) -> type[Method]:
    """The :class:`Method` subclass behind a registry name, an entry point or a ``module:Class`` path."""
    return REGISTRY.get(name)


def create_model(name: str, **kwargs: Any) -> Method:
    """Instantiate a method by name (``"wpunet"``) or path (``"mypkg.mymod:MyMethod"``).

    Keyword arguments go to the class constructor (e.g. ``width=16``).
    """
    cls = get_model_class(name)
    try:
        return cls(**kwargs)
    except MissingExtraError:  # already names the extra to install
        raise
    except ImportError as exc:  # a third-party method's own dependency
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
    extra: str = ""  # the grainbench extra that makes an unavailable method available

    @property
    def params_m(self) -> str:
        """Parameter count in millions, as the papers write it (``31.05M``)."""
        return "-" if self.params is None else f"{self.params / 1e6:.2f}M"


def model_info(name: str) -> ModelInfo:
    """Describe a method with its default configuration (builds it to count parameters).

    Never raises for a method that cannot be built here: a missing optional
    package gives ``available=False`` with the extra that installs it, so one
    missing package never hides the rest of ``grainbench models``.
    """
    try:
        cls = get_model_class(name)
    except GrainbenchError as exc:
        return ModelInfo(name, None, "?", "", (), "", available=False, error=str(exc),
                         extra=getattr(exc, "extra", ""))
    try:
        params: int | None = create_model(name).num_parameters()
        available, error, extra = True, "", ""
    except GrainbenchError as exc:  # MissingExtraError while building the network, too
        params, available, error, extra = None, False, str(exc), getattr(exc, "extra", "")
    return ModelInfo(name, params, cls.context, cls.reference, tuple(cls.presets), cls.description,
                     available, error, extra)
