"""Datasets: registry, download/import/verify, loaders and generators.

Typical use::

    from grainbench import data
    data.list_datasets()                 # registry entries (datasets.toml + your local ones)
    vol = data.load("tbm", "test")       # a Volume; downloads/generates on first use
    data.import_dataset("pure_iron", "~/Downloads/pure_iron_grain_data_sets.hdf5")

``load`` returns one :class:`Volume` per split. Stacks keep their slices in
order; pair datasets (tbm, user folders) put one pair per Z slice with
``serial = False`` and the file stems in ``meta["names"]``;
:func:`load_pairs` returns one Volume per pair when image sizes differ.

Layers, each importing only those below it: :mod:`.cache` (where files
live, pinned hashes) <- :mod:`.registry` <- :mod:`.generate`, :mod:`.manual`
<- :mod:`.fetch` <- :mod:`.loaders`. The names below are imported on first
use, so reading the registry does not import the fetcher or the loaders.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "Dataset": "registry", "dataset_hashes": "registry", "get_dataset": "registry", "list_datasets": "registry",
    "DatasetWarning": "cache", "cache_dir": "cache", "dataset_dir": "cache",
    "fetch": "fetch", "verify": "fetch", "generate": "generate", "import_dataset": "manual",
    "load": "loaders", "load_pairs": "loaders", "Volume": "volume",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """Keeps ``data.fetch`` and ``data.generate`` the functions when their modules are imported.

    Importing ``grainbench.data.fetch`` binds the module to the package's
    ``fetch`` attribute; the functions of the same names are what this
    package exports (as it did when it imported them eagerly).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("fetch", "generate") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
