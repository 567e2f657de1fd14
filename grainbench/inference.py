"""Inference engine: overlap-tile prediction, and the oracle/chain protocols of propagation methods.

Overlap-tile (Ronneberger et al. 2015; seed 000 uses 256 x 256 tiles): the
slice is mirrored by ``margin`` pixels on every side, cut into ``tile``-sized
tiles at a stride of ``tile - 2 * margin``, predicted in batches, and each
tile's centre is pasted back, so no output pixel comes from a tile border.
Methods of context ``"3d"`` are tiled the same way in 3D
(:func:`tile_predict_3d`: overlapping tiles along z too).

Propagation methods (context ``"2d+prev"``) read the boundary mask of slice
z-1, which the engine supplies in one of two modes, both recorded:

``oracle``
    the ground-truth mask of z-1, as in the authors' inference code;
``chain``
    the method's own prediction of z-1, post-processed (by the run's
    post-processor, default the protocol's pipeline) to a 1-pixel boundary mask (the fair protocol: no ground truth at test time).

The first slice of a volume has no predecessor in the split. If
``volume.meta["prev_boundary"]`` holds the mask of the slice before it, both
modes use it; otherwise both bootstrap: slice 0 is predicted with an empty
mask, post-processed, and predicted again with that mask.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ._backend import resolve_device
from .data.volume import Volume
from .methods.api import Method
from .progress import progress as progress_bar
from .protocol import Protocol, get_protocol

MODES = ("oracle", "chain")
#: The one mode of propagation methods on stacks that are not serial (``serial = false``): slice z-1 is
#: another sample, so every slice is predicted with an empty previous mask.
NO_PRIOR = "no-prior"


def _pad_geometry(size: int, tile: int, margin: int) -> tuple[int, int]:
    """(number of tiles, extra padding at the far end) along one axis."""
    step = tile - 2 * margin
    n = max(1, -(-size // step))
    return n, n * step - size


@torch.no_grad()
def tile_predict(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, *, tile: int = 256, margin: int = 32,
                 batch_size: int = 8, device: str | torch.device | None = None) -> np.ndarray:
    """Predict full slices tile by tile and stitch the tile centres.

    Parameters
    ----------
    fn : callable
        Maps a (B, C, tile, tile) float tensor to a (B, tile, tile) probability.
    x : (N, C, H, W) float32 array
        Network inputs of N slices.
    tile, margin : int
        Tile side and the margin discarded on each side (256 and 32 by
        default); ``tile - 2 * margin`` must be positive.
    batch_size : int
        Tiles per call of ``fn``.
    device : str or torch.device, optional
        Where ``fn`` runs; bf16 autocast and channels_last on CUDA.

    Returns
    -------
    (N, H, W) float32 array.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"tile_predict expects (N, C, H, W) inputs, got shape {x.shape}")
    return _tile_predict(fn, x, (tile, tile), (margin, margin), batch_size, device)


