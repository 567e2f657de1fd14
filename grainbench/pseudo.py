"""Pseudo-labels: a finished run's predictions over a split's images, as training labels for another run.

Seed 004 first trained (and tuned) its networks on the outputs of an
earlier SegNet over many unlabelled slices, then fine-tuned them on the few
hand labels. Here the earlier model is any trained grainbench method (a
checkpoint, found like ``--init-from``: run id, record, work folder or
``.pt`` file); its probabilities over the training split's images are
post-processed by the scoring protocol's own pipeline (threshold, closing,
thinning where the protocol thins: what it would be scored as) and replace
the split's ground truth. Propagation methods are chained on their own
predictions (no ground truth is read). The images are unchanged.

The labels are cached under the work root (``pseudo-labels/<dataset>/``),
keyed by the parent checkpoint's sha256, the dataset's hashes, the split and
the protocol, so the trials of a study predict them once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .data.volume import Volume
from .io import atomic_write
from .names import path_component


def pseudo_label_key(parent_sha256: str, dataset_hashes: dict[str, str], split: str, protocol_id: str) -> str:
    """The cache key (hex) of one set of pseudo-labels."""
    blob = json.dumps([parent_sha256, dataset_hashes, split, protocol_id], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_parent(checkpoint: str | Path, *, in_channels: int = 1, device: str | None = None) -> Any:
    """The trained method saved in ``checkpoint`` (its registry name is read from the file)."""
    from .methods import create_model
    from .training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    try:
        name = state["config"]["method"]["name"]
    except (KeyError, TypeError):
        from .errors import InputFileError

        raise InputFileError(f"{checkpoint}: not a checkpoint of a grainbench method (no method config)") from None
    method = create_model(name, in_channels=in_channels, device=device)
    return method.load(checkpoint)


def pseudo_label(volume: Volume, checkpoint: str | Path, *, protocol: Any, cache_dir: Path | None = None,
                 key: str | None = None, device: str | None = None, progress: bool = False) -> Volume:
    """``volume`` with its ``boundary`` replaced by the prediction of the method in ``checkpoint``.

    Parameters
    ----------
    volume : Volume
        The split whose images get labels (its own ground truth, if any, is not read).
    checkpoint : path
        A trained grainbench method (:func:`load_parent`).
    protocol : Protocol
        Its post-processing turns the probabilities into masks.
    cache_dir, key : optional
        Read the labels from ``cache_dir / f"{key}.npy"`` when there, else write them there (atomically).
    device : str, optional
        Where the parent network runs.

    Returns
    -------
    Volume
        Same images, ``boundary`` the pseudo-labels (bool, (Z, H, W)), ``labels`` None,
        ``meta["pseudo_labels"]`` the checkpoint path.
    """
    from .data.volume import image_channels
    from .inference import _postprocess, predict_volume

    shape = (len(volume), *np.shape(volume.image)[-2:])
    cached = cache_dir / f"{path_component(key, 'pseudo-label key')}.npy" if cache_dir and key else None
    labels = None
    if cached is not None and cached.is_file():
        labels = np.load(cached, allow_pickle=False)
        if labels.shape != shape or labels.dtype != bool:
            labels = None  # a stale or foreign file: predict again and replace it
    if labels is None:
        parent = load_parent(checkpoint, in_channels=image_channels(volume.image), device=device)
        mode = "chain" if parent.context == "2d+prev" else None
        bare = dataclasses.replace(volume, boundary=None, labels=None)  # chain mode never reads ground truth
        pred = predict_volume(parent, bare, mode=mode, protocol=protocol, progress=progress)
        labels = np.ascontiguousarray(_postprocess(pred.prob, protocol), bool)
        if cached is not None:
            with atomic_write(cached, "wb") as fh:
                np.save(fh, labels, allow_pickle=False)
    return dataclasses.replace(volume, boundary=labels, labels=None,
                               meta={**volume.meta, "pseudo_labels": str(checkpoint)})
