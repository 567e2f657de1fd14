"""UNet+BDCLSTM (Chen et al. 2016): U-Net features of slices z-1, z, z+1 fed to a bidirectional convolutional LSTM.

Chen et al. ("Combining fully convolutional and recurrent neural networks
for 3D biomedical image segmentation", NIPS 2016) extract intra-slice
features with a 2D FCN and inter-slice context with a bidirectional
convolutional LSTM (BDC-LSTM) running along z. The name "UNet+BDCLSTM" in
the WPU-Net comparison (seed 000, Table 2) is that of the UNet-Zoo
implementation (github.com/shreyaspadhy/UNet-Zoo, whose U-Net the WPU-Net
code is based on), which this module follows:

* a U-Net (here the WPU-Net code base's, ``width`` channels at the first
  level) without its classifier maps each of the three slices to ``width``
  feature maps; the three passes share weights;
* the forward ConvLSTM reads (z-1, z), the backward ConvLSTM reads (z+1, z);
  both have ``width`` hidden channels and 5 x 5 gate convolutions (one
  convolution of [input, hidden] to the four gates, no peepholes);
* their hidden states at slice z are concatenated and a 1 x 1 convolution
  gives the class scores of slice z.

The ConvLSTM is written here (there is no maintained package). At width 64
the network has 32,681,474 parameters: the U-Net's 31,042,304 without its
classifier, 2 x 819,456 for the two ConvLSTM cells and 258 for the
classifier. Chen et al. report no parameter count.
"""

from __future__ import annotations

import torch
from torch import nn

from grainbench.methods import TorchMethod

from ._nets import UNetNet

REFERENCE = ("Chen et al. 2016, Combining fully convolutional and recurrent neural networks for 3D biomedical "
             "image segmentation (UNet-Zoo layout)")


class ConvLSTMCell(nn.Module):
    """One convolutional LSTM step (Shi et al. 2015, without peephole connections).

    ``[i, f, o, g] = conv([x, h])``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``;
    ``h' = sigmoid(o) tanh(c')``.

    Parameters
    ----------
    in_ch, hidden_ch : int
        Channels of the input and of the hidden/cell state.
    kernel_size : int
        Odd side of the gate convolution (5 in UNet-Zoo).
    """

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.hidden_ch = hidden_ch
        self.gates = nn.Conv2d(in_ch + hidden_ch, 4 * hidden_ch, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_ch, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], 1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """A ConvLSTM cell run over a sequence; returns the hidden state after the last step."""

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(in_ch, hidden_ch, kernel_size)

    def forward(self, seq: list[torch.Tensor]) -> torch.Tensor:
        state = None
        for x in seq:
            state = self.cell(x, state)
        return state[0]


class UNetFeatures(UNetNet):
    """The WPU-Net code base's U-Net up to its last decoder level (``width`` maps at full resolution)."""

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__(in_channels, num_classes=1, width=width)
        self.decoder.final = nn.Identity()  # features, not scores: the BDC-LSTM classifies


class UNetBDCLSTMNet(nn.Module):
    """U-Net features of three neighbouring slices, a bidirectional ConvLSTM, a 1 x 1 classifier.

    Input (N, 3 * C, H, W): the C image channels of slices z-1, z, z+1 (the
    2.5D context of depth 1); output (N, num_classes, H, W) for slice z.

    Parameters
    ----------
    num_classes : int
    width : int
        U-Net first-level channels and ConvLSTM hidden channels (64 and 64).
    kernel_size : int
        Side of the ConvLSTM gate convolutions (5).
    in_channels : int
        Image channels C of each slice (1 = grey, 3 = RGB).
    """

    def __init__(self, num_classes: int = 2, width: int = 64, kernel_size: int = 5, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.unet = UNetFeatures(in_channels, width)
        self.forward_lstm = ConvLSTM(width, width, kernel_size)
        self.backward_lstm = ConvLSTM(width, width, kernel_size)
        self.classifier = nn.Conv2d(2 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, h, w = x.shape
        c = self.in_channels
        if k != 3 * c:
            raise ValueError(f"UNet+BDCLSTM expects {3 * c} input channels (slices z-1, z, z+1), got {k}")
        s = 3
        # One U-Net pass over all 3N slices (shared weights), then back to (N, 3, C, H, W).
        feats = self.unet(x.reshape(n * s, c, h, w))
        feats = feats.reshape(n, s, *feats.shape[1:])
        prev, cur, nxt = feats[:, 0], feats[:, 1], feats[:, 2]
        fwd = self.forward_lstm([prev, cur])
        bwd = self.backward_lstm([nxt, cur])
        return self.classifier(torch.cat([fwd, bwd], 1))


class UNetBDCLSTM(TorchMethod):
    """UNet+BDCLSTM, context 2.5D with one neighbour on each side; 32.68M parameters at width 64.

    Parameters
    ----------
    width : int, optional
        U-Net first-level channels and ConvLSTM hidden channels; None: 64,
        or the training preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.

    Notes
    -----
    Trained end to end in one stage; UNet-Zoo first trains the U-Net, then
    the BDC-LSTM on its frozen features. At the ends of a stack the missing
    neighbour is the end slice repeated (the engine clamps z).
    """

    name = "unet_bdclstm"
    context = "2.5d"
    depth = 1
    reference = REFERENCE
    description = "U-Net features of slices z-1, z, z+1 + bidirectional ConvLSTM along z"
    default_width = 64

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return UNetBDCLSTMNet(num_classes=2, width=self._width(), in_channels=self.in_channels)
