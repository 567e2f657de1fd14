"""Scoring speed: grainbench vs the field's reference code, side by side in one run, quiet and beside a busy core.

Four measurements, each printed as a ratio (or a time) next to its target (issue 15):

1. **VI + ARI** on a pair of 1024 x 1024 grain label maps: grainbench's
   :func:`~grainbench.metrics.variation_of_information` +
   :func:`~grainbench.metrics.adjusted_rand_index` against scikit-image's
   ``variation_of_information`` (on the pixels labelled in both maps, as gala's
   ``split_vi``) + scikit-learn's ``adjusted_rand_score``. Target >= 10x.
2. **The full protocol** on N probability maps of 1024 x 1024: grainbench's
   :func:`~grainbench.scoring.score` under ``wpunet-2019`` as users call it
   (every metric of the protocol: VI, ARI, mAP, BF1, BDE, Dice, grain-size
   agreement, topology, grain statistics) against a reference written like the
   authors' evaluation: scipy closing + scikit-image skeleton, scikit-image
   labels, scikit-image VI, scikit-learn ARI, the per-grain loop mAP, scipy
   distance transforms for BF1/BDE, numpy Dice (six metrics only). Target >= 20x.
3. Both again while a second process keeps one core busy (a Python busy loop
   started here). Target >= 5x.
4. **A 147-slice stack** of 1024 x 1024 (Voronoi grains and a perturbed
   probability, rolled per slice) scored with the default protocol in a child
   process: wall time (target < 20 s on 2 cores) and the child's peak resident
   memory (``ru_maxrss``, torch and the loaded stack included; target < 2 GB).

Agreement of the numbers is checked before any timing is printed. Each time
is the best of ``--repeat`` runs; the 1-minute load average is printed at the
start and the end.

    python benchmarks/metrics.py [--slices 6] [--stack 147] [--size 1024] [--grains 500] [--repeat 2] [--device cpu]
    python benchmarks/metrics.py --quick        # 128 x 128, for a smoke test (timings meaningless)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.metrics import variation_of_information as skimage_vi
from skimage.morphology import skeletonize
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(ROOT))

from benchmarks._load import busy_core, load  # noqa: E402
from grainbench.examples import flawed_prediction, labels_to_boundary, voronoi_labels  # noqa: E402
from grainbench.metrics import adjusted_rand_index, variation_of_information  # noqa: E402
from grainbench.scoring import score  # noqa: E402
from grainbench.threads import scoring_workers  # noqa: E402

SIX = ("vi", "ari", "map", "bf1", "bde", "dice")
CROP = 10


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


def reference_vi_ari(lp, lg):
    """scikit-image VI on the pixels labelled in both maps, scikit-learn ARI on all pixels."""
    keep = (lp != 0) & (lg != 0)
    merge, split = skimage_vi(lp[keep], lg[keep])
    return split + merge, adjusted_rand_score(lg.ravel(), lp.ravel())


def reference_protocol(prob, gt, tolerance=4.0):
    """The authors' pipeline with library calls: argmax, 3x3 closing, skeleton, crop, six metrics."""
    b = prob > 0.5
    b = ndi.binary_closing(np.pad(b, 3, mode="edge"), np.ones((3, 3)))[3:-3, 3:-3]
    pred = skeletonize(b)[CROP:-CROP, CROP:-CROP]
    gt = gt[CROP:-CROP, CROP:-CROP]
    vi, ari = reference_vi_ari(label(~pred, connectivity=1), label(~gt, connectivity=1))
    d_pred = ndi.distance_transform_edt(~gt)[pred]
    d_gt = ndi.distance_transform_edt(~pred)[gt]
    precision, recall = (d_pred <= tolerance).mean(), (d_gt <= tolerance).mean()
    return {
        "vi": vi, "ari": ari, "map": reference_map(pred, gt),
        "bf1": 2 * precision * recall / (precision + recall),
        "bde": (d_pred.mean() + d_gt.mean()) / 2,
        "dice": 2 * (pred & gt).sum() / (pred.sum() + gt.sum()),
    }


def make_pairs(n, size, grains, *, seed0=0):
    """``(probabilities, true boundaries)``: n Voronoi slices and flawed predictions of them."""
    gts, preds = [], []
    for seed in range(seed0, seed0 + n):
        gt = labels_to_boundary(voronoi_labels((size, size), grains, seed=seed))
        gts.append(gt)
        preds.append(flawed_prediction(gt, seed=seed + 100))
    return np.stack(preds), np.stack(gts)


def make_stack(n, size, grains, bases=8):
    """An n-slice stack from ``bases`` distinct pairs, each slice rolled by its own offset."""
    preds, gts = make_pairs(min(bases, n), size, grains, seed0=1000)
    out_p = np.empty((n, size, size), np.float32)
    out_g = np.empty((n, size, size), bool)
    for z in range(n):
        k = z % len(preds)
        shift = ((37 * z) % size, (53 * z) % size)
        out_p[z] = np.roll(preds[k], shift, axis=(0, 1))
        out_g[z] = np.roll(gts[k], shift, axis=(0, 1))
    return out_p, out_g


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times)


