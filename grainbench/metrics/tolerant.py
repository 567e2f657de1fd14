"""Distance-tolerant boundary scores of seed 003: the top-hat and the normalised-Gaussian criteria.

Seed 003 scores a (soft, un-thresholded) boundary prediction ``p`` against a
traced ground truth through a *reward map* ``R`` built from the ground
truth: ``R = +1`` near the trace and ``-1`` far from it. Its score is the
mean of ``p * R`` over all pixels (the report plots its negative as a loss,
so a good prediction has a negative loss).

``tophat``
    ``R = +1`` within ``radius`` of the ground truth, ``-1`` beyond (the
    report dilates the trace by a 3 x 3 or 5 x 5 square; this module uses a
    Euclidean ball, so ``radius=1`` ~ 3 x 3 and ``radius=2`` ~ 5 x 5).
``gaussian``
    ``G = exp(-d^2 / (2 sigma^2))`` with ``d`` the distance to the ground
    truth, cut to 0 beyond ``truncate`` (the report's max-aggregated,
    normalised Gaussian dilation with sigma = 3 in a 15 x 15 window, i.e.
    ``truncate = 7``), remapped to ``R = 2 G - 1``.

Beside the seed's reward, both criteria give a tolerant precision and
recall, so they read like the boundary F1 of :mod:`.boundary`, with soft
predictions allowed:

* precision: the share of the predicted mass ``sum(p)`` that lies near the
  ground truth, weighted by ``w(x)`` (1 within the radius for the top-hat,
  ``G(x)`` for the Gaussian);
* recall: the mean over ground-truth pixels ``x`` of the best weighted
  prediction nearby, ``max_y p(y) k(x - y)`` (for a binary prediction: 1 when
  a predicted pixel lies within the radius, or ``exp(-d^2 / 2 sigma^2)``
  with ``d`` the distance to the prediction).

With binary inputs the top-hat precision/recall equal the boundary F1's
precision/recall at tolerance ``radius``. Arrays of any dimension are taken
as one N-D image (``sampling`` gives the voxel size); ``per_slice=True``
measures distances inside each (H, W) slice of a (Z, H, W) stack only, as
the per-slice protocols do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "TolerantScore", "gaussian_reward_map", "gaussian_score", "gaussian_weight_map", "tophat_reward_map",
    "tophat_score",
]


@dataclass(frozen=True)
class TolerantScore:
    """A tolerant score of one prediction.

    Attributes
    ----------
    precision, recall, f1 : float
        Tolerant precision, recall and their harmonic mean, in [0, 1].
    reward : float
        Seed 003's score ``mean(p * R)`` in [-1, 1]; the report's loss is ``-reward``.
    """

    precision: float
    recall: float
    f1: float
    reward: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The four numbers as a flat dict, keys prefixed (``prefix + "precision"``, ...)."""
        return {f"{prefix}{k}": float(getattr(self, k)) for k in ("precision", "recall", "f1", "reward")}


# -- inputs ---------------------------------------------------------------------------------------
def _prob(pred: np.ndarray) -> np.ndarray:
    """Prediction as float64 in [0, 1], under the input contract (:mod:`grainbench.contract`)."""
    from ..contract import as_probability

    return as_probability(pred, name="pred").cpu().numpy().astype(np.float64)


def _mask(gt: np.ndarray) -> np.ndarray:
    from ..contract import require_mask

    return require_mask(gt, name="gt").cpu().numpy()


def _check(pred: np.ndarray, gt: np.ndarray, per_slice: bool) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    if pred.ndim < 2 or (per_slice and pred.ndim != 3):
        raise ValueError(f"expected a 2D image or a (Z, H, W) stack (per_slice needs 3D), got shape {pred.shape}")


def _spacing(ndim: int, sampling: float | Sequence[float] | None) -> np.ndarray:
    s = np.ones(ndim) if sampling is None else np.broadcast_to(np.asarray(sampling, float), (ndim,))
    if (s <= 0).any():
        raise ValueError(f"sampling must be positive, got {sampling}")
    return s


