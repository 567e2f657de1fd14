"""RCF, richer convolutional features for edge detection (Liu et al. 2017), as compared in seed 002.

Like HED a VGG16 trunk with five deeply supervised side outputs and a
learned fusion, but every convolution (not only the last of a stage)
contributes: each conv layer's output is reduced by a 1 x 1 convolution to
21 channels, the reductions of a stage are summed and scored by a 1 x 1
convolution to one channel. As in the authors' PyTorch code
(yun-liu/RCF-PyTorch), pool4 has stride 1 and conv5 is dilated by 2, so
stage 5 keeps stage 4's resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._edges import DeeplySupervised, stage_taps, two_class, vgg16_trunk

REFERENCE = "Liu et al. 2017, Richer convolutional features for edge detection (CVPR); RCF in seed 002"

#: Channels of the per-layer reductions (the paper's 21, kept at every width).
REDUCED = 21


def _rcf_trunk(in_channels: int, width: int) -> nn.Sequential:
    """VGG16 trunk with RCF's stride-1 pool4 and dilated conv5 (same parameters as VGG16)."""
    trunk = vgg16_trunk(in_channels, width)
    pools = [i for i, m in enumerate(trunk) if isinstance(m, nn.MaxPool2d)]
    # pool4: 2 x 2, stride 1. Padding the right/bottom edge by one zero keeps the size; inputs are
    # ReLU outputs (>= 0), so a zero never wins over a real value.
    trunk[pools[3]] = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1))
    for i in range(pools[3] + 1, len(trunk)):
        if isinstance(trunk[i], nn.Conv2d):
            conv = trunk[i]
            trunk[i] = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, padding=2, dilation=2)
    return trunk


class RCFNet(nn.Module):
    """RCF network: (N, C, H, W) -> (N, 2, H, W) fused logits (train mode: ``[fused, side1..side5]``).

    ``RCFNet(1, width=64)`` has 14,802,629 parameters: VGG16's convolutions
    (14,713,536 with one input channel), 13 reductions to 21 channels
    (88,977), five scoring convolutions (110) and the fusion (6).
    """

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.trunk = _rcf_trunk(in_channels, width)
        self.stages = stage_taps(self.trunk)
        self.tap_stage = {i: s for s, stage in enumerate(self.stages) for i in stage}
        self.down = nn.ModuleDict({str(i): nn.Conv2d(self.trunk[i - 1].out_channels, REDUCED, kernel_size=1)
                                   for i in self.tap_stage})
        self.score = nn.ModuleList(nn.Conv2d(REDUCED, 1, kernel_size=1) for _ in self.stages)
        self.fuse = nn.Conv2d(len(self.stages), 1, kernel_size=1)
        nn.init.constant_(self.fuse.weight, 1.0 / len(self.stages))  # the authors' initialisation
        nn.init.zeros_(self.fuse.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        size = x.shape[-2:]
        sums: list[torch.Tensor | None] = [None] * len(self.stages)
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in self.tap_stage:
                s = self.tap_stage[i]
                r = self.down[str(i)](x)
                sums[s] = r if sums[s] is None else sums[s] + r
        sides = []
        for s, total in enumerate(sums):
            o = self.score[s](total)
            # Bilinear up-sampling (the authors: fixed bilinear deconvolution + crop).
            sides.append(o if o.shape[-2:] == size else F.interpolate(o, size=size, mode="bilinear",
                                                                       align_corners=False))
        fused = self.fuse(torch.cat(sides, dim=1))
        if self.training:
            return [two_class(fused)] + [two_class(s) for s in sides]
        return two_class(fused)


class RCF(DeeplySupervised):
    """RCF (Liu et al. 2017): every VGG16 convolution feeds its stage's deeply supervised side output.

    Parameters
    ----------
    width : int, optional
        Channels of the first VGG stage (64 in the paper: 14.80M parameters).
        The 21-channel reductions keep their size. None: 64, or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "rcf"
    context = "2d"
    reference = REFERENCE
    description = "RCF: VGG16, all 13 conv layers feed 5 deeply supervised side outputs + fusion"

    def build_network(self) -> nn.Module:
        return RCFNet(self.net_in_channels, width=self.width)
