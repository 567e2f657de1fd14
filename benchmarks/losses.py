"""Cost of the training losses per patch: plain BCE beside BCE + 0.04 TopoLoss (seed 002) and the rest.

Each loss is timed forward + backward on a batch of ``--batch`` logits of
``--sizes`` x ``--sizes`` patches (Voronoi boundaries), ``--repeats`` times
after a warm-up, and reported in milliseconds per patch. Two kinds of
logits: ``noisy`` (random, like an untrained network: many small
persistence pairs, the topological loss's worst case) and ``trained``
(a blurred, slightly noisy copy of the target, like a network that has
learnt the boundaries). The topological term runs gudhi on the CPU whatever
the device; ``--device cuda`` times the rest on the GPU.

    python benchmarks/losses.py [--sizes 128,256] [--batch 8] [--repeats 3] [--device cpu]
                                [--losses bce,topo,abw,tophat,gaussian]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage as ndi

from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.training import get_loss


def _batch(size: int, n: int, kind: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    grains = max(8, size * size // 800)
    target = np.stack([labels_to_boundary(voronoi_labels((size, size), grains, seed=k)) for k in range(n)])
    rng = np.random.default_rng(0)
    if kind == "noisy":
        z = rng.normal(0, 1, target.shape)
    else:
        z = 6 * ndi.gaussian_filter(target.astype(float), (0, 1, 1)) / 0.16 - 3 + rng.normal(0, 0.5, target.shape)
    logits = torch.from_numpy(np.stack([-z / 2, z / 2], 1).astype(np.float32)).to(device)
    return logits, torch.from_numpy(target).to(device)


def _time(loss_fn, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    def once() -> None:
        x = logits.clone().requires_grad_(True)
        loss_fn(x, target).backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--losses", default="bce,topo,abw,tophat,gaussian")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    names = args.losses.split(",")
    print(f"ms per patch (forward + backward, batch {args.batch}, {device}, torch threads "
          f"{torch.get_num_threads()})")
    print(f"{'patch':>9} {'logits':>8} " + " ".join(f"{n:>9}" for n in names) + "   topo/bce")
    for size in (int(s) for s in args.sizes.split(",")):
        for kind in ("noisy", "trained"):
            logits, target = _batch(size, args.batch, kind, device)
            ms = {n: 1e3 * _time(get_loss(n), logits, target, args.repeats) / args.batch for n in names}
            ratio = f"{ms['topo'] / ms['bce']:9.0f}x" if "topo" in ms and "bce" in ms else ""
            print(f"{size:>4}x{size:<4} {kind:>8} " + " ".join(f"{ms[n]:9.2f}" for n in names) + f"  {ratio}")


if __name__ == "__main__":
    main()
