"""Pictures next to the leaderboard tables: split/merge error per slice, and error overlays.

- :func:`plot_split_merge`: per-slice merge vs split error of each method
  (like seed 000 Fig. 7): where a method sits tells whether it misses
  boundaries (merge) or invents them (split).
- :func:`error_overlay`: a test slice with true positives, false positives
  and false negatives in colour (like seed 002 Fig. 2);
  :func:`save_overlay_figure` draws it at full resolution with a zoomed
  crop, a title and a legend (what the runs write).
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


def classify_boundaries(pred_boundary: ArrayLike, gt_boundary: ArrayLike, *, tolerance: float = 0.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TP, FP, FN) boolean maps of two boundary masks: predicted pixels within ``tolerance`` of the truth
    are TP, the others FP; true pixels with no prediction within ``tolerance`` are FN (BF1's notion of a hit)."""
    pred = as_mask(pred_boundary, "cpu", name="pred_boundary")
    gt = as_mask(gt_boundary, "cpu", name="gt_boundary")
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}")
    p, g = pred.numpy(), gt.numpy()
    if tolerance > 0:
        hit_p = np.zeros_like(p)
        hit_p[p] = nearest_distances(gt, pred).numpy() <= tolerance
        hit_g = np.zeros_like(g)
        hit_g[g] = nearest_distances(pred, gt).numpy() <= tolerance
    else:
        hit_p = hit_g = p & g
    return p & hit_p, p & ~hit_p, g & ~hit_g


def error_overlay(image: ArrayLike, pred_boundary: ArrayLike, gt_boundary: ArrayLike, *,
                  tolerance: float = 0.0) -> np.ndarray:
    """RGB uint8 overlay of a slice: TP cyan, FP yellow, FN red over the image.

    ``image`` is an (H, W) grey slice, or a (C, H, W) slice: three channels
    are drawn in their own colours (a tint-etched micrograph stays in colour),
    other channel counts as their luma (:func:`grainbench.data.volume.to_grey`).

    With ``tolerance > 0`` a predicted pixel within that distance of the truth
    counts as TP (and a true pixel within it of the prediction is not a FN),
    matching BF1's notion of a hit.
    """
    from .data.volume import to_grey

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] == 3:  # RGB: keep its colours
        base = np.moveaxis(img, 0, -1).astype(np.float64)
    else:
        if img.ndim == 3:
            img = to_grey(img[None])[0]
        base = as_tensor(img, "cpu", name="image").double().numpy()[..., None]
    tp, fp, fn = classify_boundaries(pred_boundary, gt_boundary, tolerance=tolerance)
    if base.shape[:2] != tp.shape:
        raise ValueError(f"shape mismatch: image {base.shape[:2]}, pred/gt {tp.shape}")
    if base.max() > 1.0:
        base = base / 255.0
    rgb = np.broadcast_to((np.clip(base, 0, 1) * 255).astype(np.uint8), (*tp.shape, 3)).copy()
    rgb[fn] = FN_COLOUR
    rgb[fp] = FP_COLOUR
    rgb[tp] = TP_COLOUR
    return rgb


