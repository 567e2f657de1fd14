"""From a network's boundary probability to 1-pixel boundaries and grain labels.

The reference pipeline of the WPU-Net evaluation: argmax (threshold 0.5 on a
boundary probability), 3 x 3 closing, skeletonisation to 1-pixel boundaries,
then grains = 4-connected components of non-boundary pixels, scored after a
border crop.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ._backend import ArrayLike, as_mask, check_spatial
from .components import grains_from_boundary
from .skeleton import skeletonize, skeletonize_torch


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


def close_boundary(boundary: np.ndarray, closing_size: int) -> np.ndarray:
    """Square binary closing of one 2D bool numpy slice, the image edge replicated so lines touching it survive.

    OpenCV's closing for odd sizes: on the same padded image it gives
    :func:`scipy.ndimage.binary_closing`'s result pixel for pixel (the
    padding is wider than the closing reaches, so neither library's border
    rule touches the kept pixels), about 20x faster; scipy for even sizes,
    whose origin conventions differ.
    """
    pad = closing_size
    padded = np.pad(boundary, pad, mode="edge")
    if closing_size % 2:
        kernel = np.ones((closing_size, closing_size), np.uint8)
        closed = cv2.morphologyEx(padded.view(np.uint8), cv2.MORPH_CLOSE, kernel).view(bool)
    else:
        closed = ndi.binary_closing(padded, structure=np.ones((closing_size, closing_size), bool))
    return closed[pad:-pad, pad:-pad]


def close_boundary_torch(boundary: torch.Tensor, closing_size: int) -> torch.Tensor:
    """:func:`close_boundary` of a (N, H, W) bool tensor on its device (odd sizes), slice by slice.

    Dilation then erosion by max pooling on the edge-replicated slices; the
    padding is wider than the closing reaches, as on the CPU, so the kept
    pixels equal OpenCV's (tested).
    """
    if closing_size % 2 == 0:
        raise ValueError(f"the device closing takes odd sizes, got {closing_size}")
    pad, half = closing_size, closing_size // 2
    x = F.pad(boundary[:, None].float(), (pad, pad, pad, pad), mode="replicate")
    x = F.max_pool2d(x, closing_size, stride=1, padding=half)
    x = -F.max_pool2d(-x, closing_size, stride=1, padding=half)
    return x[:, 0, pad:-pad, pad:-pad] > 0.5


def thin_boundary(boundary: ArrayLike, *, closing_size: int = 3, skeleton: bool = True,
                  workers: int | None = None) -> torch.Tensor:
    """Close small gaps, then skeletonise each slice to 1-pixel wide boundaries.

    scikit-image's skeleton pixel for pixel (:mod:`grainbench.skeleton`).
    On the CPU: OpenCV closing and the worklist skeleton, slices in parallel
    on ``workers`` threads (default :func:`grainbench.threads.scoring_workers`).
    A CUDA tensor stays on its device (max-pooling closing and the parallel
    skeleton, the same pixels) unless the closing size is even.
    """
    from .threads import map_threads, scoring_workers

    b = as_mask(boundary, name="boundary")
    if b.device.type != "cpu" and closing_size % 2 == 1:
        stack = b[None] if b.ndim == 2 else b
        if closing_size > 1:
            stack = close_boundary_torch(stack, closing_size)
        if skeleton:
            stack = skeletonize_torch(stack)
        return stack[0] if b.ndim == 2 else stack
    device = b.device
    arr = b.cpu().numpy()
    stack = arr[None] if arr.ndim == 2 else arr
    out = np.empty_like(stack)

    def one(z: int) -> None:
        sl = stack[z]
        if closing_size > 1:
            sl = close_boundary(sl, closing_size)
        out[z] = skeletonize(sl) if skeleton else sl

    map_threads(one, range(len(stack)), scoring_workers(workers))
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
