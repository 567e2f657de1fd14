"""From a network's boundary probability to 1-pixel boundaries and grain labels.

The reference pipeline of the WPU-Net evaluation: argmax (threshold 0.5 on a
boundary probability), 3 x 3 closing, skeletonisation to 1-pixel boundaries,
then grains = 4-connected components of non-boundary pixels, scored after a
border crop.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from ._backend import ArrayLike, as_mask, check_spatial
from .components import grains_from_boundary


def binarize(prob: ArrayLike, threshold: float = 0.5, *, name: str = "prediction") -> torch.Tensor:
    """Boundary mask from a probability map (``p > threshold``) or from a binary map.

    What counts as binary and what as a probability is the input contract of
    :mod:`grainbench.contract` (e.g. uint8 0/1 and 0/255 are binary, other
    uint8 greys are probabilities x 255). A 2-channel (C, H, W) / (Z, C, H, W)
    softmax output is not accepted here; take ``probs[:, 1]`` (the boundary
    class) first.

    Raises
    ------
    ValueError
        For NaN/inf values or probabilities outside [0, 1].
    """
    from .contract import as_binary

    t = as_binary(prob, threshold, name=name)
    check_spatial(t, name)
    return t


def thin_boundary(boundary: ArrayLike, *, closing_size: int = 3, skeleton: bool = True) -> torch.Tensor:
    """Close small gaps, then skeletonise each slice to 1-pixel wide boundaries.

    Runs on the CPU (scikit-image/scipy); the result returns to the input's device.
    """
    b = as_mask(boundary, name="boundary")
    device = b.device
    arr = b.cpu().numpy()
    stack = arr[None] if arr.ndim == 2 else arr
    out = np.empty_like(stack)
    structure = np.ones((closing_size, closing_size), bool) if closing_size > 1 else None
    for z, sl in enumerate(stack):
        if structure is not None:
            # Pad so that closing does not erode lines touching the border.
            pad = closing_size
            sl = ndi.binary_closing(np.pad(sl, pad, mode="edge"), structure=structure)[pad:-pad, pad:-pad]
        out[z] = skeletonize(sl) if skeleton else sl
    return torch.from_numpy(out[0] if arr.ndim == 2 else out).to(device)


def crop_border(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Drop ``crop`` pixels from every side of the last two axes."""
    if crop <= 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * crop or w <= 2 * crop:
        raise ValueError(f"cannot crop {crop} px from every side of an image of {h} x {w}")
    return x[..., crop:h - crop, crop:w - crop]


def boundary_to_labels(boundary: ArrayLike, *, connectivity: int = 1) -> torch.Tensor:
    """Per-slice grain labels: 4-connected components of non-boundary pixels; boundary = 0."""
    return grains_from_boundary(as_mask(boundary, name="boundary"), connectivity=connectivity, per_slice=True)
