"""Pixel overlap scores: Dice, pixel accuracy and foreground IoU."""

from __future__ import annotations

from .._backend import ArrayLike, DeviceLike, as_mask, check_same_shape


def _counts(pred: ArrayLike, gt: ArrayLike, device: DeviceLike) -> tuple[float, float, float, float]:
    p = as_mask(pred, device, name="pred")
    g = as_mask(gt, p.device, name="gt")
    check_same_shape(p, g)
    tp = float((p & g).sum())
    fp = float((p & ~g).sum())
    fn = float((~p & g).sum())
    tn = float(p.numel()) - tp - fp - fn
    return tp, fp, fn, tn


def dice(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """Dice coefficient ``2|P & G| / (|P| + |G|)`` of two binary maps.

    Pass boundary maps for the boundary task and foreground masks for the
    phase task. Both maps empty: 1.0.
    """
    tp, fp, fn, _ = _counts(pred, gt, device)
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def pixel_accuracy(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """Fraction of pixels whose binary class agrees."""
    tp, fp, fn, tn = _counts(pred, gt, device)
    return (tp + tn) / (tp + fp + fn + tn)


def foreground_iou(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """Intersection over union of the foreground (Jaccard). Both maps empty: 1.0."""
    tp, fp, fn, _ = _counts(pred, gt, device)
    denom = tp + fp + fn
    return 1.0 if denom == 0 else tp / denom
