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

import torch
from torch import nn

from grainbench.methods import TorchMethod

from ._nets3d import level_strides
from .fc_densenet import VARIANTS, Variant  # noqa: F401  (one table of Jégou's variants)

REFERENCE = ("James et al. 2022, 3D convolutional neural networks for dendrite segmentation (seed 004): "
             "3D FC-DenseNet after Jégou et al. 2017, The One Hundred Layers Tiramisu")


#: Jégou et al. 2017, Table 2: parameters (millions) of the 2D networks (3 input channels, 11 classes).
JEGOU_PARAMETERS_M = {"56": 1.5, "67": 3.5, "103": 9.4}


def _ops(dims: int) -> tuple[type, type, type, type]:
    if dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.MaxPool2d
    if dims == 3:
        return nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.MaxPool3d
    raise ValueError(f"dims must be 2 or 3, got {dims}")


class DenseBlock(nn.Module):
    """``n_layers`` dense layers (BN, ReLU, 3^d conv to ``growth`` maps, dropout).

    Returns the input with the new maps, or the new maps only (``keep_input=False``, the up path).
    """

    def __init__(self, in_ch: int, growth: int, n_layers: int, dropout: float, keep_input: bool, dims: int) -> None:
        super().__init__()
        conv, _, bn, _ = _ops(dims)
        self.layers = nn.ModuleList(
            nn.Sequential(bn(in_ch + i * growth), nn.ReLU(inplace=True),
                          conv(in_ch + i * growth, growth, 3, padding=1), nn.Dropout(dropout))
            for i in range(n_layers))
        self.keep_input = keep_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            new.append(out)
            x = torch.cat([x, out], 1)
        return x if self.keep_input else torch.cat(new, 1)


def _centre_crop(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """The centre ``size`` of the spatial axes of ``x`` (each at least as large)."""
    idx = tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(x.shape[2:], size))
    return x[(slice(None), slice(None), *idx)]


class FCDenseNet3DNet(nn.Module):
    """FC-DenseNet mapping (N, C, D, H, W) to (N, num_classes, D, H, W) for any sizes (or 2D with ``dims=2``).

    Parameters
    ----------
    in_channels, num_classes : int
    variant : {"103", "67", "56"}
    width : int, optional
        Filters of the first convolution (None: 48, the paper's); the growth
        rate is ``growth * width / 48`` rounded, at least 1.
    dropout : float
        Dropout of dense layers and transitions (0.2 in the paper).
    z_pools : int, optional
        Levels whose pooling also halves z (None: all five); the others pool (1, 2, 2).
    dims : {3, 2}
        3D network, or the 2D original (used to check the layout against the paper).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, variant: str = "103", width: int | None = None,
                 dropout: float = 0.2, z_pools: int | None = None, dims: int = 3) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown FC-DenseNet variant {variant!r}; known: {', '.join(VARIANTS)}")
        v = VARIANTS[variant]
        first = v.first if width is None else width
        if first < 1:
            raise ValueError(f"width must be a positive integer, got {first}")
        k = max(1, round(v.growth * first / v.first))
        conv, conv_t, bn, pool = _ops(dims)
        strides = level_strides(len(v.down), z_pools)
        if dims == 2:
            strides = [s[1:] for s in strides]
        self.first = conv(in_channels, first, 3, padding=1)
        ch, skip_ch = first, []
        self.down_blocks, self.trans_down = nn.ModuleList(), nn.ModuleList()
        for n, s in zip(v.down, strides):
            self.down_blocks.append(DenseBlock(ch, k, n, dropout, True, dims))
            ch += k * n
            skip_ch.append(ch)
            self.trans_down.append(nn.Sequential(bn(ch), nn.ReLU(inplace=True), conv(ch, ch, 1), nn.Dropout(dropout),
                                                 pool(s, ceil_mode=True)))
        self.bottleneck = DenseBlock(ch, k, v.bottleneck, dropout, False, dims)
        prev = k * v.bottleneck  # only the maps the bottleneck created go up
        self.trans_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(v.down[::-1]):
            # 3^d kernel, no padding: 2h + 1 (h + 2 where z is not pooled), centre-cropped to the skip
            self.trans_up.append(conv_t(prev, prev, 3, stride=strides[-1 - i]))
            last = i == len(v.down) - 1
            self.up_blocks.append(DenseBlock(prev + skip_ch[-1 - i], k, n, dropout, last, dims))
            prev = prev + skip_ch[-1 - i] + k * n if last else k * n
        self.classifier = conv(prev, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.trans_down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block in zip(self.trans_up, self.up_blocks):
            skip = skips.pop()
            x = block(torch.cat([_centre_crop(up(x), tuple(skip.shape[2:])), skip], 1))
        return self.classifier(x)


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
                                 "val_patches": 8}}

    def __init__(self, width: int | None = None, variant: str | None = None, z_pools: int | None = None, *,
                 tile: int = 128, margin: int = 16, batch_size: int = 2, tile_depth: int = 16,
                 margin_depth: int = 4, **kw) -> None:
        super().__init__(width=width, variant=str(variant or "103"), z_pools=z_pools, tile=tile, margin=margin,
                         batch_size=batch_size, **kw)
        if self._config["variant"] not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self._config['variant']!r}")
        self.tile_depth, self.margin_depth = tile_depth, margin_depth

    def build_network(self) -> nn.Module:
        c = self._config
        return FCDenseNet3DNet(in_channels=1, num_classes=2, variant=c["variant"], width=c["width"],
                               z_pools=c["z_pools"])
