"""grainbench: benchmark and dataset harness for grain-boundary segmentation."""

import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("grainbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"


def _checkout_baselines() -> None:
    """Make the checkout's ``baselines/`` folder importable as ``grainbench.baselines``.

    Installed (wheel or editable), the folder *is* ``grainbench.baselines``
    (pyproject's ``package-dir``); run from a checkout (``python -m pytest``
    at its root) this package sits beside the folder instead, and this maps it
    the same way, so the checkout's own baselines are the ones imported.
    """
    here = Path(__file__).resolve().parent
    init = here.parent / "baselines" / "__init__.py"
    if (here / "baselines").is_dir() or not init.is_file() or f"{__name__}.baselines" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(f"{__name__}.baselines", init,
                                                  submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    globals()["baselines"] = module


_checkout_baselines()

__all__ = ["GrainDataset", "__version__"]


def __getattr__(name: str):
    # torch loads only when the dataset is asked for: ``import grainbench`` stays light
    if name == "GrainDataset":
        from .training.dataset import GrainDataset

        return GrainDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
