"""Attention U-Net (Oktay et al. 2018): a U-Net whose skip connections pass through attention gates.

The network is a port of the authors' reference model
``unet_CT_multi_att_dsv_3D`` (github.com/ozan-oktay/Attention-Gated-Networks,
the network of the paper's pancreas experiments) written for 2D or 3D:

* encoder: five levels of (3 x 3 conv, BN, ReLU) x 2 with 2 x 2 max-pooling
  between them, ``width * [1, 2, 4, 8, 16]`` channels; the paper's
  ``feature_scale = 4`` gives ``width = 64 / 4 = 16``;
* gating signal: 1 x 1 conv, BN, ReLU on the bottom features;
* attention at decoder levels 4, 3, 2 (level 1 is not gated, as in the
  reference): two additive grid-attention gates per level whose outputs are
  concatenated and fused by 1 x 1 conv, BN, ReLU;
* decoder: bilinear (trilinear) x2 up-sampling, concatenation with the gated
  skip, (3 x 3 conv, BN, ReLU) x 2;
* deep supervision: 1 x 1 conv to class scores at each decoder level,
  up-sampled to full resolution and fused by a final 1 x 1 conv.

Checking the port: with ``spatial_dims=3, width=16``, one input channel and
two classes the network has 6,472,784 parameters, of which 66,304 are the
gating-signal convolution; without it 6,406,480, the 6.40M the paper
reports for Attention U-Net (its U-Net without gates, 5,887,466, is the
paper's 5.88M). The paper's count thus seems to leave out the gating
convolution of the released code, which is kept here. The 2D network of
the benchmark has 2,379,056 parameters at the paper's width 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grainbench.methods import TorchMethod

REFERENCE = "Oktay et al. 2018, Attention U-Net: Learning where to look for the pancreas"


def _ops(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], str]:
    """Convolution, batch norm, max-pool and interpolation mode for 2D or 3D."""
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, "bilinear"
    if spatial_dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, "trilinear"
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


class ConvBlock(nn.Sequential):
    """(3 x 3 conv, BN, ReLU) twice (the reference's ``UnetConv3`` / ``unetConv2``)."""

    def __init__(self, in_ch: int, out_ch: int, spatial_dims: int = 2) -> None:
        conv, bn, _, _ = _ops(spatial_dims)
        super().__init__(conv(in_ch, out_ch, 3, padding=1), bn(out_ch), nn.ReLU(inplace=True),
                         conv(out_ch, out_ch, 3, padding=1), bn(out_ch), nn.ReLU(inplace=True))


class GridAttentionGate(nn.Module):
    """Additive attention gate of Oktay et al. (eq. 1-2; the reference's ``_GridAttentionBlockND``).

    ``alpha = sigmoid(psi(relu(theta(x) + phi(g))))`` is computed on a grid
    half the resolution of the skip features ``x`` (``theta`` is a 2 x 2
    stride-2 convolution), up-sampled to ``x``'s size, multiplies ``x`` and
    the result goes through a 1 x 1 conv + BN output transform.

    Parameters
    ----------
    in_ch, gate_ch, inter_ch : int
        Channels of the skip features, of the gating signal and of the
        intermediate space.
    spatial_dims : int
        2 or 3.
    """

    def __init__(self, in_ch: int, gate_ch: int, inter_ch: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, bn, _, self.mode = _ops(spatial_dims)
        self.theta = conv(in_ch, inter_ch, 2, stride=2, bias=False)
        self.phi = conv(gate_ch, inter_ch, 1)
        self.psi = conv(inter_ch, 1, 1)
        self.out = nn.Sequential(conv(in_ch, in_ch, 1), bn(in_ch))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta_x = self.theta(x)
        # The gating signal is coarser than the skip; bring it to theta's grid.
        phi_g = F.interpolate(self.phi(g), size=theta_x.shape[2:], mode=self.mode, align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta_x + phi_g)))
        alpha = F.interpolate(alpha, size=x.shape[2:], mode=self.mode, align_corners=False)
        return self.out(alpha * x), alpha


class MultiAttentionBlock(nn.Module):
    """Two attention gates on the same skip, concatenated and fused (the reference's ``MultiAttentionBlock``)."""

    def __init__(self, in_ch: int, gate_ch: int, inter_ch: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, bn, _, _ = _ops(spatial_dims)
        self.gate1 = GridAttentionGate(in_ch, gate_ch, inter_ch, spatial_dims)
        self.gate2 = GridAttentionGate(in_ch, gate_ch, inter_ch, spatial_dims)
        self.combine = nn.Sequential(conv(2 * in_ch, in_ch, 1), bn(in_ch), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        y1, _ = self.gate1(x, g)
        y2, _ = self.gate2(x, g)
        return self.combine(torch.cat([y1, y2], 1))


class AttentionUNetNet(nn.Module):
    """Attention U-Net with deep supervision (see the module docstring for the layout).

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Channels of the first level (16 in the paper: ``feature_scale = 4``).
    spatial_dims : int
        2 for images, 3 for volumes (used to check the port against the paper).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 16, spatial_dims: int = 2) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        conv, bn, pool, self.mode = _ops(spatial_dims)
        f = [width * 2 ** i for i in range(5)]
        self.pool = pool(2)
        self.encoder = nn.ModuleList([ConvBlock(in_channels, f[0], spatial_dims)]
                                     + [ConvBlock(f[i - 1], f[i], spatial_dims) for i in range(1, 5)])
        self.gating = nn.Sequential(conv(f[4], f[4], 1), bn(f[4]), nn.ReLU(inplace=True))
        # attention[i] gates encoder output i + 1 (the paper's levels 2-4); level 1 stays ungated.
        self.attention = nn.ModuleList(MultiAttentionBlock(f[i], f[i + 1], f[i], spatial_dims) for i in (1, 2, 3))
        # up[i] brings encoder level i + 1 up to level i: concat(skip_i, upsampled) -> f[i].
        self.up = nn.ModuleList(ConvBlock(f[i + 1] + f[i], f[i], spatial_dims) for i in range(4))
        self.dsv = nn.ModuleList(conv(f[i], num_classes, 1) for i in range(4))
        self.final = conv(4 * num_classes, num_classes, 1)

    def _up(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(x, size=size, mode=self.mode, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        bottom = skips.pop()
        gate = self.gating(bottom)
        decoded = []
        x = bottom
        for level in (3, 2, 1, 0):
            skip = skips[level]
            if level > 0:
                # The deepest gate reads the gating signal, the others the decoder output below them.
                skip = self.attention[level - 1](skip, gate if level == 3 else x)
            x = self.up[level](torch.cat([skip, self._up(x, skip.shape[2:])], 1))
            decoded.append((level, x))
        # Deep supervision: class scores of every decoder level, at full resolution, fused.
        size = x.shape[2:]
        scores = [self._up(self.dsv[level](d), size) for level, d in reversed(decoded)]
        return self.final(torch.cat(scores, 1))


class AttentionUNet(TorchMethod):
    """Attention U-Net (Oktay et al. 2018), 2D, one grey channel in, two classes out.

    Parameters
    ----------
    width : int, optional
        Channels of the first level; None: 16 (the paper's ``feature_scale = 4``),
        or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "attention_unet"
    context = "2d"
    reference = REFERENCE
    description = "U-Net with additive attention gates on the skips and deep supervision (authors' layout, 2D)"
    default_width = 16

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return AttentionUNetNet(in_channels=self.net_in_channels, num_classes=2,
                                width=self._width())
