"""The classical tracking baselines of seed 000, Table 3: maximum overlap area and minimum centroid distance.

Both choose among the grains of slice z-1 that overlap a grain of slice z
(the candidates the CNN tracker classifies too), so the three trackers differ
only in how they pick. Everything is vectorised over the candidate pairs of a
slice pair; no Python loop runs over grains or pixels.

By default both follow the authors' tracking code (``grain_track`` of the
WPU-Net repository, which produced Table 3): links are one-to-one (a grain of
slice z-1 continues into the one grain of slice z it matches best; see
:func:`grainbench.tracking.reconstruct.choose_one_to_one`).
``one_to_one=False`` gives the many-to-one rule of grainbench's first
trackers (every grain takes its best candidate, shared or not), kept for
comparison: it merges every grain that appears inside an older grain's
section with it.
"""

from __future__ import annotations

import numpy as np

from ..errors import TrackingError
from .api import Tracker
from .reconstruct import PairTable, centroids, choose, choose_one_to_one


def _iou(pairs: PairTable) -> np.ndarray:
    union = pairs.this_area[pairs.this] + pairs.prev_area[pairs.prev] - pairs.overlap
    return pairs.overlap / np.maximum(union, 1)


class MaxOverlapTracker(Tracker):
    """A grain continues the grain of slice z-1 it overlaps most (Xue 2016; seed 000 Table 3).

    Parameters
    ----------
    min_iou : float
        Smallest intersection over union of the two grains that counts as a
        link; a grain whose best candidate falls below it is new. 0 (the
        baseline) links any overlap of at least one pixel.
    one_to_one : bool
        The authors' rule (default): a grain of slice z-1 is continued by the
        grain of slice z that overlaps it most; the grains it loses pick again
        among the grains of slice z-1 still free, and those left over are new.
        False: every grain takes its largest overlap, so a grain that appears
        inside the cross-section of an older one is taken for it (on an
        80 x 400 x 400 Potts stack 3D VI 1.28 against 0.08 one-to-one, see
        ``benchmarks/tracking.py``).
    """

    name = "max_overlap"
    reference = "maximum overlap area (Xue 2016), baseline of Ma et al. 2019 (seed 000) Table 3"
    description = "each grain continues the previous-slice grain it overlaps most"

    def __init__(self, min_iou: float = 0.0, one_to_one: bool = True) -> None:
        if not 0.0 <= min_iou < 1.0:
            raise TrackingError(f"min_iou must lie in [0, 1), got {min_iou}")
        super().__init__(min_iou=min_iou, one_to_one=bool(one_to_one))
        self.min_iou = float(min_iou)
        self.one_to_one = bool(one_to_one)

    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        accept = _iou(pairs) > self.min_iou if self.min_iou > 0 else None
        if self.one_to_one:
            return choose_one_to_one(pairs, pairs.overlap, accept, repeat=True)
        return choose(pairs, pairs.overlap, accept)


class MinCentroidTracker(Tracker):
    """A grain continues the grain of slice z-1 whose centroid is nearest (seed 000 Table 3).

    Parameters
    ----------
    max_distance : float, optional
        Largest centroid distance (pixels) that counts as a link; farther
        candidates are ignored. None: no limit.
    one_to_one : bool
        The authors' rule (default): the nearest centroid among *all* grains
        of slice z-1 links only when the two grains overlap with an
        intersection over union above ``min_iou``, and a grain of slice z-1
        keeps the nearest of the grains that chose it (one round; the others
        are new). False: the nearest overlapping grain, shared or not.
    min_iou : float, optional
        Default 0.2 one-to-one (the authors' gate), 0 otherwise.
    """

    name = "min_centroid"
    reference = "minimum centroid distance (Xue 2016), baseline of Ma et al. 2019 (seed 000) Table 3"
    description = "each grain continues the overlapping previous-slice grain with the nearest centroid"

    def __init__(self, max_distance: float | None = None, one_to_one: bool = True,
                 min_iou: float | None = None) -> None:
        if max_distance is not None and max_distance < 0:
            raise TrackingError(f"max_distance must be >= 0, got {max_distance}")
        if min_iou is not None and not 0.0 <= min_iou < 1.0:
            raise TrackingError(f"min_iou must lie in [0, 1), got {min_iou}")
        super().__init__(max_distance=max_distance, one_to_one=bool(one_to_one), min_iou=min_iou)
        self.max_distance = None if max_distance is None else float(max_distance)
        self.one_to_one = bool(one_to_one)
        self.min_iou = (0.2 if self.one_to_one else 0.0) if min_iou is None else float(min_iou)

    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        c_prev = centroids(prev, pairs.n_prev)
        c_this = centroids(this, pairs.n_this)
        dist = np.hypot(*(c_this[pairs.this] - c_prev[pairs.prev]).T)
        accept = np.ones(len(pairs), dtype=bool)
        if self.max_distance is not None:
            accept &= dist <= self.max_distance
        if self.min_iou > 0:
            accept &= _iou(pairs) > self.min_iou
        if not self.one_to_one:
            return choose(pairs, -dist, accept)
        if len(pairs):
            # The authors look for the nearest centroid among all grains of slice z-1 (the first, i.e.
            # smallest id, on ties), then require overlap.
            accept &= _nearest(c_prev, pairs.prev_area, c_this)[pairs.this] == pairs.prev
        return choose_one_to_one(pairs, -dist, accept)


def _nearest(c_prev: np.ndarray, prev_area: np.ndarray, c_this: np.ndarray, block: int = 512) -> np.ndarray:
    """For every grain of slice z, the id of the grain of slice z-1 with the nearest centroid (smallest id on ties).

    Squared distances, so exact ties stay ties; in blocks of grains to bound memory.
    """
    present = np.flatnonzero(prev_area[1:] > 0) + 1
    out = np.zeros(len(c_this), dtype=np.int64)
    if present.size == 0:
        return out
    cp = c_prev[present]
    for b0 in range(1, len(c_this), block):
        c = c_this[b0:b0 + block]
        d2 = (c[:, None, 0] - cp[None, :, 0]) ** 2 + (c[:, None, 1] - cp[None, :, 1]) ** 2
        out[b0:b0 + block] = present[np.argmin(np.nan_to_num(d2, nan=np.inf), axis=1)]
    return out
