"""FC-DenseNet, "The One Hundred Layers Tiramisu" (Jégou et al. 2017), in 2D.

Written from the paper (Tables 1-2, Fig. 1):

* first layer: 3 x 3 convolution with ``m0`` = 48 filters;
* dense block of n layers: each layer is BN, ReLU, 3 x 3 conv (k = growth
  rate filters), dropout 0.2, and its output is concatenated to its input;
* down path: dense block, then transition down (BN, ReLU, 1 x 1 conv keeping
  the channel count, dropout 0.2, 2 x 2 max-pool); the block's full output
  is the skip connection;
* bottleneck dense block; on the up path a dense block passes on only the
  k * n feature maps it created (not its input), which keeps the up path
  linear in size;
* transition up: 3 x 3 transposed convolution, stride 2, on those new maps,
  centre-cropped to the skip's size and concatenated with it (as in the
  authors' Lasagne code); the last dense block keeps its input and a 1 x 1
  convolution gives the class scores.

Variants (paper Table 2, parameters for 3 input channels and 11 CamVid
classes): FC-DenseNet56 (4 layers per block, k = 12) 1.5M, FC-DenseNet67
(5 layers, k = 16) 3.5M, FC-DenseNet103 (4, 5, 7, 10, 12 / 15 / 12, 10, 7,
5, 4 layers, k = 16) 9.4M. Seed 004 (Section 3.3) used a 3D FC-DenseNet
whose block sizes it does not give; the benchmark's 2D baseline is the
paper's flagship FC-DenseNet103.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from grainbench.methods import TorchMethod

from ._nets3d import level_strides

REFERENCE = ("Jégou et al. 2017, The One Hundred Layers Tiramisu: Fully convolutional DenseNets "
             "for semantic segmentation")


@dataclass(frozen=True)
class Variant:
    """Block sizes of one FC-DenseNet variant (paper Table 2)."""

    down: tuple[int, ...]
    bottleneck: int
    growth: int
    first: int = 48


VARIANTS: dict[str, Variant] = {
    "56": Variant(down=(4, 4, 4, 4, 4), bottleneck=4, growth=12),
    "67": Variant(down=(5, 5, 5, 5, 5), bottleneck=5, growth=16),
    "103": Variant(down=(4, 5, 7, 10, 12), bottleneck=15, growth=16),
}


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


class FCDenseNetNet(nn.Module):
    """FC-DenseNet mapping (N, C, H, W) to (N, num_classes, H, W) for any sizes (3D with ``dims=3``).

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
    dims : {2, 3}
        The 2D original, or every operation swapped for its 3D counterpart (seed 004).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, variant: str = "103", width: int | None = None,
                 dropout: float = 0.2, z_pools: int | None = None, dims: int = 2) -> None:
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


class FCDenseNet(TorchMethod):
    """FC-DenseNet103 (Jégou et al. 2017), 2D, one grey channel in, two classes out.

    Parameters
    ----------
    width : int, optional
        Filters of the first convolution; the growth rate follows
        (``16 * width / 48``). None: 48 (growth rate 16, the paper's
        network), or the training preset's width.
    variant : {"103", "67", "56"}, optional
        The paper's variants; None: "103".
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "fc_densenet"
    context = "2d"
    reference = REFERENCE
    description = "FC-DenseNet103 (dense blocks 4-5-7-10-12 / 15, growth 16), 2D"
    default_variant = "103"

    def __init__(self, width: int | None = None, variant: str | None = None, **kw) -> None:
        super().__init__(width=width, variant=str(variant or self.default_variant), **kw)
        if self._config["variant"] not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self._config['variant']!r}")

    def build_network(self) -> nn.Module:
        return FCDenseNetNet(in_channels=self.net_in_channels, num_classes=2, variant=self._config["variant"],
                             width=self._config["width"])