def _distance(mask: np.ndarray, sampling, per_slice: bool) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest True pixel (inf where there is none)."""
    if per_slice:
        return np.stack([_distance(m, None if sampling is None else _spacing(3, sampling)[1:], False)
                         for m in mask])
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndi.distance_transform_edt(~mask, sampling=_spacing(mask.ndim, sampling))


def _offsets(radius: float, ndim: int, sampling) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets within a Euclidean ball of ``radius`` (physical units) and their lengths."""
    s = _spacing(ndim, sampling)
    half = np.floor(radius / s + 1e-9).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    offs = np.stack([g.ravel() for g in grids], 1)
    length = np.sqrt(((offs * s) ** 2).sum(1))
    keep = length <= radius + 1e-9
    return offs[keep], length[keep]


def _best_nearby(p: np.ndarray, kernel: Callable[[np.ndarray], np.ndarray], radius: float, sampling,
                 per_slice: bool) -> np.ndarray:
    """``max_y p(y) * kernel(|x - y|)`` over ``|x - y| <= radius``, for every pixel x (zero padding)."""
    if per_slice:
        sub = None if sampling is None else _spacing(3, sampling)[1:]
        return np.stack([_best_nearby(q, kernel, radius, sub, False) for q in p])
    if np.isin(p, (0.0, 1.0)).all():  # binary: the kernel of the distance to the nearest predicted pixel
        d = _distance(p > 0, sampling, False)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(d <= radius, kernel(np.where(np.isfinite(d), d, 0.0)), 0.0)
    offs, length = _offsets(radius, p.ndim, sampling)
    weights = kernel(length)
    out = np.zeros_like(p)
    pad = np.abs(offs).max(0) if len(offs) else np.zeros(p.ndim, int)
    padded = np.pad(p, [(int(h), int(h)) for h in pad])
    core = tuple(slice(int(h), int(h) + n) for h, n in zip(pad, p.shape))
    for off, wgt in zip(offs, weights):  # one shifted view per offset of the ball
        view = padded[tuple(slice(c.start + o, c.stop + o) for c, o in zip(core, off))]
        np.maximum(out, view * wgt, out=out)
    return out


def _combine(p: np.ndarray, gt: np.ndarray, near_pred: np.ndarray, near_gt: np.ndarray,
             reward: np.ndarray) -> TolerantScore:
    mass, n_gt = p.sum(), int(gt.sum())
    if mass == 0 and n_gt == 0:
        return TolerantScore(1.0, 1.0, 1.0, float((p * reward).mean()))
    precision = float((p * near_gt).sum() / mass) if mass > 0 else 0.0
    recall = float(near_pred[gt].mean()) if n_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return TolerantScore(precision, recall, f1, float((p * reward).mean()))


# -- top-hat --------------------------------------------------------------------------------------
def tophat_reward_map(gt: np.ndarray, radius: float = 2.0, *, sampling: float | Sequence[float] | None = None,
                      per_slice: bool = False) -> np.ndarray:
    """Seed 003's top-hat reward map: +1 within ``radius`` of the ground truth, -1 elsewhere.

    Parameters
    ----------
    gt : bool array
        Ground-truth boundary (any dimension >= 2).
    radius : float
        Tolerance in pixels (physical units with ``sampling``).
    sampling : float or sequence, optional
        Pixel/voxel size per axis.
    per_slice : bool
        For a (Z, H, W) stack, measure distances inside each slice only.

    Returns
    -------
    float32 array of the shape of ``gt`` with values in {-1, 1}.
    """
    g = _mask(gt)
    near = _distance(g, sampling, per_slice) <= radius
    return np.where(near, 1.0, -1.0).astype(np.float32)


