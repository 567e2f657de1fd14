"""Boundary-tolerant scores: boundary F1 within a tolerance and boundary displacement error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._backend import ArrayLike, DeviceLike, as_mask, check_same_shape
from .distance import nearest_distances


@dataclass(frozen=True)
class BoundaryDistances:
    """Distances from each boundary pixel of one map to the other map's boundary."""

    pred_to_gt: torch.Tensor
    gt_to_pred: torch.Tensor
    diagonal: float  # largest in-plane distance: used when one side has no boundary at all

    def f1(self, tolerance: float) -> tuple[float, float, float]:
        """(precision, recall, F1) with a match at distance <= tolerance."""
        n_pred, n_gt = self.pred_to_gt.numel(), self.gt_to_pred.numel()
        if n_pred == 0 and n_gt == 0:
            return 1.0, 1.0, 1.0
        precision = float((self.pred_to_gt <= tolerance).double().mean()) if n_pred else 0.0
        recall = float((self.gt_to_pred <= tolerance).double().mean()) if n_gt else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        return precision, recall, f1

    def displacement(self) -> float:
        """Mean symmetric distance: the average of the two directed mean distances."""
        if self.pred_to_gt.numel() == 0 and self.gt_to_pred.numel() == 0:
            return 0.0
        parts = []
        for d in (self.pred_to_gt, self.gt_to_pred):
            # An empty opposite set puts every pixel at the largest possible distance.
            d = torch.nan_to_num(d, posinf=self.diagonal)
            parts.append(float(d.mean()) if d.numel() else self.diagonal)
        return (parts[0] + parts[1]) / 2.0


def boundary_distances(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *, per_slice: bool = True,
                       device: DeviceLike = None) -> BoundaryDistances:
    """Distances of every boundary pixel to the other map's boundary (both directions)."""
    pred = as_mask(pred_boundary, device, name="pred_boundary")
    gt = as_mask(gt_boundary, pred.device, name="gt_boundary")
    check_same_shape(pred, gt, ("pred_boundary", "gt_boundary"))
    h, w = pred.shape[-2:]
    diagonal = math.hypot(h, w) if per_slice or pred.ndim == 2 else math.sqrt(h * h + w * w + pred.shape[0] ** 2)
    return BoundaryDistances(
        pred_to_gt=nearest_distances(gt, pred, per_slice=per_slice),
        gt_to_pred=nearest_distances(pred, gt, per_slice=per_slice),
        diagonal=diagonal,
    )


def boundary_f1(pred_boundary: ArrayLike, gt_boundary: ArrayLike, tolerance: float = 4, *,
                per_slice: bool = True, device: DeviceLike = None) -> float:
    """Boundary F1 score with a distance tolerance (BF1).

    A predicted boundary pixel is correct (precision) when its Euclidean
    distance to the nearest true boundary pixel is ``<= tolerance``; a true
    boundary pixel is found (recall) when a predicted one lies within the
    tolerance. ``F = 2PR / (P + R)``.

    Parameters
    ----------
    pred_boundary, gt_boundary : (H, W) or (Z, H, W) binary arrays or tensors
    tolerance : float
        In pixels; 4 in seed 004.
    per_slice : bool
        For stacks: in-plane distances (default) or 3-D distances.
    device : str or torch.device, optional

    Returns
    -------
    float in [0, 1]. Both maps empty: 1.0. Exactly one empty: 0.0.
    """
    return boundary_distances(pred_boundary, gt_boundary, per_slice=per_slice, device=device).f1(tolerance)[2]


def boundary_displacement_error(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *, per_slice: bool = True,
                                device: DeviceLike = None) -> float:
    """Boundary displacement error (BDE): mean symmetric distance between two boundary sets, in pixels.

    ``BDE = (mean_{p in P} d(p, G) + mean_{g in G} d(g, P)) / 2``.

    Both maps empty: 0.0. When one map has no boundary pixel the other side's
    pixels are charged the image diagonal (a finite, worst-case value) rather
    than infinity, so means over slices stay defined.
    """
    return boundary_distances(pred_boundary, gt_boundary, per_slice=per_slice, device=device).displacement()


def mask_boundary(mask: ArrayLike, *, device: DeviceLike = None) -> torch.Tensor:
    """Inner contour of a binary mask: foreground pixels with a 4-neighbour in the background.

    Used for phase segmentation (dendrite vs liquid), where BF1 and BDE are
    measured on the phase boundary. The image border does not count as background.
    """
    m = as_mask(mask, device, name="mask")
    x = m[None, None].float() if m.ndim == 2 else m[:, None].float()
    # Erosion with a cross: min over the 4-neighbourhood, the border padded as foreground.
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    eroded = torch.minimum(
        torch.minimum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
        torch.minimum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]),
    )
    eroded = torch.minimum(eroded, x)
    out = (x > 0) & (eroded == 0)
    return out[0, 0] if m.ndim == 2 else out[:, 0]
