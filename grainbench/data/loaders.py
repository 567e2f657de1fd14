"""Loaders: every on-disk layout normalised to a :class:`~grainbench.data.volume.Volume`.

Normal form (design.md, Data model): ``image`` (Z, H, W) float32 in [0, 1]
for grey datasets, (Z, C, H, W) for colour ones (the registry's ``channels``;
see :mod:`grainbench.data.volume`),
``labels`` (Z, H, W) int32 with 0 = boundary, ``boundary`` (Z, H, W) bool.
Where a dataset has only boundaries, the labels are the 4-connected
components of the non-boundary pixels of each slice
(:func:`grainbench.components.grains_from_boundary`).

Layouts
-------
``hdf5``       one file, datasets named in the layout (pure iron: ``image``,
               ``label``, ``boundary``, axes (H, W, Z)). Only the split's slices
               are read, in blocks of rows, straight into the (Z, H, W) result:
               the full stack is never in memory and nothing is copied twice.
``tiff``/``npy`` stacks (Z, H, W), one file per array (NPY is memory-mapped).
``pairs``      ``images/`` and ``masks/`` with the same file names (tbm, user
               folders); masks are boundary where > ``threshold``. Colour is
               kept for a dataset with ``channels = 3`` (a grey file is repeated
               into 3 channels) and reduced to grey by
               :func:`grainbench.contract.rgb_to_grey` otherwise, for PNG and
               TIFF alike.
               Each pair is one Z slice (``serial = False``), the file stems are
               in ``meta["names"]``.
``xct``        grey reconstructions (TIFF or HDF5, one per time step) and
               hand-labelled slices in groups (seed 004's HandSeg; see
               :mod:`grainbench.data.xct`): a split reads only its groups'
               slices; ``meta["names"]`` holds ``"RECON:z"``.
``generated``  the NPZ written by :mod:`grainbench.data.generate`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import DatasetError, InputFileError
from ..contract import rgb_to_grey
from ..io import read_array
from .registry import Dataset, Split, get_dataset
from .volume import Volume

_ROW_BUDGET = 1 << 24  # elements per block read from HDF5 (~16 MB of uint8)


# --------------------------------------------------------------------------- normalisation

def to_float_image(arr: np.ndarray, *, where: str = "image") -> np.ndarray:
    """An image as float32 in [0, 1]: integers scaled by their dtype's maximum, floats by their range."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype.kind in "ui":
        scale = 255.0 if arr.max(initial=0) <= 255 else float(np.iinfo(arr.dtype).max)
        return (arr.astype(np.float32) / np.float32(scale))
    if arr.dtype.kind == "f":
        out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise InputFileError(f"{where}: image contains NaN or infinite values")
        if out.size == 0:
            return out
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:  # not already in [0, 1]: stretch its range
            out = (out - lo) / np.float32(hi - lo if hi > lo else 1.0)
        return out
    raise InputFileError(f"{where}: unsupported image dtype {arr.dtype}")


def to_boundary(arr: np.ndarray, threshold: float = 127, *, where: str = "boundary") -> np.ndarray:
    """A ground-truth boundary map as bool, under the input contract (:mod:`grainbench.contract`).

    Binary maps (bool, 0/1, 0/255, 0/65535, float 0/1) are taken as they are;
    grey masks (e.g. saved as JPEG) are thresholded at ``threshold`` grey
    levels of 255 (the registry's ``layout.threshold``), whatever their dtype.
    """
    from ..contract import interpret

    try:
        read = interpret(arr, name=where)
    except (TypeError, ValueError) as exc:
        raise InputFileError(str(exc)) from None
    values = read.values.numpy()
    return values if read.kind == "mask" else values > threshold / 255.0


