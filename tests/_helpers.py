"""Independent reference implementations written from the definitions, for the tests only."""

import numpy as np
from skimage.measure import label


def brute_force_dsb_map(pred_boundary, gt_boundary, thresholds=np.arange(0.5, 1.0, 0.05)):
    """Per-grain loop as in the WPU-Net evaluation (frame, 4-connected grains, strict IoU > t)."""
    pred = np.asarray(pred_boundary, bool).copy()
    gt = np.asarray(gt_boundary, bool).copy()
    for b in (pred, gt):
        b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = True
    lp, n_pred = label(~pred, connectivity=1, return_num=True)
    lg, n_gt = label(~gt, connectivity=1, return_num=True)
    if n_pred == 0 and n_gt == 0:
        return 1.0
    tp = np.zeros(len(thresholds))
    for i in range(1, n_pred + 1):
        region = lp == i
        best = 0.0
        for j in np.unique(lg[region]):
            if j == 0:
                continue
            other = lg == j
            best = max(best, (region & other).sum() / (region | other).sum())
        tp += thresholds < best
    fp, fn = n_pred - tp, n_gt - tp
    return float(np.mean(tp / (tp + fp + fn)))


def brute_force_distances(target, query):
    """Distance of every True pixel of ``query`` to the nearest True pixel of ``target`` (all pairs)."""
    t = np.argwhere(target)
    q = np.argwhere(query)
    if len(t) == 0:
        return np.full(len(q), np.inf)
    d = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1)


def brute_force_bf1(pred, gt, tol):
    dp = brute_force_distances(gt, pred)
    dg = brute_force_distances(pred, gt)
    p = (dp <= tol).mean()
    r = (dg <= tol).mean()
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def brute_force_bde(pred, gt):
    return (brute_force_distances(gt, pred).mean() + brute_force_distances(pred, gt).mean()) / 2


def random_partition(rng, shape, n_seeds):
    """A random Voronoi-like partition (labels 1..n) built without grainbench code."""
    pts = rng.integers(0, shape, size=(n_seeds, len(shape)))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    d = ((grid[..., None, :] - pts) ** 2).sum(-1)
    return d.argmin(-1) + 1


def partition_boundary(labels):
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b
