"""Reading images and stacks from disk, and writing files atomically.

Supported: PNG/JPEG/BMP (one image), a folder of PNGs (a stack, sorted by
name), TIFF (one image or a multi-page stack), NPY, and HDF5 (a named
dataset). Every error names the file and the problem.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one 2D image (PNG/JPEG/BMP) as a numpy array; RGB is converted to grey."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def read_array(path: str | os.PathLike, *, key: str | None = None) -> np.ndarray:
    """Read an image or a stack from ``path``.

    Parameters
    ----------
    path : path-like
        A PNG/JPEG/BMP file, a folder of such files (stacked in name order),
        a TIFF file, an ``.npy`` file or an HDF5 file.
    key : str, optional
        HDF5 dataset name. Without it the file must hold exactly one dataset.

    Returns
    -------
    numpy.ndarray of shape (H, W) or (Z, H, W).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + TIFF_SUFFIXES)
        if not files:
            raise InputFileError(f"{path}: folder holds no PNG/JPEG/BMP/TIFF images")
        slices = [read_array(p) for p in files]
        shapes = {s.shape for s in slices}
        if len(shapes) != 1:
            raise InputFileError(f"{path}: images have different shapes {sorted(shapes)}")
        return np.stack(slices)
    if suffix in IMAGE_SUFFIXES:
        return read_image(path)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            arr = tifffile.imread(path)
        except Exception as exc:  # tifffile raises several unrelated types
            raise InputFileError(f"{path}: not a readable TIFF ({exc})") from None
        if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
            arr = arr[..., :3].mean(axis=-1)  # one RGB image, not a stack
        return arr
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputFileError(f"{path}: not a plain numpy array ({exc})") from None
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5(path, key)
    raise InputFileError(
        f"{path}: unsupported file type '{suffix}' (expected PNG, TIFF, NPY, HDF5 or a folder of images)"
    )


def _read_hdf5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if key is None:
                if len(names) != 1:
                    raise InputFileError(
                        f"{path}: holds {len(names)} datasets {names[:8]}; name one with key=/--key"
                    )
                key = names[0]
            if key not in f:
                raise InputFileError(f"{path}: no dataset '{key}' (found {names[:8]})")
            return f[key][()]
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path`` and rename it over ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safe_name(name: str) -> str:
    """``name`` as one path component: runs of characters other than letters, digits, ``_.-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
