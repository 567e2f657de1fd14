"""Pixel overlap scores: Dice, pixel accuracy, foreground IoU, and the two-class mean and frequency-weighted IoU."""

from __future__ import annotations

import numpy as np
import torch

from .._backend import ArrayLike, DeviceLike, as_mask, check_same_shape


def _counts(pred: ArrayLike, gt: ArrayLike, device: DeviceLike) -> tuple[float, float, float, float]:
    p = as_mask(pred, device, name="pred")
    g = as_mask(gt, p.device, name="gt")
    check_same_shape(p, g)
    return pixel_counts(p, g)


def pixel_counts(p: torch.Tensor, g: torch.Tensor) -> tuple[float, float, float, float]:
    """``(tp, fp, fn, tn)`` of two validated bool tensors of one shape (True = positive); exact integers."""
    if p.device.type == "cpu" and g.device.type == "cpu":
        # numpy counts bools without torch's int64 reduction: 10x faster
        pn, gn = p.numpy(), g.numpy()
        tp = float(np.count_nonzero(pn & gn))
        fp = float(np.count_nonzero(pn)) - tp
        fn = float(np.count_nonzero(gn)) - tp
    else:
        tp = float((p & g).sum())
        fp = float(p.sum()) - tp
        fn = float(g.sum()) - tp
    return tp, fp, fn, float(p.numel()) - tp - fp - fn


def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """``2 tp / (2 tp + fp + fn)``; 1.0 when both maps are empty."""
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def dice(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> float:
    """Dice coefficient ``2|P & G| / (|P| + |G|)`` of two binary maps.

    Pass boundary maps for the boundary task and foreground masks for the
    phase task. Both maps empty: 1.0.
    """
    tp, fp, fn, _ = _counts(pred, gt, device)
    return dice_from_counts(tp, fp, fn)


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
    return class_ious_from_counts(*_counts(pred, gt, device))


def class_ious_from_counts(tp: float, fp: float, fn: float, tn: float) -> tuple[float, float, float]:
    """:func:`class_ious` from the pixel counts of :func:`pixel_counts`."""
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
