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

REFERENCE = ("Jégou et al. 2017, The One Hundred Layers Tiramisu: Fully convolutional DenseNets "
             "for semantic segmentation")


@dataclass(frozen=True)
class Variant:
    """Block sizes of one FC-DenseNet variant (paper Table 2)."""

    down: tuple[int, ...]
    bottleneck: int
    growth: int
    first: int = 48

    @property
    def up(self) -> tuple[int, ...]:
        return self.down[::-1]


VARIANTS: dict[str, Variant] = {
    "56": Variant(down=(4, 4, 4, 4, 4), bottleneck=4, growth=12),
    "67": Variant(down=(5, 5, 5, 5, 5), bottleneck=5, growth=16),
    "103": Variant(down=(4, 5, 7, 10, 12), bottleneck=15, growth=16),
}


class DenseLayer(nn.Sequential):
    """BN, ReLU, 3 x 3 conv to ``growth`` maps, dropout."""

    def __init__(self, in_ch: int, growth: int, dropout: float) -> None:
        super().__init__(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True),
                         nn.Conv2d(in_ch, growth, 3, padding=1), nn.Dropout(dropout))


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; returns input + new maps, or the new maps only (up path)."""

    def __init__(self, in_ch: int, growth: int, n_layers: int, dropout: float, keep_input: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(in_ch + i * growth, growth, dropout) for i in range(n_layers))
        self.keep_input = keep_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            new.append(out)
            x = torch.cat([x, out], 1)
        return x if self.keep_input else torch.cat(new, 1)


class TransitionDown(nn.Sequential):
    """BN, ReLU, 1 x 1 conv, dropout, 2 x 2 max-pool."""

    def __init__(self, ch: int, dropout: float) -> None:
        # ceil_mode: odd sizes (H divisible by 16 but not 32) keep their last row; the up path crops.
        super().__init__(nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 1),
                         nn.Dropout(dropout), nn.MaxPool2d(2, ceil_mode=True))


def center_crop(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The centre ``size`` (H, W) of a (N, C, H', W') tensor with H' >= H, W' >= W."""
    dy, dx = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, dy:dy + size[0], dx:dx + size[1]]


class FCDenseNetNet(nn.Module):
    """FC-DenseNet mapping (N, C, H, W) to (N, num_classes, H, W) for any H, W.

    Parameters
    ----------
    in_channels, num_classes : int
    variant : {"103", "67", "56"}
        Block sizes and growth rate of the paper's variants.
    width : int, optional
        Filters of the first convolution (48 in the paper); the growth rate
        scales with it (``growth * width / 48``, at least 1). None: 48.
    dropout : float
        Dropout rate of every dense layer and transition (0.2 in the paper).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, variant: str = "103", width: int | None = None,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown FC-DenseNet variant {variant!r}; known: {', '.join(VARIANTS)}")
        v = VARIANTS[variant]
        first = v.first if width is None else width
        if first < 1:
            raise ValueError(f"width must be a positive integer, got {first}")
        k = max(1, round(v.growth * first / v.first))
        self.first = nn.Conv2d(in_channels, first, 3, padding=1)
        ch = first
        self.down_blocks, self.trans_down, skip_ch = nn.ModuleList(), nn.ModuleList(), []
        for n in v.down:
            self.down_blocks.append(DenseBlock(ch, k, n, dropout, keep_input=True))
            ch += k * n
            skip_ch.append(ch)
            self.trans_down.append(TransitionDown(ch, dropout))
        self.bottleneck = DenseBlock(ch, k, v.bottleneck, dropout, keep_input=False)
        prev = k * v.bottleneck  # only the maps the bottleneck created go up
        self.trans_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(v.up):
            # 3 x 3, stride 2, no padding: 2h + 1 rows, centre-cropped to the skip in forward().
            self.trans_up.append(nn.ConvTranspose2d(prev, prev, 3, stride=2))
            last = i == len(v.up) - 1
            self.up_blocks.append(DenseBlock(prev + skip_ch[-1 - i], k, n, dropout, keep_input=last))
            prev = prev + skip_ch[-1 - i] + k * n if last else k * n
        self.classifier = nn.Conv2d(prev, num_classes, 1)

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
            x = block(torch.cat([center_crop(up(x), skip.shape[2:]), skip], 1))
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
        return FCDenseNetNet(in_channels=self.in_channels, num_classes=2, variant=self._config["variant"],
                             width=self._config["width"])
