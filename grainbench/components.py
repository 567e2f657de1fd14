"""Connected components: grains are the connected regions of non-boundary pixels.

CPU tensors and arrays are labelled with OpenCV's ``connectedComponents``
in 2D (about 3x faster than :func:`scipy.ndimage.label` on a 1024 x 1024
slice) and :func:`scipy.ndimage.label` in 3D (OpenCV is 2D only). CUDA
tensors are labelled on the device by :func:`label_components_torch`, a
label propagation with pointer jumping in plain torch that gives exactly
:func:`scipy.ndimage.label`'s labels (numbered in raster order of each
component's first pixel); OpenCV's 4-connected labels are numbered the same
way, its 8-connected ones up to relabelling.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi

from ._backend import ArrayLike, as_tensor

#: Labelling backends of :func:`label_components`.
BACKENDS = ("auto", "opencv", "torch")


def label_components(mask: ArrayLike, *, connectivity: int = 1, per_slice: bool = False,
                     backend: str = "auto") -> torch.Tensor:
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
    backend : {"auto", "opencv", "torch"}
        ``"auto"``: :func:`label_components_torch` for tensors on a GPU,
        OpenCV/scipy on the CPU. ``"torch"`` runs the torch labeller on any
        device (CPU tensors included, as the tests do).

    Returns
    -------
    labels : torch.Tensor of int64, on the device of ``mask``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown labelling backend {backend!r}; known: {', '.join(BACKENDS)}")
    t = as_tensor(mask, name="mask")
    device = t.device
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        t = t.bool()
        if t.ndim == 3 and per_slice:
            return torch.stack([label_components_torch(s, connectivity=connectivity) for s in t])
        return label_components_torch(t, connectivity=connectivity)
    arr = t.detach().to("cpu", torch.bool).numpy()
    if arr.ndim == 2 or per_slice:
        slices = arr[None] if arr.ndim == 2 else arr
        out = np.empty(slices.shape, dtype=np.int64)
        for z, sl in enumerate(slices):
            out[z] = label_slice(sl, connectivity=connectivity)
        return torch.from_numpy(out[0] if arr.ndim == 2 else out).to(device)
    out = np.zeros(arr.shape, dtype=np.int64)
    ndi.label(arr, structure=ndi.generate_binary_structure(arr.ndim, connectivity), output=out)
    return torch.from_numpy(out).to(device)


def label_slice(mask: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """OpenCV labels (int32, 0 = background) of one 2D bool numpy mask; no input checks."""
    m = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    return cv2.connectedComponents(m, connectivity=4 if connectivity == 1 else 8, ltype=cv2.CV_32S)[1]


def label_count(mask: np.ndarray, *, connectivity: int = 1) -> int:
    """Number of connected components of one 2D bool numpy mask (OpenCV); no input checks."""
    m = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    return int(cv2.connectedComponents(m, connectivity=4 if connectivity == 1 else 8, ltype=cv2.CV_32S)[0]) - 1


def grains_from_boundary(boundary: ArrayLike, *, connectivity: int = 1, per_slice: bool = True,
                         backend: str = "auto") -> torch.Tensor:
    """Grain labels from a boundary map: connected components of non-boundary pixels.

    Boundary pixels get label 0. With the default 4-connectivity, a 1-pixel
    wide 8-connected boundary line (as skeletonisation produces) separates grains.
    """
    b = as_tensor(boundary, name="boundary")
    return label_components(~b.bool(), connectivity=connectivity, per_slice=per_slice, backend=backend)


def _edges(m: torch.Tensor, connectivity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(u, v)`` of every pair of neighbouring foreground pixels (each pair once)."""
    idx = torch.arange(m.numel(), device=m.device, dtype=torch.int64).reshape(m.shape)
    offsets = [o for o in np.ndindex(*(3,) * m.ndim)
               if sum(abs(d - 1) for d in o) <= connectivity and o > (1,) * m.ndim]  # half the neighbourhood
    us, vs = [], []
    for o in offsets:
        shift = [d - 1 for d in o]
        a = [slice(max(0, -d), n - max(0, d)) for d, n in zip(shift, m.shape)]
        b = [slice(max(0, d), n - max(0, -d)) for d, n in zip(shift, m.shape)]
        both = m[tuple(a)] & m[tuple(b)]
        us.append(idx[tuple(a)][both])
        vs.append(idx[tuple(b)][both])
    return torch.cat(us), torch.cat(vs)


def _compress(parent: torch.Tensor) -> torch.Tensor:
    """Pointer jumping until every entry points at a root."""
    while True:
        grand = parent[parent]
        if torch.equal(grand, parent):
            return parent
        parent = grand


def label_components_torch(mask: torch.Tensor, *, connectivity: int = 1) -> torch.Tensor:
    """Connected components of a 2D or 3D bool tensor, in torch on its device (CPU or CUDA).

    A union-find in parallel rounds over the pairs of neighbouring
    foreground pixels (``connectivity`` as in
    :func:`scipy.ndimage.generate_binary_structure`): each round hooks the
    larger of the two roots of every pair onto the smaller (``scatter_reduce``
    with ``amin``), then jumps pointers to the roots, and drops the pairs
    already joined. Each component's root ends as its first pixel in raster
    order, so numbering the roots 1..N in order gives the labels of
    :func:`scipy.ndimage.label`, exactly.

    Returns
    -------
    int64 tensor of the mask's shape; 0 on the background.
    """
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask: expected a 2D or 3D tensor, got shape {tuple(mask.shape)}")
    if not 1 <= connectivity <= mask.ndim:
        raise ValueError(f"connectivity must be in 1..{mask.ndim}, got {connectivity}")
    m = mask.bool()
    out = torch.zeros(m.shape, dtype=torch.int64, device=m.device)
    if m.numel() == 0 or not bool(m.any()):
        return out
    u, v = _edges(m, connectivity)
    parent = torch.arange(m.numel(), device=m.device, dtype=torch.int64)
    while u.numel():
        pu, pv = parent[u], parent[v]
        lo, hi = torch.minimum(pu, pv), torch.maximum(pu, pv)
        open_ = lo != hi
        u, v, lo, hi = u[open_], v[open_], lo[open_], hi[open_]
        if not u.numel():
            break
        parent.scatter_reduce_(0, hi, lo, reduce="amin")
        parent = _compress(parent)
    roots = parent[m.reshape(-1)]
    _, inverse = torch.unique(roots, sorted=True, return_inverse=True)
    out[m] = inverse + 1
    return out
