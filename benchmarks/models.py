"""Method speed: training throughput (patches/s) and inference throughput (1024 x 1024 slices/s).

Training: optimiser steps of the method's training loop on random
``--patch`` x ``--patch`` patches of a Voronoi stack, batch ``--batch``, the
ABW loss (weight maps included), after one warm-up step. Inference: the
overlap-tile engine (256 tiles, 32 px margins, batched) on ``--slices``
slices of 1024 x 1024, after a warm-up slice. CUDA runs use bf16 autocast
and channels_last, as the engines do.

    python benchmarks/models.py [--methods wpunet,unet,classical] [--device cpu,cuda] [--width W]
                                [--batch 24] [--patch 256] [--steps 3] [--slices 2]
    python benchmarks/models.py --engine [--steps 6]
    python benchmarks/models.py --busy ...      # the table while a second process keeps one core busy

``--width`` shrinks the networks that have a width (default: the authors'
31M-parameter configuration); the table says which width was measured.

``--engine`` compares, side by side in one run, U-Net training at the
``quick`` setting (width 16, batch 8 of 128 x 128, ABW loss) by the training
loop grainbench had before its one engine (:func:`legacy_train_throughput`:
one numpy stream of crops, ABW weight maps computed inside the loss step,
contiguous layout; kept here for the comparison) and by the engine
(:func:`engine_train_throughput`: ``TorchMethod.fit`` with its DataLoader,
maps per crop in the workers, channels_last), in fp32 and with the engine's
opt-in bf16 autocast (preset field ``precision="bf16"``, ``--set precision=bf16``;
bf16 is the default on CUDA), and the
classical floor on one core against all of them; it prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # measure the checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

from benchmarks._load import busy_core, load  # noqa: E402
from grainbench.data.volume import Volume  # noqa: E402
from grainbench.examples import labels_to_boundary, voronoi_labels  # noqa: E402
from grainbench.methods import MethodError, TorchMethod, create_model  # noqa: E402
from grainbench.training import Callback, PatchSampler, get_loss  # noqa: E402


def _stack(z: int, size: int, seed: int = 0) -> Volume:
    labels = np.stack([voronoi_labels((size, size), max(8, size * size // 2000), seed=seed + k) for k in range(z)])
    b = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.clip(0.8 - 0.5 * b + rng.normal(0, 0.05, b.shape), 0, 1).astype(np.float32)
    return Volume(image, labels, b, serial=True, name="bench")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def infer_throughput(m, image: np.ndarray, prev: np.ndarray) -> float:
    m.predict(image[:1], prev[:1])  # warm-up
    device = getattr(m, "device", torch.device("cpu"))
    _sync(device)
    t0 = time.perf_counter()
    m.predict(image, prev)
    _sync(device)
    return len(image) / (time.perf_counter() - t0)


def legacy_train_throughput(m: TorchMethod, vol: Volume, batch: int, patch: int, steps: int) -> float:
    """Patches/s of the training loop before the engine (quick setting's Adam; maps inside the loss)."""
    net = m.net.train()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, eps=1e-5)
    loss_fn = get_loss("abw")
    sampler = PatchSampler(vol, patch, context=m.context, depth=m.depth, seed=0)
    t = 0.0
    for i in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        x, y = m.batch_to_input(sampler.sample(batch), m.device)
        opt.zero_grad(set_to_none=True)
        loss = m.training_loss(net(x), y, loss_fn)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if i:
            t += time.perf_counter() - t0
    return steps * batch / t


class _EpochTimes(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_epoch_end(self, logs: dict) -> None:
        self.times.append(time.perf_counter())


def engine_train_throughput(name: str, vol: Volume, batch: int, patch: int, steps: int, precision: str = "auto",
                            **kw) -> float:
    """Patches/s of ``TorchMethod.fit`` (the engine) at the quick setting: the second epoch of two (the first
    starts the workers and warms up), no validation."""
    m = create_model(name, **kw)
    times = _EpochTimes()
    m.fit(vol, None, preset="quick", epochs=2, patches_per_epoch=steps * batch, batch_size=batch, patch_size=patch,
          progress=False, callbacks=(times,), precision=precision)
    return steps * batch / (times.times[1] - times.times[0])


def compare_engine(steps: int) -> None:
    """Old loop vs the engine, U-Net at the quick setting, and the classical floor on 1 core vs all cores;
    quiet, then again while a second process keeps one core busy."""
    vol = _stack(6, 256)
    test = _stack(4, 1024, seed=100)
    batch, patch = 8, 128
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; U-Net width 16, batch {batch} of "
          f"{patch} x {patch}, ABW loss, {steps} steps; {load()}")

    def measure() -> dict[str, float]:
        one, every = create_model("classical", workers=1), create_model("classical")
        return {"old": legacy_train_throughput(create_model("unet", width=16), vol, batch, patch, steps),
                "fp32": engine_train_throughput("unet", vol, batch, patch, steps),
                "bf16": engine_train_throughput("unet", vol, batch, patch, steps, precision="bf16"),
                "cl1": infer_throughput(one, test.image, test.boundary),
                "cl": infer_throughput(every, test.image, test.boundary)}

    quiet = measure()
    with busy_core():
        busy = measure()
    print(f"{'':<46}{'before':>10}{'engine':>10}{'ratio':>8}   target")
    for tag, r in (("quiet", quiet), ("one core busy", busy)):
        print(f"{f'unet quick patches/s, fp32 ({tag})':<46}{r['old']:>10.2f}{r['fp32']:>10.2f}"
              f"{r['fp32'] / r['old']:>7.2f}x   >= 2x")
        print(f"{f'unet quick patches/s, bf16 opt-in ({tag})':<46}{r['old']:>10.2f}{r['bf16']:>10.2f}"
              f"{r['bf16'] / r['old']:>7.2f}x")
        print(f"{f'classical slices/s 1024^2, 1 core vs all ({tag})':<46}{r['cl1']:>10.3f}{r['cl']:>10.3f}"
              f"{r['cl'] / r['cl1']:>7.2f}x")
    print(load())


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
    ap.add_argument("--engine", action="store_true", help="compare the training loop before the engine with it")
    ap.add_argument("--busy", action="store_true", help="measure while a second process keeps one core busy")
    args = ap.parse_args()
    if args.engine:
        compare_engine(args.steps)
        return

    if args.busy:
        with busy_core():
            table(args)
    else:
        table(args)


def table(args: argparse.Namespace) -> None:
    """Training patches/s and inference slices/s of each method on each device."""
    devices = [d for d in args.device.split(",") if d == "cpu" or torch.cuda.is_available()]
    train_vol = _stack(4, max(args.patch, 256))
    test_vol = _stack(args.slices, args.size, seed=100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; "
          f"{'one core kept busy; ' if args.busy else ''}{load()}")
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
            tps = f"{engine_train_throughput(name, train_vol, args.batch, args.patch, args.steps, **kw):.2f}" \
                if is_torch else "-"
            prev = np.roll(test_vol.boundary, 1, axis=0)
            ips = infer_throughput(m, test_vol.image, prev)
            print(f"{name:<22}{dev:<7}{width!s:>6}{params:>9}{tps:>17}{ips:>16.3f}")


if __name__ == "__main__":
    main()