@torch.no_grad()
def tile_predict_3d(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, *, tile: int = 128, margin: int = 16,
                    tile_depth: int = 16, margin_depth: int = 4, batch_size: int = 1,
                    device: str | torch.device | None = None) -> np.ndarray:
    """Predict a volume in overlapping 3D tiles and stitch the tile centres (the 3D :func:`tile_predict`).

    The volume is mirrored by the margins on every side, cut into
    ``tile_depth`` x ``tile`` x ``tile`` tiles at strides of ``tile_depth -
    2 * margin_depth`` (along z) and ``tile - 2 * margin`` (in-plane), and
    each tile's centre is pasted back, so every voxel is predicted once,
    from a tile that sees at least the margins around it.

    Parameters
    ----------
    fn : callable
        Maps a (B, C, tile_depth, tile, tile) float tensor to a (B, tile_depth, tile, tile) probability.
    x : (C, Z, H, W) float32 array
        Network input of one volume.
    tile, margin : int
        In-plane tile side and the margin discarded on each side.
    tile_depth, margin_depth : int
        The same along z.
    batch_size : int
        Tiles per call of ``fn``.
    device : str or torch.device, optional
        Where ``fn`` runs; bf16 autocast and channels_last_3d on CUDA.

    Returns
    -------
    (Z, H, W) float32 array.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"tile_predict_3d expects a (C, Z, H, W) input, got shape {x.shape}")
    return _tile_predict(fn, x[None], (tile_depth, tile, tile), (margin_depth, margin, margin), batch_size,
                         device)[0]


def _tile_predict(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, sizes: tuple[int, ...],
                  margins: tuple[int, ...], batch_size: int, device: str | torch.device | None) -> np.ndarray:
    """Tile the spatial axes of ``x`` (N, C, *spatial) and stitch the tile centres into (N, *spatial)."""
    steps = [t - 2 * m for t, m in zip(sizes, margins)]
    if min(steps) <= 0 or min(margins) < 0:
        raise ValueError(f"tiles {sizes} with margins {margins} leave no centre to keep")
    dev = resolve_device(device)
    shape = x.shape[2:]
    geometry = [_pad_geometry(n, t, m) for n, t, m in zip(shape, sizes, margins)]
    padded = np.pad(x, [(0, 0), (0, 0)] + [(m, m + extra) for m, (_, extra) in zip(margins, geometry)],
                    mode="reflect")
    out = np.empty([x.shape[0]] + [n * s for (n, _), s in zip(geometry, steps)], np.float32)
    coords = list(itertools.product(range(x.shape[0]), *[range(n) for n, _ in geometry]))
    centre = tuple(slice(m, m + s) for m, s in zip(margins, steps))
    cuda = dev.type == "cuda"
    memory_format = torch.channels_last_3d if len(sizes) == 3 else torch.channels_last
    for b in range(0, len(coords), batch_size):
        chunk = coords[b:b + batch_size]
        tiles = np.stack([padded[(i, slice(None), *(slice(k * s, k * s + t) for k, s, t in zip(idx, steps, sizes)))]
                          for i, *idx in chunk])
        t = torch.from_numpy(tiles).to(dev)
        if cuda:
            t = t.contiguous(memory_format=memory_format)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            prob = fn(t)
        prob = prob.float().cpu().numpy()
        for (i, *idx), p in zip(chunk, prob):
            out[(i, *(slice(k * s, (k + 1) * s) for k, s in zip(idx, steps)))] = p[centre]
    return np.ascontiguousarray(out[(slice(None), *(slice(0, n) for n in shape))])


@dataclass
class Prediction:
    """A method's boundary probability for a volume, with how it was obtained."""

    prob: np.ndarray
    method: str
    mode: str | None
    preset: str | None
    first_prev: str | None
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def slices_per_s(self) -> float:
        return len(self.prob) / self.seconds if self.seconds else float("inf")


def _image(volume: Volume | np.ndarray) -> np.ndarray:
    """The image as float32: (Z, H, W) grey or (Z, C, H, W) colour (:mod:`grainbench.data.volume`)."""
    img = volume.image if isinstance(volume, Volume) else np.asarray(volume)
    if img.ndim == 2:
        img = img[None]
    if img.ndim == 4 and img.shape[1] == 1:
        img = img[:, 0]
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    return np.asarray(img, np.float32)


def _postprocess(prob: np.ndarray, protocol: Protocol, post: Any = None) -> np.ndarray:
    from .scoring import prepare_prediction

    return prepare_prediction(prob, protocol, post=post).cpu().numpy()


SLICE_BATCH = 8  # slices per predict call of a 2D method: the unit of progress


