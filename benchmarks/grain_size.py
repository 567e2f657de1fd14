"""Cost of the grain-size agreement columns inside ``score()``, measured side by side in one run.

Times :func:`grainbench.metrics.grains.grain_size_agreement` (ASTM E112 G
error and intercept JS on rows and columns) on two 1024 x 1024 Voronoi
boundary maps, and ``score()`` of the same pair under ``wpunet-2019``, and
prints the agreement's share of a slice's scoring time.

    OMP_NUM_THREADS=1 python benchmarks/grain_size.py [--size 1024] [--grains 400] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from grainbench.metrics.grains import grain_size_agreement
from grainbench.scoring import score


def voronoi_boundary(size: int, grains: int, rng: np.random.Generator) -> torch.Tensor:
    seeds = np.zeros((size, size), np.int32)
    pts = rng.integers(0, size, (grains, 2))
    seeds[pts[:, 0], pts[:, 1]] = np.arange(1, grains + 1)
    _, (rr, cc) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    return torch.from_numpy(find_boundaries(seeds[rr, cc], mode="inner"))


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--grains", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    pred, gt = (voronoi_boundary(args.size, args.grains, rng) for _ in range(2))
    agreement = best_seconds(lambda: grain_size_agreement(pred, gt), args.repeats)
    slice_score = best_seconds(lambda: score(pred, gt, "wpunet-2019"), max(1, args.repeats // 2))
    print(f"grain_size_agreement: {agreement * 1e3:.1f} ms (best of {args.repeats})")
    print(f"score() of one slice: {slice_score * 1e3:.0f} ms; agreement share {agreement / slice_score:.1%}")


if __name__ == "__main__":
    main()
