"""Methods API: the protocol a segmentation method implements, and the registry that finds it.

Typical use::

    from grainbench.methods import create_model, list_models
    list_models()                       # ['classical', 'unet', 'unet_resnet34', 'wpunet', ...]
    m = create_model("wpunet")          # or create_model("mypkg.mymodule:MyMethod")
    m.fit(train_volume, val_volume, preset="quick")
    prob = m.predict(image, prev_boundary)

A third-party method subclasses :class:`Method` (or :class:`TorchMethod`)
and either registers in its own ``pyproject.toml``::

    [project.entry-points."grainbench.methods"]
    mymethod = "mypkg.mymodule:MyMethod"

or is named on the command line as ``--model mypkg.mymodule:MyMethod``.
"""

from .api import CONTEXTS, FitResult, Method, check_in_channels, check_volume_input
from .registry import (
                       ENTRY_POINT_GROUP,
                       MethodError,
                       ModelInfo,
                       create_model,
                       get_model_class,
                       list_models,
                       model_info,
                       register_model,
)
from .torch_method import PREV_BOUNDARY_VALUE, PREV_GRAIN_VALUE, TorchMethod

__all__ = [
    "CONTEXTS", "ENTRY_POINT_GROUP", "FitResult", "Method", "MethodError", "ModelInfo", "PREV_BOUNDARY_VALUE",
    "PREV_GRAIN_VALUE", "TorchMethod", "check_in_channels", "check_volume_input", "create_model", "get_model_class",
    "list_models",
    "model_info", "register_model",
]
