"""A 3D picture of a label volume: orthogonal slices (xy, xz, yz) coloured by grain id."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import TrackingError
from ..io import atomic_write


def grain_colours(max_id: int, *, seed: int = 0) -> np.ndarray:
    """(max_id + 1, 3) RGB in [0, 1]: a fixed random bright colour per id, black for 0 (boundary).

    Random colours keep neighbouring grains apart, and the colour of an id is
    the same in every view, so a grain can be followed across the three planes.
    """
    rng = np.random.default_rng(seed)
    colours = 0.25 + 0.75 * rng.random((max_id + 1, 3))
    colours[0] = 0.0
    return colours


def orthogonal_views(labels: np.ndarray, point: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The xy, xz and yz planes of a (Z, H, W) volume through ``point`` = (z, y, x) (default: the centre)."""
    z, y, x = (s // 2 for s in labels.shape) if point is None else point
    return {f"xy (z = {z})": labels[z], f"xz (y = {y})": labels[:, y, :], f"yz (x = {x})": labels[:, :, x]}


def save_orthoslices(volumes: dict[str, np.ndarray], path: str | os.PathLike, *,
                     point: Sequence[int] | None = None, title: str | None = None, dpi: int = 110) -> Path:
    """Write a PNG with one row per volume and the xy, xz and yz planes as columns.

    Parameters
    ----------
    volumes : dict of name -> (Z, H, W) integer array
        E.g. ``{"reconstruction": pred, "ground truth": gt}``; all the same shape.
    path : path-like
        The PNG (written atomically; folders are created).
    point : (z, y, x), optional
        Where the planes cross (default: the centre).
    title : str, optional

    Returns
    -------
    Path of the written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not volumes:
        raise TrackingError("no volume to draw")
    shapes = {np.shape(v) for v in volumes.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise TrackingError(f"volumes must share one (Z, H, W) shape, got {sorted(shapes)}")
    depth, height, width = next(iter(shapes))
    # Thin stacks (8 slices of 256 x 256) are stretched along z so the side views stay readable.
    stretch = 1.0 if depth * 4 >= min(height, width) else min(height, width) / (4.0 * depth)
    fig, axes = plt.subplots(len(volumes), 3, figsize=(12, 3.6 * len(volumes)), squeeze=False)
    for row, (name, vol) in enumerate(volumes.items()):
        vol = np.asarray(vol)
        colours = grain_colours(int(vol.max(initial=0)))
        for col, (plane, img) in enumerate(orthogonal_views(vol, point).items()):
            ax = axes[row, col]
            aspect = 1.0 if col == 0 else stretch
            ax.imshow(colours[img], interpolation="nearest", aspect=aspect)
            ax.set_title(f"{name}: {plane}", fontsize=9)
            ax.set_xlabel("x" if col < 2 else "y", fontsize=8)
            ax.set_ylabel("y" if col == 0 else "z" + (f" (x{stretch:.3g})" if stretch > 1 else ""), fontsize=8)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    plt.close(fig)
    return path
