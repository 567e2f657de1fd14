"""From a stack of 2D boundary (or label) maps to one 3D grain label volume.

The pipeline every tracker shares:

1. **2D grains** per slice (:func:`slice_grains`): the 4-connected components
   of the non-boundary pixels, numbered ``1..n_z`` in each slice.
2. **Candidate pairs** between slice z-1 and slice z (:func:`pair_table`):
   every pair of grains that overlap, with the overlap area, found with one
   ``bincount`` of combined label codes per slice pair (no loop over grains).
3. **Links**: a tracker scores the candidates and :func:`choose_one_to_one`
   (the authors' rule, the default) or :func:`choose` keeps, for every grain
   of slice z, its best accepted candidate (its *parent*), or none.
4. **Ids** (:func:`assemble`): a grain takes its parent's 3D id; a grain
   without a parent starts a new id.

What the rules mean for the events of grain growth between slices:

appear
    A grain of slice z without an accepted parent gets a new id.
vanish
    A grain of slice z-1 that no grain of slice z chooses ends there; its id
    is never reused.
split
    One-to-one links (:func:`choose_one_to_one`, the authors' code): a grain
    of slice z-1 continues into at most one grain of slice z, the one it
    matches best; the others start new ids. So a grain that appears inside
    the section of an older grain is new, and the two halves of a non-convex
    grain cut into two 2D regions get two ids. Many-to-one links
    (:func:`choose`): several grains of slice z may choose the same parent and
    share its id, which keeps split halves together but merges every grain
    that appears inside an older one with it.
merge
    A grain of slice z chooses one parent only, so when two grains of slice
    z-1 meet in one grain of slice z the best match keeps its id and the other
    ends (seed 000: "the label j with maximum similarity" wins). Two legs of
    one U-shaped grain that only join at slice z therefore keep two ids; a
    slice-by-slice tracker cannot know earlier that they belong together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import TrackingError

StackKind = Literal["auto", "boundary", "labels"]


@dataclass(frozen=True)
class SliceGrains:
    """The 2D grains of every slice of a stack.

    Attributes
    ----------
    labels : (Z, H, W) int32 array
        Grain ids numbered ``1..counts[z]`` within each slice; 0 = boundary.
    counts : (Z,) int64 array
        Number of grains of each slice.
    """

    labels: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class PairTable:
    """Candidate links between the grains of slice z-1 (``prev``) and slice z (``this``).

    Attributes
    ----------
    this, prev : (P,) int64 arrays
        Ids of the two grains of each overlapping pair, sorted by ``this`` then ``prev``.
    overlap : (P,) int64 array
        Pixels the two grains share (same (y, x), both non-boundary).
    this_area, prev_area : int64 arrays of length ``n_this + 1`` and ``n_prev + 1``
        Pixel count of every grain (index = id; index 0 counts boundary pixels).
    """

    this: np.ndarray
    prev: np.ndarray
    overlap: np.ndarray
    this_area: np.ndarray
    prev_area: np.ndarray

    @property
    def n_this(self) -> int:
        return len(self.this_area) - 1

    @property
    def n_prev(self) -> int:
        return len(self.prev_area) - 1

    def __len__(self) -> int:
        return len(self.this)


# --------------------------------------------------------------------------- 2D grains

def _as_numpy(stack: object) -> np.ndarray:
    try:
        import torch

        if isinstance(stack, torch.Tensor):
            return stack.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.asarray(stack)


def slice_grains(stack: np.ndarray | Sequence[np.ndarray], *, kind: StackKind = "auto") -> SliceGrains:
    """The 2D grains of each slice of a boundary or label stack.

    Parameters
    ----------
    stack : (Z, H, W) or (H, W) array or tensor
        A boundary stack (bool: True = boundary) or a label stack (integer:
        every distinct non-zero id of a slice is one grain, 0 = boundary).
    kind : {"auto", "boundary", "labels"}
        How to read ``stack``; ``auto`` takes bool as boundaries and integers
        as labels (pass ``kind="boundary"`` for a 0/1 or 0/255 integer mask).

    Returns
    -------
    SliceGrains

    Raises
    ------
    TrackingError
        For a float stack (binarise and thin predictions first, e.g. with
        :func:`grainbench.scoring.prepare_prediction`), negative labels, or an
        empty or wrongly shaped stack.
    """
    arr = _as_numpy(stack)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.size == 0:
        raise TrackingError(f"expected a (Z, H, W) boundary or label stack, got shape {arr.shape}")
    if kind == "auto":
        if arr.dtype == bool:
            kind = "boundary"
        elif arr.dtype.kind in "iu":
            kind = "labels"
        else:
            raise TrackingError(f"a stack of dtype {arr.dtype} is neither boundaries (bool) nor labels (integer); "
                                "binarise and thin probability maps first (grainbench.scoring.prepare_prediction)")
    if kind == "boundary":
        return _grains_from_boundary(arr)
    if kind == "labels":
        if arr.dtype.kind not in "iub":
            raise TrackingError(f"labels must be integers, got dtype {arr.dtype}")
        return _compact_labels(arr)
    raise TrackingError(f"kind must be 'auto', 'boundary' or 'labels', got {kind!r}")


def _grains_from_boundary(boundary: np.ndarray) -> SliceGrains:
    # OpenCV labels a slice ~3x faster than scipy and writes int32 directly (cf. grainbench.components).
    out = np.empty(boundary.shape, dtype=np.int32)
    counts = np.empty(boundary.shape[0], dtype=np.int64)
    for z, sl in enumerate(boundary):
        inside = np.ascontiguousarray(sl == 0).view(np.uint8)
        n, out[z] = cv2.connectedComponents(inside, connectivity=4, ltype=cv2.CV_32S)
        counts[z] = n - 1
    return SliceGrains(out, counts)


def _compact_labels(labels: np.ndarray) -> SliceGrains:
    out = np.empty(labels.shape, dtype=np.int32)
    counts = np.empty(labels.shape[0], dtype=np.int64)
    for z, sl in enumerate(labels):
        sl = sl.astype(np.int64, copy=False)
        lo, hi = int(sl.min()), int(sl.max())
        if lo < 0:
            raise TrackingError(f"labels of slice {z} are negative (min {lo}); grain ids must be >= 0")
        if hi <= 4 * sl.size:  # a lookup table is cheaper than a sort
            present = np.bincount(sl.ravel(), minlength=hi + 1) > 0
            present[0] = False
            lut = np.zeros(hi + 1, dtype=np.int32)
            lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
            out[z] = lut[sl]
            counts[z] = int(present.sum())
        else:
            values, inverse = np.unique(sl, return_inverse=True)
            shift = 0 if values[0] == 0 else 1  # id 0 stays 0
            out[z] = (inverse + shift).reshape(sl.shape)
            counts[z] = len(values) - (1 - shift)
    return SliceGrains(out, counts)


# --------------------------------------------------------------------------- candidate pairs

def pair_table(prev: np.ndarray, this: np.ndarray, n_prev: int | None = None, n_this: int | None = None
               ) -> PairTable:
    """All overlapping grain pairs of two adjacent 2D grain maps, in one pass.

    Each pixel gets the code ``this * (n_prev + 1) + prev``; one ``bincount``
    of the codes is the full overlap matrix (``np.unique`` when that matrix
    would be much larger than the image). Pixels that are boundary (0) in
    either slice are not counted as overlap.

    Parameters
    ----------
    prev, this : (H, W) integer arrays
        Grain ids ``0..n`` of slices z-1 and z (0 = boundary).
    n_prev, n_this : int, optional
        Largest ids (default: the maxima of the maps).
    """
    if prev.shape != this.shape:
        raise TrackingError(f"slices differ in shape: {prev.shape} and {this.shape}")
    n_prev = int(prev.max(initial=0)) if n_prev is None else int(n_prev)
    n_this = int(this.max(initial=0)) if n_this is None else int(n_this)
    stride = n_prev + 1
    size = (n_this + 1) * stride
    dtype = np.int32 if size < 2**31 else np.int64
    code = this.astype(dtype, copy=False).ravel() * dtype(stride) + prev.astype(dtype, copy=False).ravel()
    if size <= max(4 * code.size, 1 << 16):
        dense = np.bincount(code, minlength=size).reshape(n_this + 1, stride)
        this_area, prev_area = dense.sum(axis=1), dense.sum(axis=0)
        ti, pi = np.nonzero(dense[1:, 1:])
        overlap = dense[ti + 1, pi + 1]
        return PairTable(ti.astype(np.int64) + 1, pi.astype(np.int64) + 1, overlap.astype(np.int64),
                         this_area.astype(np.int64), prev_area.astype(np.int64))
    codes, counts = np.unique(code, return_counts=True)
    t, p = codes // stride, codes % stride
    this_area = np.bincount(t, weights=counts, minlength=n_this + 1).astype(np.int64)
    prev_area = np.bincount(p, weights=counts, minlength=n_prev + 1).astype(np.int64)
    keep = (t > 0) & (p > 0)
    return PairTable(t[keep].astype(np.int64), p[keep].astype(np.int64), counts[keep].astype(np.int64),
                     this_area, prev_area)


def centroids(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """(n + 1, 2) centroid (y, x) of every grain of a 2D map (row 0: boundary pixels; NaN if absent)."""
    n = int(labels.max(initial=0)) if n is None else int(n)
    flat = labels.ravel()
    h, w = labels.shape
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    ys = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n + 1)
    xs = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([ys / area, xs / area], axis=1)


# --------------------------------------------------------------------------- links and ids

def choose(pairs: PairTable, score: np.ndarray, accept: np.ndarray | None = None) -> np.ndarray:
    """The parent of every grain of slice z: its accepted candidate with the highest score.

    Parameters
    ----------
    pairs : PairTable
    score : (P,) array
        Higher is better (pass ``-distance`` to minimise). Ties go to the
        smaller parent id, so the result is deterministic.
    accept : (P,) bool array, optional
        Candidates allowed at all (e.g. ``probability > threshold``).

    Returns
    -------
    (n_this + 1,) int64 array: ``parents[i]`` is the grain of slice z-1 that
    grain ``i`` of slice z continues, or 0 (a new grain). ``parents[0] == 0``.
    """
    parents = np.zeros(pairs.n_this + 1, dtype=np.int64)
    idx = np.arange(len(pairs)) if accept is None else np.flatnonzero(accept)
    if idx.size == 0:
        return parents
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (len(pairs),):
        raise TrackingError(f"score has shape {score.shape}, expected ({len(pairs)},) (one per candidate pair)")
    order = idx[np.lexsort((pairs.prev[idx], -score[idx], pairs.this[idx]))]
    this_sorted = pairs.this[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = this_sorted[1:] != this_sorted[:-1]
    parents[this_sorted[first]] = pairs.prev[order[first]]
    return parents


def choose_one_to_one(pairs: PairTable, score: np.ndarray, accept: np.ndarray | None = None, *,
                      repeat: bool = False) -> np.ndarray:
    """One-to-one links, the rule of the authors' tracking code (seed 000, ``grain_track``).

    Every grain of slice z picks its best accepted candidate; every grain of
    slice z-1 picked by several keeps only the one that scores best with it;
    the others get no parent (new grains). With ``repeat`` (the authors'
    maximum-overlap tracker) the losers pick again among the grains of slice
    z-1 nobody took, until nothing changes.

    Parameters
    ----------
    pairs : PairTable
    score : (P,) array
        Higher is better. Ties go to the smaller id on both sides (the
        authors' loops keep the first maximum in id order).
    accept : (P,) bool array, optional
        Candidates allowed at all.
    repeat : bool
        Let the grains that lost pick again among the untaken parents.

    Returns
    -------
    (n_this + 1,) int64 array as :func:`choose` returns; no parent id occurs twice.
    """
    parents = np.zeros(pairs.n_this + 1, dtype=np.int64)
    if len(pairs) == 0:
        return parents
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (len(pairs),):
        raise TrackingError(f"score has shape {score.shape}, expected ({len(pairs)},) (one per candidate pair)")
    ok = np.ones(len(pairs), dtype=bool) if accept is None else np.asarray(accept, dtype=bool)
    this_done = np.zeros(pairs.n_this + 1, dtype=bool)
    prev_done = np.zeros(pairs.n_prev + 1, dtype=bool)
    while True:
        idx = np.flatnonzero(ok & ~this_done[pairs.this] & ~prev_done[pairs.prev])
        if idx.size == 0:
            break
        # Each grain of slice z: its best candidate (first in (this, -score, prev) order) ...
        order = idx[np.lexsort((pairs.prev[idx], -score[idx], pairs.this[idx]))]
        picks = order[_first_of_runs(pairs.this[order])]
        # ... and each picked grain of slice z-1 keeps the pick that scores best with it.
        order = picks[np.lexsort((pairs.this[picks], -score[picks], pairs.prev[picks]))]
        win = order[_first_of_runs(pairs.prev[order])]
        parents[pairs.this[win]] = pairs.prev[win]
        this_done[pairs.this[win]] = True
        prev_done[pairs.prev[win]] = True
        if not repeat:
            break
    return parents


def _first_of_runs(sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the first element of every run of equal values in a sorted array."""
    first = np.ones(sorted_ids.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return first


def assemble(grains: SliceGrains, parents: Sequence[np.ndarray]) -> np.ndarray:
    """3D ids from the 2D grains and the parent of every grain.

    Parameters
    ----------
    grains : SliceGrains
    parents : sequence of Z arrays
        ``parents[z][i]``: the grain of slice z-1 that grain ``i`` of slice z
        continues, or 0. ``parents[0]`` is ignored (slice 0 has no parents).

    Returns
    -------
    (Z, H, W) int32 array of 3D grain ids, numbered ``1..`` in order of first
    appearance; 0 on boundary pixels.
    """
    z_count = len(grains)
    if len(parents) != z_count:
        raise TrackingError(f"got {len(parents)} parent arrays for {z_count} slices")
    out = np.empty(grains.labels.shape, dtype=np.int32)
    n0 = int(grains.counts[0])
    ids = np.arange(n0 + 1, dtype=np.int64)  # 3D id of each grain of the previous slice
    out[0] = grains.labels[0]
    next_id = n0 + 1
    for z in range(1, z_count):
        n = int(grains.counts[z])
        par = np.asarray(parents[z], dtype=np.int64)
        if par.shape != (n + 1,):
            raise TrackingError(f"slice {z}: parents has shape {par.shape}, expected ({n + 1},) for {n} grains")
        if par.size and (par.min() < 0 or par.max() > len(ids) - 1):
            raise TrackingError(f"slice {z}: parent ids must lie in 0..{len(ids) - 1}")
        lut = ids[par]  # parent 0 maps to 0 here
        new = np.flatnonzero(par[1:] == 0) + 1
        lut[new] = np.arange(next_id, next_id + new.size)
        lut[0] = 0
        next_id += new.size
        out[z] = lut[grains.labels[z]]
        ids = lut
    if next_id - 1 > np.iinfo(np.int32).max:  # pragma: no cover - 2e9 grains
        raise TrackingError("more than 2**31 grains")
    return out
