"""RDN, the residual deconvolutional network (Fakhry, Zeng and Ji 2016/2017) for boundary maps.

Which RDN: seed 000 cites "RDN (Zeng 2016)" and has no reference list.
The only RDN with Zeng among its authors from that time is Fakhry, Zeng
and Ji, "Residual deconvolutional networks for brain electron microscopy
image segmentation" (IEEE TMI 36(2):447-456, online 2016, doi
10.1109/TMI.2016.2613019), a network for membrane (boundary) detection in
serial-section EM, the task closest to grain boundaries. Zhang et al.'s
residual *dense* network (CVPR 2018) is a super-resolution network by
other authors; seed 004 cites it only for the residual layer of its 3D
U-Net.

The paper describes a network "of two information pathways that capture
full-resolution features and contextual information": a contracting path
of residual convolution blocks with pooling (context) and an expanding
path of deconvolutions, joined at every resolution by summation shortcuts
that carry the full-resolution features forward. The layer table of the
paper was not available when this module was written, so the sizes below
are this module's choices, set to the U-Net scale of the other baselines:

* stem: 3 x 3 conv, BN, ReLU to ``width`` channels;
* contracting path: five levels of ``width * [1, 2, 4, 8, 16]`` channels,
  2 x 2 max-pooling between levels, one residual block per level
  (3 x 3 conv, BN, ReLU, 3 x 3 conv, BN, plus the input, through a
  1 x 1 conv + BN where the channel count changes, then ReLU);
* expanding path: 2 x 2 stride-2 deconvolution (transposed convolution)
  to the next finer level's channels, *added* to that level's contracting
  features (the residual shortcut), then a residual block;
* 1 x 1 convolution to the class scores.

At ``width = 64`` this is 28,640,258 parameters (one grey channel, two
classes). Fakhry et al.'s own count is not known here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grainbench.methods import TorchMethod

REFERENCE = ("Fakhry, Zeng and Ji 2016, Residual deconvolutional networks for brain electron microscopy "
             "image segmentation (IEEE TMI 2017)")


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016) with a projection shortcut when channels change."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
        )
        self.shortcut = (nn.Identity() if in_ch == out_ch else
                         nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class RDNNet(nn.Module):
    """Residual deconvolutional network mapping (N, C, H, W) to (N, num_classes, H, W); H, W divisible by 16.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Channels of the first level (64).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 64) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        c = [width * 2 ** i for i in range(5)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU(inplace=True))
        self.down = nn.ModuleList([ResidualBlock(c[0], c[0])] + [ResidualBlock(c[i - 1], c[i]) for i in range(1, 5)])
        # deconv[i] / up[i] bring level i + 1 to level i.
        self.deconv = nn.ModuleList(nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2) for i in range(4))
        self.up = nn.ModuleList(ResidualBlock(c[i], c[i]) for i in range(4))
        self.classifier = nn.Conv2d(c[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for i in (3, 2, 1, 0):
            # Summation, not concatenation: the shortcut adds the full-resolution features back.
            x = self.up[i](self.deconv[i](x) + skips[i])
        return self.classifier(x)


class RDN(TorchMethod):
    """Residual deconvolutional network (Fakhry et al.), 2D, one grey channel in, two classes out.

    Parameters
    ----------
    width : int, optional
        Channels of the first level; None: 64, or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "rdn"
    context = "2d"
    reference = REFERENCE
    description = "residual deconvolutional network: residual conv/pool path, deconvolutions, summed shortcuts"
    default_width = 64

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return RDNNet(in_channels=self.net_in_channels, num_classes=2, width=self._width())
