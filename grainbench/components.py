"""Connected components: grains are the connected regions of non-boundary pixels.

Labelling runs on the CPU: 2D slices with OpenCV's ``connectedComponents``
(about 3x faster than :func:`scipy.ndimage.label` on a 1024 x 1024 slice),
3D volumes with :func:`scipy.ndimage.label` (OpenCV is 2D only). Tensors on
another device are copied to the CPU and the labels copied back.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi

from ._backend import ArrayLike, as_tensor


def label_components(mask: ArrayLike, *, connectivity: int = 1, per_slice: bool = False) -> torch.Tensor:
    """Label the connected components of a binary mask.

    Parameters
    ----------
    mask : (H, W) or (Z, H, W) bool array or tensor
        Pixels to group; ``False`` pixels get label 0.
    connectivity : int
        1 for 4-connectivity in 2D (6 in 3D), ``mask.ndim`` for full 8/26-connectivity.
    per_slice : bool
        For a 3D input, label each Z slice on its own (labels are unique within a
        slice, numbered from 1 in every slice).

    Returns
    -------
    labels : torch.Tensor of int64, on the device of ``mask``.
    """
    t = as_tensor(mask, name="mask")
    device = t.device
    arr = t.detach().to("cpu", torch.bool).numpy()
    if arr.ndim == 2 or per_slice:
        slices = arr[None] if arr.ndim == 2 else arr
        out = np.empty(slices.shape, dtype=np.int64)
        for z, sl in enumerate(slices):
            _, out[z] = cv2.connectedComponents(np.ascontiguousarray(sl).view(np.uint8),
                                                connectivity=4 if connectivity == 1 else 8, ltype=cv2.CV_32S)
        return torch.from_numpy(out[0] if arr.ndim == 2 else out).to(device)
    out = np.zeros(arr.shape, dtype=np.int64)
    ndi.label(arr, structure=ndi.generate_binary_structure(arr.ndim, connectivity), output=out)
    return torch.from_numpy(out).to(device)


def grains_from_boundary(boundary: ArrayLike, *, connectivity: int = 1, per_slice: bool = True) -> torch.Tensor:
    """Grain labels from a boundary map: connected components of non-boundary pixels.

    Boundary pixels get label 0. With the default 4-connectivity, a 1-pixel
    wide 8-connected boundary line (as skeletonisation produces) separates grains.
    """
    b = as_tensor(boundary, name="boundary")
    return label_components(~b.bool(), connectivity=connectivity, per_slice=per_slice)
