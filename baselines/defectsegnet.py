"""DefectSegNet (Roberts et al. 2019, Sci. Rep. 9:12744), the small dense encoder-decoder of seed 002.

Written from the authors' layer table (rajatsainju/DefectSegNet,
``best_checkpoint_*/architecture.txt``) and their graph builder
(``cnn_mlrad_body.py``): 20 layers, each reading the concatenation of
earlier tensors. Within a block every convolution sees all earlier outputs
of the block (dense connections); across the network every decoder layer
also sees all encoder tensors of its resolution. Three 2 x 2 max poolings
down, three 2 x 2 stride-2 transposed convolutions up, 3 x 3 convolutions
with ReLU, batch norm after every layer (``batch_norm: True`` in the
authors' configurations), symmetric padding.
"""

from __future__ import annotations

import torch
from torch import nn

from grainbench.methods import TorchMethod

from ._edges import PAPER_WIDTH, scale, two_class

REFERENCE = ("Roberts et al. 2019, Deep learning for semantic segmentation of defects in advanced STEM "
             "images of steels (Sci. Rep.); DefectSegNet in seed 002")

#: The authors' architecture: (kind, filters at width 64, input tensors); tensor 0 is the image,
#: layer k makes tensor k.
ARCHITECTURE: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("conv", 4, (0,)), ("conv", 4, (0, 1)), ("pool", 0, (0, 1, 2)),
    ("conv", 16, (3,)), ("conv", 16, (3, 4)), ("pool", 0, (3, 4, 5)),
    ("conv", 32, (6,)), ("conv", 32, (6, 7)), ("pool", 0, (6, 7, 8)),
    ("conv", 64, (9,)), ("conv", 64, (9, 10)), ("tconv", 32, (9, 10, 11)),
    ("conv", 32, (6, 7, 8, 12)), ("conv", 32, (6, 7, 8, 12, 13)), ("tconv", 16, (6, 7, 8, 12, 13, 14)),
    ("conv", 16, (3, 4, 5, 15)), ("conv", 16, (3, 4, 5, 15, 16)), ("tconv", 8, (3, 4, 5, 15, 16, 17)),
    ("conv", 4, (0, 1, 2, 18)), ("out", 1, (0, 1, 2, 18, 19)),
)


class DefectSegNetNet(nn.Module):
    """DefectSegNet: (N, C, H, W) -> (N, 2, H, W) logits; H and W divisible by 8.

    ``DefectSegNetNet(1, width=64)`` has 350,428 parameters: 349,342 in
    convolutions and 1,086 in the batch norms of the 19 hidden layers.
    ``width`` scales every layer's filters by ``width / 64`` (at least 1).
    """

    def __init__(self, in_channels: int = 1, width: int = PAPER_WIDTH) -> None:
        super().__init__()
        chans = [in_channels]
        self.layers = nn.ModuleList()
        for kind, filters, inputs in ARCHITECTURE:
            cin = sum(chans[i] for i in inputs)
            if kind == "pool":
                # The authors' builder applies no activation to pools and transposed convolutions.
                cout = cin
                layer = nn.Sequential(nn.MaxPool2d(2, stride=2), nn.BatchNorm2d(cout))
            elif kind == "tconv":
                cout = scale(filters, width)
                layer = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.BatchNorm2d(cout))
            elif kind == "conv":
                cout = scale(filters, width)
                # 'replicate' padding of 1 px is TF's SYMMETRIC padding of the authors' code; their
                # batch norm follows the activation.
                layer = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, padding_mode="replicate"),
                                      nn.ReLU(inplace=True), nn.BatchNorm2d(cout))
            else:  # the output layer: a boundary logit (the authors: sigmoid)
                cout = 1
                layer = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="replicate")
            self.layers.append(layer)
            chans.append(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = [x]
        for layer, (_, _, inputs) in zip(self.layers, ARCHITECTURE):
            inp = tensors[inputs[0]] if len(inputs) == 1 else torch.cat([tensors[i] for i in inputs], dim=1)
            tensors.append(layer(inp))
        return two_class(tensors[-1])


class DefectSegNet(TorchMethod):
    """DefectSegNet (Roberts et al. 2019): densely connected encoder-decoder, 0.35M parameters.

    Parameters
    ----------
    width : int, optional
        Filters of the deepest level (64 in the paper: 0.35M parameters);
        every layer scales by ``width / 64``, so the ``quick`` preset's 16
        shrinks it like the VGG-based baselines. None: 64, or the preset's width.
    **kw
        Inference settings of :class:`~grainbench.methods.TorchMethod`.
    """

    name = "defectsegnet"
    context = "2d"
    reference = REFERENCE
    description = "DefectSegNet: dense encoder-decoder (3 pools), skip links across equal resolutions"

    def __init__(self, width: int | None = None, **kw) -> None:
        super().__init__(width=width, **kw)

    def build_network(self) -> nn.Module:
        return DefectSegNetNet(self.net_in_channels, width=self._config["width"] or PAPER_WIDTH)
