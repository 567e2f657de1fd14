"""DeepCrack (Zou et al. 2019, IEEE TIP), the crack detector compared in seed 002.

Two networks share the name "DeepCrack"; seed 002's 30.903M parameters
match Zou et al.'s (the authors' PyTorch code, qinnzou/DeepCrack
``codes/model/deepcrack.py``: 30,903,859 parameters with one input
channel), not Liu et al.'s HED-like network (about 14.7M). It is a SegNet:

* encoder: VGG16's 13 convolutions (3 x 3, ReLU, no batch norm) in five
  stages, each followed by 2 x 2 max pooling that remembers its indices;
* decoder: five stages mirroring the encoder, each un-pooling with those
  indices (max-unpooling) and then convolving;
* skip-layer fusion at every scale: the encoder and decoder features of the
  scale are concatenated, up-sampled to the input size, reduced by a 3 x 3
  convolution + ReLU to 64 channels and scored by a 3 x 3 convolution to
  one channel (a side output);
* the five side outputs are fused by a 3 x 3 convolution.

All six outputs are supervised with the same weight (the authors' trainer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._edges import DeeplySupervised, scale, two_class

REFERENCE = ("Zou et al. 2019, DeepCrack: Learning hierarchical convolutional features for crack detection "
             "(IEEE TIP); DeepCrack in seed 002")

# (in, out) channels at width 64, the authors' layer lists.
_ENCODER = [[(None, 64), (64, 64)], [(64, 128), (128, 128)], [(128, 256), (256, 256), (256, 256)],
            [(256, 512), (512, 512), (512, 512)], [(512, 512), (512, 512), (512, 512)]]
_DECODER = [[(64, 64), (64, 64)], [(128, 128), (128, 64)], [(256, 256), (256, 256), (256, 128)],
            [(512, 512), (512, 512), (512, 256)], [(512, 512), (512, 512), (512, 512)]]
_FUSE_HIDDEN = 64


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True))


def _stage(spec: list[tuple[int | None, int]], width: int, in_channels: int) -> nn.Sequential:
    return nn.Sequential(*[_conv_relu(in_channels if a is None else scale(a, width), scale(b, width))
                           for a, b in spec])


class DeepCrackNet(nn.Module):
    """Zou et al.'s DeepCrack: (N, C, H, W) -> (N, 2, H, W) fused logits (train: ``[fused, side1..side5]``).

    ``DeepCrackNet(1, width=64)`` has 30,903,859 parameters: encoder
    14,713,536, decoder 14,749,376, side fusion 1,440,947.
    """

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.down = nn.ModuleList(_stage(s, width, in_channels) for s in _ENCODER)
        self.up = nn.ModuleList(_stage(s, width, in_channels) for s in _DECODER)
        hidden = scale(_FUSE_HIDDEN, width)
        # Scale k concatenates encoder stage k's output and decoder stage k's output.
        cat = [scale(e[-1][1], width) + scale(d[-1][1], width) for e, d in zip(_ENCODER, _DECODER)]
        self.side_hidden = nn.ModuleList(_conv_relu(c, hidden) for c in cat)
        self.side_score = nn.ModuleList(nn.Conv2d(hidden, 1, kernel_size=3, padding=1) for _ in cat)
        self.fuse = nn.Conv2d(len(cat), 1, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        size = x.shape[-2:]
        enc, pooled = [], []
        for stage in self.down:
            x = stage(x)
            enc.append(x)
            x, idx = F.max_pool2d(x, 2, stride=2, return_indices=True)
            pooled.append(idx)
        dec: list[torch.Tensor] = [None] * len(self.up)  # type: ignore[list-item]
        for k in reversed(range(len(self.up))):
            x = F.max_unpool2d(x, pooled[k], 2, stride=2, output_size=enc[k].shape[-2:])
            x = self.up[k](x)
            dec[k] = x
        sides = []
        for k in range(len(enc)):
            f = torch.cat([enc[k], dec[k]], dim=1)
            # As in the authors' code: up-sample the concatenated features first, then convolve at full size.
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            sides.append(self.side_score[k](self.side_hidden[k](f)))
        fused = self.fuse(torch.cat(sides[::-1], dim=1))  # authors' order: scale 5 first
        if self.training:
            return [two_class(fused)] + [two_class(s) for s in sides]
        return two_class(fused)


class DeepCrack(DeeplySupervised):
    """DeepCrack (Zou et al. 2019): SegNet encoder-decoder with deeply supervised multi-scale fusion.

    Parameters
    ----------
    width : int, optional
        Channels of the first stage (64 in the paper: 30.90M parameters);
        stages have ``width * (1, 2, 4, 8, 8)``, the side layers ``width``.
        None: 64, or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "deepcrack"
    context = "2d"
    reference = REFERENCE
    description = "DeepCrack (Zou 2019): SegNet encoder-decoder, 5 deeply supervised skip-layer fusions"

    def build_network(self) -> nn.Module:
        return DeepCrackNet(self.net_in_channels, width=self.width)
