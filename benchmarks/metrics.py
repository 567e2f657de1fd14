"""Scoring speed: grainbench vs a straightforward reference pipeline, side by side in one run.

The reference is what an evaluation script of the field does: scikit-image
labelling, scikit-image VI on the masked pixels, scikit-learn ARI, the
per-grain loop mAP of the WPU-Net evaluation, scipy distance transforms for
BF1/BDE and numpy Dice. Both sides score the same N synthetic 1024 x 1024
slice pairs with the same conventions (wpunet-2019: crop 10 px, 1-px frame for
mAP). Agreement of the numbers is checked before the timings are printed.

    python benchmarks/metrics.py [--slices N] [--size 1024] [--grains 500] [--device cpu|cuda]

Targets (issue 2): CPU at least 10x the reference; CUDA: all six metrics on
147 slices of 1024 x 1024 (the pure-iron test set) in under 2 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.metrics import variation_of_information as skimage_vi
from sklearn.metrics import adjusted_rand_score

from grainbench.examples import flawed_prediction, labels_to_boundary, voronoi_labels
from grainbench.protocol import Protocol
from grainbench.scoring import score

SIX = ("vi", "ari", "map", "bf1", "bde", "dice")


def reference_map(pred, gt):
    """The per-grain loop of the WPU-Net evaluation (get_map_2018kdasb_new), operation for operation."""
    thresholds = np.arange(0.5, 1.0, 0.05)
    pred, gt = pred.copy(), gt.copy()
    for b in (pred, gt):
        b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = True
    label_gt, num_gt = label(~gt, connectivity=1, return_num=True)
    label_pred, num_pred = label(~pred, connectivity=1, return_num=True)
    tp = np.zeros(len(thresholds))
    for i in range(1, num_pred + 1):
        hits = [j for j in np.unique(label_gt[label_pred == i]) if j != 0]
        if not hits:
            continue
        iou = [np.count_nonzero(label_pred[label_gt == j] == i) / np.count_nonzero((label_gt == j) | (label_pred == i))
               for j in hits]
        tp[thresholds < max(iou)] += 1
    fp, fn = num_pred - tp, num_gt - tp
    return float(np.mean(tp / (tp + fp + fn)))


def reference_scores(pred, gt, tolerance=4.0):
    """Six metrics with library calls; pred and gt are cropped, thinned boolean boundaries."""
    lp = label(~pred, connectivity=1)
    lg = label(~gt, connectivity=1)
    keep = (lp != 0) & (lg != 0)
    merge, split = skimage_vi(lp[keep], lg[keep])
    ari = adjusted_rand_score(lg.ravel(), lp.ravel())
    d_pred = ndi.distance_transform_edt(~gt)[pred]
    d_gt = ndi.distance_transform_edt(~pred)[gt]
    precision, recall = (d_pred <= tolerance).mean(), (d_gt <= tolerance).mean()
    return {
        "vi": split + merge, "ari": ari, "map": reference_map(pred, gt),
        "bf1": 2 * precision * recall / (precision + recall),
        "bde": (d_pred.mean() + d_gt.mean()) / 2,
        "dice": 2 * (pred & gt).sum() / (pred.sum() + gt.sum()),
    }


def make_pairs(n, size, grains):
    gts, preds = [], []
    for seed in range(n):
        gt = labels_to_boundary(voronoi_labels((size, size), grains, seed=seed))
        # Already-thinned binary predictions, so both sides score exactly the same maps.
        pred = labels_to_boundary(voronoi_labels((size, size), grains, seed=seed)) if seed % 2 else gt
        pred = flawed_prediction(pred, seed=seed + 100, blur=0) > 0.5
        gts.append(gt)
        preds.append(pred)
    return np.stack(preds), np.stack(gts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--grains", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    t0 = time.perf_counter()
    preds, gts = make_pairs(args.slices, args.size, args.grains)
    print(f"generated {args.slices} pairs of {args.size} x {args.size} ({args.grains} grains) "
          f"in {time.perf_counter() - t0:.1f} s")

    six = Protocol(name="six-metrics", version=1, closing_size=1, skeletonize=False, extras=False)
    full = Protocol(name="all-metrics", version=1, closing_size=1, skeletonize=False, extras=True)
    p_dev = torch.from_numpy(preds).to(args.device)
    g_dev = torch.from_numpy(gts).to(args.device)
    score(p_dev[:1], g_dev[:1], six, device=args.device)  # warm-up (CUDA context, allocator)

    def timed(fn):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - t

    ours, t_ours = timed(lambda: score(p_dev, g_dev, six, device=args.device))
    _, t_full = timed(lambda: score(p_dev, g_dev, full, device=args.device))

    t = time.perf_counter()
    crop = slice(10, -10)
    ref_rows = [reference_scores(p[crop, crop], g[crop, crop]) for p, g in zip(preds, gts)]
    t_ref = time.perf_counter() - t

    worst = max(abs(ours.per_slice[k].iloc[i] - ref_rows[i][k]) for i in range(len(ref_rows)) for k in SIX)
    print(f"max |grainbench - reference| over {len(SIX)} metrics x {args.slices} slices: {worst:.2e}")
    print(f"{'pipeline':<42}{'total s':>10}{'ms/slice':>10}")
    for name, t in (("reference (skimage/sklearn/loop mAP)", t_ref), ("grainbench six metrics", t_ours),
                    ("grainbench all metrics (+topology, grains)", t_full)):
        print(f"{name:<42}{t:>10.2f}{1000 * t / args.slices:>10.1f}")
    print(f"speed-up, six metrics: {t_ref / t_ours:.1f}x  (target >= 10x on CPU)")
    print(f"projected 147-slice pure-iron test set, six metrics: {147 * t_ours / args.slices:.2f} s")


if __name__ == "__main__":
    main()
