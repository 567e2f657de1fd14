"""HED, holistically-nested edge detection (Xie & Tu 2015), as compared in seeds 000 and 002.

A VGG16 trunk (conv1_1 .. conv5_3, no pool5, no fully connected layers)
with a side output after the last convolution of each of its five stages: a
1 x 1 convolution to one channel, up-sampled to the input size. The five
side outputs are fused by a 1 x 1 convolution (initialised to 1/5 each).
Every side output and the fused one is supervised (deep supervision); the
prediction is the fused output.

The trunk is torchvision's VGG16 layout (built with ``weights=None``: the
micrographs are grey and grainbench trains from scratch, as seed 002 did).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._edges import DeeplySupervised, stage_taps, two_class, vgg16_trunk

REFERENCE = "Xie & Tu 2015, Holistically-nested edge detection (ICCV); HED in seeds 000 and 002"


class HEDNet(nn.Module):
    """HED network: (N, C, H, W) -> (N, 2, H, W) fused logits (train mode: ``[fused, side1..side5]``).

    ``HEDNet(1, width=64)`` has 14,715,019 parameters: torchvision's VGG16
    convolutions (14,713,536 with one input channel), five side
    convolutions (1,477) and the fusion (6).
    """

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.trunk = vgg16_trunk(in_channels, width)
        # Taps: the ReLU after the last convolution of each stage (conv1_2, conv2_2, conv3_3, conv4_3, conv5_3).
        self.taps = [stage[-1] for stage in stage_taps(self.trunk)]
        chans = [self.trunk[i - 1].out_channels for i in self.taps]
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in chans)
        self.fuse = nn.Conv2d(len(chans), 1, kernel_size=1)
        nn.init.constant_(self.fuse.weight, 1.0 / len(chans))  # the paper's fusion initialisation
        nn.init.zeros_(self.fuse.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        size = x.shape[-2:]
        sides = []
        k = 0
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if k < len(self.taps) and i == self.taps[k]:
                s = self.sides[k](x)
                # Bilinear up-sampling to the input size (the paper: fixed bilinear deconvolution + crop).
                sides.append(s if s.shape[-2:] == size else F.interpolate(s, size=size, mode="bilinear",
                                                                           align_corners=False))
                k += 1
        fused = self.fuse(torch.cat(sides, dim=1))
        if self.training:
            return [two_class(fused)] + [two_class(s) for s in sides]
        return two_class(fused)


class HED(DeeplySupervised):
    """HED (Xie & Tu 2015) with deep supervision on five side outputs and the fused output.

    Parameters
    ----------
    width : int, optional
        Channels of the first VGG stage (64 in the paper: 14.72M parameters);
        stages have ``width * (1, 2, 4, 8, 8)``. None: 64, or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "hed"
    context = "2d"
    reference = REFERENCE
    description = "HED: VGG16 trunk, 5 deeply supervised side outputs + learned fusion"

    def build_network(self) -> nn.Module:
        return HEDNet(self.net_in_channels, width=self.width)