def _predict_in_batches(method: Method, image: np.ndarray, prev: np.ndarray | None, label: str,
                        progress: bool) -> np.ndarray:
    """``method.predict`` slice batch by slice batch (2D contexts only: no batch needs another's slices)."""
    out = np.empty(_spatial(image), np.float32)
    with progress_bar(label, image.shape[0], enabled=progress) as bar:
        for z in range(0, image.shape[0], SLICE_BATCH):
            sl = slice(z, z + SLICE_BATCH)
            out[sl] = method.predict(image[sl]) if prev is None else method.predict(image[sl], prev[sl])
            bar.advance(len(out[sl]))
            bar.line(f"{bar.done}/{image.shape[0]} slices")
    return out


def predict_volume(method: Method, volume: Volume | np.ndarray, *, mode: str | None = None,
                   protocol: str | Protocol = "wpunet-2019", first_prev: np.ndarray | None = None,
                   progress: bool = False, post: Any = None) -> Prediction:
    """Boundary probability of every slice of ``volume``.

    Parameters
    ----------
    method : Method
    volume : Volume, (Z, H, W) or (Z, C, H, W) array
        ``oracle`` mode needs a Volume with ``boundary``. Colour stacks are
        passed to the method with their channels; the probability is (Z, H, W).
    mode : {"chain", "oracle", "no-prior"}, optional
        For ``"2d+prev"`` methods (default ``"chain"``; ``"no-prior"``, an
        empty previous mask for every slice, is the mode of stacks that are
        not serial); must be None or ignored for other contexts.
    protocol : str or Protocol
        Post-processing applied to a chained prediction before it is fed on.
    first_prev : (H, W) bool array, optional
        Mask of the slice before the first one (default:
        ``volume.meta["prev_boundary"]`` or a bootstrap, see module docs).
    progress : bool
        Show progress per slice batch (:mod:`grainbench.progress`).
    post : str or PostProcessor, optional
        What turns a chained prediction into the mask fed on (default: the
        protocol's pipeline); the same post-processor that scores it.
    """
    protocol = get_protocol(protocol)
    image = _image(volume)
    shape = _spatial(image)
    t0 = time.perf_counter()
    preset = getattr(method, "preset", None)
    if method.context != "2d+prev":
        if mode not in (None, "chain", "oracle"):
            raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
        label = f"{method.name}: predicting"
        if method.context == "2d":
            prob = _predict_in_batches(method, image, None, label, progress)
        else:  # 2.5d / 3d read neighbouring slices: one call
            with progress_bar(label, image.shape[0], enabled=progress) as bar:
                prob = method.predict(image)
                bar.advance(image.shape[0])
        return Prediction(_check_prob(prob, shape, method), method.name, None, preset, None,
                          time.perf_counter() - t0, method.config())
    mode = mode or "chain"
    if mode == NO_PRIOR:
        prob = method.predict(image, np.zeros(shape, bool))
        return Prediction(_check_prob(prob, shape, method), method.name, mode, preset, "empty",
                          time.perf_counter() - t0, method.config())
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES + (NO_PRIOR,)}")
    if first_prev is None and isinstance(volume, Volume):
        first_prev = volume.meta.get("prev_boundary")
    if first_prev is not None:
        first = np.asarray(first_prev, bool)
        if first.shape != shape[1:]:
            raise ValueError(f"first_prev shape {first.shape} differs from the slice shape {shape[1:]}")
        how = "given"
    else:  # bootstrap slice 0 from the method's own prediction with an empty mask
        empty = np.zeros((1, *shape[1:]), bool)
        first = _postprocess(method.predict(image[:1], empty), protocol, post)[0]
        how = "bootstrap"
    if mode == "oracle":
        if not isinstance(volume, Volume) or volume.boundary is None:
            raise ValueError("oracle mode needs a Volume with a boundary ground truth")
        prev = np.concatenate([first[None], np.asarray(volume.boundary[:-1], bool)])
        prob = _predict_in_batches(method, image, prev, f"{method.name}: predicting ({mode})", progress)
    else:
        prob = np.empty(shape, np.float32)
        prev_mask = first
        with progress_bar(f"{method.name}: predicting ({mode})", image.shape[0], enabled=progress) as bar:
            for z in range(image.shape[0]):
                prob[z] = method.predict(image[z:z + 1], prev_mask[None])[0]
                prev_mask = _postprocess(prob[z], protocol, post)[0]
                bar.advance()
                if (z + 1) % SLICE_BATCH == 0 or z + 1 == image.shape[0]:
                    bar.line(f"{z + 1}/{image.shape[0]} slices")
    return Prediction(_check_prob(prob, shape, method), method.name, mode, preset, how,
                      time.perf_counter() - t0, method.config())


