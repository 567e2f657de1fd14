"""Topology of boundary networks: Betti-number error and clDice (beyond the seed papers)."""

from __future__ import annotations

import numpy as np

from .._backend import ArrayLike, as_mask, check_same_shape
from ..components import label_count, label_slice
from ..skeleton import skeletonize


def betti_numbers(boundary: ArrayLike) -> tuple[int, int]:
    """Betti numbers of a 2D boundary network.

    ``b0`` counts connected pieces of boundary (8-connected); ``b1`` counts
    closed loops, i.e. grains fully enclosed by boundary: 4-connected
    background components that do not touch the image border.
    """
    b = as_mask(boundary, "cpu", name="boundary").numpy()
    if b.ndim != 2:
        raise ValueError(f"boundary: expected a 2D image, got shape {b.shape}")
    return betti_from_grains(b, label_slice(~b, connectivity=1))


def betti_from_grains(boundary: np.ndarray, grains4: np.ndarray) -> tuple[int, int]:
    """:func:`betti_numbers` of a 2D bool boundary array given its 4-connected grain labels.

    ``grains4`` numbers the grains 1..N (consecutive, in any order), as every labeller here does.

    ``b0``: 8-connected pieces of boundary (OpenCV; a count, the same as
    :func:`scipy.ndimage.label`'s); ``b1``: grains that do not touch the image border.
    """
    b0 = label_count(boundary, connectivity=2)
    n = int(grains4.max()) if grains4.size else 0
    border = np.concatenate([grains4[0], grains4[-1], grains4[:, 0], grains4[:, -1]])
    touching = np.zeros(n + 1, bool)
    touching[border] = True
    return int(b0), n - int(np.count_nonzero(touching[1:]))


def betti_error(pred_boundary: ArrayLike, gt_boundary: ArrayLike) -> tuple[int, int]:
    """Absolute Betti-number errors ``(|b0_pred - b0_gt|, |b1_pred - b1_gt|)``."""
    p0, p1 = betti_numbers(pred_boundary)
    g0, g1 = betti_numbers(gt_boundary)
    return abs(p0 - g0), abs(p1 - g1)


def cldice(pred: ArrayLike, gt: ArrayLike) -> float:
    """Centreline Dice (Shit et al., CVPR 2021) of two binary maps.

    ``Tprec = |S(P) & G| / |S(P)|``, ``Tsens = |S(G) & P| / |S(G)|``,
    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` with S the skeleton
    (scikit-image's, :func:`grainbench.skeleton.skeletonize`). Both empty: 1.0; one empty: 0.0.
    """
    p = as_mask(pred, "cpu", name="pred").numpy()
    g = as_mask(gt, "cpu", name="gt").numpy()
    check_same_shape(as_mask(p), as_mask(g))
    return cldice_arrays(p, g)


def cldice_arrays(p: np.ndarray, g: np.ndarray) -> float:
    """:func:`cldice` of two validated 2D bool numpy arrays of one shape."""
    if not p.any() and not g.any():
        return 1.0
    if not p.any() or not g.any():
        return 0.0
    sp, sg = skeletonize(p), skeletonize(g)
    tprec = (sp & g).sum() / max(sp.sum(), 1)
    tsens = (sg & p).sum() / max(sg.sum(), 1)
    return 0.0 if tprec + tsens == 0 else float(2 * tprec * tsens / (tprec + tsens))
