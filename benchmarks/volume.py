"""A reconstruction larger than one wants in memory: sliding-window 3D inference, disk to disk.

Writes an 852 x 852 x 250 grey uint8 volume (seed 004's reconstruction size)
to a zarr store block by block (never whole in memory), then runs a 3D U-Net
(:class:`baselines.unet3d.UNet3DNet`, random weights: speed does not depend
on them) over it with :func:`grainbench.volume_inference.predict_to_store`,
which reads each tile's window from the store and writes each tile's centre
to the output store at once. Prints wall time, voxels/s and the process's
peak RSS (``ru_maxrss``, which includes the generation step).

    python benchmarks/volume.py [--quick | --slices Z] [--width 4] [--device cpu] [--out DIR]

Targets (volumes issue): peak RSS under 1.5 GB on the CPU at a small width;
on one H100/H200, 3D U-Net at the paper's width (32) over the full volume in
under 6 s (seed 004: about 60 s on an A100). ``--quick`` runs a 128 x 128 x
24 volume for a smoke test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # baselines/ beside grainbench/

from baselines.unet3d import UNet3DNet  # noqa: E402
from grainbench.data.chunked import open_stack  # noqa: E402
from grainbench.volume_inference import open_prediction, predict_to_store  # noqa: E402

FULL = (250, 852, 852)  # (Z, H, W): seed 004, Section 3.1
QUICK = (24, 128, 128)


def write_volume(path: Path, shape: tuple[int, int, int], block: int = 10, seed: int = 0) -> None:
    """A grey uint8 test volume (smooth blobs plus noise) in a zarr store, ``block`` slices at a time."""
    import zarr
    from scipy import ndimage as ndi

    z = zarr.create_array(str(path), shape=shape, chunks=(block, 256, 256), dtype="u1", compressors=None,
                          overwrite=True)
    rng = np.random.default_rng(seed)
    for a in range(0, shape[0], block):
        d = min(block, shape[0] - a)
        blobs = ndi.gaussian_filter(rng.random((d, *shape[1:]), dtype=np.float32), (1, 6, 6))
        img = 0.6 - 0.25 * (blobs > np.float32(0.5)) + rng.normal(0, 0.04, (d, *shape[1:])).astype(np.float32)
        z[a:a + d] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"a {QUICK[2]} x {QUICK[1]} x {QUICK[0]} volume")
    ap.add_argument("--slices", type=int, default=None,
                    help="Z of an 852 x 852 slab instead of the full 250 (RSS must not depend on it)")
    ap.add_argument("--width", type=int, default=4, help="3D U-Net width (paper: 32)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--tile-depth", type=int, default=16)
    ap.add_argument("--margin-depth", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args(argv)
    shape = QUICK if args.quick else FULL if args.slices is None else (args.slices, *FULL[1:])
    tmp = tempfile.TemporaryDirectory(prefix="grainbench-volume-") if args.out is None else None
    work = Path(tmp.name) if tmp else args.out
    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "recon.zarr", work / "prob.zarr"
    t0 = time.perf_counter()
    write_volume(src, shape)
    gen_s = time.perf_counter() - t0
    rss_gen = peak_rss_mb()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    net = UNet3DNet(1, 2, width=args.width, residual=True).to(dev).eval()
    fn = (lambda t: torch.softmax(net(t).float(), 1)[:, 1])
    with open_stack(src) as source:
        stats = predict_to_store(fn, source, out, tile=args.tile, margin=args.margin, tile_depth=args.tile_depth,
                                 margin_depth=args.margin_depth, batch_size=args.batch_size, device=dev,
                                 dtype="uint8")
    with open_prediction(out) as p:
        assert p.shape == shape, p.shape
        mid = p[shape[0] // 2]
    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(f"volume {shape[2]} x {shape[1]} x {shape[0]} voxels (uint8, zarr), generated in {gen_s:.1f} s "
          f"(peak RSS {rss_gen:.0f} MB)")
    print(f"3D U-Net width {args.width} ({params:.2f}M parameters) on {dev}, tiles {args.tile_depth} x "
          f"{args.tile} x {args.tile} (margins {args.margin_depth}, {args.margin}), batch {args.batch_size}: "
          f"{int(stats['tiles'])} tiles")
    print(f"wall {stats['seconds']:.1f} s, {stats['voxels_per_s'] / 1e6:.2f} Mvoxels/s, "
          f"peak RSS {peak_rss_mb():.0f} MB (target < 1500 MB on CPU); output mean {mid.mean() / 255:.3f}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
