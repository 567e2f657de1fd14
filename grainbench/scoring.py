"""Score a prediction against the ground truth under a protocol: a per-slice table and its mean.

:func:`score` validates and converts its inputs once, post-processes and
scores the slices in parallel on threads (:func:`grainbench.threads.scoring_workers`,
torch at one intra-op thread meanwhile), and per slice labels each map once
(and once more with the mAP's 1-pixel frame, a different partition): the
labels, their contingency table, the pixel counts and the boundary distances
are shared by VI, ARI, RI, mAP, the grain counts, the grain statistics and
the Betti numbers. The numbers are those of the metric functions of
:mod:`grainbench.metrics` called one by one, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._backend import ArrayLike, DeviceLike, as_mask, check_same_shape, check_spatial, resolve_device
from .components import label_components_torch, label_slice
from .contract import interpret
from .metrics.boundary import BoundaryDistances, boundary_distances, mask_boundary
from .metrics.contingency import contingency_table
from .metrics.delineation import ccq_from_distances, fom_from_distances
from .metrics.distance import nearest_distances, slice_distances
from .metrics.grains import (
    chord_agreement,
    grain_moments,
    grain_size_agreement,
    grain_table,
    statistics_from_properties,
)
from .metrics.intercept import rows_columns_lengths
from .metrics.information import vi_from_table
from .metrics.instance import dsb_score_from_table
from .metrics.pixels import mask_pixels, transposed
from .metrics.overlap import (
    class_ious_from_counts,
    dice,
    dice_from_counts,
    foreground_iou,
    pixel_accuracy,
    pixel_counts,
)
from .metrics.rand import ari_from_table, ri_from_table
from .metrics.tolerant import gaussian_score
from .metrics.topology import betti_error, betti_from_grains, cldice_arrays
from .postprocess import crop_border, thin_boundary
from .postprocessors import PostProcessor, get_postprocessor
from .protocol import METRIC_GROUPS, Protocol, get_protocol
from .threads import map_threads, opencv_threads, scoring_workers, torch_threads, use_workers


@dataclass
class ScoreResult:
    """Per-slice metrics and their aggregate (mean over slices)."""

    per_slice: pd.DataFrame
    aggregate: dict[str, float]
    protocol: Protocol
    post: PostProcessor | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol.id,
            "post": (self.post or get_postprocessor()).to_dict(),
            "aggregate": self.aggregate,
            "per_slice": self.per_slice.to_dict(orient="records"),
        }


def prepare_prediction(pred: ArrayLike, protocol: Protocol, *, device: DeviceLike = None,
                       post: str | PostProcessor | None = None) -> torch.Tensor:
    """Binarise, close and thin a prediction per the protocol; returns a (Z, H, W) bool tensor.

    ``post`` (a name or a :class:`~grainbench.postprocessors.PostProcessor`,
    default ``"protocol"``: the protocol's threshold, closing and
    skeletonisation) turns a probability map into boundaries; binary
    predictions never go through it.

    The closing belongs to turning a network's probability into boundaries, so
    it is applied to probability maps only. A binary prediction is taken as
    boundaries a method already post-processed and is scored as given, like
    the ground truth: closed and thinned only where the protocol thins the
    ground truth (``thin_gt``, for traced masks). Scoring the ground truth
    against itself is therefore perfect under every protocol. Which arrays
    are binary and which are probabilities is the input contract of
    :mod:`grainbench.contract`, the same for every entry point.
    """
    post = get_postprocessor(post)
    read = interpret(pred, name="pred")  # mask or probability: the input contract decides
    check_spatial(read.values, "pred")
    if read.kind == "probability":
        values = read.values
        b = torch.as_tensor(post(values, protocol), device=values.device)
        return b.to(resolve_device(device) if device is not None else b.device)
    b = read.values
    if b.ndim == 2:
        b = b[None]
    if protocol.thin_gt:
        # Under a protocol for traced (thick) masks a binary prediction is a trace too.
        b = thin_boundary(b, closing_size=protocol.closing_size, skeleton=True)
    return b.to(resolve_device(device) if device is not None else b.device)


def prepare_ground_truth(gt: ArrayLike, protocol: Protocol, *, device: DeviceLike = None) -> torch.Tensor:
    """The ground-truth boundary (or phase) map as a (Z, H, W) bool tensor."""
    g = as_mask(gt, name="gt")
    if g.ndim == 2:
        g = g[None]
    if protocol.thin_gt:
        g = thin_boundary(g, closing_size=protocol.closing_size, skeleton=True)
    return g.to(resolve_device(device) if device is not None else g.device)


def _grain_labels(boundary: torch.Tensor, connectivity: int, *, frame: bool = False) -> torch.Tensor:
    """Grain labels of one validated 2D bool boundary tensor, on its device (OpenCV int32 on the CPU).

    ``frame`` sets the outermost pixels to boundary first (the mAP's convention).
    """
    if boundary.device.type == "cpu":
        grains = ~boundary.numpy()  # a new C-contiguous array, even from a cropped view
        if frame:
            grains[0, :] = grains[-1, :] = grains[:, 0] = grains[:, -1] = False
        return torch.from_numpy(label_slice(grains, connectivity=connectivity))
    grains = ~boundary
    if frame:
        grains[0, :] = grains[-1, :] = grains[:, 0] = grains[:, -1] = False
    return label_components_torch(grains, connectivity=connectivity)


def _score_boundary_slice(pred: torch.Tensor, gt: torch.Tensor, protocol: Protocol,
                          extended: bool = False) -> dict[str, float]:
    """Every boundary metric of one slice; each map is labelled once (and once framed, for the mAP).

    The labels, their contingency table, the pixel counts and the boundary
    distances are computed once here and shared by the metrics; the inputs
    are the validated (H, W) bool tensors of :func:`score`.
    """
    pred_labels = _grain_labels(pred, protocol.connectivity)
    gt_labels = _grain_labels(gt, protocol.connectivity)
    table = contingency_table(pred_labels, gt_labels)  # VI, ARI, RI, grain counts
    split, merge = vi_from_table(table)
    h, w = pred.shape
    cpu = pred.device.type == "cpu"
    if cpu:  # the boundary pixels, listed once per map for the distances, the chords and the grain moments
        pred_px, gt_px = mask_pixels(pred.numpy()), mask_pixels(gt.numpy())
        to_gt, to_pred = slice_distances(gt, gt_px, pred_px), slice_distances(pred, pred_px, gt_px)
    else:
        to_gt, to_pred = nearest_distances(gt, pred), nearest_distances(pred, gt)
    dist = BoundaryDistances(pred_to_gt=to_gt, gt_to_pred=to_pred, diagonal=math.hypot(h, w))
    precision, recall, bf1 = dist.f1(protocol.bf1_tolerance)
    counts = pixel_counts(pred, gt)
    if protocol.map_frame:
        framed = contingency_table(_grain_labels(pred, protocol.connectivity, frame=True),
                                   _grain_labels(gt, protocol.connectivity, frame=True))
    else:
        framed = table
    thresholds = torch.tensor(protocol.map_thresholds, dtype=torch.float64, device=table.counts.device)
    row = {
        "vi": split + merge,
        "vi_split": split,
        "vi_merge": merge,
        "ari": ari_from_table(table),
        "map": dsb_score_from_table(framed, thresholds),
        "bf1": bf1,
        "bf1_precision": precision,
        "bf1_recall": recall,
        "bde": dist.displacement(),
        "dice": dice_from_counts(*counts[:3]),
    }
    n_pred, n_gt = _label_count(table.rows), _label_count(table.cols)
    pred_cpu, gt_cpu = pred.cpu(), gt.cpu()
    if cpu and protocol.intercept_pattern == "rows-columns":
        chords = [np.concatenate(rows_columns_lengths(px, mask_pixels(transposed(b.numpy()))))
                  for px, b in ((pred_px, pred), (gt_px, gt))]
        row.update(chord_agreement(*chords, max(h, w)))
    else:
        row.update(grain_size_agreement(pred_cpu, gt_cpu, pattern=protocol.intercept_pattern))
    row["grain_count_ratio"] = n_pred / n_gt if n_gt else math.nan
    if extended:
        _, fp, fn, tn = counts
        completeness, correctness, quality = ccq_from_distances(dist, protocol.quality_tolerance)
        iou_b, iou_bg, freq_b = class_ious_from_counts(*counts)
        row.update({
            "rand_index": ri_from_table(table),
            "pratt_fom": fom_from_distances(dist),
            "completeness": completeness,
            "correctness": correctness,
            "quality": quality,
            "mean_iou": (iou_b + iou_bg) / 2.0,
            "fw_iou": freq_b * iou_b + (1.0 - freq_b) * iou_bg,
            "dice_grain": dice_from_counts(tn, fn, fp),  # the grains' Dice: the classes swapped
        })
    if protocol.extras:
        pb, gb = pred_cpu.numpy(), gt_cpu.numpy()
        pl, gl = pred_labels.cpu().numpy(), gt_labels.cpu().numpy()
        if protocol.connectivity == 1:  # the holes of the Betti numbers are the 4-connected grains
            (p0, p1), (g0, g1) = betti_from_grains(pb, pl), betti_from_grains(gb, gl)
            b0, b1 = abs(p0 - g0), abs(p1 - g1)
        else:
            b0, b1 = betti_error(pb, gb)
        row.update({"betti0_error": float(b0), "betti1_error": float(b1), "cldice": cldice_arrays(pb, gb)})
        # on the CPU the grain moments come from the boundary pixels' row runs (grain_moments)
        pm, gm = (grain_moments(pl, pred_px), grain_moments(gl, gt_px)) if cpu else (None, None)
        row.update(statistics_from_properties(grain_table(pl, min_diameter=protocol.min_grain_diameter, moments=pm),
                                              grain_table(gl, min_diameter=protocol.min_grain_diameter, moments=gm)))
    return row


def _label_count(labels: torch.Tensor) -> int:
    """Distinct non-zero labels among a table's row (or column) labels: the grain count."""
    return int((torch.unique(labels) > 0).sum())


def _score_phase_slice(pred: torch.Tensor, gt: torch.Tensor, protocol: Protocol) -> dict[str, float]:
    dist = boundary_distances(mask_boundary(pred), mask_boundary(gt))
    precision, recall, bf1 = dist.f1(protocol.bf1_tolerance)
    return {
        "accuracy": pixel_accuracy(pred, gt),
        "iou": foreground_iou(pred, gt),
        "dice": dice(pred, gt),
        "bf1": bf1,
        "bf1_precision": precision,
        "bf1_recall": recall,
        "bde": dist.displacement(),
    }


def score(pred: ArrayLike, gt: ArrayLike, protocol: str | Protocol = "wpunet-2019", *,
          device: DeviceLike = None, slice_ids: list[Any] | None = None, tolerant: bool = False,
          metrics: str = "standard",
          post: str | PostProcessor | None = None, post_params: dict[str, Any] | None = None,
          workers: int | None = None) -> ScoreResult:
    """Score a prediction against the ground truth, slice by slice.

    Parameters
    ----------
    pred : (H, W) or (Z, H, W) array or tensor
        Boundary (or phase) probability (floats in [0, 1], or unsigned
        integer greys divided by the dtype's maximum), or a binary map (bool,
        integers holding only 0/1 or 0/255, uint16 0/65535, floats 0/1); see
        :mod:`grainbench.contract`. A probability is post-processed per the
        protocol (threshold, closing, skeletonisation).
    gt : array or tensor of the same shape
        Binary ground-truth boundary map (task ``boundary``) or foreground
        mask (task ``phase``).
    protocol : str or Protocol
        Default ``"wpunet-2019"``.
    device : str or torch.device, optional
        Where the arithmetic runs (default: the device of ``pred``).
    slice_ids : list, optional
        Names for the rows of the per-slice table (default 0..Z-1).
    tolerant : bool
        Also compute seed 003's normalised-Gaussian tolerant score (sigma 3,
        15 x 15 window) of the post-processed boundaries (of the masks' contours
        for the phase task): columns ``gauss_precision``,
        ``gauss_recall``, ``gauss_f1`` (see :mod:`grainbench.metrics.tolerant`).
        Off by default, so the standard columns stay as they are.
    metrics : {"standard", "extended"}
        ``"extended"`` adds, for the boundary task, the group
        :data:`grainbench.protocol.EXTENDED_METRICS`: ``rand_index``
        (unadjusted, all pixels, boundary pixels one cluster), ``pratt_fom``
        (Pratt's figure of merit, alpha 1/9), ``completeness`` /
        ``correctness`` / ``quality`` (Mosinska et al., tolerance
        ``protocol.quality_tolerance``), ``mean_iou`` and ``fw_iou`` (over the
        two classes boundary and background; weights: true class
        frequencies) and ``dice_grain`` (Dice of the grain, i.e. non-boundary,
        pixels: the ImageSegMetrics convention; ``dice`` stays the Dice of
        boundary pixels). The phase task has no extended group.

    Every boundary protocol also gives the grain-size agreement
    (:data:`grainbench.protocol.GRAIN_SIZE_METRICS`): ``astm_g_error``,
    ``grain_count_ratio`` (predicted / true grains; NaN without true grains)
    and ``intercept_js`` (see :func:`grainbench.metrics.grains.grain_size_agreement`).
    post : str or PostProcessor, optional
        What turns a probability map into boundaries
        (:mod:`grainbench.postprocessors`; default ``"protocol"``, the
        protocol's threshold, closing and skeletonisation). Binary
        predictions are scored as given whatever ``post`` is.
    post_params : dict, optional
        Parameters of ``post`` over its defaults (checked: one-line ``ConfigError``).
    workers : int, optional
        Threads that score slices (and post-process them) in parallel on the
        CPU. Default :func:`grainbench.threads.scoring_workers`:
        ``GRAINBENCH_SCORE_WORKERS``, else ``--threads`` /
        ``GRAINBENCH_THREADS``, else every core this process may use. torch
        runs at one intra-op thread while scoring (restored afterwards), so
        a busy machine slows scoring by its share of the cores, not by
        threads spinning against each other. The numbers do not depend on
        it. On a GPU slices are scored one after another.

    Returns
    -------
    ScoreResult
        ``per_slice`` (pandas DataFrame, one row per slice, column ``slice``
        first) and ``aggregate`` (mean of every metric over slices).
    """
    if metrics not in METRIC_GROUPS:
        raise ValueError(f"unknown metric group {metrics!r}; known: {', '.join(METRIC_GROUPS)}")
    protocol = get_protocol(protocol)
    post = get_postprocessor(post, **(post_params or {}))
    n_workers = scoring_workers(workers)
    def one(z: int) -> dict[str, Any]:
        ps, gs = p[z], g[z]
        if protocol.task == "phase":
            row = _score_phase_slice(ps, gs, protocol)
        else:
            row = _score_boundary_slice(ps, gs, protocol, extended=metrics == "extended")
        if tolerant:  # on boundaries: of the masks for the phase task, as BF1
            pb, gb = (mask_boundary(ps), mask_boundary(gs)) if protocol.task == "phase" else (ps, gs)
            t = gaussian_score(pb.cpu().numpy(), gb.cpu().numpy(), sigma=3.0, truncate=7.0)
            row.update({k: v for k, v in t.as_dict("gauss_").items() if k != "gauss_reward"})
        return {"slice": slice_ids[z], **row}

    # torch and OpenCV at one thread each for the whole call: the parallelism is across slices
    with torch_threads(1), opencv_threads(1 if n_workers > 1 else None), use_workers(n_workers):
        p = prepare_prediction(pred, protocol, device=device, post=post)
        g = prepare_ground_truth(gt, protocol, device=p.device)
        check_same_shape(p, g)
        p = crop_border(p, protocol.crop)
        g = crop_border(g, protocol.crop)
        if slice_ids is None:
            slice_ids = list(range(p.shape[0]))
        if len(slice_ids) != p.shape[0]:
            raise ValueError(f"slice_ids has {len(slice_ids)} names for {p.shape[0]} slices")
        # Slices in parallel on the CPU; one stream of work on a GPU, whose kernels queue anyway.
        rows = map_threads(one, range(p.shape[0]), n_workers if p.device.type == "cpu" else 1)
    table = pd.DataFrame(rows)
    aggregate = {k: float(table[k].mean()) for k in table.columns if k != "slice"}
    return ScoreResult(per_slice=table, aggregate=aggregate, protocol=protocol, post=post)
