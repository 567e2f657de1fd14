"""SegNet (Badrinarayanan et al. 2017): VGG16 encoder, decoder up-sampling with the max-pooling indices.

Layer for layer the authors' Caffe model (``segnet_train.prototxt`` of
github.com/alexgkendall/SegNet-Tutorial):

* encoder: the 13 convolutions of VGG16 (3 x 3, each followed by BN and
  ReLU) in five stages of 2, 2, 3, 3, 3 layers with 64, 128, 256, 512, 512
  filters, each stage ending in 2 x 2 max-pooling that records its indices;
* decoder: the mirror image; each stage first max-unpools with the indices
  of the matching encoder pooling (no learnt up-sampling), then applies
  3 x 3 conv + BN + ReLU layers; the last decoder layer is a 3 x 3
  convolution to the class scores (no BN, no ReLU).

With 3 input channels and CamVid's 11 classes this is 29.45M parameters
(the paper reports 29.5M); with one grey channel and two classes 29.44M.
Pooling uses ``ceil_mode`` like Caffe, so sides divisible by 16 but not by
32 work (the fifth pooling then sees an odd size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grainbench.methods import TorchMethod

REFERENCE = ("Badrinarayanan et al. 2017, SegNet: A deep convolutional encoder-decoder architecture "
             "for image segmentation")

#: Convolutions per stage (VGG16) and their channels relative to the first stage's width.
STAGES = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class SegNetNet(nn.Module):
    """SegNet mapping (N, C, H, W) to (N, num_classes, H, W).

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Filters of the first stage (64 in VGG16); stage i has ``width * (1, 2, 4, 8, 8)[i]``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 64) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        chans = [width * m for _, m in STAGES]
        self.encoder = nn.ModuleList()
        prev = in_channels
        for (n, _), ch in zip(STAGES, chans):
            self.encoder.append(nn.Sequential(*[conv_bn_relu(prev if i == 0 else ch, ch) for i in range(n)]))
            prev = ch
        # Decoder stage i mirrors encoder stage i: n convolutions, the last one maps to stage i-1's
        # channels (Caffe's conv5_1_D 512 -> 512, conv4_1_D 512 -> 256, ..., conv1_1_D 64 -> classes).
        self.decoder = nn.ModuleList()
        for i, ((n, _), ch) in enumerate(zip(STAGES, chans)):
            layers = [conv_bn_relu(ch, ch) for _ in range(n - 1)]
            layers.append(nn.Conv2d(ch, num_classes, 3, padding=1) if i == 0 else conv_bn_relu(ch, chans[i - 1]))
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        record = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[2:]
            x, idx = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
            record.append((idx, size))
        for stage in reversed(self.decoder):
            idx, size = record.pop()
            # The pooling indices put every value back where its maximum was (sparse map).
            x = stage(F.max_unpool2d(x, idx, 2, 2, output_size=size))
        return x


class SegNet(TorchMethod):
    """2D SegNet, one grey channel in, two classes out; 29.44M parameters at the default width 64.

    Parameters
    ----------
    width : int, optional
        Filters of the first stage; None: 64 (VGG16), or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "segnet"
    context = "2d"
    reference = REFERENCE
    description = "SegNet: VGG16 encoder, decoder unpools with the max-pooling indices"
    default_width = 64

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return SegNetNet(in_channels=self.net_in_channels, num_classes=2, width=self._width())
