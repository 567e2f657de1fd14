"""Small in-memory examples: Voronoi grain maps and flawed predictions of them.

Used by ``grainbench score --example``, the metrics benchmark and the tests;
the full micrograph generators live in :mod:`grainbench.data`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .skeleton import skeletonize


def voronoi_labels(shape: tuple[int, int], n_grains: int, *, seed: int = 0) -> np.ndarray:
    """A Voronoi tessellation of ``shape`` into ``n_grains`` grains, labels 1..n (int32)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    points = rng.uniform(0, [h, w], size=(n_grains, 2))
    rr, cc = np.mgrid[:h, :w]
    _, nearest = cKDTree(points).query(np.stack([rr.ravel(), cc.ravel()], axis=1))
    return (nearest.reshape(h, w) + 1).astype(np.int32)


def labels_to_boundary(labels: np.ndarray) -> np.ndarray:
    """1-pixel boundaries: a pixel whose label differs from its right or lower neighbour, thinned.

    The result is 8-connected lines that separate 4-connected grains.
    """
    b = np.zeros(labels.shape, bool)
    b[..., :, :-1] |= labels[..., :, :-1] != labels[..., :, 1:]
    b[..., :-1, :] |= labels[..., :-1, :] != labels[..., 1:, :]
    if b.ndim == 2:
        return skeletonize(b)
    return np.stack([skeletonize(s) for s in b])


def flawed_prediction(boundary: np.ndarray, *, seed: int = 0, n_gaps: int = 4, n_scratches: int = 2,
                      shift: int = 1, blur: float = 1.0) -> np.ndarray:
    """A boundary probability map with the errors of seed 000: gaps, scratches, displacement.

    Returns float32 in [0, 1] of the same shape as ``boundary`` (2D).
    """
    rng = np.random.default_rng(seed)
    h, w = boundary.shape
    pred = np.roll(boundary, shift, axis=1).astype(np.float32)
    for _ in range(n_gaps):  # missing boundary segments: merges
        r, c = rng.integers(0, h), rng.integers(0, w)
        pred[max(r - 12, 0):r + 12, max(c - 12, 0):c + 12] = 0
    for _ in range(n_scratches):  # straight spurious lines: splits
        r0, c0, r1, c1 = rng.integers(0, h), 0, rng.integers(0, h), w - 1
        n = 2 * w
        rr = np.linspace(r0, r1, n).round().astype(int).clip(0, h - 1)
        cc = np.linspace(c0, c1, n).round().astype(int).clip(0, w - 1)
        pred[rr, cc] = 1
    pred = ndi.gaussian_filter(pred, blur) * 2.5 if blur > 0 else pred
    pred += rng.normal(0, 0.03, pred.shape).astype(np.float32)
    return np.clip(pred, 0, 1).astype(np.float32)


def example_pair(shape: tuple[int, int] = (256, 256), n_grains: int = 60, *, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction probability, true boundary)`` for a Voronoi microstructure."""
    gt = labels_to_boundary(voronoi_labels(shape, n_grains, seed=seed))
    return flawed_prediction(gt, seed=seed + 1), gt
