"""The classical tracking baselines of seed 000, Table 3: maximum overlap area and minimum centroid distance.

Both choose among the grains of slice z-1 that overlap a grain of slice z
(the candidates the CNN tracker classifies too), so the three trackers differ
only in how they pick. Everything is vectorised over the candidate pairs of a
slice pair; no Python loop runs over grains or pixels.
"""

from __future__ import annotations

import numpy as np

from ..errors import TrackingError
from .api import Tracker
from .reconstruct import PairTable, centroids, choose


class MaxOverlapTracker(Tracker):
    """A grain continues the grain of slice z-1 it overlaps most (Xue 2016; seed 000 Table 3).

    Parameters
    ----------
    min_iou : float
        Smallest intersection over union of the two grains that counts as a
        link; a grain whose best candidate falls below it is new. 0 (the
        baseline) links any overlap of at least one pixel, so a grain that
        appears inside the cross-section of an older one is always taken for
        it; a gate such as 0.3 recognises most appearances (on an
        80 x 400 x 400 Potts stack it lowers the 3D VI from 1.32 to 0.09,
        see ``benchmarks/tracking.py``).
    """

    name = "max_overlap"
    reference = "maximum overlap area (Xue 2016), baseline of Ma et al. 2019 (seed 000) Table 3"
    description = "each grain continues the previous-slice grain it overlaps most"

    def __init__(self, min_iou: float = 0.0) -> None:
        if not 0.0 <= min_iou < 1.0:
            raise TrackingError(f"min_iou must lie in [0, 1), got {min_iou}")
        super().__init__(min_iou=min_iou)
        self.min_iou = float(min_iou)

    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        accept = None
        if self.min_iou > 0:
            union = pairs.this_area[pairs.this] + pairs.prev_area[pairs.prev] - pairs.overlap
            accept = pairs.overlap > self.min_iou * union
        return choose(pairs, pairs.overlap, accept)


class MinCentroidTracker(Tracker):
    """A grain continues the overlapping grain of slice z-1 whose centroid is nearest (seed 000 Table 3).

    Parameters
    ----------
    max_distance : float, optional
        Largest centroid distance (pixels) that counts as a link; farther
        candidates are ignored. None: no limit.
    """

    name = "min_centroid"
    reference = "minimum centroid distance (Xue 2016), baseline of Ma et al. 2019 (seed 000) Table 3"
    description = "each grain continues the overlapping previous-slice grain with the nearest centroid"

    def __init__(self, max_distance: float | None = None) -> None:
        if max_distance is not None and max_distance < 0:
            raise TrackingError(f"max_distance must be >= 0, got {max_distance}")
        super().__init__(max_distance=max_distance)
        self.max_distance = None if max_distance is None else float(max_distance)

    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        c_prev = centroids(prev, pairs.n_prev)
        c_this = centroids(this, pairs.n_this)
        dist = np.hypot(*(c_this[pairs.this] - c_prev[pairs.prev]).T)
        accept = None if self.max_distance is None else dist <= self.max_distance
        return choose(pairs, -dist, accept)
