"""Grain statistics (seed 002): size, shape, their distributions, and the ASTM E112 grain size number."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import jensenshannon

from .._backend import ArrayLike, as_labels, as_mask
from .intercept import PATTERNS, grain_size_difference, grain_size_number, intercept_lengths


def grain_properties(labels: ArrayLike, *, min_diameter: float = 0.0) -> pd.DataFrame:
    """Per-grain area, equivalent circle diameter and PCA aspect ratio of a 2D label image.

    Moments come from the rows' runs of one label (:func:`label_moments`; no loop over grains).

    Parameters
    ----------
    labels : (H, W) integer array or tensor; 0 is boundary/unlabelled.
    min_diameter : float
        Drop grains whose equivalent diameter is below this (pixels), as in
        seed 002 Fig. 7 (3, 7 or 11 px).

    Returns
    -------
    pandas.DataFrame with columns ``label``, ``area``, ``equivalent_diameter``
    (``sqrt(4 A / pi)``), ``aspect_ratio`` (``sqrt(lambda_2 / lambda_1)`` of
    the pixel-coordinate covariance: minor over major axis, in (0, 1]; 1 for a
    single pixel), ``centroid_row``, ``centroid_col``.
    """
    lab = as_labels(labels, "cpu", name="labels")
    if lab.ndim != 2:
        raise ValueError(f"labels: grain statistics need a 2D label image, got shape {tuple(lab.shape)}")
    return grain_table(lab.numpy(), min_diameter=min_diameter)


def label_moments(labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-label pixel count and coordinate sums of a 2D non-negative integer label array, from its row runs.

    Returns float64 arrays indexed by label (0 included, up to the largest
    label): ``area, sum_r, sum_c, sum_rr, sum_cc, sum_rc``. Each row is cut
    into runs of one label and every run contributes its sums in closed
    form (:func:`_run_moments`).
    """
    lab = np.ascontiguousarray(labels)
    h, w = lab.shape
    flat = lab.reshape(-1)
    start = np.empty(flat.size, bool)
    start[0] = True
    np.not_equal(flat[1:], flat[:-1], out=start[1:])
    start[::w] = True
    first = np.flatnonzero(start)
    length = np.diff(np.append(first, flat.size))
    row, c0 = np.divmod(first, w)
    return _run_moments(row, c0, length, flat[first])


