"""Variation of information (VI) between two segmentations, split and merge parts."""

from __future__ import annotations

import torch

from .._backend import ArrayLike, DeviceLike, as_labels, check_same_shape
from .contingency import Contingency, contingency_table


def _conditional_entropies(table: Contingency) -> tuple[float, float]:
    """Return ``(H(rows | cols), H(cols | rows))`` in bits from a contingency table."""
    if table.total == 0:
        return 0.0, 0.0
    p = table.counts / table.total
    row_sums, row_inv, col_sums, col_inv = table.marginals()
    p_row, p_col = row_sums / table.total, col_sums / table.total
    h_rows_given_cols = -(p * torch.log2(p / p_col[col_inv])).sum()
    h_cols_given_rows = -(p * torch.log2(p / p_row[row_inv])).sum()
    # Clamp the tiny negative values rounding can leave on perfect agreement.
    return max(float(h_rows_given_cols), 0.0) + 0.0, max(float(h_cols_given_rows), 0.0) + 0.0


def variation_of_information(seg_labels: ArrayLike, gt_labels: ArrayLike, *,
                             device: DeviceLike = None) -> tuple[float, float]:
    """Split and merge parts of the variation of information, in bits.

    Follows gala's ``split_vi(seg, gt)`` as used by the WPU-Net evaluation:
    pixels labelled 0 (boundary/unlabelled) in *either* map are dropped and the
    remaining pixels are normalised to a joint distribution.

    Parameters
    ----------
    seg_labels, gt_labels : (H, W) or (Z, H, W) integer arrays or tensors
        Predicted and true grain labels; 0 means boundary/unlabelled.
    device : str or torch.device, optional
        Where to compute (default: the device of ``seg_labels``).

    Returns
    -------
    split : float
        ``H(seg | gt)``: over-segmentation, false splits (e.g. scratches
        detected as boundaries).
    merge : float
        ``H(gt | seg)``: under-segmentation, false merges (missed boundaries).

    Notes
    -----
    VI = split + merge. If every pixel is dropped (e.g. an all-boundary
    prediction) both parts are 0 by this convention, which is why scores should
    always be read together with ARI and mAP.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.ones((4, 4), int)
    >>> seg = np.ones((4, 4), int); seg[:, 2:] = 2     # one grain split in two
    >>> variation_of_information(seg, gt)
    (1.0, 0.0)
    """
    seg = as_labels(seg_labels, device, name="seg_labels")
    gt = as_labels(gt_labels, seg.device, name="gt_labels")
    check_same_shape(seg, gt, ("seg_labels", "gt_labels"))
    return vi_from_table(contingency_table(seg, gt))


def vi_from_table(table: Contingency) -> tuple[float, float]:
    """``(split, merge)`` from a contingency table of (seg, gt); label-0 cells are dropped here."""
    split, merge = _conditional_entropies(table.without_zero())
    return split, merge
