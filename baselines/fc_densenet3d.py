"""FC-DenseNet in 3D (seed 004, James et al. 2022, Section 3.3), after Jégou et al. 2017 ("Tiramisu").

Seed 004 "extended FCDense with 3D convolutions, maxpoolings, and
transposed convolutions" and does not give its block sizes or parameter
count, so this module takes Jégou et al.'s layout (Tables 1-2, Fig. 1) and
swaps every 2D operation for its 3D counterpart:

* first layer: 3 x 3 x 3 convolution, ``m0`` = 48 filters;
* dense layer: BN, ReLU, 3 x 3 x 3 convolution to ``k`` (growth rate) maps,
  dropout 0.2; a dense block concatenates every layer's output to its input;
* transition down: BN, ReLU, 1 x 1 x 1 convolution keeping the channels,
  dropout 0.2, 2 x 2 x 2 max pooling (ceil mode, so any size works);
* bottleneck dense block; on the up path a block hands on only the maps it
  created; transition up: 3 x 3 x 3 transposed convolution, stride 2, on
  those maps, centre-cropped to the skip connection and concatenated to it;
  the last block keeps its input, and a 1 x 1 x 1 convolution gives the
  class scores.

Variants are Jégou et al.'s: FC-DenseNet103 (blocks 4, 5, 7, 10, 12 /
15 / 12, 10, 7, 5, 4; k = 16; the default), 67 (5 layers per block, k =
16) and 56 (4 layers, k = 12). The same code builds the 2D network
(``dims=2``) to check the layout against Jégou et al.'s Table 2 (3 input
channels, 11 classes): counting, as Lasagne does, the batch-norm running
statistics with the weights, FC-DenseNet103 has 9.43M (reported 9.4M) and
FC-DenseNet67 3.50M (reported 3.5M); FC-DenseNet56 has 1.40M where the
table says 1.5M. In 3D every 3 x 3 kernel has three times the weights:
FC-DenseNet103 with one input channel and two classes has 26,166,626
(26.17M) learnable parameters at paper width, 2.59M at width 16.

``width`` and ``variant`` mean what they mean in the 2D baseline
``fc_densenet`` (:mod:`baselines.fc_densenet`): the filters of the first
convolution, the growth rate scaling with it.
"""

from __future__ import annotations

from torch import nn

from grainbench.methods import TorchMethod

from ._nets3d import z_depth_settings
from .fc_densenet import VARIANTS, FCDenseNetNet

REFERENCE = ("James et al. 2022, 3D convolutional neural networks for dendrite segmentation (seed 004): "
             "3D FC-DenseNet after Jégou et al. 2017, The One Hundred Layers Tiramisu")


#: Jégou et al. 2017, Table 2: parameters (millions) of the 2D networks (3 input channels, 11 classes).
JEGOU_PARAMETERS_M = {"56": 1.5, "67": 3.5, "103": 9.4}


class FCDenseNet3DNet(FCDenseNetNet):
    """:class:`~baselines.fc_densenet.FCDenseNetNet` with 3D operations by default (``dims=2`` builds the 2D one)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, variant: str = "103", width: int | None = None,
                 dropout: float = 0.2, z_pools: int | None = None, dims: int = 3) -> None:
        super().__init__(in_channels, num_classes, variant, width, dropout, z_pools=z_pools, dims=dims)


class FCDenseNet3D(TorchMethod):
    """FC-DenseNet103 in 3D (seed 004), one grey channel in, two classes out; 26.17M parameters at width 48.

    Parameters
    ----------
    width : int, optional
        Filters of the first convolution; the growth rate follows
        (``16 * width / 48``). None: 48 (the paper's), or the training preset's width.
    variant : {"103", "67", "56"}, optional
        Jégou et al.'s variants; None: "103".
    z_pools : int, optional
        Levels that halve z (None: all five; seed 004's 4-slice sub-volumes allow 2).
    tile_depth, margin_depth : int
        Inference tiles along z and the margin discarded at each end.
    z_depth : int, optional
        Slices the network sees at once, in training and inference (seed 004:
        4 was best); as in :class:`baselines.unet3d.UNet3D`.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`
        (in-plane ``tile`` 128, ``margin`` 16, ``batch_size`` 2 by default).
    """

    name = "fc_densenet3d"
    context = "3d"
    reference = REFERENCE
    description = "FC-DenseNet103 with 3D convolutions, pooling and transposed convolutions (seed 004)"

    # The 2D quick preset (96 patches of 16 x 128 x 128 per epoch) takes over an hour on
    # two CPU cores for a 3D net; these keep a quick fit to a few minutes.
    preset_defaults = {"quick": {"patch_depth": 8, "patch_size": 64, "patches_per_epoch": 32, "batch_size": 4,
                                 "val_patches": 8},
                       "standard": {"patch_depth": 8, "patch_size": 64, "patches_per_epoch": 32, "batch_size": 4,
                                    "val_patches": 8}}

    def __init__(self, width: int | None = None, variant: str | None = None, z_pools: int | None = None, *,
                 tile: int = 128, margin: int = 16, batch_size: int = 2, tile_depth: int = 16,
                 margin_depth: int = 4, z_depth: int | None = None, **kw) -> None:
        levels = len(VARIANTS[str(variant or "103")].down) if str(variant or "103") in VARIANTS else 5
        self.preset_defaults, z_pools, tile_depth, margin_depth = z_depth_settings(
            z_depth, type(self).preset_defaults, levels, z_pools, tile_depth, margin_depth)
        extra = {} if z_depth is None else {"z_depth": z_depth}
        super().__init__(width=width, variant=str(variant or "103"), z_pools=z_pools, tile=tile, margin=margin,
                         batch_size=batch_size, **extra, **kw)
        if self._config["variant"] not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self._config['variant']!r}")
        self.tile_depth, self.margin_depth = tile_depth, margin_depth

    def build_network(self) -> nn.Module:
        c = self._config
        return FCDenseNet3DNet(in_channels=self.net_in_channels, num_classes=2, variant=c["variant"],
                               width=c["width"],
                               z_pools=c["z_pools"])
