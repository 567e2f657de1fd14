"""3D reconstruction: track grains between adjacent slices and score the 3D label volume (seed 000, Tables 3-5).

Typical use::

    from grainbench import data
    from grainbench.tracking import create_tracker, score_volume, dataset_ground_truth

    test = data.load("synthetic", "test")
    tracker = create_tracker("max_overlap")          # or "min_centroid", "vgg13_bn", "densenet161"
    labels3d = tracker.track(test.boundary)           # (Z, H, W) 3D grain ids, 0 on boundaries
    score_volume(labels3d, dataset_ground_truth("synthetic", test))   # vi, vi_split, vi_merge, ari

The CNN trackers learn from ground-truth 3D label volumes first
(``tracker.fit(train_labels3d, val_labels3d)``). A new tracker subclasses
:class:`Tracker` and registers in the ``grainbench.trackers`` entry-point
group (see :mod:`grainbench.tracking.api`). ``grainbench track`` runs all of
this from the command line and writes a record and a leaderboard table.
"""

from .api import Tracker, TrackerFitResult
from .classical import MaxOverlapTracker, MinCentroidTracker
from .reconstruct import (
    PairTable,
    SliceGrains,
    assemble,
    choose,
    choose_one_to_one,
    pair_table,
    slice_grains,
)
from .registry import (
    ENTRY_POINT_GROUP,
    create_tracker,
    get_tracker_class,
    list_trackers,
    register_tracker,
)
from .scoring import (
    TRACKING_PROTOCOL,
    TRACKING_PROTOCOL_ID,
    dataset_ground_truth,
    ground_truth_labels,
    protocol_crop,
    score_volume,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "TRACKING_PROTOCOL",
    "TRACKING_PROTOCOL_ID",
    "MaxOverlapTracker",
    "MinCentroidTracker",
    "PairTable",
    "SliceGrains",
    "Tracker",
    "TrackerFitResult",
    "assemble",
    "choose",
    "choose_one_to_one",
    "create_tracker",
    "dataset_ground_truth",
    "get_tracker_class",
    "ground_truth_labels",
    "list_trackers",
    "pair_table",
    "register_tracker",
    "protocol_crop",
    "score_volume",
    "slice_grains",
]
