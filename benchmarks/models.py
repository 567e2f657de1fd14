"""Method speed: training throughput (patches/s) and inference throughput (1024 x 1024 slices/s).

Training: optimiser steps of the method's training loop on random
``--patch`` x ``--patch`` patches of a Voronoi stack, batch ``--batch``, the
ABW loss (weight maps included), after one warm-up step. Inference: the
overlap-tile engine (256 tiles, 32 px margins, batched) on ``--slices``
slices of 1024 x 1024, after a warm-up slice. CUDA runs use bf16 autocast
and channels_last, as the engines do.

    python benchmarks/models.py [--methods wpunet,unet,classical] [--device cpu,cuda] [--width W]
                                [--batch 24] [--patch 256] [--steps 3] [--slices 2]

``--width`` shrinks the networks that have a width (default: the authors'
31M-parameter configuration); the table says which width was measured.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from grainbench.data.volume import Volume
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.methods import MethodError, TorchMethod, create_model
from grainbench.training import PatchSampler, get_loss


def _stack(z: int, size: int, seed: int = 0) -> Volume:
    labels = np.stack([voronoi_labels((size, size), max(8, size * size // 2000), seed=seed + k) for k in range(z)])
    b = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.clip(0.8 - 0.5 * b + rng.normal(0, 0.05, b.shape), 0, 1).astype(np.float32)
    return Volume(image, labels, b, serial=True, name="bench")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(m: TorchMethod, vol: Volume, batch: int, patch: int, steps: int) -> float:
    device = m.device
    net = m.net.train()
    cuda = device.type == "cuda"
    # as the trainer does: 3D nets take channels_last_3d and 3D patches
    memory_format = torch.channels_last_3d if m.context == "3d" else torch.channels_last
    if cuda:
        net.to(memory_format=memory_format)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9, eps=1e-5)
    loss_fn = get_loss("abw")
    sampler = PatchSampler(vol, patch, context=m.context, depth=m.depth, seed=0,
                           patch_depth=min(16, vol.shape[0]))
    t = 0.0
    for i in range(steps + 1):  # step 0 warms up
        _sync(device)
        t0 = time.perf_counter()
        x, y = m.batch_to_input(sampler.sample(batch), device)
        if cuda:
            x = x.contiguous(memory_format=memory_format)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = net(x)
        m.training_loss(logits, y, loss_fn).backward()  # deeply supervised nets sum their side outputs
        opt.step()
        _sync(device)
        if i:
            t += time.perf_counter() - t0
    return steps * batch / t


def infer_throughput(m, image: np.ndarray, prev: np.ndarray) -> float:
    m.predict(image[:1], prev[:1])  # warm-up
    device = getattr(m, "device", torch.device("cpu"))
    _sync(device)
    t0 = time.perf_counter()
    m.predict(image, prev)
    _sync(device)
    return len(image) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="wpunet,unet,unet_resnet34,classical")
    ap.add_argument("--device", default="cpu,cuda", help="comma list; cuda is skipped without a GPU")
    ap.add_argument("--width", type=int, default=None, help="network width (default: the authors' 64)")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--slices", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()

    devices = [d for d in args.device.split(",") if d == "cpu" or torch.cuda.is_available()]
    train_vol = _stack(4, max(args.patch, 256))
    test_vol = _stack(args.slices, args.size, seed=100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    header = f"{'method':<22}{'device':<7}{'width':>6}{'params':>9}{'train patches/s':>17}{'infer slices/s':>16}"
    print(f"training: batch {args.batch} of {args.patch} x {args.patch}, ABW loss; "
          f"inference: {args.size} x {args.size} slices, 256 tiles, 32 px margins")
    print(header)
    print("-" * len(header))
    for name in args.methods.split(","):
        for dev in devices:
            kw = {"device": dev}
            try:
                probe = create_model(name)
            except MethodError as exc:
                print(f"{name:<22}{dev:<7} skipped: {exc}")
                break
            is_torch = isinstance(probe, TorchMethod)
            if is_torch:
                if args.width and "width" in probe.config():
                    kw["width"] = args.width
                if dev == "cuda":
                    kw["batch_size"] = 16
                m = create_model(name, **kw)
            elif dev != "cpu":
                continue  # classical methods run on the CPU only
            else:
                m = probe
            width = m.config().get("width") or ("64" if "width" in m.config() else "-")
            params = f"{m.num_parameters() / 1e6:.2f}M"
            tps = f"{train_throughput(m, train_vol, args.batch, args.patch, args.steps):.2f}" if is_torch else "-"
            prev = np.roll(test_vol.boundary, 1, axis=0)
            ips = infer_throughput(m, test_vol.image, prev)
            print(f"{name:<22}{dev:<7}{width!s:>6}{params:>9}{tps:>17}{ips:>16.3f}")


if __name__ == "__main__":
    main()
