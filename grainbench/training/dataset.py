"""Training patches as a ``torch.utils.data.Dataset``, with per-index random draws.

Every patch is drawn by its own generator, seeded by ``(seed, epoch,
index)``: the slice, the position, the rotation by 90 degrees and the
flips of patch ``index`` of ``epoch`` are the same whichever worker cuts
it, however many workers there are and whether the run was interrupted
and resumed (the position of the data pipeline is just the epoch). The
cutting itself is :class:`~grainbench.training.sampling.PatchSampler`'s
(contexts ``"2d"``, ``"2d+prev"``, ``"2.5d"``, ``"3d"``).

Losses that need per-pixel maps of the target (ABW weight maps, the
tolerant losses' reward maps) declare ``pipeline_maps``; the dataset calls it
once per crop, in the worker, so the training step receives them ready.

:class:`GrainDataset` is the same dataset over a registered dataset's split,
for users' own training loops::

    from torch.utils.data import DataLoader
    from grainbench import GrainDataset

    ds = GrainDataset("synthetic", split="train", patch_size=64, length=32)
    for batch in DataLoader(ds, batch_size=8, num_workers=1):
        batch["image"], batch["boundary"]   # (8, 1, 64, 64) float32, (8, 64, 64) bool
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.volume import Volume
from .sampling import PatchSampler

#: Version of the training data pipeline and engine, stored in every training configuration: the
#: crops a seed draws (per-index generators, version 2) differ from version 1's single stream.
ENGINE_VERSION = 2


def _draw_seed(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), int(epoch), int(index)))


class PatchDataset(Dataset):
    """Random augmented patches of one volume; item ``i`` of epoch ``e`` depends only on ``(seed, e, i)``.

    Parameters
    ----------
    volume : Volume
        The training split (image and boundary ground truth).
    patch_size : int
        Side of the square patches.
    length : int, optional
        Patches per epoch (``len(dataset)``; default one per sampled slice,
        as the authors' loader: :attr:`PatchSampler.n_slices`).
    context : str
        ``"2d"``, ``"2d+prev"``, ``"2.5d"`` or ``"3d"`` (see :mod:`grainbench.training.sampling`).
    depth : int
        Neighbours on each side for ``"2.5d"``.
    patch_depth : int
        Slices per patch for ``"3d"``.
    seed : int
        Seed of every draw.
    augment : bool
        Random rotations by 90 degrees and flips.
    maps : callable, optional
        ``maps(boundary) -> dict of arrays`` computed once per crop (a loss's ``pipeline_maps``).

    An item is a dict of tensors: ``image`` (K, P, P) float32 in [0, 1] (3D:
    (C, D, P, P)), ``boundary`` (P, P) bool (3D: (D, P, P)), ``prev`` (P, P)
    bool for ``"2d+prev"``, and the maps. Index with an int (the epoch set by
    :meth:`set_epoch`) or with an ``(epoch, index)`` pair (what
    :class:`EpochBatchSampler` yields, so persistent workers follow the epoch).
    """

    def __init__(self, volume: Volume, patch_size: int, length: int | None = None, *, context: str = "2d", depth: int = 1,
                 patch_depth: int = 16, seed: int = 0, augment: bool = True,
                 maps: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None) -> None:
        self.sampler = PatchSampler(volume, patch_size, context=context, depth=depth, seed=seed, augment=augment,
                                    patch_depth=patch_depth)
        length = self.sampler.n_slices if length is None else length
        if length < 1:
            raise ValueError(f"a patch dataset needs length >= 1, got {length}")
        self.length, self.seed, self.epoch, self.maps = int(length), int(seed), 0, maps

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """The epoch that int indices draw from."""
        self.epoch = int(epoch)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = (key if isinstance(key, tuple) else (self.epoch, key))
        if not 0 <= index < self.length:
            raise IndexError(f"patch {index} outside 0..{self.length - 1}")
        s = self.sampler
        s.rng = _draw_seed(self.seed, epoch, index)
        batch = s.sample(1)
        item = {"image": torch.from_numpy(batch.image[0]), "boundary": torch.from_numpy(batch.boundary[0])}
        if batch.prev is not None:
            item["prev"] = torch.from_numpy(batch.prev[0])
        if self.maps is not None:
            item.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.maps(batch.boundary[0]).items()})
        return item


class EpochBatchSampler(Sampler):
    """Batches of ``(epoch, index)`` keys, ``0 .. length - 1`` in order, for the epoch set by :meth:`set_epoch`.

    The order needs no shuffling: every index is its own random draw.
    """

    def __init__(self, length: int, batch_size: int) -> None:
        self.length, self.batch_size, self.epoch = int(length), int(batch_size), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.length // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for start in range(0, self.length, self.batch_size):
            yield [(self.epoch, i) for i in range(start, min(start + self.batch_size, self.length))]


class GrainDataset(PatchDataset):
    """Training patches of a registered dataset's split (torchgeo-style), for any training loop.

    Parameters
    ----------
    name : str
        Registry name (``"synthetic"``, ``"tbm"``, ``"pure_iron"``, ...); loaded
        (downloaded or generated on first use) with :func:`grainbench.data.load`.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    patch_size : int
        Side of the square patches.
    length : int, optional
        Patches per epoch (default: one per slice of the split).
    weights : {"abw", None}
        Add the ABW weight maps ``w_bck`` and ``w_obj`` of every crop (seed 000, eq. 3-5).
    **kw
        ``context``, ``depth``, ``patch_depth``, ``seed``, ``augment`` as in :class:`PatchDataset`.
    """

    def __init__(self, name: str, split: str = "train", patch_size: int = 256, *, length: int | None = None,
                 weights: str | None = None, **kw: Any) -> None:
        from .. import data
        from .losses import get_loss

        volume = data.load(name, split)
        maps = None
        if weights is not None:
            maps = getattr(get_loss(weights), "pipeline_maps", None)
            if maps is None:
                raise ValueError(f"loss {weights!r} has no per-crop maps; use weights='abw' or None")
        super().__init__(volume, patch_size, length, maps=maps, **kw)
        self.volume = volume