def _spatial(image: np.ndarray) -> tuple[int, ...]:
    """(Z, H, W) of a grey (Z, H, W) or colour (Z, C, H, W) stack."""
    return tuple(image.shape) if image.ndim == 3 else (image.shape[0], *image.shape[-2:])


def _check_prob(prob: np.ndarray, shape: tuple[int, ...], method: Method) -> np.ndarray:
    prob = np.asarray(prob, np.float32)
    if prob.shape != shape:
        raise ValueError(f"method {method.name!r} returned shape {prob.shape}, expected {shape}")
    if not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
        raise ValueError(f"method {method.name!r} returned values outside [0, 1]")
    return prob


def evaluate(method: Method, volume: Volume, *, protocol: str | Protocol = "wpunet-2019",
             modes: tuple[str, ...] | None = None, device: str | None = "cpu",
             on_prediction: Callable[[Prediction], None] | None = None, tolerant: bool = False,
             metrics: str = "standard", progress: bool = False, post: Any = None) -> list[dict[str, Any]]:
    """Predict and score ``volume``; one record per mode (both modes for ``"2d+prev"`` methods).

    Each record holds the method, its config, the preset of its weights, the
    mode (``None`` for methods that read no previous mask), how slice 0 got
    its previous mask, the protocol id, the aggregate and per-slice metrics,
    and timings. ``on_prediction``, when given, is called with each mode's
    :class:`Prediction` before it is scored (the runner draws figures from it);
    ``tolerant`` adds seed 003's normalised-Gaussian scores and ``metrics="extended"`` the
    extended group (see :func:`~grainbench.scoring.score`);
    ``progress`` reports prediction per slice batch and scoring per mode; ``post`` (a name or a
    :class:`~grainbench.postprocessors.PostProcessor`) turns probabilities into boundaries, for the
    chain and for the scores alike.
    """
    from .scoring import score

    protocol = get_protocol(protocol)
    if volume.boundary is None:
        raise ValueError(f"{volume.name or 'volume'}: scoring needs a boundary ground truth")
    if modes is None:
        modes = MODES if method.context == "2d+prev" else (None,)
    records = []
    for mode in modes:
        pred = predict_volume(method, volume, mode=mode, protocol=protocol, progress=progress, post=post)
        if on_prediction is not None:
            on_prediction(pred)
        t0 = time.perf_counter()
        slice_ids = volume.meta.get("slices") or volume.meta.get("names")
        with progress_bar(f"{method.name}: scoring{f' ({mode})' if mode else ''}", None, enabled=progress) as bar:
            bar.line(f"{len(pred.prob)} slices")
            result = score(pred.prob, volume.boundary, protocol, device=device, slice_ids=slice_ids,
                           tolerant=tolerant, metrics=metrics, post=post)
            bar.line("done")
        score_seconds = time.perf_counter() - t0
        records.append({
            "method": method.name, "config": pred.config, "preset": pred.preset or "none", "mode": pred.mode,
            "first_prev": pred.first_prev, "dataset": volume.name, "protocol": protocol.id,
            "aggregate": result.aggregate, "per_slice": result.per_slice.to_dict(orient="records"),
            "predict_seconds": pred.seconds, "slices_per_s": pred.slices_per_s, "score_seconds": score_seconds,
        })
    return records
