"""``grainbench predict --weights W VOLUME OUT``: a trained network over a stack on disk, written chunk by chunk."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from ..errors import InputFileError
from ._console import console, err_console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="predict a (Z, H, W) stack on disk with exported weights, writing zarr or HDF5",
        description="Run the network of a weights file (`grainbench export RUN`, or a URL with #sha256=) over a "
                    "stack on disk (TIFF, HDF5, zarr or NPY; read a window at a time) and write its probability "
                    "to OUT (.zarr folder or .h5 file, dataset 'prob') tile by tile, so memory does not grow "
                    "with the volume. 3D networks run on sub-volume tiles, 2D networks slice by slice. OUT is "
                    "written under a temporary name and renamed when complete.",
    )
    p.add_argument("volume", type=Path, metavar="VOLUME", help="the grey stack: .tif/.tiff, .h5/.hdf5, .zarr, .npy")
    p.add_argument("out", type=Path, metavar="OUT", help="the probability: a .zarr folder or an .h5/.hdf5 file")
    p.add_argument("--weights", required=True, metavar="PATH_OR_URL",
                   help="a .safetensors file from `grainbench export` (or URL#sha256=HEX)")
    p.add_argument("--weights-sha256", metavar="HEX", help="sha256 the --weights file must have")
    p.add_argument("--key", default=None,
                   help="the HDF5 dataset / zarr array of VOLUME (default: 'image' or the only 3D one)")
    p.add_argument("--dtype", choices=("float32", "float16", "uint8"), default="float32",
                   help="of the stored probability (uint8: x 255, rounded)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass (default: the method's)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists (only once the new one is complete)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.chunked import open_stack
    from ..volume_inference import check_output_path, predict_volume
    from ..weights import method_from_weights, resolve_weights

    if args.out.exists() and not args.force:
        raise InputFileError(f"{args.out}: exists; pass --force to replace it")
    try:
        check_output_path(args.out)
    except ValueError as exc:
        raise InputFileError(str(exc)) from None
    if args.batch_size is not None and args.batch_size < 1:
        raise InputFileError(f"--batch-size must be >= 1, got {args.batch_size}")
    weights = resolve_weights(args.weights, args.weights_sha256)
    method = method_from_weights(weights, device=None if args.device == "auto" else args.device)
    extra = {"batch_size": args.batch_size} if args.batch_size else {}
    with open_stack(args.volume, key=args.key) as source:  # refuses what is not a (Z, H, W) stack
        try:
            stats = predict_volume(method, source, args.out, dtype=args.dtype, progress=True, **extra)
        except ValueError as exc:
            raise InputFileError(f"{args.volume}: {exc}") from None
    z, h, w = (int(n) for n in source.shape)
    err_console.print(f"{weights.card['method']}: {z} x {h} x {w} voxels in {stats['seconds']:.1f} s "
                      f"({stats['voxels_per_s'] / 1e6:.2f} Mvoxels/s, {int(stats['tiles'])} tiles)", highlight=False)
    console.print(f"probability: {escape(str(args.out))}", highlight=False)
    return 0
