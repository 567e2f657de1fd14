"""Instance matching of grains: IoU matrices and the 2018 Data Science Bowl mAP."""

from __future__ import annotations

import torch

from .._backend import ArrayLike, DeviceLike, as_labels, as_mask, check_same_shape
from ..components import grains_from_boundary
from .contingency import Contingency, contingency_table

DSB2018_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def iou_matrix(pred_labels: ArrayLike, gt_labels: ArrayLike, *, device: DeviceLike = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse IoU of every overlapping (pred grain, gt grain) pair; label 0 is not a grain.

    Returns
    -------
    pred_ids, gt_ids, iou : 1-D tensors, one entry per overlapping pair.
    Areas are whole-grain areas, so a grain's pixels on the other map's
    boundary still count in its union.
    """
    pred = as_labels(pred_labels, device, name="pred_labels")
    gt = as_labels(gt_labels, pred.device, name="gt_labels")
    check_same_shape(pred, gt, ("pred_labels", "gt_labels"))
    table = contingency_table(pred, gt).without_zero()
    pred_area = torch.bincount(pred.reshape(-1)).to(torch.float64)
    gt_area = torch.bincount(gt.reshape(-1)).to(torch.float64)
    inter = table.counts
    union = pred_area[table.rows] + gt_area[table.cols] - inter
    return table.rows, table.cols, inter / union


def _dsb_score_from_labels(pred: torch.Tensor, gt: torch.Tensor, thresholds: torch.Tensor) -> float:
    return dsb_score_from_table(contingency_table(pred, gt), thresholds)


def dsb_score_from_table(table: Contingency, thresholds: torch.Tensor) -> float:
    """The DSB-2018 score from the full contingency table of (pred, gt) grain labels, label 0 included.

    Grain areas are the table's marginals (every pixel of a grain, those on
    the other map's boundary too), so no pass over the pixels is needed.
    """
    nonzero_rows, nonzero_cols = table.rows[table.rows > 0], table.cols[table.cols > 0]
    num_pred = int(nonzero_rows.max()) if nonzero_rows.numel() else 0
    num_gt = int(nonzero_cols.max()) if nonzero_cols.numel() else 0
    if num_pred == 0 and num_gt == 0:
        return 1.0  # nothing to find and nothing found
    device = table.counts.device
    pred_area = torch.zeros(num_pred + 1, dtype=torch.float64, device=device).index_add_(0, table.rows, table.counts)
    gt_area = torch.zeros(num_gt + 1, dtype=torch.float64, device=device).index_add_(0, table.cols, table.counts)
    inner = table.without_zero()
    pred_ids = inner.rows
    iou = inner.counts / (pred_area[inner.rows] + gt_area[inner.cols] - inner.counts)
    # Best IoU of each predicted grain over all gt grains it touches.
    best = torch.zeros(num_pred + 1, dtype=torch.float64, device=device)
    best = best.scatter_reduce(0, pred_ids, iou, reduce="amax", include_self=True)[1:]
    # Strict IoU > t as in the reference; above 0.5 a match is necessarily one-to-one.
    tp = (best[None, :] > thresholds[:, None]).sum(dim=1).to(torch.float64)
    fp = num_pred - tp
    fn = num_gt - tp
    return float((tp / (tp + fp + fn)).mean())


def mean_average_precision(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *,
                           thresholds: tuple[float, ...] = DSB2018_THRESHOLDS,
                           frame: bool = True, device: DeviceLike = None) -> float:
    """The 2018 Data Science Bowl score of two boundary maps, as the WPU-Net evaluation computes it.

    Steps: set a 1-pixel frame to boundary (``frame=True``); grains are the
    4-connected components of non-boundary pixels; each predicted grain's
    best IoU with a true grain counts as a true positive at every threshold
    ``t`` with ``IoU > t``; FP = #pred - TP, FN = #gt - TP; the score is the
    mean over thresholds of TP / (TP + FP + FN).

    Parameters
    ----------
    pred_boundary, gt_boundary : (H, W) binary arrays or tensors
        Boundary maps (bool, 0/1 or 0/255). A (Z, H, W) stack returns the mean
        of the per-slice scores.
    thresholds : tuple of float
        IoU thresholds, default 0.50:0.05:0.95.
    frame : bool
        Set the outermost pixels to boundary first (reference behaviour).
    device : str or torch.device, optional

    Returns
    -------
    float in [0, 1]; 1.0 when neither map has any grain.
    """
    pred = as_mask(pred_boundary, device, name="pred_boundary")
    gt = as_mask(gt_boundary, pred.device, name="gt_boundary")
    check_same_shape(pred, gt, ("pred_boundary", "gt_boundary"))
    if pred.ndim == 3:
        return float(sum(mean_average_precision(p, g, thresholds=thresholds, frame=frame)
                         for p, g in zip(pred, gt)) / pred.shape[0])
    return dsb_score_from_boundaries(pred, gt, thresholds, frame=frame)


def dsb_score_from_boundaries(pred: torch.Tensor, gt: torch.Tensor, thresholds: tuple[float, ...], *,
                              frame: bool = True, connectivity: int = 1) -> float:
    """The DSB-2018 score of two validated 2D bool boundary tensors (no input checks)."""
    if frame:
        pred = _with_frame(pred)
        gt = _with_frame(gt)
    t = torch.tensor(thresholds, dtype=torch.float64, device=pred.device)
    return _dsb_score_from_labels(grains_from_boundary(pred, connectivity=connectivity),
                                  grains_from_boundary(gt, connectivity=connectivity), t)


def _with_frame(boundary: torch.Tensor) -> torch.Tensor:
    b = boundary.clone()
    b[..., 0, :] = True
    b[..., -1, :] = True
    b[..., :, 0] = True
    b[..., :, -1] = True
    return b