def worst_window(errors: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` x ``size`` window holding the most ``errors`` pixels (ties: the first)."""
    from scipy.ndimage import uniform_filter

    h, w = errors.shape
    size = min(size, h, w)
    density = uniform_filter(errors.astype(np.float64), size=size, mode="constant")
    half = size // 2
    valid = density[half:h - size + half + 1, half:w - size + half + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x)


def save_overlay_figure(image: ArrayLike, pred_boundary: ArrayLike, gt_boundary: ArrayLike,
                        path: str | os.PathLike, *, tolerance: float = 2.0, title: str = "",
                        zoom_fraction: float = 0.25) -> Path:
    """The error overlay as a figure: the whole slice at full resolution (every pixel one or more screen
    pixels, never resampled down), a zoomed crop of the window with the most errors, a title and a legend
    of the colours with the tolerance. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    rgb = error_overlay(image, pred_boundary, gt_boundary, tolerance=tolerance)
    tp, fp, fn = classify_boundaries(pred_boundary, gt_boundary, tolerance=tolerance)
    h, w = tp.shape
    scale = max(1, 512 // max(h, w))  # small slices drawn at an integer zoom, large ones 1:1
    size = max(16, int(round(min(h, w) * zoom_fraction)))
    y0, x0 = worst_window(fp | fn, size)
    dpi = 100
    margin, gap, top = 12, 24, 70
    full_w, full_h = w * scale, h * scale
    crop_px = full_h  # the crop drawn as tall as the full view
    fig_w = margin + full_w + gap + crop_px + margin
    ncol = 3 if fig_w >= 1500 else 1  # the legend in one row only where it fits
    bottom = 40 if ncol == 3 else 66
    fig_h = top + full_h + bottom
    fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    ax = fig.add_axes((margin / fig_w, bottom / fig_h, full_w / fig_w, full_h / fig_h))
    ax.imshow(rgb, interpolation="nearest")
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), size, size, fill=False, edgecolor="white", linewidth=1.2))
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), size, size, fill=False, edgecolor="black", linewidth=0.6,
                           linestyle="--"))
    ax.set_axis_off()
    ax.set_title(f"full slice, {w} x {h} px" + (f" (drawn x{scale})" if scale > 1 else ""), fontsize=9)
    zx = fig.add_axes(((margin + full_w + gap) / fig_w, bottom / fig_h, crop_px / fig_w, full_h / fig_h))
    zx.imshow(rgb[y0:y0 + size, x0:x0 + size], interpolation="nearest")
    zx.set_axis_off()
    zx.set_title(f"zoom x{crop_px / size:.3g}: x {x0}-{x0 + size}, y {y0}-{y0 + size} (most errors)", fontsize=9)
    counts = {"TP": int(tp.sum()), "FP": int(fp.sum()), "FN": int(fn.sum())}
    tol = f"{tolerance:g} px"
    handles = [Patch(facecolor=np.array(TP_COLOUR) / 255, edgecolor="black",
                     label=f"TP: predicted boundary within {tol} of a true one ({counts['TP']} px)"),
               Patch(facecolor=np.array(FP_COLOUR) / 255, edgecolor="black",
                     label=f"FP: predicted, no true boundary within {tol} ({counts['FP']} px)"),
               Patch(facecolor=np.array(FN_COLOUR) / 255, edgecolor="black",
                     label=f"FN: true boundary, no prediction within {tol} ({counts['FN']} px)")]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title or "boundary errors", fontsize=10, y=1 - 8 / fig_h, va="top")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # RGB: no alpha channel to carry
    plt.close(fig)
    return save_png(pixels, path)


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image atomically as PNG."""
    from PIL import Image

    path = Path(path)
    with atomic_write(path, "wb") as fh:
        Image.fromarray(rgb).save(fh, format="PNG")
    return path


#: Marker shapes cycled once the ten colours are used up: method i gets colour i % 10 and marker i // 10,
#: so up to 100 methods get distinct (colour, marker) pairs.
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "*")
#: How the leaderboard labels a method scored with the true previous slice (an upper bound).
ORACLE_TAG = "(oracle)"


def method_style(i: int) -> tuple[tuple[float, ...], str]:
    """(colour, marker) of the ``i``-th method in a plot: distinct for the first 100."""
    import matplotlib

    return matplotlib.colormaps["tab10"](i % 10), MARKERS[(i // 10) % len(MARKERS)]


def plot_split_merge(per_slice: Mapping[str, Sequence[tuple[float, float]]], path: str | os.PathLike, *,
                     title: str = "") -> Path:
    """Scatter of per-slice (split, merge) VI for each method, with each method's mean marked.

    Readable with 20+ methods: each method has its own (colour, marker) pair
    (:func:`method_style`); small faint marks are single slices, the large
    black-edged mark of the same shape is the method's mean over slices,
    numbered by rank; the legend sits outside the axes, one line per method
    with its mean split / merge, best (lowest mean VI) first. Methods whose
    label holds ``(oracle)`` are upper bounds: hollow means, ``ub``, listed
    last, not ranked. With more than 8 methods a second panel zooms on the
    better half of the means.

    Parameters
    ----------
    per_slice : mapping method -> sequence of (split, merge) pairs
    path : where the PNG goes (written atomically)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    items = [(m, np.asarray(p, dtype=float).reshape(-1, 2)) for m, p in per_slice.items()]
    items = [(m, p) for m, p in items if len(p)]
    means = [p.mean(axis=0) for _, p in items]
    # Oracle rows (the true previous slice given) are an upper bound: listed after the fair ones, never ranked.
    bound = [ORACLE_TAG in m for m, _ in items]
    order = sorted(range(len(items)), key=lambda i: (bound[i], float(means[i].sum())))
    tags, rank = {}, 0
    for i in order:
        if bound[i]:
            tags[i] = "ub"
        else:
            rank += 1
            tags[i] = str(rank)
    zoom = len(items) > 8  # many methods crowd the best corner: a second panel zooms on the better half
    fig = plt.figure(figsize=(15.5 if zoom else 10.5, max(5.5, 1.4 + 0.24 * len(items))), dpi=110)
    axes = [fig.add_axes((0.06, 0.14, 0.3, 0.76)), fig.add_axes((0.41, 0.14, 0.3, 0.76))] if zoom \
        else [fig.add_axes((0.08, 0.12, 0.5, 0.8))]
    handles = []
    for i in order:
        method, pts = items[i]
        colour, marker = method_style(i)
        for ax in axes:
            ax.scatter(pts[:, 0], pts[:, 1], s=12, alpha=0.35, color=colour, marker=marker, linewidths=0)
            ax.scatter(*means[i], s=110, marker=marker, color=colour if not bound[i] else "white",
                       edgecolor=colour if bound[i] else "black", linewidth=1.6 if bound[i] else 1.0, zorder=3)
            ax.annotate(tags[i], means[i], xytext=(5, 4), textcoords="offset points", fontsize=7, zorder=4,
                        annotation_clip=True)
        face = colour if not bound[i] else "white"
        handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=8, markerfacecolor=face,
                              markeredgecolor="black" if not bound[i] else colour,
                              label=f"{tags[i]}. {method}  ({means[i][0]:.3f} / {means[i][1]:.3f})"))
    for k, ax in enumerate(axes):
        ax.set_xlabel("split error H(seg|gt) [bits]\n(false boundaries, e.g. scratches)")
        ax.set_ylabel("merge error H(gt|seg) [bits]\n(missed boundaries)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_title(title or "Per-slice VI: split vs merge", fontsize=10, loc="left")
    if zoom:
        best = np.array([means[i] for i in order[: max(2, len(order) // 2)]])
        axes[1].set_xlim(0, float(best[:, 0].max()) * 1.25 + 1e-9)
        axes[1].set_ylim(0, float(best[:, 1].max()) * 1.25 + 1e-9)
        axes[1].set_title("zoom on the better half of the means", fontsize=10, loc="left")
    note = ("method (mean split / merge), best VI first\nsmall faint marks: one slice each; large mark: mean "
            "over slices;\nnumber next to a mean = rank here"
            + ("; ub (hollow) = upper bound:\ntrue previous slice given (oracle), not ranked" if any(bound) else ""))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.74 if zoom else 0.61, 0.98), fontsize=7.5,
               frameon=False, title=note, title_fontsize=7.5, alignment="left")
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
