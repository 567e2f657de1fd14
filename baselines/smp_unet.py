"""U-Net variants from segmentation-models-pytorch with (timm) encoders, trained from scratch.

Needs ``pip install segmentation-models-pytorch timm``. Pretrained weights
are never downloaded: ``encoder_weights=None`` always.
"""

from __future__ import annotations

from torch import nn

from grainbench.extras import require
from grainbench.methods import TorchMethod


class SMPUNet(TorchMethod):
    """``segmentation_models_pytorch.Unet`` with any encoder, one input channel, two classes.

    Parameters
    ----------
    encoder : str
        smp encoder name (``"resnet34"``, or ``"tu-<timm name>"`` for a timm encoder).
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "unet_smp"
    context = "2d"
    reference = "Ronneberger et al. 2015, U-Net; encoders from segmentation-models-pytorch / timm"
    description = "smp U-Net with a configurable encoder (no pretrained weights)"
    default_encoder = "resnet34"

    def __init__(self, encoder: str | None = None, **kw) -> None:
        require("segmentation_models_pytorch", "smp", f"method {self.name!r}")  # fail at creation

        super().__init__(encoder=encoder or self.default_encoder, **kw)

    def build_network(self) -> nn.Module:
        smp = require("segmentation_models_pytorch", "smp", f"method {self.name!r}")

        return smp.Unet(encoder_name=self._config["encoder"], encoder_weights=None, in_channels=self.net_in_channels,
                        classes=2)


class UNetResNet34(SMPUNet):
    """smp U-Net with a ResNet-34 encoder (24.43M parameters)."""

    name = "unet_resnet34"
    description = "smp U-Net, ResNet-34 encoder, from scratch"
    default_encoder = "resnet34"


class UNetEfficientNetB0(SMPUNet):
    """smp U-Net with timm's EfficientNet-B0 encoder (``tu-efficientnet_b0``)."""

    name = "unet_efficientnet_b0"
    description = "smp U-Net, timm EfficientNet-B0 encoder, from scratch"
    default_encoder = "tu-efficientnet_b0"
