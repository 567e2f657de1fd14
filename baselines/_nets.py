"""The U-Net and WPU-Net networks of the authors' code base, with a width parameter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._unet_parts import Decoder, DoubleConv, level_widths


class UNetNet(nn.Module):
    """Plain U-Net (Ronneberger et al. 2015) as in the WPU-Net repository.

    ``UNetNet(1, 2, width=64)`` has 31,042,434 parameters (31.04M).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 64) -> None:
        super().__init__()
        w = level_widths(width)
        self.downs = nn.ModuleList([DoubleConv(in_channels, w[0])] + [DoubleConv(w[i - 1], w[i]) for i in (1, 2, 3)])
        self.bottom = DoubleConv(w[3], w[4])
        self.decoder = Decoder(w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return self.decoder(self.bottom(F.max_pool2d(x, 2)), skips)


class WPUNetNet(nn.Module):
    """WPU-Net (Ma et al. 2019): U-Net fed the image and the previous slice's encoded mask.

    The input has two channels, image and previous mask (boundary = -6,
    grain = 1). With ``fusion="multi"`` (the paper's "layer 1-4") the mask,
    max-pooled to each scale, is concatenated again before encoder levels
    2-4; with ``fusion="layer1"`` it enters at the first layer only.
    ``WPUNetNet(width=64, fusion="multi")`` has 31,051,074 parameters (31.05M).
    """

    def __init__(self, num_classes: int = 2, width: int = 64, fusion: str = "multi", in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels  # image channels; the previous mask is one more input channel
        if fusion not in ("multi", "layer1"):
            raise ValueError(f"fusion must be 'multi' (layers 1-4) or 'layer1', got {fusion!r}")
        self.fusion = fusion
        extra = 1 if fusion == "multi" else 0
        w = level_widths(width)
        self.downs = nn.ModuleList([DoubleConv(in_channels + 1, w[0])]
                                   + [DoubleConv(w[i - 1] + extra, w[i]) for i in (1, 2, 3)])
        self.bottom = DoubleConv(w[3], w[4])
        self.decoder = Decoder(w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels + 1:
            raise ValueError(f"WPU-Net expects {self.in_channels + 1} input channels (image, previous mask), "
                             f"got {x.shape[1]}")
        last = x[:, -1:]
        skips = []
        for i, down in enumerate(self.downs):
            if i == 0:
                x = down(x)
            else:
                x = F.max_pool2d(x, 2)
                if self.fusion == "multi":
                    last = F.max_pool2d(last, 2)
                    x = torch.cat([x, last], 1)
                x = down(x)
            skips.append(x)
        return self.decoder(self.bottom(F.max_pool2d(x, 2)), skips)
