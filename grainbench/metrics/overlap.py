"""Pixel overlap scores: Dice, pixel accuracy, foreground IoU, and the two-class mean and frequency-weighted IoU."""

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


def class_ious(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> tuple[float, float, float]:
    """IoU of the two classes of a binary map, and the true frequency of the foreground class.

    Returns ``(iou_foreground, iou_background, frequency_foreground)``, where
    foreground means True (a boundary pixel for boundary maps). A class absent
    from both maps has IoU 1.0.
    """
    tp, fp, fn, tn = _counts(pred, gt, device)
    iou_fg = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    iou_bg = 1.0 if tn + fp + fn == 0 else tn / (tn + fp + fn)
    return iou_fg, iou_bg, (tp + fn) / (tp + fp + fn + tn)


def mean_iou(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """Mean of the two classes' IoUs (boundary and background for boundary maps)."""
    fg, bg, _ = class_ious(pred, gt, device=device)
    return (fg + bg) / 2.0


def frequency_weighted_iou(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """The two classes' IoUs weighted by each class's pixel frequency in the ground truth."""
    fg, bg, freq = class_ious(pred, gt, device=device)
    return freq * fg + (1.0 - freq) * bg
