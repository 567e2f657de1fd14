"""Zhang-Suen thinning, pixel for pixel scikit-image's :func:`skimage.morphology.skeletonize` in 2D.

scikit-image's 2D skeleton (``_fast_skeletonize``) is a *parallel*
thinning: each sub-iteration reads the image as it stood at its start, looks
every foreground pixel's 8-neighbourhood up in a 256-entry table (values
0-3), removes the pixels marked 1 or 3 (first sub-iteration) or 2 or 3
(second), and the two alternate until a whole iteration removes nothing.
Pixels outside the image count as background. Because every decision only
reads the state at the start of its sub-iteration, the same sequence of
states can be computed

- on the CPU from a worklist: after the first two sub-iterations only
  foreground pixels next to a pixel removed in one of the last two
  sub-iterations can change their decision, so each later sub-iteration
  looks at those alone (:func:`skeletonize`, numpy arrays); and
- on any torch device, every pixel of a batch of slices at once per
  sub-iteration (:func:`skeletonize_torch`; this is the GPU path).

Both give scikit-image's result exactly (tested against it); the table is
scikit-image's (its ``_skeletonize_various_cy.pyx``), the protocol's
convention, so the protocol's numbers do not change.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# scikit-image's look-up table, indexed by the neighbour code below: 1 = removable in the first
# sub-iteration, 2 = in the second, 3 = in both, 0 = never.
_LUT = np.array(
    [0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0,
     0, 0, 2, 0, 2, 0, 3, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0,
     0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0, 0, 0, 3, 1,
     0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 3, 0, 0,
     1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 2, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3,
     0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0], np.uint8)
#: Removable pixels of the first and the second sub-iteration, by neighbour code.
REMOVABLE = (np.isin(_LUT, (1, 3)), np.isin(_LUT, (2, 3)))
#: (row offset, column offset) of the neighbour that adds 2**k to the code.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def skeletonize(image: np.ndarray) -> np.ndarray:
    """1-pixel skeleton of a 2D binary image, equal to scikit-image's ``skeletonize``.

    Parameters
    ----------
    image : (H, W) array
        Nonzero = foreground.

    Returns
    -------
    skeleton : (H, W) bool array
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"skeletonize takes a 2D image, got shape {img.shape}")
    h, w = img.shape
    stride = w + 2
    grid = np.zeros((h + 2, stride), np.uint8)  # a background frame: no bounds checks below
    grid[1:-1, 1:-1] = img != 0
    flat = grid.ravel()
    offsets = np.array([dr * stride + dc for dr, dc in NEIGHBOURS], np.intp)
    mark = np.zeros(flat.size, bool)
    everything = np.flatnonzero(flat)
    pending = [everything, everything]  # candidates of the next sub-iteration and of the one after it
    sub, idle = 0, 0
    while idle < 2 and everything.size:
        cand = pending.pop(0)
        cand = cand[flat[cand] != 0]
        removed = cand[:0]
        if cand.size:
            code = np.zeros(cand.size, np.uint8)
            for bit, off in enumerate(offsets):
                code |= flat[cand + off] << bit
            removed = cand[REMOVABLE[sub % 2][code]]
        if removed.size:
            flat[removed] = 0  # after every decision of this sub-iteration: a parallel step
            idle = 0
            near = (removed[:, None] + offsets).ravel()
            # next sub-iteration: neighbours of this one's and the previous one's removals
            mark[near] = True
            mark[pending[0]] = True
            nxt = np.flatnonzero(mark)
            mark[nxt] = False
            mark[near] = True
            after = np.flatnonzero(mark)
            mark[after] = False
            pending = [nxt, after]
        else:
            idle += 1
            pending.append(cand[:0])
        sub += 1
    return grid[1:-1, 1:-1].astype(bool)


def skeletonize_torch(image: torch.Tensor) -> torch.Tensor:
    """:func:`skeletonize` of a (H, W) or (N, H, W) tensor slice by slice, on the tensor's device.

    Every pixel of every slice is decided at once per sub-iteration (the
    parallel form of the same thinning), so the result equals
    scikit-image's; slices that are already thin stay as they are while the
    others go on.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"skeletonize_torch takes (H, W) or (N, H, W), got shape {tuple(image.shape)}")
    if image.numel() == 0:
        return image != 0
    x = (image != 0).reshape(-1, 1, *image.shape[-2:])
    weights = torch.zeros(1, 1, 3, 3, dtype=torch.float32)
    for bit, (dr, dc) in enumerate(NEIGHBOURS):
        weights[0, 0, dr + 1, dc + 1] = float(1 << bit)
    weights = weights.to(x.device)
    tables = [torch.from_numpy(t).to(x.device) for t in REMOVABLE]
    sub, idle = 0, 0
    while idle < 2:
        # neighbour codes are sums of distinct powers of two below 256: exact in float32
        code = F.conv2d(F.pad(x.float(), (1, 1, 1, 1)), weights).to(torch.long)
        remove = tables[sub % 2][code] & x
        if bool(remove.any()):
            x = x & ~remove
            idle = 0
        else:
            idle += 1
        sub += 1
    return x.reshape(image.shape)
