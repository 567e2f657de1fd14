"""A 3D picture of label volumes: orthogonal slices (xy, xz, yz) coloured by grain id; compared volumes
coloured by the reference grain each of their grains matches."""

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


def match_to_reference(labels: np.ndarray, reference: np.ndarray) -> dict[int, int]:
    """One-to-one matching of the grains of ``labels`` to those of ``reference`` (same shape), by overlap.

    Pairs are taken greedily by the number of voxels they share, largest first
    (ties: lower ids first), each grain at most once, background (0) never;
    so a reference grain split in two gives its id to the larger piece only.
    """
    import torch

    from ..metrics.contingency import contingency_table

    table = contingency_table(torch.as_tensor(np.asarray(labels, np.int64)),
                              torch.as_tensor(np.asarray(reference, np.int64))).without_zero()
    rows, cols, counts = table.rows.numpy(), table.cols.numpy(), table.counts.numpy()
    order = np.lexsort((cols, rows, -counts))
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in matched and c not in taken:
            matched[r] = c
            taken.add(c)
    return matched


def matched_colours(labels: np.ndarray, reference: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(max id + 1, 3) colours of ``labels``: a grain matched to a reference grain
    (:func:`match_to_reference`) gets that grain's :func:`grain_colours` colour;
    unmatched grains get shades of grey; 0 is black."""
    ref = grain_colours(int(np.max(reference, initial=0)), seed=seed)
    n = int(np.max(labels, initial=0))
    rng = np.random.default_rng(seed + 1)
    colours = np.repeat(0.35 + 0.3 * rng.random((n + 1, 1)), 3, axis=1)  # unmatched: grey
    colours[0] = 0.0
    for own, other in match_to_reference(labels, reference).items():
        colours[own] = ref[other]
    return colours


def orthogonal_views(labels: np.ndarray, point: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The xy, xz and yz planes of a (Z, H, W) volume through ``point`` = (z, y, x) (default: the centre)."""
    z, y, x = (s // 2 for s in labels.shape) if point is None else point
    return {f"xy (z = {z})": labels[z], f"xz (y = {y})": labels[:, y, :], f"yz (x = {x})": labels[:, :, x]}


def save_orthoslices(volumes: dict[str, np.ndarray], path: str | os.PathLike, *,
                     point: Sequence[int] | None = None, title: str | None = None, dpi: int = 110,
                     reference: str | None = None) -> Path:
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
    reference : str, optional
        The name of the volume the others are compared with (e.g. ``"ground truth"``): each grain of
        another volume takes the colour of the reference grain it matches (:func:`matched_colours`),
        so equal colours mean the same grain; unmatched grains are grey.

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
    if reference is not None and reference not in volumes:
        raise TrackingError(f"reference volume {reference!r} is not among {sorted(volumes)}")
    fig, axes = plt.subplots(len(volumes), 3, figsize=(12, 3.6 * len(volumes)), squeeze=False)
    for row, (name, vol) in enumerate(volumes.items()):
        vol = np.asarray(vol)
        if reference is None or name == reference:
            colours = grain_colours(int(vol.max(initial=0)))
        else:
            colours = matched_colours(vol, np.asarray(volumes[reference]))
        for col, (plane, img) in enumerate(orthogonal_views(vol, point).items()):
            ax = axes[row, col]
            aspect = 1.0 if col == 0 else stretch
            ax.imshow(colours[img], interpolation="nearest", aspect=aspect)
            ax.set_title(f"{name}: {plane}", fontsize=9)
            ax.set_xlabel("x" if col < 2 else "y", fontsize=8)
            ax.set_ylabel("y" if col == 0 else "z" + (f" (x{stretch:.3g})" if stretch > 1 else ""), fontsize=8)
            ax.tick_params(labelsize=7)
    if reference is not None and len(volumes) > 1:
        others = ", ".join(n for n in volumes if n != reference)
        note = (f"{others}: each grain drawn in the colour of the {reference} grain it matches (largest overlap, "
                "one-to-one): same colour = same grain; grey = no match")
        title = f"{title}\n{note}" if title else note
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    plt.close(fig)
    return path