def _sync(device):
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def compare(lp, lg, preds, gts, repeat, device="cpu"):
    """(VI+ARI ratio, protocol ratio, details): both references and grainbench, alternated."""
    (vi_r, ari_r), t_vi_ref = best_of(lambda: reference_vi_ari(lp, lg), repeat)
    (split, merge), t_vi = best_of(lambda: variation_of_information(lp, lg), repeat)
    ari, t_ari = best_of(lambda: adjusted_rand_index(lp, lg), repeat)
    assert abs(split + merge - vi_r) < 1e-9 and abs(ari - ari_r) < 1e-9, "VI/ARI disagree with the references"
    ref_rows, t_ref = best_of(lambda: [reference_protocol(p, g) for p, g in zip(preds, gts)], repeat)
    ours, t_ours = best_of(lambda: (score(preds, gts, device=device), _sync(device))[0], repeat)
    worst = max(abs(ours.per_slice[k].iloc[i] - ref_rows[i][k]) for i in range(len(ref_rows)) for k in SIX)
    assert worst < 1e-9, f"grainbench and the reference disagree by {worst:.2e}"
    return {"vi_ari_ref": t_vi_ref, "vi_ari": t_vi + t_ari, "protocol_ref": t_ref, "protocol": t_ours,
            "worst": worst}


def stack_child(pred_path: str, gt_path: str, device: str) -> None:
    """Score a saved stack with the defaults; print wall time and peak RSS (run in a fresh process)."""
    preds, gts = np.load(pred_path), np.load(gt_path)
    if device != "cpu":  # warm the device up (context, kernels) on one slice
        score(preds[:1], gts[:1], device=device)
    t = time.perf_counter()
    result = score(preds, gts, device=device)
    _sync(device)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(f"{wall:.3f} {peak} {len(result.per_slice)} {scoring_workers()}")


def run_stack(n, size, grains, device):
    preds, gts = make_stack(n, size, grains)
    with tempfile.TemporaryDirectory() as tmp:
        pp, gp = os.path.join(tmp, "pred.npy"), os.path.join(tmp, "gt.npy")
        np.save(pp, preds)
        np.save(gp, gts)
        del preds, gts
        out = subprocess.run([sys.executable, __file__, "--stack-child", pp, gp, device], capture_output=True, text=True,
                             check=True).stdout.split()
    wall, peak, rows, workers = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    assert rows == n
    return wall, peak, workers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=6, help="probability maps of the protocol comparison")
    ap.add_argument("--stack", type=int, default=147, help="slices of the stack scored in a child process")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--grains", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs per timing")
    ap.add_argument("--device", default="cpu", help="where grainbench scores (cpu or cuda)")
    ap.add_argument("--quick", action="store_true", help="128 x 128, 2 slices, a 3-slice stack, one run each")
    ap.add_argument("--stack-child", nargs=3, metavar=("PRED", "GT", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stack_child:
        stack_child(*args.stack_child)
        return
    if args.quick:
        args.size, args.grains, args.slices, args.stack, args.repeat = 128, 20, 2, 3, 1

    import torch

    print(f"torch {torch.__version__}; {os.cpu_count()} cores, {len(os.sched_getaffinity(0))} usable; "
          f"scoring workers {scoring_workers()}; {load()}")
    t0 = time.perf_counter()
    preds, gts = make_pairs(args.slices, args.size, args.grains)
    b = score(preds[:1], gts[:1], device=args.device)  # warm-up (imports, caches)
    del b
    lg = label(~gts[0], connectivity=1)
    lp = label(~(flawed_prediction(gts[0], seed=7, blur=0) > 0.5), connectivity=1)
    print(f"generated {args.slices} pairs of {args.size} x {args.size} ({args.grains} grains) "
          f"in {time.perf_counter() - t0:.1f} s")

    quiet = compare(lp, lg, preds, gts, args.repeat, args.device)
    with busy_core():
        busy = compare(lp, lg, preds, gts, args.repeat, args.device)

    wall, peak, workers = run_stack(args.stack, args.size, args.grains, args.device)

    print(f"agreement: max |grainbench - reference| over {len(SIX)} metrics x {args.slices} slices: "
          f"{max(quiet['worst'], busy['worst']):.1e}")
    print(f"{'':<44}{'reference s':>12}{'grainbench s':>13}{'ratio':>8}   target")
    for tag, r in (("quiet", quiet), ("one core busy", busy)):
        for name, key, target in (("VI + ARI, one pair", "vi_ari", 10 if tag == "quiet" else 5),
                                  (f"full protocol, {args.slices} slices", "protocol", 20 if tag == "quiet" else 5)):
            ratio = r[f"{key}_ref"] / r[key]
            print(f"{f'{name} ({tag})':<44}{r[f'{key}_ref']:>12.3f}{r[key]:>13.3f}{ratio:>7.1f}x   >= {target}x")
    target = "< 2 s on an H100/H200" if args.device.startswith("cuda") else "< 20 s on 2 cores"
    print(f"{args.stack}-slice stack of {args.size} x {args.size}, default protocol, {args.device}, {workers} workers: "
          f"{wall:.1f} s wall (target {target}), peak memory {peak / 2**30:.2f} GiB (target < 2 GiB)")
    print(load())


if __name__ == "__main__":
    main()
