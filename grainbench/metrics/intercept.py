"""ASTM E112 intercept lengths on test patterns, measured as NIST's grain-size tools measure them.

A test pattern is a set of pixel paths laid over a binary boundary map.
Along each path an *intercept* (chord) is a run of grain pixels that starts
right after a boundary pixel and ends right before the next one:

* boundary pixels belong to no chord (thick boundaries do not lengthen grains);
* the partial runs at the two ends of an open path (before its first and
  after its last boundary pixel) are dropped;
* runs of :data:`MIN_CHORD` pixels or fewer (2 px) are dropped.

These are the rules of the NIST grain-size-analysis-tools
(usnistgov/grain-size-analysis-tools, ``find_intersections``); the patterns:

``"e112"``
    The ASTM E112 test pattern on the centre square of the image (side = the
    shorter image side), framed by one background pixel: a horizontal line 5 %
    of the side above the bottom edge, a vertical line 5 % from the left edge,
    the two corner-to-corner diagonals (Bresenham lines,
    :func:`skimage.draw.line`), and three concentric circles of diameters
    0.7958, 0.5305 and 0.2653 times the framed side
    (:func:`skimage.draw.circle_perimeter`). A line chord's length is the
    Euclidean distance from its first pixel to the boundary pixel that ends
    it; a circle chord's is the arc (mean of its two end radii times the
    angle between them, about the mean pixel of the closed path). A circle
    is a closed path: it is read from its first boundary pixel round to the
    same pixel, so no run is partial.
``"line-grid"``
    The map framed by background so that it fits any rotation, rotated by
    each angle (bilinear, :func:`skimage.transform.rotate`, re-binarised at
    one half; angle 0 is not resampled), and read along every ``step``-th row
    from the first. A chord's length is its pixel count. NIST's example uses
    angles 0, 45, 90, 135 and 180 degrees every 60 px.
``"rows-columns"``
    Every row and every column of the map as it is (no frame, no resampling).
    Rows and columns are 4-connected paths, so no 8-connected one-pixel
    boundary can slip between two of their pixels (diagonal paths can cross
    such a boundary without touching it). The scoring protocols use this one.

The mean chord length ``l`` gives the ASTM E112 grain size number
``G = -6.643856 log10(l_mm) - 3.288`` (:func:`grain_size_number`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from skimage.draw import circle_perimeter, line
from skimage.transform import rotate

from .._backend import ArrayLike, as_mask
from .pixels import mask_pixels, transposed

#: Chords of this many pixels or fewer are dropped (NIST's rule).
MIN_CHORD = 2
#: The patterns :func:`intercept_lengths` knows.
PATTERNS = ("e112", "line-grid", "rows-columns")
#: NIST's line-grid example: these angles (degrees), every 60 px.
LINE_GRID_ANGLES = (0.0, 45.0, 90.0, 135.0, 180.0)
LINE_GRID_STEP = 60
#: ASTM E112 circle diameters as fractions of the (framed) square's side.
E112_CIRCLES = (0.7958, 0.5305, 0.2653)


def pixel_chords(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chords (row, first pixel, end pixel) of the rows of a boundary map, from its boundary pixels.

    ``rows, cols``: the boundary pixels in row-major order (:func:`numpy.nonzero`'s,
    :func:`~grainbench.metrics.pixels.mask_pixels`). A chord lies between two
    consecutive boundary pixels of one row, so listing the boundary pixels (a
    few percent of the image) finds every chord without a pass over every pixel.
    ``end`` is the index of the boundary pixel that closes the chord, so the
    chord has ``end - first`` pixels.
    """
    keep = (rows[1:] == rows[:-1]) & (cols[1:] - cols[:-1] - 1 > MIN_CHORD)
    return rows[:-1][keep], cols[:-1][keep] + 1, cols[1:][keep]


