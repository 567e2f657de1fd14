"""Building blocks shared by the U-Net and WPU-Net baselines (the authors' layer layout).

Each level is two 3 x 3 convolutions with batch norm and ReLU; the decoder
up-samples with a 2 x 2 transposed convolution and concatenates the skip
connection. ``width`` is the channel count of the first level (64 in the
authors' code); level ``i`` has ``width * 2**i`` channels.
"""

from __future__ import annotations

import torch
from torch import nn


def level_widths(width: int) -> list[int]:
    """Channels of the five levels: ``[w, 2w, 4w, 8w, 16w]``."""
    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    return [width * 2 ** i for i in range(5)]


class DoubleConv(nn.Sequential):
    """(3 x 3 conv, BN, ReLU) twice."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        )


class Decoder(nn.Module):
    """Four up-sampling steps from the bottom features back to full resolution, then 1 x 1 logits."""

    def __init__(self, widths: list[int], num_classes: int) -> None:
        super().__init__()
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in (3, 2, 1, 0))
        self.convs = nn.ModuleList(DoubleConv(widths[i + 1], widths[i]) for i in (3, 2, 1, 0))
        self.final = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, bottom: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = bottom
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips)):
            x = conv(torch.cat([skip, up(x)], 1))
        return self.final(x)


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights for every convolution (the authors' ``weights_init``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