def grain_moments(labels: np.ndarray, boundary_pixels: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """:func:`label_moments` of the grain labels of a boundary map, from its boundary pixels; label 0 left empty.

    ``labels`` are the connected components of the non-boundary pixels (any
    connectivity: two grain pixels side by side in a row are connected), so
    along a row every run between two boundary pixels, or between a boundary
    pixel and the row's end, is one grain. ``boundary_pixels`` (rows, cols in
    row-major order, :func:`~grainbench.metrics.pixels.mask_pixels`) give
    those runs without a pass over every pixel. Boundary pixels (label 0)
    are not counted: every entry of label 0 is 0.
    """
    h, w = labels.shape
    rows, cols = boundary_pixels
    new_row = np.ones(rows.size + 1, bool)  # new_row[i]: pixel i starts its row's list; [-1]: past the end
    np.not_equal(rows[1:], rows[:-1], out=new_row[1:-1])
    heads, tails = new_row[:-1], new_row[1:]
    between = ~tails[:-1] & (cols[1:] - cols[:-1] > 1)
    bare = np.flatnonzero(np.bincount(rows, minlength=h) == 0)  # rows without boundary: one run each
    lead, trail = heads & (cols > 0), tails & (cols < w - 1)
    row = np.concatenate([rows[:-1][between], rows[lead], rows[trail], bare])
    c0 = np.concatenate([cols[:-1][between] + 1, np.zeros(np.count_nonzero(lead), np.int64), cols[trail] + 1,
                         np.zeros(bare.size, np.int64)])
    c1 = np.concatenate([cols[1:][between], cols[lead], np.full(np.count_nonzero(trail), w), np.full(bare.size, w)])
    return _run_moments(row, c0, c1 - c0, np.asarray(labels)[row, c0])


def _run_moments(row: np.ndarray, c0: np.ndarray, length: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-label ``area, sum_r, sum_c, sum_rr, sum_cc, sum_rc`` (float64) of horizontal runs of pixels.

    A run is ``length`` pixels of one ``label`` from column ``c0`` of ``row``;
    its sums are arithmetic series, in int64. The totals are integers below
    2**53, so they are exact and equal to per-pixel accumulation in any order
    (of pixels or of runs).
    """
    c1 = c0 + length - 1

    def squares(x: np.ndarray) -> np.ndarray:  # 0^2 + ... + x^2
        return x * (x + 1) * (2 * x + 1) // 6

    sum_c = (c0 + c1) * length // 2
    n = int(label.max()) + 1 if label.size else 1
    sums = [length, row * length, sum_c, row * row * length, squares(c1) - squares(c0 - 1), row * sum_c]
    # (no runs at all: numpy's bincount of nothing is int64 even with weights)
    return tuple(np.bincount(label, weights=x.astype(np.float64), minlength=n).astype(np.float64, copy=False)
                 for x in sums)


def grain_table(lab: np.ndarray, *, min_diameter: float = 0.0,
                moments: tuple[np.ndarray, ...] | None = None) -> pd.DataFrame:
    """:func:`grain_properties` of a validated 2D integer label array.

    ``moments``: its :func:`label_moments` (or :func:`grain_moments`) if known; label 0 is not used.
    """
    area, s_r, s_c, s_rr, s_cc, s_rc = (x[1:] for x in (label_moments(lab) if moments is None else moments))
    present = area > 0
    area_p = area[present]
    mr, mc = s_r[present] / area_p, s_c[present] / area_p
    vrr = s_rr[present] / area_p - mr**2
    vcc = s_cc[present] / area_p - mc**2
    vrc = s_rc[present] / area_p - mr * mc
    # Eigenvalues of the 2x2 covariance in closed form.
    half_trace = (vrr + vcc) / 2
    root = np.sqrt(np.maximum(((vrr - vcc) / 2) ** 2 + vrc**2, 0.0))
    lam1 = np.maximum(half_trace + root, 0.0)
    lam2 = np.maximum(half_trace - root, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(lam1 > 0, np.sqrt(lam2 / np.where(lam1 > 0, lam1, 1.0)), 1.0)
    table = pd.DataFrame({
        "label": np.nonzero(present)[0] + 1,
        "area": area_p.astype(np.int64),
        "equivalent_diameter": np.sqrt(4 * area_p / math.pi),
        "aspect_ratio": aspect,
        "centroid_row": mr,
        "centroid_col": mc,
    })
    if min_diameter > 0:
        table = table[table["equivalent_diameter"] >= min_diameter].reset_index(drop=True)
    return table


def distribution_distance(values_pred: np.ndarray, values_true: np.ndarray, *, bins: int | np.ndarray = 32,
                          value_range: tuple[float, float] | None = None) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two samples, histogrammed on common bins.

    Both samples empty: 0.0; exactly one empty: 1.0 (nothing in common).
    """
    values_pred = np.asarray(values_pred, dtype=np.float64)
    values_true = np.asarray(values_true, dtype=np.float64)
    if values_pred.size == 0 and values_true.size == 0:
        return 0.0
    if values_pred.size == 0 or values_true.size == 0:
        return 1.0
    if value_range is None:
        both = np.concatenate([values_pred, values_true])
        value_range = (float(both.min()), float(both.max()) if both.max() > both.min() else float(both.min()) + 1)
    p, edges = np.histogram(values_pred, bins=bins, range=value_range)
    q, _ = np.histogram(values_true, bins=edges)
    return float(jensenshannon(p, q, base=2))


def grain_statistics(pred_labels: ArrayLike, gt_labels: ArrayLike, *, min_diameter: float = 0.0,
                     bins: int = 32) -> dict[str, float]:
    """Grain counts and the JS distances of the size and shape distributions, prediction vs truth."""
    pred = grain_properties(pred_labels, min_diameter=min_diameter)
    true = grain_properties(gt_labels, min_diameter=min_diameter)
    return statistics_from_properties(pred, true, bins=bins)


def statistics_from_properties(pred: pd.DataFrame, true: pd.DataFrame, *, bins: int = 32) -> dict[str, float]:
    """:func:`grain_statistics` from the two :func:`grain_properties` tables."""
    return {
        "grain_count_pred": float(len(pred)),
        "grain_count_gt": float(len(true)),
        "mean_diameter_pred": float(pred["equivalent_diameter"].mean()) if len(pred) else 0.0,
        "mean_diameter_gt": float(true["equivalent_diameter"].mean()) if len(true) else 0.0,
        "size_js": distribution_distance(pred["equivalent_diameter"], true["equivalent_diameter"], bins=bins),
        "shape_js": distribution_distance(pred["aspect_ratio"], true["aspect_ratio"], bins=bins,
                                          value_range=(0.0, 1.0)),
    }


def grain_count(labels: ArrayLike) -> int:
    """Number of distinct non-zero labels (grains) of a label image or stack."""
    lab = as_labels(labels, name="labels").reshape(-1)
    if lab.numel() == 0:
        return 0
    return int((torch.bincount(lab) > 0)[1:].sum())


def grain_size_agreement(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *, pattern: str = "rows-columns",
                         bins: int = 32) -> dict[str, float]:
    """ASTM E112 grain-size agreement of a 2D boundary map with the truth, from intercept chords.

    Chords are measured on ``pattern`` under NIST's rules
    (:func:`grainbench.metrics.intercept.intercept_lengths`).

    Returns
    -------
    dict with
    ``astm_g_error``
        ``|G_pred - G_true| = 6.643856 |log10(l_pred / l_true)|`` of the mean
        chords ``l`` (no pixel size needed: it cancels). A prediction with no
        complete chord (no boundary, or nothing but boundary) is measured as
        one grain across the image: ``l_pred`` = the longer image side. NaN
        when the truth has no chord (G undefined).
    ``intercept_js``
        Jensen-Shannon distance (base 2) of the two chord-length samples on
        ``bins`` common bins (:func:`distribution_distance`).
    """
    pred_chords = intercept_lengths(pred_boundary, pattern)
    gt_chords = intercept_lengths(gt_boundary, pattern)
    return chord_agreement(pred_chords, gt_chords, max(np.shape(pred_boundary)[-2:]), bins=bins)


def chord_agreement(pred_chords: np.ndarray, gt_chords: np.ndarray, longer_side: int, *,
                    bins: int = 32) -> dict[str, float]:
    """:func:`grain_size_agreement` from the two maps' chord lengths; ``longer_side``: the image's (pixels)."""
    if gt_chords.size == 0:
        g_error = math.nan
    else:
        l_pred = float(pred_chords.mean()) if pred_chords.size else float(longer_side)
        g_error = abs(grain_size_difference(l_pred, float(gt_chords.mean())))
    return {"astm_g_error": g_error,
            "intercept_js": distribution_distance(pred_chords, gt_chords, bins=bins)}


def mean_lineal_intercept(boundary: ArrayLike) -> float:
    """Mean lineal intercept length in pixels (ASTM E112 intercept procedure).

    Test lines are every row and every column of the image; each run of
    boundary pixels crossed by a line is one intercept. Returns the total line
    length divided by the number of intercepts (``inf`` when no line crosses a
    boundary: a single grain).
    """
    b = as_mask(boundary, "cpu", name="boundary")
    if b.ndim != 2:
        raise ValueError(f"boundary: expected a 2D image, got shape {tuple(b.shape)}")
    b = b.numpy()
    h, w = b.shape
    # A run starts where a boundary pixel follows a non-boundary pixel (or the line's start).
    row_runs = int(b[:, 0].sum() + (b[:, 1:] & ~b[:, :-1]).sum())
    col_runs = int(b[0, :].sum() + (b[1:, :] & ~b[:-1, :]).sum())
    intercepts = row_runs + col_runs
    length = 2.0 * h * w
    return math.inf if intercepts == 0 else length / intercepts


#: How :func:`astm_grain_size_number` measures the mean intercept: today's intercept count, or a chord pattern.
ASTM_METHODS = ("rows-columns-count", *PATTERNS)


def astm_grain_size_number(boundary: ArrayLike, pixel_size_um: float, *,
                           method: str = "rows-columns-count") -> float:
    """ASTM E112 grain size number G from the mean lineal intercept.

    ``G = -6.643856 * log10(l_mm) - 3.288`` with ``l_mm`` the mean lineal
    intercept in millimetres (``pixel_size_um`` micrometres per pixel).
    Larger G means finer grains.

    Parameters
    ----------
    method : {"rows-columns-count", "e112", "line-grid", "rows-columns"}
        ``"rows-columns-count"`` (the default, this function's original
        behaviour): :func:`mean_lineal_intercept`, the total length of every
        row and column over the number of boundary runs they cross (partial
        end segments and boundary pixels count as grain length). The others:
        the mean chord length on that test pattern under NIST's rules
        (:func:`grainbench.metrics.intercept.intercept_lengths`; ``"e112"`` is
        the ASTM E112 pattern, ``"line-grid"`` NIST's rotated grid).
    """
    if not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be positive, got {pixel_size_um}")
    if method == "rows-columns-count":
        l_px = mean_lineal_intercept(boundary)
    elif method in PATTERNS:
        chords = intercept_lengths(boundary, method)
        l_px = float(chords.mean()) if chords.size else math.inf
    else:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(ASTM_METHODS)}")
    if math.isinf(l_px):
        raise ValueError("boundary: no boundary crosses the test lines; the grain size number is undefined")
    return grain_size_number(l_px, pixel_size_um)