def _chord_bounds(boundary_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chords of every row of a 2D bool array (paths of equal length): (row, first pixel, end pixel).

    Runs not closed by a boundary pixel on both sides are not chords (see :func:`pixel_chords`).
    """
    b = np.asarray(boundary_rows, dtype=bool)
    if b.ndim != 2 or b.shape[1] < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return pixel_chords(*mask_pixels(b))


def _path_chords(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First pixel and closing boundary pixel of every chord along one path."""
    _, first, end = _chord_bounds(values[None, :])
    return first, end


def _e112_lengths(b: np.ndarray) -> list[np.ndarray]:
    h, w = b.shape
    side = min(h, w)
    r0, c0 = (h - side) // 2, (w - side) // 2
    img = np.pad(b[r0:r0 + side, c0:c0 + side], 1, constant_values=False)
    n = img.shape[0]  # side + 2
    margin = int(round(0.05 * side))
    paths = [
        line(n - 1 - margin, 0, n - 1 - margin, n - 1),  # horizontal
        line(0, margin, n - 1, margin),  # vertical
        line(0, 0, n - 1, n - 1),  # top-left to bottom-right
        line(0, n - 1, n - 1, 0),  # top-right to bottom-left
    ]
    out = []
    for rr, cc in paths:
        first, end = _path_chords(img[rr, cc])
        out.append(np.hypot(rr[end] - rr[first], cc[end] - cc[first]).astype(np.float64))
    centre = n // 2
    for frac in E112_CIRCLES:
        radius = int(round(frac * n / 2.0))
        rr, cc = circle_perimeter(centre, centre, radius)
        # Order the perimeter by angle about its centroid, then start at its first boundary pixel
        # and close it on that pixel: a closed path has no partial runs.
        cr, ccen = rr.mean(), cc.mean()
        order = np.argsort(np.arctan2(cc - ccen, rr - cr), kind="stable")
        rr, cc = rr[order], cc[order]
        on = np.nonzero(img[rr, cc])[0]
        if on.size == 0:
            out.append(np.zeros(0))
            continue
        k = np.r_[np.arange(on[0], rr.size), np.arange(0, on[0]), on[0]]
        rr, cc = rr[k], cc[k]
        first, end = _path_chords(img[rr, cc])
        # Radii from the mean of the closed path (its first pixel counted twice), as NIST measures arcs.
        cr, ccen = rr.mean(), cc.mean()
        va = np.stack([rr[first] - cr, cc[first] - ccen])
        vb = np.stack([rr[end] - cr, cc[end] - ccen])
        na, nb = np.hypot(*va), np.hypot(*vb)
        cos = np.clip((va * vb).sum(axis=0) / (na * nb), -1.0, 1.0)
        out.append((na + nb) / 2.0 * np.abs(np.arccos(cos)))
    return out


def _line_grid_lengths(b: np.ndarray, angles: Sequence[float], step: int) -> list[np.ndarray]:
    h, w = b.shape
    diagonal = int(math.ceil(math.sqrt(h * h + w * w)))
    pad = int(math.ceil(1.1 * (diagonal - min(h, w)) * 0.5))
    img = np.pad(b, pad, constant_values=False)
    out = []
    for angle in angles:
        if angle == 0:
            rot = img
        else:
            # bilinear on 0/255 greys, back to 8 bits and re-binarised at 128, as NIST does
            grey = rotate(img.astype(np.float64), float(angle), order=1, resize=False)
            rot = np.round(grey * 255.0) >= 128
        _, first, end = _chord_bounds(rot[::step])
        out.append((end - first).astype(np.float64))
    return out


def _rows_columns_lengths(b: np.ndarray) -> list[np.ndarray]:
    return rows_columns_lengths(mask_pixels(b), mask_pixels(transposed(b)))


def rows_columns_lengths(row_pixels: tuple[np.ndarray, np.ndarray],
                         column_pixels: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """The ``"rows-columns"`` chord lengths (rows, then columns) of a map from its boundary pixels.

    ``row_pixels``: (rows, cols) of the boundary pixels in row-major order;
    ``column_pixels``: the same for the transposed map (column-major order,
    as (column, row)). Scoring lists them once per map and shares them.
    """
    lengths = []
    for pixels in (row_pixels, column_pixels):
        _, first, end = pixel_chords(*pixels)
        lengths.append((end - first).astype(np.float64))
    return lengths


def intercept_lengths(boundary: ArrayLike, pattern: str = "e112", *, angles: Sequence[float] = LINE_GRID_ANGLES,
                      step: int = LINE_GRID_STEP, per_path: bool = False) -> np.ndarray | list[np.ndarray]:
    """Chord lengths (pixels) of a 2D boundary map along a test pattern (see the module doc).

    Parameters
    ----------
    boundary : (H, W) bool array or tensor
        True (non-zero) on grain boundaries.
    pattern : {"e112", "line-grid", "rows-columns"}
        The test pattern.
    angles : sequence of float
        Rotations (degrees, counter-clockwise) of the ``"line-grid"`` pattern.
    step : int
        Row spacing (pixels) of the ``"line-grid"`` pattern.
    per_path : bool
        Return one array per path group instead of one concatenated array: for
        ``"e112"`` the 4 lines then the 3 circles (largest first), for
        ``"line-grid"`` one per angle, for ``"rows-columns"`` rows then columns.

    Returns
    -------
    numpy.ndarray of float64 (or a list of them), in path order and, along a
    path, in the order the chords are met.
    """
    b = as_mask(boundary, "cpu", name="boundary")
    if b.ndim != 2:
        raise ValueError(f"boundary: expected a 2D image, got shape {tuple(b.shape)}")
    b = b.numpy()
    if pattern == "e112":
        groups = _e112_lengths(b)
    elif pattern == "line-grid":
        if int(step) < 1:
            raise ValueError(f"step must be a positive number of pixels, got {step}")
        groups = _line_grid_lengths(b, angles, int(step))
    elif pattern == "rows-columns":
        groups = _rows_columns_lengths(b)
    else:
        raise ValueError(f"unknown intercept pattern {pattern!r}; known: {', '.join(PATTERNS)}")
    return groups if per_path else np.concatenate(groups)


def grain_size_number(mean_intercept_px: float, pixel_size_um: float) -> float:
    """ASTM E112 grain size number ``G = -6.643856 log10(l_mm) - 3.288`` of a mean intercept in pixels."""
    if not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be positive, got {pixel_size_um}")
    if not (mean_intercept_px > 0 and math.isfinite(mean_intercept_px)):
        raise ValueError(f"the mean intercept must be a positive length, got {mean_intercept_px}")
    return -6.643856 * math.log10(mean_intercept_px * pixel_size_um * 1e-3) - 3.288


def grain_size_difference(mean_intercept_pred_px: float, mean_intercept_true_px: float) -> float:
    """``G_pred - G_true`` of two mean intercepts: ``-6.643856 log10(l_pred / l_true)``, no pixel size needed."""
    return -6.643856 * math.log10(mean_intercept_pred_px / mean_intercept_true_px)
