"""Shared pieces of the edge-detection baselines (HED, RCF, DeepCrack, DefectSegNet).

These networks end in one boundary logit per pixel (a sigmoid output in the
papers); grainbench's engines want two-class logits (N, 2, H, W). The pair
``(0, z)`` has ``softmax(.)[1] == sigmoid(z)`` and ``logit[1] - logit[0] == z``,
so the class-1 probability and every grainbench loss equal the papers'
sigmoid/BCE formulation, with no extra parameter.

Deeply supervised networks (HED, RCF, DeepCrack) return the fused logits in
eval mode and the list ``[fused, side_1, ..., side_5]`` in train mode;
:class:`DeeplySupervised` sums the training loss over that list, as the
papers do (every side output and the fused output weighted 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from grainbench.extras import require
from grainbench.methods import TorchMethod

#: Channel width of the papers' first VGG stage; ``width=None`` means this.
PAPER_WIDTH = 64


def two_class(z: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) boundary logits -> (N, 2, H, W) logits ``(0, z)``."""
    return torch.cat([torch.zeros_like(z), z], dim=1)


def scale(channels: int, width: int) -> int:
    """A paper channel count (given at width 64) scaled to ``width``; at least 1."""
    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    return max(1, round(channels * width / PAPER_WIDTH))


def vgg16_trunk(in_channels: int = 1, width: int = PAPER_WIDTH) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (conv1_1 .. conv5_3 with ReLUs and pools 1-4), no pool5.

    Built with :func:`torchvision.models.vgg.make_layers` from VGG16's
    configuration ``"D"`` (so at width 64 it is layer for layer
    ``torchvision.models.vgg16(weights=None).features[:30]``), its channels
    scaled to ``width`` and its first convolution taking ``in_channels``
    (grey micrographs: 1). pool5 is dropped because HED and RCF stop at conv5_3.
    """
    vgg = require("torchvision.models.vgg", "edges", "the VGG16 trunk of HED and RCF")
    cfgs, make_layers = vgg.cfgs, vgg.make_layers

    cfg = [v if v == "M" else scale(int(v), width) for v in cfgs["D"]][:-1]
    layers = make_layers(cfg, batch_norm=False)
    first = layers[0]
    layers[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
    return layers


def stage_taps(trunk: nn.Sequential) -> list[list[int]]:
    """Indices (in ``trunk``) of the ReLU after every convolution, grouped by VGG stage."""
    stages: list[list[int]] = [[]]
    for i, layer in enumerate(trunk):
        if isinstance(layer, nn.ReLU):
            stages[-1].append(i)
        elif isinstance(layer, nn.MaxPool2d) or (isinstance(layer, nn.Sequential)
                                                 and any(isinstance(m, nn.MaxPool2d) for m in layer)):
            stages.append([])
    return [s for s in stages if s]


class DeeplySupervised(TorchMethod):
    """A :class:`TorchMethod` whose network returns ``[fused, side_1, ...]`` in train mode.

    The training loss is the sum of ``loss_fn`` over all outputs (the
    papers' deep supervision, every term weighted 1); in eval mode the
    network returns the fused logits only, so validation, selection and
    prediction score the fused output. Note that the recorded training loss
    is therefore a sum of ``len(outputs)`` terms, while the validation loss
    is that of the fused output alone.
    """

    def __init__(self, width: int | None = None, **kw: Any) -> None:
        super().__init__(width=width, **kw)

    @property
    def width(self) -> int:
        """Channel width of the network to build (the paper's when unset)."""
        return self._config.get("width") or PAPER_WIDTH

    def training_loss(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return super().training_loss(outputs, target, loss_fn)
        return torch.stack([loss_fn(o.float(), target) for o in outputs]).sum()
