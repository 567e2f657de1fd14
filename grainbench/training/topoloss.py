"""The topological loss of Hu et al. (NeurIPS 2019) on cubical persistent homology (seed 002's TopoLoss).

For a boundary probability map ``p`` the superlevel-set filtration
(``{p >= t}`` for t from 1 down to 0) is computed as a cubical complex with
gudhi, pixels as top-dimensional cells. That makes boundaries 8-connected
and grains 4-connected, as in the scoring protocol. Its persistence
diagrams in dimension 0 (boundary fragments) and 1 (loops, i.e. enclosed
grains) are compared with those of the ground truth, whose points all sit
at (birth 1, death 0): following Hu et al., the ``n_k`` most persistent
points of the prediction (``n_k`` = Betti number of the ground truth) are
pushed to (1, 0) and the others to the diagonal, i.e.

    L_topo = sum_{matched} (1 - p(b))^2 + p(d)^2
           + sum_{others} (p(b) - m)^2 + (p(d) - m)^2,   m = (p(b) + p(d)) / 2

where ``b`` and ``d`` are the critical pixels where a feature is born and
dies. Gudhi gives the diagrams and those pixels; torch gathers ``p`` at
them, so the gradient flows to exactly the pixels that decide the topology.
As in Hu et al.'s code, points with persistence <= ``min_persistence``
(0.03) are not pushed to the diagonal (noise) and the sum is per map.

Each map is framed by a 1-pixel border of value 1 (as the mAP protocol
frames slices), so a grain touching the patch border is a loop too and
the whole network is one component with the frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

_EIGHT = np.ones((3, 3), bool)
_FOUR = ndi.generate_binary_structure(2, 1)


def _gudhi():
    from ..extras import require

    return require("gudhi", "topo", "the topological loss (--set loss=topo)")


def persistence_pairs(f: np.ndarray) -> dict[int, np.ndarray]:
    """Critical pixels of the finite persistence pairs of the superlevel filtration of a 2D map.

    Parameters
    ----------
    f : (H, W) float array

    Returns
    -------
    dict
        ``{0: (n0, 2), 1: (n1, 2)}`` integer arrays of flat (C-order)
        indices into ``f``: column 0 the birth pixel, column 1 the death
        pixel. Births have the higher value (superlevel filtration).
    """
    f = np.asarray(f, np.float64)
    if f.ndim != 2:
        raise ValueError(f"persistence_pairs takes one (H, W) map, got shape {f.shape}")
    cc = _gudhi().CubicalComplex(top_dimensional_cells=-f)  # sublevel sets of -f = superlevel sets of f
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    regular, _ = cc.cofaces_of_persistence_pairs()
    out = {}
    for k in (0, 1):
        idx = np.asarray(regular[k], np.int64).reshape(-1, 2) if k < len(regular) else np.empty((0, 2), np.int64)
        # gudhi numbers the cells of an array in Fortran order
        out[k] = np.ravel_multi_index(np.unravel_index(idx, f.shape, order="F"), f.shape).reshape(-1, 2)
    return out


def betti_targets(mask: np.ndarray) -> dict[int, int]:
    """Finite diagram points of a framed binary map: fragments - 1 (dim 0) and enclosed regions (dim 1)."""
    mask = np.asarray(mask, bool)
    n_fg = ndi.label(mask, structure=_EIGHT)[1]
    n_bg = ndi.label(~mask, structure=_FOUR)[1]
    return {0: max(n_fg - 1, 0), 1: n_bg}


def _one_map(p: torch.Tensor, target: np.ndarray, min_persistence: float) -> torch.Tensor:
    f = p.detach().double().cpu().numpy()
    flat = p.reshape(-1)
    want = betti_targets(target)
    loss = p.new_zeros(())
    for k, pairs in persistence_pairs(f).items():
        if not len(pairs):
            continue
        pers = f.ravel()[pairs[:, 0]] - f.ravel()[pairs[:, 1]]
        order = np.argsort(-pers, kind="stable")
        fix, rest = order[:want[k]], order[want[k]:]
        rest = rest[pers[rest] > min_persistence]
        fix_t = torch.from_numpy(pairs[fix]).to(p.device)
        rest_t = torch.from_numpy(pairs[rest]).to(p.device)
        # The most persistent features become the ground truth's: born at 1, dying at 0.
        loss = loss + ((1 - flat[fix_t[:, 0]]) ** 2 + flat[fix_t[:, 1]] ** 2).sum()
        # The others are pushed to the diagonal (their nearest point of no persistence).
        b, d = flat[rest_t[:, 0]], flat[rest_t[:, 1]]
        mid = ((b + d) / 2).detach()
        loss = loss + ((b - mid) ** 2 + (d - mid) ** 2).sum()
    return loss


def topological_loss(prob: torch.Tensor, target: torch.Tensor, *, min_persistence: float = 0.03) -> torch.Tensor:
    """Hu et al.'s topological loss, summed per 2D map and averaged over the maps.

    Parameters
    ----------
    prob : (N, H, W) or (N, D, H, W) tensor
        Boundary probability; 3D patches are scored slice by slice (the
        protocols score the topology of each slice).
    target : bool tensor of the same shape
        Ground-truth boundary.
    min_persistence : float
        Features of the prediction with at most this persistence are not
        pushed to the diagonal (Hu et al.'s ``pers_thresh`` 0.03).

    Returns
    -------
    Scalar tensor; 0 when every map has the diagram of its ground truth.
    """
    if prob.shape != target.shape or prob.ndim < 3:
        raise ValueError(f"prob {tuple(prob.shape)} and target {tuple(target.shape)} must be equal (N, [D,] H, W)")
    h, w = prob.shape[-2:]
    maps = F.pad(prob.reshape(-1, h, w).float(), (1, 1, 1, 1), value=1.0)
    masks = np.pad(target.detach().bool().cpu().numpy().reshape(-1, h, w), ((0, 0), (1, 1), (1, 1)),
                   constant_values=True)
    total = sum(_one_map(m, t, min_persistence) for m, t in zip(maps, masks))
    return total / len(maps)
