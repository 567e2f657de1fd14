"""Scoring a reconstructed 3D label volume: 3D VI (split/merge) and ARI, as in seed 000 Tables 3-5.

The conventions are those of the 2D protocol applied to the whole volume at
once: VI in bits with voxels labelled 0 (boundary) in either volume dropped,
merge = H(gt | seg), split = H(seg | gt); ARI over all voxels with label 0 as
one cluster, accumulated in float64. Ids need not match: both scores are
invariant to relabelling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import ArrayLike, DeviceLike, as_labels, check_same_shape
from ..data.volume import Volume
from ..errors import TrackingError
from ..metrics.contingency import contingency_table
from ..metrics.information import vi_from_table
from ..metrics.rand import ari_from_table

#: The tracking protocol stored in run records; bump the version when a convention changes.
TRACKING_PROTOCOL: dict[str, Any] = {
    "name": "tracking-3d",
    # 2: one-to-one links by default (the authors' grain_track code); 1 linked many-to-one
    "version": 2,
    "task": "tracking",
    "grains_2d": "4-connected components of the non-boundary pixels of each slice",
    "candidates": "grains of slice z-1 overlapping a grain of slice z",
    "links": "one-to-one as the authors' grain_track code: a grain of slice z-1 continues into the one grain of "
             "slice z that matches it best; the built-in trackers' one_to_one=False links many-to-one",
    "vi": "split = H(seg|gt), merge = H(gt|seg) in bits over the whole volume; voxels with label 0 in either "
          "volume dropped",
    "ari": "Hubert-Arabie over all voxels, label 0 one cluster, float64",
    # As in 2D scoring: predicted boundaries rarely reach the image edge, and grains joined
    # along the edge would merge whole 3D grains; both volumes lose 10 px per side first.
    "crop": 10,
    "reference": "Ma et al. 2019 (WPU-Net, seed 000), Tables 3-5",
}

#: Id of the protocol (``name@version``), as records and tables show it.
TRACKING_PROTOCOL_ID = f"{TRACKING_PROTOCOL['name']}@{TRACKING_PROTOCOL['version']}"


def score_volume(pred: ArrayLike, gt: ArrayLike, *, device: DeviceLike = None) -> dict[str, float]:
    """3D VI (split, merge, sum) and ARI of a reconstructed label volume against the 3D ground truth.

    Parameters
    ----------
    pred, gt : (Z, H, W) integer arrays or tensors
        Reconstructed and true 3D grain ids, 0 on boundaries.
    device : str or torch.device, optional
        Where to count (default: where ``pred`` is).

    Returns
    -------
    dict with ``vi``, ``vi_split``, ``vi_merge`` (bits), ``ari``, and the
    numbers of 3D grains ``grains_pred`` and ``grains_gt``.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.repeat(np.array([[1, 1, 2, 2]]), 3, axis=0)[None].repeat(2, axis=0)
    >>> score_volume(gt * 7, gt)["vi"]          # relabelled: still perfect
    0.0
    """
    seg = as_labels(pred, device, name="pred")
    ref = as_labels(gt, seg.device, name="gt")
    check_same_shape(seg, ref, ("reconstruction", "ground truth"))
    if seg.ndim != 3:
        raise TrackingError(f"expected (Z, H, W) label volumes, got shape {tuple(seg.shape)}")
    table = contingency_table(seg, ref)
    split, merge = vi_from_table(table)
    ari = ari_from_table(table)
    return {"vi": split + merge, "vi_split": split, "vi_merge": merge, "ari": ari,
            "grains_pred": float(len(np.unique(table.rows[table.rows > 0].cpu().numpy()))),
            "grains_gt": float(len(np.unique(table.cols[table.cols > 0].cpu().numpy())))}


def protocol_crop(*volumes: np.ndarray, crop: int | None = None) -> tuple[np.ndarray, ...]:
    """The (Z, H, W) volumes without the protocol's border (``TRACKING_PROTOCOL["crop"]`` px per side).

    Applied to the boundaries before tracking and to the ground truth before
    scoring, as 2D scoring crops before labelling grains. Volumes too small to
    crop are returned whole.
    """
    c = int(TRACKING_PROTOCOL["crop"] if crop is None else crop)
    if not c or min(min(v.shape[1:]) for v in volumes) <= 2 * c:
        return volumes
    return tuple(v[:, c:-c, c:-c] for v in volumes)


def ground_truth_labels(volume: Volume, *, dataset_task: str | None = None, stored_labels: bool = False
                        ) -> np.ndarray:
    """The 3D ground-truth label volume of a loaded split, with 0 on boundary pixels.

    ``meta["labels3d"]`` when the loader provides it (``synthetic``);
    otherwise ``labels`` when they are 3D ids: a ``tracking`` dataset
    (``potts_sim``) or a dataset whose labels are stored on disk
    (``pure_iron``'s ``label``). Labels derived from the boundaries slice by
    slice are not 3D ground truth.

    Raises
    ------
    TrackingError
        When the split has no 3D labels.
    """
    labels3d = volume.meta.get("labels3d")
    if labels3d is None and volume.labels is not None and (dataset_task == "tracking" or stored_labels):
        labels3d = volume.labels
    if labels3d is None:
        raise TrackingError(f"{volume.name or 'volume'}: no 3D ground-truth labels (the labels are per-slice "
                            "components of the boundaries); tracking is scored on potts_sim, synthetic or a "
                            "dataset with stored 3D labels")
    labels3d = np.asarray(labels3d)
    if volume.boundary is not None:
        labels3d = np.where(volume.boundary, 0, labels3d)
    return labels3d.astype(np.int32, copy=False)


def dataset_ground_truth(name: str, volume: Volume) -> np.ndarray:
    """:func:`ground_truth_labels` for a split of registered dataset ``name``."""
    from ..data import get_dataset

    ds = get_dataset(name)
    stored = isinstance(ds.layout.get("labels"), str)  # e.g. pure_iron's HDF5 "label" dataset
    return ground_truth_labels(volume, dataset_task=ds.task, stored_labels=stored)
