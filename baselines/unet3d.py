"""3D U-Net (Çiçek et al. 2016) with the residual 1 x 1 x 1 path of seed 004 (James et al., Section 3.3).

Layout of Çiçek et al. (Fig. 1): three analysis levels and a bottom level,
each two 3 x 3 x 3 convolutions with batch norm and ReLU, the second one
doubling the channels (32/64, 64/128, 128/256, 256/512 at paper width), 2 x 2
x 2 max pooling; the synthesis path up-samples with a 2 x 2 x 2 transposed
convolution keeping the channels, concatenates the skip and applies two
convolutions (768 -> 256 -> 256, ...); a 1 x 1 x 1 convolution gives the
class scores. Seed 004 used the implementation of Pérez-García's
``fepegar/unet`` (its ref. 29) with ``residual=True``: every convolutional
block gets an extra 1 x 1 x 1 convolution of its input, summed with the
block's output (Fig. 2b), and the convolutions are padded.

Parameter counts: Çiçek et al. (Section 2) report 19,069,955 parameters
for their network (3 input channels, 3 classes). ``UNet3DNet(3, 3,
width=32, residual=False)`` has exactly that many convolution weights and
biases (the count leaves out the batch-norm scales and shifts, 4,672, and
the biases of the transposed convolutions, 896, which that Caffe network
did not learn); 19,075,523 with them. The benchmark's network (1 channel
in, 2 classes, residual paths, all biases and batch-norm affines) has
19,505,282 (19.51M) at paper width.
"""

from __future__ import annotations

import torch
from torch import nn

from grainbench.methods import TorchMethod

from ._nets3d import level_strides, pad_to_multiple, z_depth_settings

REFERENCE = ("Çiçek et al. 2016, 3D U-Net: learning dense volumetric segmentation from sparse annotation; "
             "residual 1x1x1 paths as in James et al. 2022 (seed 004)")

#: Çiçek et al. 2016, Section 2: "The architecture has 19069955 parameters in total."
CICEK_PARAMETERS = 19_069_955


class ConvBlock3d(nn.Module):
    """Two (3 x 3 x 3 conv, BN, ReLU), plus an optional 1 x 1 x 1 convolution of the input added to the output."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, residual: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_ch, mid_ch, 3, padding=1), nn.BatchNorm3d(mid_ch), nn.ReLU(inplace=True),
            nn.Conv3d(mid_ch, out_ch, 3, padding=1), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True),
        )
        # fepegar/unet sums the 1x1x1 path after the block's last activation
        self.residual = nn.Conv3d(in_ch, out_ch, 1) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + self.residual(x) if self.residual is not None else y


class UNet3DNet(nn.Module):
    """3D U-Net mapping (N, C, D, H, W) to (N, num_classes, D, H, W) for any D, H, W.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Channels of the first convolution (32 in Çiçek et al.); level ``i``
        has ``width * 2**i`` then ``width * 2**(i+1)`` channels.
    residual : bool
        The 1 x 1 x 1 residual path of seed 004 in every block.
    z_pools : int, optional
        Levels that also halve z (None: all three, as Çiçek et al.); the
        others pool (1, 2, 2).

    Inputs whose sizes are not multiples of the pooling factors are
    replicate-padded at the far ends and the output is cropped back.
    """

    levels = 3

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32, residual: bool = True,
                 z_pools: int | None = None) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        self.strides = level_strides(self.levels, z_pools)
        self.multiple = tuple(int(torch.tensor([s[a] for s in self.strides]).prod()) for a in range(3))
        w = width
        self.downs = nn.ModuleList()
        ch = in_channels
        for i in range(self.levels):
            self.downs.append(ConvBlock3d(ch, w * 2 ** i, w * 2 ** (i + 1), residual))
            ch = w * 2 ** (i + 1)
        self.pools = nn.ModuleList(nn.MaxPool3d(s) for s in self.strides)
        self.bottom = ConvBlock3d(ch, ch, 2 * ch, residual)
        ch *= 2
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(self.levels)):
            skip = w * 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose3d(ch, ch, self.strides[i], stride=self.strides[i]))
            self.up_blocks.append(ConvBlock3d(ch + skip, skip, skip, residual))
            ch = skip
        self.classifier = nn.Conv3d(ch, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.multiple)
        skips = []
        for block, pool in zip(self.downs, self.pools):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, block in zip(self.ups, self.up_blocks):
            x = block(torch.cat([skips.pop(), up(x)], 1))
        return self.classifier(x)[:, :, :size[0], :size[1], :size[2]]


class UNet3D(TorchMethod):
    """3D U-Net with residual 1 x 1 x 1 paths (seed 004), one grey channel in, two classes out.

    19.51M parameters at the paper width 32 (4.88M at the quick preset's 16).

    Parameters
    ----------
    width : int, optional
        Channels of the first convolution (None: 32, or the training preset's width).
    residual : bool
        The residual 1 x 1 x 1 paths of seed 004 (False: Çiçek et al.'s plain blocks).
    z_pools : int, optional
        Levels that halve z (None: all 3; seed 004's 4-slice sub-volumes allow at most 2).
    tile_depth, margin_depth : int
        Inference tiles along z and the margin discarded at each end.
    z_depth : int, optional
        Slices the network sees at once, in training and inference (seed 004:
        4 was best); sets the presets' ``patch_depth``, ``tile_depth``,
        ``margin_depth`` and (unless given) ``z_pools``
        (:func:`baselines._nets3d.z_depth_settings`). None: those settings as given.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`
        (in-plane ``tile`` 128, ``margin`` 16 and ``batch_size`` 2 by default:
        3D activations are large).
    """

    name = "unet3d"
    context = "3d"
    reference = REFERENCE
    description = "3D U-Net (Çiçek et al. 2016) with residual 1x1x1 paths (seed 004)"

    # The 2D quick preset (96 patches of 16 x 128 x 128 per epoch) takes over an hour on
    # two CPU cores for a 3D net; these keep a quick fit to a few minutes.
    preset_defaults = {"quick": {"patch_depth": 8, "patch_size": 64, "patches_per_epoch": 32, "batch_size": 4,
                                 "val_patches": 8},
                       "standard": {"patch_depth": 8, "patch_size": 64, "patches_per_epoch": 32, "batch_size": 4,
                                    "val_patches": 8}}

    def __init__(self, width: int | None = None, residual: bool = True, z_pools: int | None = None, *,
                 tile: int = 128, margin: int = 16, batch_size: int = 2, tile_depth: int = 16,
                 margin_depth: int = 4, z_depth: int | None = None, **kw) -> None:
        self.preset_defaults, z_pools, tile_depth, margin_depth = z_depth_settings(
            z_depth, type(self).preset_defaults, UNet3DNet.levels, z_pools, tile_depth, margin_depth)
        extra = {} if z_depth is None else {"z_depth": z_depth}
        super().__init__(width=width, residual=bool(residual), z_pools=z_pools, tile=tile, margin=margin,
                         batch_size=batch_size, **extra, **kw)
        self.tile_depth, self.margin_depth = tile_depth, margin_depth

    def build_network(self) -> nn.Module:
        c = self._config
        return UNet3DNet(in_channels=self.net_in_channels, num_classes=2, width=c["width"] or 32,
                         residual=c["residual"],
                         z_pools=c["z_pools"])
