"""WPU-Net (Ma et al. 2019, seed 000): U-Net with the previous slice's mask propagated in."""

from __future__ import annotations

from torch import nn

from grainbench.methods import TorchMethod

from ._nets import WPUNetNet

REFERENCE = "Ma et al. 2019, WPU-Net: Boundary learning by using weighted propagation in convolution network"


class WPUNet(TorchMethod):
    """WPU-Net, multi-level fusion (the paper's "layer 1-4" mode) by default.

    Parameters
    ----------
    width : int, optional
        Channels of the first level (64 in the authors' code: 31.05M
        parameters). None: 64, or the training preset's width.
    fusion : {"multi", "layer1"}
        Concatenate the max-pooled previous mask before encoder levels 1-4,
        or feed it at the input layer only.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "wpunet"
    context = "2d+prev"
    reference = REFERENCE
    description = "U-Net + previous-slice mask (boundary=-6, grain=1), fused at encoder levels 1-4"
    default_fusion = "multi"

    def __init__(self, width: int | None = None, fusion: str | None = None, **kw) -> None:
        super().__init__(width=width, fusion=fusion or self.default_fusion, **kw)
        if self._config["fusion"] not in ("multi", "layer1"):
            raise ValueError(f"fusion must be 'multi' or 'layer1', got {self._config['fusion']!r}")

    def build_network(self) -> nn.Module:
        return WPUNetNet(num_classes=2, width=self._config["width"] or 64, fusion=self._config["fusion"],
                         in_channels=self.in_channels)


class WPUNetLayer1(WPUNet):
    """WPU-Net with the previous mask fused at the first layer only (Table 1, "layer 1")."""

    name = "wpunet_layer1"
    description = "WPU-Net with the previous-slice mask fused at the input layer only"
    default_fusion = "layer1"
