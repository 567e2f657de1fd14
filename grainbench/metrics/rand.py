"""Rand index, unadjusted and adjusted (Hubert-Arabie), accumulated in float64."""

from __future__ import annotations

import torch

from .._backend import ArrayLike, DeviceLike, as_labels, check_same_shape
from .contingency import Contingency, contingency_table


def _comb2(x: torch.Tensor) -> torch.Tensor:
    # Pair counts in float64: int64 n*(n-1)/2 overflows past ~4e9 pixels per cluster.
    return x * (x - 1.0) / 2.0


def adjusted_rand_index(seg_labels: ArrayLike, gt_labels: ArrayLike, *, device: DeviceLike = None) -> float:
    """Hubert-Arabie adjusted Rand index over all pixels.

    Every pixel counts, label 0 included: boundary pixels form one cluster, as
    in the reference evaluation (gala ``adj_rand_index``). Sums are taken in
    float64 so 1e9-voxel volumes do not overflow (the int64 pair-count bug of
    older scikit-learn and torchmetrics).

    Parameters
    ----------
    seg_labels, gt_labels : (H, W) or (Z, H, W) integer arrays or tensors
    device : str or torch.device, optional

    Returns
    -------
    float
        1.0 for identical partitions (up to relabelling), about 0 for chance,
        negative below chance. Degenerate cases follow scikit-learn: both
        inputs a single cluster, or both all-singletons, give 1.0.
    """
    seg = as_labels(seg_labels, device, name="seg_labels")
    gt = as_labels(gt_labels, seg.device, name="gt_labels")
    check_same_shape(seg, gt, ("seg_labels", "gt_labels"))
    return ari_from_table(contingency_table(seg, gt))


def ari_from_table(table: Contingency) -> float:
    """ARI from a full contingency table (label 0 kept as a cluster)."""
    row_sums, _, col_sums, _ = table.marginals()
    return ari_from_counts(table.counts, row_sums, col_sums)


def ari_from_counts(cells: torch.Tensor, row_sums: torch.Tensor, col_sums: torch.Tensor) -> float:
    """ARI from the non-empty cells of a contingency table and its marginals (all float64)."""
    a, b = row_sums.to(torch.float64), col_sums.to(torch.float64)
    n = float(a.sum())
    if (a.numel() == b.numel() == 1) or (a.numel() == b.numel() == n):
        return 1.0
    sum_ij = float(_comb2(cells.to(torch.float64)).sum())
    sum_a = float(_comb2(a).sum())
    sum_b = float(_comb2(b).sum())
    expected = sum_a * sum_b / (n * (n - 1.0) / 2.0)
    maximum = (sum_a + sum_b) / 2.0
    if maximum == expected:
        return 1.0
    return (sum_ij - expected) / (maximum - expected)


def rand_index(seg_labels: ArrayLike, gt_labels: ArrayLike, *, device: DeviceLike = None) -> float:
    """Unadjusted Rand index over all pixels: the fraction of pixel pairs on which both partitions agree.

    Label 0 (boundary) is one cluster, as in :func:`adjusted_rand_index`.
    Equals scikit-learn's ``rand_score``; 1.0 for fewer than two pixels.
    """
    seg = as_labels(seg_labels, device, name="seg_labels")
    gt = as_labels(gt_labels, seg.device, name="gt_labels")
    check_same_shape(seg, gt, ("seg_labels", "gt_labels"))
    return ri_from_table(contingency_table(seg, gt))


def ri_from_table(table: Contingency) -> float:
    """Rand index from a full contingency table.

    ``RI = 1 - (sum_i C(a_i, 2) + sum_j C(b_j, 2) - 2 sum_ij C(n_ij, 2)) / C(n, 2)``.
    """
    row_sums, _, col_sums, _ = table.marginals()
    a, b = row_sums.to(torch.float64), col_sums.to(torch.float64)
    n = float(a.sum())
    pairs = n * (n - 1.0) / 2.0
    if pairs <= 0:
        return 1.0
    sum_ij = float(_comb2(table.counts.to(torch.float64)).sum())
    disagree = float(_comb2(a).sum()) + float(_comb2(b).sum()) - 2.0 * sum_ij
    return 1.0 - disagree / pairs