def tophat_score(pred: np.ndarray, gt: np.ndarray, radius: float = 2.0, *,
                 sampling: float | Sequence[float] | None = None, per_slice: bool = False) -> TolerantScore:
    """Top-hat tolerant score of seed 003: precision, recall, F1 within ``radius`` and the reward.

    Parameters
    ----------
    pred : array
        Boundary probability in [0, 1] or a binary map (2D, or N-D).
    gt : array
        Binary ground-truth boundary of the same shape.
    radius : float
        Tolerance: a predicted pixel counts when its distance to the ground
        truth is <= ``radius`` (and vice versa for recall).
    sampling, per_slice
        See :func:`tophat_reward_map`.

    Returns
    -------
    TolerantScore
        Both maps empty: precision = recall = F1 = 1. With binary inputs,
        precision and recall equal the boundary F1's at tolerance ``radius``.

    Examples
    --------
    >>> gt = np.zeros((9, 9), bool); gt[:, 4] = True
    >>> pred = np.roll(gt, 1, axis=1)
    >>> tophat_score(pred, gt, radius=1).f1
    1.0
    """
    p, g = _prob(pred), _mask(gt)
    _check(p, g, per_slice)
    near_gt = _distance(g, sampling, per_slice) <= radius
    near_pred = _best_nearby(p, np.ones_like, radius, sampling, per_slice)
    return _combine(p, g, near_pred, near_gt, np.where(near_gt, 1.0, -1.0))


# -- normalised Gaussian ----------------------------------------------------------------------------
def gaussian_weight_map(gt: np.ndarray, sigma: float = 3.0, *, truncate: float = 7.0,
                        sampling: float | Sequence[float] | None = None, per_slice: bool = False) -> np.ndarray:
    """Normalised Gaussian dilation of the ground truth: ``exp(-d^2 / (2 sigma^2))``, 0 beyond ``truncate``.

    Equal to seed 003's max-aggregated Gaussian dilation (the maximum, not the
    sum, of the kernels of all trace pixels, so junctions are not brighter),
    normalised to 1 on the trace.

    Returns
    -------
    float32 array in [0, 1] of the shape of ``gt``.
    """
    return _gaussian_weight(_mask(gt), sigma, truncate, sampling, per_slice).astype(np.float32)


def _gaussian_weight(gt: np.ndarray, sigma: float, truncate: float, sampling, per_slice: bool) -> np.ndarray:
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    d = _distance(gt, sampling, per_slice)
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.exp(-(d ** 2) / (2.0 * sigma ** 2))
    return np.where(d <= truncate, g, 0.0)


def gaussian_reward_map(gt: np.ndarray, sigma: float = 3.0, *, truncate: float = 7.0,
                        sampling: float | Sequence[float] | None = None, per_slice: bool = False) -> np.ndarray:
    """Seed 003's normalised-Gaussian reward map ``2 G - 1`` in [-1, 1] (see :func:`gaussian_weight_map`)."""
    return 2.0 * gaussian_weight_map(gt, sigma, truncate=truncate, sampling=sampling, per_slice=per_slice) - 1.0


def gaussian_score(pred: np.ndarray, gt: np.ndarray, sigma: float = 3.0, *, truncate: float = 7.0,
                   sampling: float | Sequence[float] | None = None, per_slice: bool = False) -> TolerantScore:
    """Normalised-Gaussian tolerant score of seed 003.

    Parameters
    ----------
    pred : array
        Boundary probability in [0, 1] or a binary map (2D, or N-D).
    gt : array
        Binary ground-truth boundary of the same shape.
    sigma : float
        Width of the Gaussian in pixels (3 in the report; larger is more forgiving).
    truncate : float
        Distance beyond which the weight is 0 (7: the report's 15 x 15 window).
    sampling, per_slice
        See :func:`tophat_reward_map`.

    Returns
    -------
    TolerantScore
        ``precision = sum(p G_gt) / sum(p)``; ``recall`` = mean over
        ground-truth pixels x of ``max_y p(y) exp(-|x - y|^2 / 2 sigma^2)``
        (``|x - y| <= truncate``); ``reward = mean(p (2 G_gt - 1))``.
    """
    p, g = _prob(pred), _mask(gt)
    _check(p, g, per_slice)
    weight = _gaussian_weight(g, sigma, truncate, sampling, per_slice)
    near_pred = _best_nearby(p, lambda r: np.exp(-(r ** 2) / (2.0 * sigma ** 2)), truncate, sampling, per_slice)
    return _combine(p, g, near_pred, weight, 2.0 * weight - 1.0)
