"""The public protocol a grain tracker implements.

A tracker turns a stack of 2D boundary maps (or 2D label maps) into one 3D
grain label volume by recognising the same grain in adjacent slices (seed 000,
"Grain Object Tracking Slice By Slice"). The shared pipeline lives in
:mod:`grainbench.tracking.reconstruct`; a tracker only decides, for every
grain of slice z, which overlapping grain of slice z-1 it continues.

Writing a tracker
-----------------
Subclass :class:`Tracker`, set ``name`` and implement :meth:`Tracker.link`::

    class LargestIoU(Tracker):
        name = "largest_iou"

        def link(self, prev, this, pairs):
            iou = pairs.overlap / (pairs.this_area[pairs.this] + pairs.prev_area[pairs.prev] - pairs.overlap)
            return choose(pairs, iou, accept=iou > 0.3)

then register it in your ``pyproject.toml``::

    [project.entry-points."grainbench.trackers"]
    largest_iou = "mypkg.tracking:LargestIoU"

or name it as ``--tracker mypkg.tracking:LargestIoU``. Trackers that learn
(such as the CNN trackers) also implement :meth:`Tracker.fit`, and
:meth:`Tracker.save`/:meth:`Tracker.load`; trackers that want to batch work
across all slice pairs override :meth:`Tracker.link_stack`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .reconstruct import (
    PairTable,
    SliceGrains,
    StackKind,
    assemble,
    pair_table,
    slice_grains,
)


@dataclass
class TrackerFitResult:
    """What :meth:`Tracker.fit` returns; stored in the run record.

    Attributes
    ----------
    trained : bool
        False for trackers without training.
    epochs, steps : int
        Epochs and optimiser steps done.
    best_epoch : int
        Epoch of the kept weights (highest validation accuracy), -1 if none.
    best_val_accuracy : float
        Pair classification accuracy of the kept weights on the validation pairs.
    train_pairs, val_pairs : int
        Number of labelled pairs available.
    seconds : float
        Wall time of the fit.
    history : dict of lists
        Per-epoch ``train_loss``, ``val_accuracy`` and ``lr``.
    config : dict
        The tracker's configuration.
    """

    trained: bool = False
    epochs: int = 0
    steps: int = 0
    best_epoch: int = -1
    best_val_accuracy: float = float("nan")
    train_pairs: int = 0
    val_pairs: int = 0
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tracker(ABC):
    """Base class of every grain tracker.

    Class attributes
    ----------------
    name : str
        Registry name (``"max_overlap"``).
    reference : str
        Where the algorithm comes from.
    description : str
        One line for listings.
    trainable : bool
        Whether :meth:`fit` learns anything (then the tracker needs weights
        before :meth:`track`).

    Attributes
    ----------
    timings : dict
        Seconds spent by the last :meth:`track` call in each stage
        (``grains_s``, ``link_s``, ``assemble_s``, ``track_s``).
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    description: ClassVar[str] = ""
    trainable: ClassVar[bool] = False

    def __init__(self, **config: Any) -> None:
        self._config: dict[str, Any] = dict(config)
        self.timings: dict[str, float] = {}

    # -- learning -----------------------------------------------------------------
    def fit(self, train: np.ndarray, val: np.ndarray | None = None, *, seed: int = 0, **kw: Any) -> TrackerFitResult:
        """Learn from ground-truth 3D label volumes; trackers without training return at once.

        Parameters
        ----------
        train, val : (Z, H, W) integer arrays
            3D grain ids (the same grain has the same id in every slice), 0 on
            boundary pixels, as ``Volume.meta["labels3d"]`` (synthetic) or
            ``Volume.labels`` (potts_sim) hold them.
        seed : int
            Seed of every random choice.
        """
        return TrackerFitResult(trained=False, config=self.config())

    @property
    def is_fitted(self) -> bool:
        """Whether the tracker can track now (always for trackers without training)."""
        return True

    # -- tracking -----------------------------------------------------------------
    @abstractmethod
    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        """Choose the parent of every grain of slice z among the overlapping grains of slice z-1.

        Parameters
        ----------
        prev, this : (H, W) int32 arrays
            2D grain ids ``1..n`` of slices z-1 and z (0 = boundary).
        pairs : PairTable
            Every overlapping pair with its overlap and the grain areas.

        Returns
        -------
        (n_this + 1,) int array: ``parents[i]`` is the id in ``prev`` that
        grain ``i`` of ``this`` continues, 0 for a new grain (use
        :func:`grainbench.tracking.reconstruct.choose`).
        """

    def link_stack(self, grains: SliceGrains) -> list[np.ndarray]:
        """Parents of every slice (``[0]`` is empty); calls :meth:`link` per slice pair."""
        parents = [np.zeros(int(grains.counts[0]) + 1, dtype=np.int64)]
        for z in range(1, len(grains)):
            prev, this = grains.labels[z - 1], grains.labels[z]
            pairs = pair_table(prev, this, int(grains.counts[z - 1]), int(grains.counts[z]))
            parents.append(np.asarray(self.link(prev, this, pairs), dtype=np.int64))
        return parents

    def track(self, stack: np.ndarray, *, kind: StackKind = "auto") -> np.ndarray:
        """Reconstruct the 3D grain label volume of a stack.

        Parameters
        ----------
        stack : (Z, H, W) array or tensor
            Boundaries (bool, True = boundary) or per-slice labels (integer, 0 =
            boundary); see :func:`grainbench.tracking.reconstruct.slice_grains`.
        kind : {"auto", "boundary", "labels"}

        Returns
        -------
        (Z, H, W) int32 array of 3D grain ids (1.. in order of first
        appearance), 0 on boundary pixels.
        """
        t0 = time.perf_counter()
        grains = slice_grains(stack, kind=kind)
        t1 = time.perf_counter()
        parents = self.link_stack(grains)
        t2 = time.perf_counter()
        labels = assemble(grains, parents)
        t3 = time.perf_counter()
        self.timings = {"grains_s": t1 - t0, "link_s": t2 - t1, "assemble_s": t3 - t2, "track_s": t3 - t0}
        return labels

    # -- description and state -----------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (stored in run records)."""
        return {"name": self.name, **self._config}

    def save(self, path: str | Path) -> str:
        """Write learned state; trackers without training have none."""
        raise NotImplementedError(f"tracker {self.name!r} has no learned state to save")

    def load(self, path: str | Path) -> Tracker:
        """Read learned state written by :meth:`save`."""
        raise NotImplementedError(f"tracker {self.name!r} has no learned state to load")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"