def normalise(image: np.ndarray, boundary: np.ndarray | None, labels: np.ndarray | None = None, *,
              name: str = "", serial: bool = False, meta: Mapping[str, Any] | None = None,
              threshold: float = 127) -> Volume:
    """Build a :class:`Volume` in normal form from raw (Z, H, W) arrays.

    ``labels`` are set to 0 on boundary pixels (the convention); when missing
    they are derived from ``boundary`` slice by slice (4-connectivity).
    """
    img = image if image.dtype == np.float32 and _in_unit(image) else to_float_image(image, where=name)
    bnd = None if boundary is None else to_boundary(boundary, threshold, where=name)
    if labels is not None:
        if labels.dtype.kind not in "uib":
            raise InputFileError(f"{name}: labels have dtype {labels.dtype}, expected integer grain ids")
        lab = labels.astype(np.int32, copy=False)
        if bnd is not None:
            lab = np.where(bnd, 0, lab).astype(np.int32, copy=False)
    elif bnd is not None:
        from ..components import grains_from_boundary

        lab = grains_from_boundary(bnd, per_slice=True).numpy().astype(np.int32)
    else:
        lab = None
    return Volume(image=img, labels=lab, boundary=bnd, serial=serial, name=name, meta=dict(meta or {}))


def _in_unit(a: np.ndarray) -> bool:
    return a.size == 0 or (float(a.min()) >= 0.0 and float(a.max()) <= 1.0)


def with_channels(image: np.ndarray, channels: int, *, where: str = "image") -> np.ndarray:
    """A (Z, H, W) or (Z, C, H, W) stack with exactly ``channels`` channels (the registry's).

    ``channels = 1``: colour is reduced to grey with
    :func:`grainbench.contract.rgb_to_grey` (one function for PNG, TIFF and
    stacks, so they agree to the bit). ``channels = 3``: a grey stack is
    repeated into three equal channels. Any other mismatch is refused.
    """
    have = 1 if image.ndim == 3 else image.shape[1]
    if have == channels:
        return image if image.ndim == 3 or channels > 1 else image[:, 0]
    if channels == 1 and have in (3, 4):
        return rgb_to_grey(np.moveaxis(image, 1, -1))
    if have == 1 and channels > 1:
        grey = image if image.ndim == 3 else image[:, 0]
        return np.repeat(grey[:, None], channels, axis=1)
    raise InputFileError(f"{where}: image has {have} channels, the dataset declares {channels}")


# --------------------------------------------------------------------------- layouts

