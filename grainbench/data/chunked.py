"""Volumes that stay on disk: lazy, chunked (Z, H, W) stacks.

A reconstruction of seed 004 is 852 x 852 x 250 voxels (726 MB as float32)
and its users have terabytes of them, so nothing here reads a whole volume:
:func:`open_stack` gives a :class:`LazyStack`, an array-like with ``shape``,
``dtype`` and ``ndim`` whose indexing reads only the voxels asked for, from

* TIFF stacks (one page per z slice), through ``tifffile``'s zarr store
  (``aszarr``: pages are read on demand, tiles where the file is tiled);
* HDF5 datasets (h5py reads the chunks or hyperslabs that hold the selection);
* zarr arrays (a ``.zarr`` folder);
* NPY files (memory-mapped).

A :class:`LazyStack` can stand as the ``image`` of a
:class:`~grainbench.data.volume.Volume` (``shape``, ``len``, ``image[z]``,
``image[a:b]``, ``image[[i, j]]`` all work); ``np.asarray`` reads it whole,
which is what a caller that needs every voxel in memory asks for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError

STACK_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".zarr", ".npy")


class LazyStack:
    """A read-only (Z, H, W) array on disk; indexing reads only the selection.

    Parameters
    ----------
    array : array-like
        A zarr array, h5py dataset or memory-mapped numpy array of 3 axes.
    path : path-like
        Where it lives (for messages).
    handle : object, optional
        An open file or store to close with :meth:`close`.
    """

    def __init__(self, array: Any, path: str | os.PathLike, handle: Any = None) -> None:
        if len(array.shape) != 3:
            raise InputFileError(f"{path}: expected a (Z, H, W) stack, got shape {tuple(array.shape)}")
        self._array, self.path, self._handle = array, Path(path), handle

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self._array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return 3

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The storage chunks (None where the store has none, e.g. contiguous HDF5 or NPY)."""
        c = getattr(self._array, "chunks", None)
        return None if c is None else tuple(int(n) for n in c)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        first = key[0] if isinstance(key, tuple) else key
        if isinstance(first, (list, np.ndarray)):  # fancy z indices: read each distinct slice once
            idx = np.asarray(first, dtype=np.intp)
            rest = key[1:] if isinstance(key, tuple) else ()
            uniq, inverse = np.unique(idx, return_inverse=True)
            parts = np.stack([np.asarray(self._array[(int(z), *rest)]) for z in uniq]) if uniq.size else \
                np.empty((0, *self.shape[1:]), self.dtype)
            return parts[inverse]
        return np.asarray(self._array[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self._array[:])
        return out if dtype is None else out.astype(dtype, copy=False)

    def close(self) -> None:
        """Close the file behind the stack (reading after this fails)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "LazyStack":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LazyStack({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, chunks={self.chunks})"


def open_stack(path: str | os.PathLike, key: str | None = None) -> LazyStack:
    """Open a (Z, H, W) stack on disk without reading it.

    Parameters
    ----------
    path : path-like
        A ``.tif``/``.tiff`` (one page per slice), ``.h5``/``.hdf5``, ``.zarr``
        folder or ``.npy`` file.
    key : str, optional
        The HDF5 dataset (or zarr array in a group) to open; None: ``image``
        where it exists, else the only 3D dataset of the file.

    Raises
    ------
    InputFileError
        Not readable, not 3D, or no such dataset (one line naming the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if suffix in (".tif", ".tiff"):
        return _open_tiff(path)
    if suffix in (".h5", ".hdf5"):
        return _open_hdf5(path, key)
    if suffix == ".zarr":
        import zarr

        try:
            node = zarr.open(str(path), mode="r")
        except Exception as exc:  # zarr raises several kinds for a folder that is not a store
            raise InputFileError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from None
        if isinstance(node, zarr.Group):
            names = list(node.array_keys())
            k = key or ("image" if "image" in names else (names[0] if len(names) == 1 else None))
            if k is None or k not in names:
                raise InputFileError(f"{path}: no zarr array {key or 'image'!r}; found {sorted(names)}")
            node = node[k]
        return LazyStack(node, path)
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputFileError(f"{path}: not a plain numpy array ({exc})") from None
        return LazyStack(arr, path)
    raise InputFileError(f"{path}: not a stack file (expected one of {', '.join(STACK_SUFFIXES)})")


def _open_tiff(path: Path) -> LazyStack:
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable TIFF ({exc})") from None
    try:
        series = tif.series[0]
        store = series.aszarr()
        arr = zarr.open_array(store, mode="r")
    except Exception as exc:  # tifffile/zarr raise many kinds for odd files
        tif.close()
        raise InputFileError(f"{path}: cannot read its pages as a stack ({type(exc).__name__}: {exc})") from None
    if len(arr.shape) == 2:  # one page: a stack of one slice
        tif.close()
        return LazyStack(np.asarray(tifffile.imread(path))[None], path)
    try:
        return LazyStack(arr, path, handle=tif)
    except InputFileError:
        tif.close()
        raise


def _open_hdf5(path: Path, key: str | None) -> LazyStack:
    import h5py

    from ..io import check_hdf5_links

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        check_hdf5_links(f, path)
        if key is None:
            found = [k for k, v in f.items() if isinstance(v, h5py.Dataset) and v.ndim == 3]
            key = "image" if isinstance(f.get("image"), h5py.Dataset) else (found[0] if len(found) == 1 else None)
            if key is None:
                raise InputFileError(f"{path}: no dataset 'image' and not exactly one 3D dataset "
                                     f"(found {sorted(f.keys())})")
        dset = f.get(key)
        if not isinstance(dset, h5py.Dataset):
            raise InputFileError(f"{path}: no dataset '{key}'; found {sorted(f.keys())}")
        return LazyStack(dset, path, handle=f)
    except BaseException:
        f.close()
        raise
