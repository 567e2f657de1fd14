"""Pictures next to the leaderboard tables: split/merge error per slice, and error overlays.

- :func:`plot_split_merge`: per-slice merge vs split error of each method
  (like seed 000 Fig. 7): where a method sits tells whether it misses
  boundaries (merge) or invents them (split).
- :func:`error_overlay`: a test slice with true positives, false positives
  and false negatives in colour (like seed 002 Fig. 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._backend import ArrayLike, as_mask, as_tensor
from .io import atomic_write
from .metrics.distance import nearest_distances

TP_COLOUR = (0, 255, 255)   # cyan
FP_COLOUR = (255, 255, 0)   # yellow
FN_COLOUR = (255, 0, 0)     # red


def error_overlay(image: ArrayLike, pred_boundary: ArrayLike, gt_boundary: ArrayLike, *,
                  tolerance: float = 0.0) -> np.ndarray:
    """RGB uint8 overlay of a slice: TP cyan, FP yellow, FN red over the grey image.

    ``image`` is an (H, W) grey slice or a (C, H, W) colour slice, shown as its
    luma (:func:`grainbench.data.volume.to_grey`).

    With ``tolerance > 0`` a predicted pixel within that distance of the truth
    counts as TP (and a true pixel within it of the prediction is not a FN),
    matching BF1's notion of a hit.
    """
    from .data.volume import to_grey

    img = np.asarray(image)
    if img.ndim == 3:  # (C, H, W) colour slice
        img = to_grey(img[None])[0]
    img = as_tensor(img, "cpu", name="image").double().numpy()
    pred = as_mask(pred_boundary, "cpu", name="pred_boundary")
    gt = as_mask(gt_boundary, "cpu", name="gt_boundary")
    if img.shape != tuple(pred.shape) or pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: image {img.shape}, pred {tuple(pred.shape)}, gt {tuple(gt.shape)}")
    if img.max() > 1.0:
        img = img / 255.0
    grey = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    p, g = pred.numpy(), gt.numpy()
    if tolerance > 0:
        hit_p = np.zeros_like(p)
        hit_p[p] = nearest_distances(gt, pred).numpy() <= tolerance
        hit_g = np.zeros_like(g)
        hit_g[g] = nearest_distances(pred, gt).numpy() <= tolerance
    else:
        hit_p = hit_g = p & g
    rgb[g & ~hit_g] = FN_COLOUR
    rgb[p & ~hit_p] = FP_COLOUR
    rgb[p & hit_p] = TP_COLOUR
    return rgb


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image atomically as PNG."""
    from PIL import Image

    path = Path(path)
    with atomic_write(path, "wb") as fh:
        Image.fromarray(rgb).save(fh, format="PNG")
    return path


def plot_split_merge(per_slice: Mapping[str, Sequence[tuple[float, float]]], path: str | os.PathLike, *,
                     title: str = "") -> Path:
    """Scatter of per-slice (split, merge) VI for each method, with each method's mean marked.

    Parameters
    ----------
    per_slice : mapping method -> sequence of (split, merge) pairs
    path : where the PNG goes (written atomically)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for i, (method, pairs) in enumerate(per_slice.items()):
        pts = np.asarray(pairs, dtype=float).reshape(-1, 2)
        colour = plt.cm.tab10(i % 10)
        ax.scatter(pts[:, 0], pts[:, 1], s=14, alpha=0.5, color=colour, label=method)
        ax.scatter(*pts.mean(axis=0), s=120, marker="X", color=colour, edgecolor="black", linewidth=0.8)
    ax.set_xlabel("split error H(seg|gt) [bits]  (false boundaries, e.g. scratches)")
    ax.set_ylabel("merge error H(gt|seg) [bits]  (missed boundaries)")
    ax.set_title(title or "Per-slice VI: split vs merge (X = mean)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