def read_hdf5_stack(path: str | os.PathLike, layout: Mapping[str, Any], start: int = 0,
                    stop: int | None = None) -> dict[str, np.ndarray]:
    """Read slices ``start:stop`` of an HDF5 stack as (Z, H, W) arrays, in their stored dtypes.

    With ``axes = "HWZ"`` the slices are read in blocks of rows (h5py
    hyperslabs) and transposed into a preallocated (Z, H, W) array, so memory
    holds the result plus one small block.
    """
    import h5py

    path = Path(path)
    axes = layout.get("axes", "ZHW")
    out: dict[str, np.ndarray] = {}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        for role in ("image", "labels", "boundary"):
            key = layout.get(role)
            if not isinstance(key, str):
                continue
            if key not in f:
                raise InputFileError(f"{path}: no dataset '{key}' ({role}); found {sorted(f.keys())}")
            dset = f[key]
            if dset.ndim != 3:
                raise InputFileError(f"{path}: dataset '{key}' has shape {dset.shape}, expected 3 axes ({axes})")
            depth = dset.shape[2] if axes == "HWZ" else dset.shape[0]
            a, b = _check_range(path, start, depth if stop is None else stop, depth)
            if axes == "ZHW":
                out[role] = dset[a:b]
                continue
            h, w = dset.shape[0], dset.shape[1]
            arr = np.empty((b - a, h, w), dtype=dset.dtype)
            rows = max(1, _ROW_BUDGET // max(1, w * (b - a)))
            for r in range(0, h, rows):
                arr[:, r:r + rows, :] = np.moveaxis(dset[r:r + rows, :, a:b], 2, 0)
            out[role] = arr
    return out


def _check_range(path: Path | str, start: int, stop: int, depth: int) -> tuple[int, int]:
    if not 0 <= start < stop <= depth:
        raise DatasetError(f"{path}: slices {start}:{stop} are outside the stack of {depth} slices")
    return start, stop


def read_stack_files(root: Path, layout: Mapping[str, Any], start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """Read slices ``start:stop`` of a TIFF or NPY stack (one file per array)."""
    out = {}
    for role in ("image", "labels", "boundary"):
        rel = layout.get(role)
        if not isinstance(rel, str):
            continue
        path = root / rel
        if path.suffix.lower() == ".npy" and path.is_file():
            try:  # memory-mapped: only the split's slices are read
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise InputFileError(f"{path}: not a plain numpy array ({exc})") from None
        else:
            arr = read_array(path, mask=role == "boundary")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputFileError(f"{path}: expected a (Z, H, W) stack, got shape {arr.shape}")
        a, b = _check_range(path, start, arr.shape[0] if stop is None else stop, arr.shape[0])
        out[role] = np.array(arr[a:b])
    return out


def read_pairs(root: Path, layout: Mapping[str, Any], split: Split | None = None, channels: int = 1
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Read the image/mask pairs of ``split`` (all pairs without one): images, masks, file stems.

    Images are (H, W) grey for ``channels = 1`` and (C, H, W) for ``channels = C > 1``
    (:func:`with_channels`).
    """
    from .manual import pair_names

    folder = root / (split.dir or "") if split is not None else root
    image_dir, mask_dir = layout.get("image_dir", "images"), layout.get("mask_dir", "masks")
    names = pair_names(folder, image_dir, mask_dir)
    if split is not None:
        names = split.select(names)
    images, masks = [], []
    for n in names:
        img = read_array(folder / image_dir / n, colour=channels > 1)
        if img.ndim == 3 and img.shape[-1] in (3, 4):  # channel-last colour (also a small RGB(A) TIFF)
            img = np.moveaxis(img[..., :3], -1, 0)
        if img.ndim not in (2, 3):
            raise InputFileError(f"{folder / image_dir / n}: expected one image, got shape {img.shape}")
        img = with_channels(img[None], channels, where=str(folder / image_dir / n))[0]
        mask = read_array(folder / mask_dir / n, mask=True)
        if mask.shape != img.shape[-2:]:
            raise InputFileError(f"{folder / mask_dir / n}: mask shape {mask.shape} differs from image shape "
                                 f"{img.shape[-2:]}")
        images.append(img)
        masks.append(mask)
    return images, masks, [Path(n).stem for n in names]


# --------------------------------------------------------------------------- public loading

def load(name: str, split: str = "test") -> Volume:
    """Load one split of a registered dataset as a :class:`Volume` in normal form.

    Downloads (``https``) or generates (``generate``) the dataset on first use;
    a manual dataset must have been imported (the error says how).

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"pure_iron"``, ``"tbm"``, ``"synthetic"``.
    split : str
        One of the entry's splits (``train``, ``val``, ``test``; local datasets also ``all``).

    Returns
    -------
    Volume
        Stacks: the split's slices, ``serial`` from the registry, source slice
        indices (0-based) in ``meta["slices"]``. Pair datasets: one Z slice per
        pair (``serial = False``), file stems in ``meta["names"]``; all pairs
        must share one height and width (else use :func:`load_pairs`).
    """
    ds = get_dataset(name)
    sp = _split(ds, split)
    meta: dict[str, Any] = {"dataset": name, "split": split, "task": ds.task, "pixel_size_um": ds.pixel_size_um}
    full = f"{name}/{split}"
    kind = ds.layout_kind
    if kind == "pairs":
        images, masks, stems = read_pairs(_root(ds, split), ds.layout, sp, ds.channels)
        if not images:
            raise DatasetError(f"dataset '{name}': split '{split}' holds no pairs")
        shapes = sorted({im.shape for im in images})
        if len(shapes) > 1:
            raise DatasetError(f"dataset '{name}': split '{split}' has images of shapes {shapes[:4]}; use "
                               "grainbench.data.load_pairs, or cut equal tiles with `grainbench data tile`")
        meta["names"] = stems
        return normalise(np.stack(images), np.stack(masks), None, name=full, serial=False, meta=meta,
                         threshold=ds.layout.get("threshold", 127))
    if kind == "generated":
        from .generate import load_generated

        arrays = load_generated(name)
        a, b = _check_range(full, *sp.slice_range(arrays["image"].shape[0]), arrays["image"].shape[0])
        meta["slices"] = list(range(a, b))
        for extra in sorted(set(arrays) - {"image", "labels", "boundary"}):  # e.g. labels3d for tracking
            meta[extra] = arrays[extra][a:b]
        recon = arrays.get("reconstruction")  # stacked reconstructions (alzn_sim): z-1 of another one is no prior
        if ds.serial and a > 0 and (recon is None or recon[a - 1] == recon[a]):
            meta["prev_boundary"] = to_boundary(np.asarray(arrays["boundary"][a - 1]), where=full)
        return normalise(with_channels(np.asarray(arrays["image"][a:b]), ds.channels, where=full),
                         arrays["boundary"][a:b], arrays["labels"][a:b],
                         name=full, serial=ds.serial, meta=meta)
    if kind == "xct":  # labelled groups of reconstructions (seed 004's HandSeg); only those slices are read
        from .xct import read_xct_groups

        image, mask, names, consecutive = read_xct_groups(_root(ds), ds.layout, sp.groups)
        meta["names"] = names
        return normalise(with_channels(image, ds.channels, where=full), mask, None, name=full,
                         serial=ds.serial and consecutive, meta=meta)
    if kind == "hdf5":
        root = _root(ds)
        path = root / ds.layout.get("file", ds.files[0].path if ds.files else "")
        depth = _hdf5_depth(path, ds.layout)
        a, b = sp.slice_range(depth)
        arrays = read_hdf5_stack(path, ds.layout, a, b)
        if ds.serial and a > 0 and "boundary" in arrays:
            prev = read_hdf5_stack(path, ds.layout, a - 1, a)["boundary"][0]
            meta["prev_boundary"] = to_boundary(prev, ds.layout.get("threshold", 127), where=f"{path}")
    elif kind in ("tiff", "npy"):
        root = _root(ds)
        a, b = sp.slice_range(_stack_depth(root, ds.layout)) if sp.fraction else sp.slice_range(0)
        arrays = read_stack_files(root, ds.layout, a, b)
        if ds.serial and a > 0 and "boundary" in arrays:
            prev = read_stack_files(root, ds.layout, a - 1, a)["boundary"][0]
            meta["prev_boundary"] = to_boundary(prev, ds.layout.get("threshold", 127), where=full)
    else:
        from .manual import require_installed

        require_installed(ds)  # raises for unpinned layouts
        raise DatasetError(f"dataset '{name}': no loader for layout {kind!r}")  # pragma: no cover
    meta["slices"] = list(range(a, b))
    return normalise(with_channels(arrays["image"], ds.channels, where=full), arrays.get("boundary"),
                     arrays.get("labels"), name=full,
                     serial=ds.serial, meta=meta, threshold=ds.layout.get("threshold", 127))


def load_pairs(name: str, split: str = "test") -> list[Volume]:
    """Load a pair dataset as one single-slice :class:`Volume` per pair (any mix of image sizes)."""
    ds = get_dataset(name)
    if ds.layout_kind != "pairs":
        raise DatasetError(f"dataset '{name}' is a stack (layout {ds.layout_kind!r}); use grainbench.data.load")
    sp = _split(ds, split)
    images, masks, stems = read_pairs(_root(ds, split), ds.layout, sp, ds.channels)
    thr = ds.layout.get("threshold", 127)
    return [normalise(im[None], m[None], None, name=f"{name}/{split}/{s}", serial=False,
                      meta={"dataset": name, "split": split, "names": [s], "task": ds.task}, threshold=thr)
            for im, m, s in zip(images, masks, stems)]


def _split(ds: Dataset, split: str) -> Split:
    if split not in ds.splits:
        known = ", ".join(ds.splits) or "none"
        raise DatasetError(f"dataset '{ds.name}' has no split '{split}' (known: {known})")
    return ds.splits[split]


def _root(ds: Dataset, split: str | None = None) -> Path:
    """The installed dataset folder: fetched on first use for https (only the files ``split`` needs),
    checked for manual/local."""
    if ds.source == "https":
        from .fetch import fetch

        return fetch(ds.name, splits=None if split is None else [split])
    from .manual import require_installed

    return require_installed(ds)


def _hdf5_depth(path: Path, layout: Mapping[str, Any]) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            key = layout["image"]
            if key not in f:
                raise InputFileError(f"{path}: no dataset '{key}' (image); found {sorted(f.keys())}")
            shape = f[key].shape
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    if len(shape) != 3:
        raise InputFileError(f"{path}: dataset '{layout['image']}' has shape {shape}, expected 3 axes")
    return shape[2] if layout.get("axes", "ZHW") == "HWZ" else shape[0]


def _stack_depth(root: Path, layout: Mapping[str, Any]) -> int:
    path = root / layout["image"]
    if path.suffix.lower() == ".npy":
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    return int(read_array(path).shape[0])
