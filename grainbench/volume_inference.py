"""Sliding-window 3D inference from a stack on disk to a stack on disk, chunk by chunk.

:func:`grainbench.inference.tile_predict_3d` holds the whole (mirror-padded)
volume and its output in memory; an 852 x 852 x 250 reconstruction is 726 MB
as float32 before a network sees it. :func:`predict_to_store` cuts the same
tiles on the same grid (so its output equals ``tile_predict_3d``'s, voxel for
voxel, for the same network), but reads each tile's input (with its margins,
mirrored at the volume's faces) from the source when the tile's turn comes
and writes the tile's centre into the output store at once. The output's
chunks are the tile centres, so each write is whole chunks and nothing is
read back. Peak memory is a batch of tiles, whatever the volume's size.

Sources are anything indexable as (Z, H, W) (a :class:`~grainbench.data.chunked.LazyStack`,
zarr array, h5py dataset, numpy array); outputs are a zarr folder (``.zarr``)
or an HDF5 file (``.h5``/``.hdf5``, dataset ``prob``), written under a
temporary name and renamed into place when complete.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ._backend import resolve_device
from .inference import _pad_geometry

#: The output dataset of an HDF5 store.
PROB_KEY = "prob"
#: What an output may be: a zarr folder or an HDF5 file.
OUTPUT_SUFFIXES = (".zarr", ".h5", ".hdf5")


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) the way ``np.pad(mode="reflect")`` extends an axis (edge not repeated)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    j = np.mod(idx, period)
    return np.where(j >= n, period - j, j)


def read_window(source: Any, starts: tuple[int, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """The block ``[start, start + size)`` of every axis of ``source``, mirrored where it leaves the volume.

    Only the bounding box of the voxels it needs is read from ``source``.
    """
    shape = tuple(int(n) for n in source.shape)
    maps = [_reflect(np.arange(a, a + s), n) for a, s, n in zip(starts, sizes, shape)]
    box = tuple(slice(int(m.min()), int(m.max()) + 1) for m in maps)
    block = np.asarray(source[box])
    return block[np.ix_(*[m - b.start for m, b in zip(maps, box)])]


def unit_scale(block: np.ndarray) -> np.ndarray:
    """A raw block as float32 in [0, 1]: unsigned integers by their dtype's maximum, floats as they are.

    A chunk cannot see the volume's range, so the scale comes from the dtype
    (uint8 / 255, uint16 / 65535); float stacks must already be in [0, 1].
    """
    if block.dtype.kind == "u":
        return block.astype(np.float32) / np.float32(np.iinfo(block.dtype).max)
    if block.dtype == bool:
        return block.astype(np.float32)
    return block.astype(np.float32, copy=False)


def check_output_path(path: Path) -> None:
    """Refuse an output that is neither a zarr folder nor an HDF5 file (``ValueError`` naming it)."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must be a .zarr folder or an .h5/.hdf5 file")


