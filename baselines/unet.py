"""The plain U-Net of the WPU-Net code base (Ronneberger et al. 2015)."""

from __future__ import annotations

from torch import nn

from grainbench.methods import TorchMethod

from ._nets import UNetNet


class UNet(TorchMethod):
    """U-Net, one grey channel in, two classes out; 31.04M parameters at the default width 64.

    Parameters
    ----------
    width : int, optional
        Channels of the first level (None: 64, or the training preset's width).
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "unet"
    context = "2d"
    reference = "Ronneberger et al. 2015, U-Net (as re-implemented in the WPU-Net code, Ma et al. 2019)"
    description = "plain 2D U-Net of the WPU-Net code base"

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return UNetNet(in_channels=self.net_in_channels, num_classes=2, width=self._config["width"] or 64)
