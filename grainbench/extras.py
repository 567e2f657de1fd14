"""Optional dependencies: one place that imports them and names the extra that installs each.

The base install (``pip install grainbench``) scores, trains the plain
networks (WPU-Net, U-Net, ...) and runs the classical baselines. Some
methods need more; each extra is named after what it enables:

============  ===============================  =========================================
extra         packages                         enables
============  ===============================  =========================================
``smp``       segmentation-models-pytorch      ``unet_resnet34``, ``unet_efficientnet_b0``
``edges``     torchvision                      ``hed``, ``rcf`` (VGG16 trunks)
``track``     timm                             CNN trackers ``vgg13_bn``, ``densenet161``
``topo``      gudhi                            ``--set loss=topo`` (topological loss)
``finecut``   PyMaxflow                        ``fast_finecut`` (graph cuts)
``tune``      ray[tune]                        ``grainbench tune`` (ASHA on Ray Tune)
``all``       all of the above
``test``      all, pytest, hypothesis, scikit-learn
============  ===============================  =========================================

Code that needs one of them calls :func:`require` where it imports it, so a
missing package becomes one line naming the extra, never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import GrainbenchError

#: Import name -> (extra, distribution on PyPI) of every optional package (pyproject's extras match).
OPTIONAL: dict[str, tuple[str, str]] = {
    "segmentation_models_pytorch": ("smp", "segmentation-models-pytorch"),
    "torchvision": ("edges", "torchvision"),
    "timm": ("track", "timm"),
    "gudhi": ("topo", "gudhi"),
    "maxflow": ("finecut", "PyMaxflow"),
    "ray": ("tune", "ray[tune]"),
}


class MissingExtraError(GrainbenchError, ImportError):
    """An optional package is not installed; the message names the extra that installs it.

    Also an :class:`ImportError`, so code that guards an import with
    ``except ImportError`` keeps working.
    """

    def __init__(self, message: str, *, extra: str, module: str) -> None:
        super().__init__(message, name=module)
        self.extra, self.module = extra, module


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``: ``pip install "grainbench[smp]"``."""
    return f'pip install "grainbench[{extra}]"'


def require(module: str, extra: str | None = None, what: str = "this feature") -> ModuleType:
    """Import optional ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    Parameters
    ----------
    module : str
        Import name (``"gudhi"``, ``"segmentation_models_pytorch"``, ``"torchvision.models.vgg"``).
    extra : str, optional
        The grainbench extra that installs it; default looked up in :data:`OPTIONAL`
        by the top-level package name.
    what : str
        What needs it, for the message (``"method 'hed'"``, ``"--set loss=topo"``).

    Returns
    -------
    The imported module.
    """
    top = module.partition(".")[0]
    extra = extra or OPTIONAL.get(top, ("all", top))[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = OPTIONAL.get(top, (extra, top))[1]
        raise MissingExtraError(f"{what} needs {dist}, which is not installed ({exc}): {install_hint(extra)}",
                                extra=extra, module=top) from None
