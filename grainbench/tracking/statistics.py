"""What a 3D grain label volume looks like slice by slice: the numbers that make tracking hard or easy.

Seed 000 describes its simulated stack only by its size, the Monte Carlo steps
and one count: "half million of pair grain regions" to train on (overlapping
grain pairs of adjacent slices in the 240 training slices). These statistics
let a regenerated stack be compared with that, and explain a tracker's VI: a
grain that appears or vanishes between two slices is where a slice-by-slice
tracker errs.
"""

from __future__ import annotations

import numpy as np

from ..errors import TrackingError
from .reconstruct import pair_table, slice_grains


def stack_statistics(labels3d: np.ndarray) -> dict[str, float]:
    """Per-slice statistics of a 3D grain label volume (0 = boundary).

    The 2D grains of a slice are the 4-connected regions of one id (with
    one-pixel boundaries drawn, what a tracker sees); a 3D grain *appears* in slice z when its id
    is in slice z and not in slice z-1, and *vanishes* when it is in z-1 and
    not in z.

    Parameters
    ----------
    labels3d : (Z, H, W) integer array
        3D grain ids, 0 on boundaries (or nowhere).

    Returns
    -------
    dict with
    ``slices``, ``grains_3d`` (distinct non-zero ids),
    ``grains_per_slice`` (mean number of 2D grains),
    ``mean_grain_area`` (mean over slices of non-zero pixels per 2D grain),
    ``appear_per_slice`` and ``vanish_per_slice`` (mean over the Z - 1 slice
    pairs), ``appear_rate`` (appearances per 2D grain of the later slice),
    ``pairs_per_slice`` (overlapping pairs of 2D grains between adjacent
    slices: the authors' training pairs),
    ``extra_sections`` (fraction of 2D grains that are a second or later
    section of a 3D id in the same slice)
    and ``slices_per_grain`` (mean number of slices a 3D id occurs in).
    """
    lab = np.asarray(labels3d)
    if lab.ndim != 3 or lab.dtype.kind not in "iu" or lab.shape[0] < 2:
        raise TrackingError(f"expected a (Z, H, W) integer label volume with Z >= 2, got {lab.dtype} {lab.shape}")
    from skimage.measure import label

    z_count = lab.shape[0]
    # 4-connected regions of equal id, so a volume without boundary pixels works too
    grains = slice_grains(np.stack([label(s, background=0, connectivity=1) for s in lab]), kind="labels")
    present = [np.unique(s[s > 0]) for s in lab]
    appear = np.array([np.setdiff1d(present[z], present[z - 1], assume_unique=True).size for z in range(1, z_count)])
    vanish = np.array([np.setdiff1d(present[z - 1], present[z], assume_unique=True).size for z in range(1, z_count)])
    counts = grains.counts.astype(np.float64)
    ids_per_slice = np.array([p.size for p in present], dtype=np.float64)
    pairs = [len(pair_table(grains.labels[z - 1], grains.labels[z], int(grains.counts[z - 1]),
                            int(grains.counts[z]))) for z in range(1, z_count)]
    area = [(lab[z] > 0).sum() / counts[z] for z in range(z_count) if counts[z]]
    all_ids = np.concatenate(present)
    n3d = np.unique(all_ids).size
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts[1:] > 0, appear / counts[1:], np.nan)
    return {
        "slices": float(z_count),
        "grains_3d": float(n3d),
        "grains_per_slice": float(counts.mean()),
        "mean_grain_area": float(np.mean(area)) if area else float("nan"),
        "appear_per_slice": float(appear.mean()),
        "vanish_per_slice": float(vanish.mean()),
        "appear_rate": float(np.nanmean(rate)) if np.isfinite(rate).any() else float("nan"),
        "pairs_per_slice": float(np.mean(pairs)),
        "extra_sections": float(1.0 - ids_per_slice.sum() / counts.sum()) if counts.sum() else 0.0,
        "slices_per_grain": float(all_ids.size / n3d) if n3d else 0.0,
    }
