"""The embedded default dataset: a small rendered serial stack with exact labels.

A 3D polycrystal (Voronoi seeds, then a short Potts coarsening that curves
the boundaries and rounds the triple junctions) is cut into z slices and
rendered with the flaws of real serial sections (see :mod:`.render`). The
ground truth comes from the labels, never from the image, so it stays exact
under every flaw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .potts import simulate_potts
from .render import RenderConfig, boundary_from_labels, render_micrographs

#: Half-open slice ranges of the default (48-slice) stack.
SYNTHETIC_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 32), "val": (32, 40), "test": (40, 48)}

#: Simulation parameters of the default stack; about 50 grains per 256 x 256 slice.
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "grains_per_mvoxel": 14.0,  # Voronoi seeds per 10^6 voxels (sets the grain size)
    "mc_steps": 20,
    "temperature": 0.5,
    "quench_steps": 2,
    "boundaries": "free",  # faces are cuts through bulk material, not grain boundaries
    "margin": 1.0,
}


def synthetic_splits(n_slices: int) -> dict[str, tuple[int, int]]:
    """Train/val/test slice ranges in the default proportions (2/3, 1/6, 1/6) for ``n_slices``."""
    if n_slices < 3:
        raise ValueError(f"need at least 3 slices for three splits, got {n_slices}")
    val0 = max(1, round(n_slices * 2 / 3))
    test0 = max(val0 + 1, round(n_slices * 5 / 6))
    test0 = min(test0, n_slices - 1)
    return {"train": (0, val0), "val": (val0, test0), "test": (test0, n_slices)}


def generate_synthetic(
    seed: int = 0,
    shape: tuple[int, int, int] = (48, 256, 256),
    *,
    render_config: RenderConfig | None = None,
    **kw: Any,
) -> dict[str, np.ndarray]:
    """Generate the ``synthetic`` dataset.

    Parameters
    ----------
    seed : int
        Simulation and rendering seed; the same seed gives the same arrays
        (for one numpy version), see :func:`grainbench.data.hashing.array_digest`.
    shape : (Z, H, W)
        Stack size; slices are taken along z. The default splits
        (:data:`SYNTHETIC_SPLITS`) assume 48 slices; use
        :func:`synthetic_splits` for another Z.
    render_config : RenderConfig, optional
        Appearance and flaws of the images.
    **kw
        Overrides of :data:`SYNTHETIC_DEFAULTS`.

    Returns
    -------
    dict with, all (Z, H, W):

    ``"image"`` uint8
        Rendered micrographs.
    ``"boundary"`` bool
        1-pixel, 8-connected in-slice grain boundaries.
    ``"labels"`` int32
        Per-slice grain ids (from 1 in every slice), 0 on boundary pixels:
        exactly ``grains_from_boundary(boundary)``.
    ``"labels3d"`` int32
        3D grain ids (the same grain has the same id in every slice), 0 on
        boundary pixels; the ground truth of tracking.
    """
    from scipy import ndimage as ndi

    params = dict(SYNTHETIC_DEFAULTS)
    unknown = set(kw) - set(params)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}; expected some of {sorted(params)}")
    params.update(kw)
    density = params.pop("grains_per_mvoxel")
    n_grains = max(1, round(density * float(np.prod(shape)) / 1e6))
    grains = simulate_potts(tuple(shape), n_grains=n_grains, seed=seed, **params)
    boundary = boundary_from_labels(grains)
    labels = np.zeros(grains.shape, dtype=np.int32)
    four = ndi.generate_binary_structure(2, 1)
    for z in range(grains.shape[0]):
        ndi.label(~boundary[z], structure=four, output=labels[z])
    labels3d = np.where(boundary, 0, grains).astype(np.int32)
    # The renderer spawns child streams of SeedSequence(seed): independent of the simulation's.
    image = render_micrographs(grains, seed=seed, config=render_config, boundary=boundary)
    return {"image": image, "boundary": boundary, "labels": labels, "labels3d": labels3d}
