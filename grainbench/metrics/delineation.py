"""Delineation scores from boundary distances: Pratt's figure of merit and completeness / correctness / quality.

Both read the distances of :class:`grainbench.metrics.boundary.BoundaryDistances`
(every predicted boundary pixel to the nearest true one and back), so the
scoring path computes distances once.
"""

from __future__ import annotations

import torch

from .._backend import ArrayLike, DeviceLike
from .boundary import BoundaryDistances, boundary_distances

#: Pratt's scaling constant (Abdou & Pratt 1979): a 1-pixel offset scores 0.9.
PRATT_ALPHA = 1.0 / 9.0


def fom_from_distances(dist: BoundaryDistances, alpha: float = PRATT_ALPHA) -> float:
    """Pratt's figure of merit ``sum_pred 1 / (1 + alpha d^2) / max(N_pred, N_true)``.

    ``d`` is the distance of each predicted boundary pixel to the nearest true
    one (none: the term is 0). Both maps without boundary: 1.0.
    """
    n_pred, n_gt = dist.pred_to_gt.numel(), dist.gt_to_pred.numel()
    if n_pred == 0 and n_gt == 0:
        return 1.0
    d = dist.pred_to_gt.to(torch.float64)
    return float((1.0 / (1.0 + alpha * d * d)).sum()) / max(n_pred, n_gt)


def ccq_from_distances(dist: BoundaryDistances, tolerance: float) -> tuple[float, float, float]:
    """(completeness, correctness, quality) with a match at distance ``<= tolerance`` (theta).

    Completeness: the fraction of true boundary pixels with a predicted one
    within theta; correctness: the fraction of predicted pixels with a true
    one within theta; quality: matched predicted pixels over all predicted
    pixels plus the unmatched true ones, ``TP / (TP + FP + FN)`` (Wiedemann
    et al. 1998, as used by Mosinska et al. 2018). Both maps without
    boundary: 1.0 each; one empty: 0.0.
    """
    n_pred, n_gt = dist.pred_to_gt.numel(), dist.gt_to_pred.numel()
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0, 1.0
    matched_pred = float((dist.pred_to_gt <= tolerance).sum())
    matched_gt = float((dist.gt_to_pred <= tolerance).sum())
    completeness = matched_gt / n_gt if n_gt else 0.0
    correctness = matched_pred / n_pred if n_pred else 0.0
    quality = matched_pred / (n_pred + n_gt - matched_gt)
    return completeness, correctness, quality


def pratt_figure_of_merit(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *, alpha: float = PRATT_ALPHA,
                          device: DeviceLike = None) -> float:
    """Pratt's figure of merit of a 2D boundary map (or stack, distances in-plane); see :func:`fom_from_distances`."""
    return fom_from_distances(boundary_distances(pred_boundary, gt_boundary, device=device), alpha)


def completeness_correctness_quality(pred_boundary: ArrayLike, gt_boundary: ArrayLike, tolerance: float = 2.0, *,
                                     device: DeviceLike = None) -> tuple[float, float, float]:
    """Completeness, correctness and quality of a boundary map; see :func:`ccq_from_distances`."""
    return ccq_from_distances(boundary_distances(pred_boundary, gt_boundary, device=device), tolerance)