class _Store:
    """The output: a zarr array or an HDF5 dataset, written under a temporary name."""

    def __init__(self, path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        check_output_path(path)
        self.hdf5 = path.suffix.lower() != ".zarr"
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".writing", dir=path.parent))
        chunks = tuple(min(c, n) for c, n in zip(chunks, shape))
        if self.hdf5:
            import h5py

            self._file = h5py.File(self.tmp / path.name, "w")
            self.array = self._file.create_dataset(PROB_KEY, shape=shape, chunks=chunks, dtype=dtype,
                                                   track_times=False)
        else:
            import zarr

            self._file = None
            self.array = zarr.open_array(str(self.tmp / path.name), mode="w", shape=shape, chunks=chunks,
                                         dtype=dtype)

    def commit(self) -> None:
        if self._file is not None:
            self._file.close()
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            if old.exists():
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            os.replace(self.path, old)
        os.replace(self.tmp / self.path.name, self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@torch.no_grad()
def predict_to_store(fn: Callable[[torch.Tensor], torch.Tensor], source: Any, out: str | os.PathLike, *,
                     prepare: Callable[[np.ndarray], np.ndarray] | None = None, tile: int = 128, margin: int = 16,
                     tile_depth: int = 16, margin_depth: int = 4, batch_size: int = 1,
                     device: str | torch.device | None = None, dtype: str = "float32",
                     progress: bool = False) -> dict[str, float]:
    """Predict a (Z, H, W) volume tile by tile, reading and writing chunk by chunk.

    Parameters
    ----------
    fn : callable
        Maps a (B, C, tile_depth, tile, tile) float tensor to a (B, tile_depth, tile, tile) probability
        (e.g. :meth:`grainbench.methods.TorchMethod.forward_prob`).
    source : (Z, H, W) array-like
        Read one window at a time (:func:`read_window`).
    out : path-like
        A ``.zarr`` folder or an ``.h5``/``.hdf5`` file (dataset ``prob``); (Z, H, W).
    prepare : callable, optional
        Maps a raw (D, h, w) window to the network input (C, D, h, w) float32.
        Default: :func:`unit_scale` and one channel.
    tile, margin, tile_depth, margin_depth, batch_size, device
        As :func:`grainbench.inference.tile_predict_3d`.
    dtype : str
        Of the stored probability: ``"float32"``, ``"float16"``, or
        ``"uint8"`` (probability x 255, rounded).
    progress : bool
        Report the tiles on stderr (:mod:`grainbench.progress`).

    Returns
    -------
    dict
        ``seconds``, ``voxels``, ``voxels_per_s``, ``tiles``.
    """
    from .progress import progress as progress_bar

    sizes, margins = (tile_depth, tile, tile), (margin_depth, margin, margin)
    steps = [t - 2 * m for t, m in zip(sizes, margins)]
    if min(steps) <= 0 or min(margins) < 0:
        raise ValueError(f"tiles {sizes} with margins {margins} leave no centre to keep")
    if dtype not in ("float32", "float16", "uint8"):
        raise ValueError(f"dtype must be float32, float16 or uint8, got {dtype!r}")
    shape = tuple(int(n) for n in source.shape)
    if len(shape) != 3:
        raise ValueError(f"source must be (Z, H, W), got shape {shape}")
    prepare = prepare or (lambda raw: unit_scale(raw)[None])
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    counts = [_pad_geometry(n, t, m)[0] for n, t, m in zip(shape, sizes, margins)]
    coords = list(itertools.product(*[range(c) for c in counts]))
    centre = tuple(slice(m, m + s) for m, s in zip(margins, steps))
    store = _Store(Path(out), shape, tuple(steps), dtype)
    t0 = time.perf_counter()
    try:
        with progress_bar(f"predicting {Path(out).name}", len(coords), enabled=progress) as bar:
            for b in range(0, len(coords), batch_size):
                chunk = coords[b:b + batch_size]
                tiles = np.stack([prepare(read_window(source, tuple(k * s - m for k, s, m in zip(idx, steps, margins)),
                                                      sizes)) for idx in chunk]).astype(np.float32, copy=False)
                t = torch.from_numpy(tiles).to(dev)
                if cuda:
                    t = t.contiguous(memory_format=torch.channels_last_3d)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    prob = fn(t)
                prob = prob.float().cpu().numpy()
                for idx, p in zip(chunk, prob):
                    lo = [k * s for k, s in zip(idx, steps)]
                    hi = [min(a + s, n) for a, s, n in zip(lo, steps, shape)]
                    c = p[centre][tuple(slice(0, h - a) for a, h in zip(lo, hi))]
                    if dtype == "uint8":
                        c = np.round(np.clip(c, 0, 1) * 255).astype(np.uint8)
                    store.array[tuple(slice(a, h) for a, h in zip(lo, hi))] = c.astype(dtype, copy=False)
                bar.advance(len(chunk))
        seconds = time.perf_counter() - t0
        store.commit()
    except BaseException:
        store.abort()
        raise
    voxels = float(np.prod(shape))
    return {"seconds": seconds, "voxels": voxels, "voxels_per_s": voxels / seconds if seconds else float("inf"),
            "tiles": float(len(coords))}


def open_prediction(path: str | os.PathLike):
    """The stored probability of :func:`predict_to_store` as a :class:`~grainbench.data.chunked.LazyStack`."""
    from .data.chunked import open_stack

    return open_stack(path, key=PROB_KEY)


def predict_method_to_store(method: Any, source: Any, out: str | os.PathLike, **kw: Any) -> dict[str, float]:
    """:func:`predict_to_store` with a fitted 3D :class:`~grainbench.methods.TorchMethod`.

    The method's own input normalisation (:meth:`make_input`), tiles, margins,
    batch size and device are used; ``kw`` overrides any of them (and sets
    ``dtype``/``progress``).
    """
    if getattr(method, "context", None) != "3d":
        raise ValueError(f"{getattr(method, 'name', method)!r} is not a 3D method (context "
                         f"{getattr(method, 'context', None)!r}); predict slices with method.predict")
    method.net.eval()
    settings = {"tile": method.tile, "margin": method.margin, "tile_depth": method.tile_depth,
                "margin_depth": method.margin_depth, "batch_size": method.batch_size, "device": method.device}
    settings.update(kw)
    return predict_to_store(method.forward_prob, source, out,
                            prepare=lambda raw: method.make_input(unit_scale(raw)).transpose(1, 0, 2, 3),
                            **settings)


def predict_volume(method: Any, source: Any, out: str | os.PathLike, *, dtype: str = "float32",
                   progress: bool = False, **kw: Any) -> dict[str, float]:
    """A fitted method's probability over a (Z, H, W) stack, disk to disk (:func:`predict_to_store`).

    3D methods (context ``"3d"``) run on their sub-volume tiles
    (:func:`predict_method_to_store`); 2D methods (context ``"2d"``) on one
    slice per tile, with their own tiles and margins. Methods that need the
    previous slice's boundary or neighbouring slices (``"2d+prev"``,
    ``"2.5d"``) are refused. ``kw`` overrides the tile settings.
    """
    context = getattr(method, "context", None)
    if context == "3d":
        return predict_method_to_store(method, source, out, dtype=dtype, progress=progress, **kw)
    if context != "2d":
        raise ValueError(f"{getattr(method, 'name', method)!r} (context {context!r}) needs more than one "
                         "slice's image; volume prediction takes 2d and 3d methods")
    method.net.eval()
    settings = {"tile": method.tile, "margin": method.margin, "tile_depth": 1, "margin_depth": 0,
                "batch_size": method.batch_size, "device": method.device}
    settings.update(kw)
    return predict_to_store(lambda t: method.forward_prob(t[:, :, 0])[:, None], source, out,
                            prepare=lambda raw: method.make_input(unit_scale(raw)).transpose(1, 0, 2, 3),
                            dtype=dtype, progress=progress, **settings)
