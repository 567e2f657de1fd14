"""Reading images and stacks from disk, and writing files atomically.

Supported: PNG/JPEG/BMP (one image), a folder of PNGs (a stack, sorted by
name), TIFF (one image or a multi-page stack), NPY, and HDF5 (a named
dataset). Every error names the file and the problem.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputFileError, OutputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def read_image(path: str | os.PathLike, *, mask: bool = False, colour: bool = False) -> np.ndarray:
    """Read one 2D image (PNG/JPEG/BMP) as a numpy array.

    With ``colour=True`` an input image in colour is returned as (H, W, 3)
    RGB (alpha dropped, palettes expanded) instead of grey; grey files stay (H, W).

    An input image (``mask=False``) in colour is turned grey with
    :func:`grainbench.contract.rgb_to_grey` (the weights TIFF uses too). A
    mask (``mask=True``, a prediction or a ground truth) in colour, palette or
    with an alpha channel goes through :func:`grainbench.contract.mask_from_colour`,
    which converts it by a documented rule or refuses it naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    from .contract import mask_from_colour, rgb_to_grey

    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_fits(im.width * im.height * max(len(im.getbands()), 1) * 2, path, (im.height, im.width))
            if colour and not mask and im.mode in ("RGB", "RGBA", "P", "PA"):
                arr = np.asarray(im.convert("RGB"))
            elif im.mode in ("RGB", "RGBA", "P", "PA", "LA"):
                rgb = np.asarray(im.convert("RGBA" if mask or "A" in im.mode or im.mode == "P" else "RGB"))
                arr = mask_from_colour(rgb, path) if mask else rgb_to_grey(rgb)
            else:
                arr = np.asarray(im)
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise InputFileError(f"{path}: refused, image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None
    if arr.dtype == bool:
        # PIL's 1-bit arrays hold 0/255 bytes as "bool", which torch cannot use as is: one true bool array
        arr = np.ascontiguousarray(arr).view(np.uint8) != 0
        if not mask:
            arr = arr.astype(np.uint8)
    if arr.dtype == np.int32 and arr.size and 0 <= int(arr.min()) and int(arr.max()) <= 65535:
        arr = arr.astype(np.uint16)  # PIL's mode "I" for 16-bit greys
    return arr


def read_array(path: str | os.PathLike, *, key: str | None = None, mask: bool = False,
               colour: bool = False) -> np.ndarray:
    """Read an image or a stack from ``path``.

    Parameters
    ----------
    path : path-like
        A PNG/JPEG/BMP file, a folder of such files (stacked in name order),
        a TIFF file, an ``.npy`` file or an HDF5 file.
    key : str, optional
        HDF5 dataset name. Without it the file must hold exactly one dataset.
    mask : bool
        The file holds a prediction or a ground-truth mask, not an input
        image: colour is handled by :func:`grainbench.contract.mask_from_colour`.
    colour : bool
        Keep the colour of a single PNG/JPEG/BMP/TIFF colour image as (H, W, 3)
        RGB instead of converting it to grey (input images only).

    Returns
    -------
    numpy.ndarray of shape (H, W) or (Z, H, W).

    Raises
    ------
    InputFileError
        Naming the file: missing, unreadable, too large for the memory
        available, an HDF5 file with links to other files.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + TIFF_SUFFIXES)
        if not files:
            raise InputFileError(f"{path}: folder holds no PNG/JPEG/BMP/TIFF images")
        slices = [read_array(p, mask=mask) for p in files]
        shapes = {s.shape for s in slices}
        if len(shapes) != 1:
            raise InputFileError(f"{path}: images have different shapes {sorted(shapes)}")
        return np.stack(slices)
    if suffix in IMAGE_SUFFIXES:
        return read_image(path, mask=mask, colour=colour)
    if suffix in TIFF_SUFFIXES:
        return _read_tiff(path, mask, colour)
    if suffix == ".npy":
        return _read_npy(path)
    if suffix in HDF5_SUFFIXES:
        return _read_hdf5(path, key)
    raise InputFileError(
        f"{path}: unsupported file type '{suffix}' (expected PNG, TIFF, NPY, HDF5 or a folder of images)"
    )


def _memory_available() -> int:
    """Bytes one array may take: ``GRAINBENCH_MAX_ARRAY_BYTES`` if set, else the free physical memory."""
    limit = os.environ.get("GRAINBENCH_MAX_ARRAY_BYTES")
    if limit:
        return int(limit)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: no check
        return 1 << 62


def _check_fits(nbytes: int, path: Path, shape: tuple) -> None:
    """Refuse an array larger than the memory available before allocating it."""
    available = _memory_available()
    if nbytes > available:
        raise InputFileError(f"{path}: array of shape {tuple(shape)} needs {nbytes / 2**30:.3g} GiB, more than the "
                             f"{available / 2**30:.3g} GiB of memory available")


def _read_tiff(path: Path, mask: bool, colour: bool = False) -> np.ndarray:
    import tifffile

    from .contract import mask_from_colour, rgb_to_grey

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_fits(int(np.prod(series.shape)) * np.dtype(series.dtype).itemsize, path, series.shape)
            arr = tif.asarray()
    except InputFileError:
        raise
    except Exception as exc:  # tifffile raises several unrelated types
        raise InputFileError(f"{path}: not a readable TIFF ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:  # one colour image, not a stack
        if colour and not mask:
            return arr[..., :3]
        arr = mask_from_colour(arr, path) if mask else rgb_to_grey(arr)
    return arr


def _read_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            # header only: nothing is allocated before the size check
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = read_header(fh)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(f"{path}: not a plain numpy array ({exc})") from None
    _check_fits(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize, path, shape)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(f"{path}: not a plain numpy array ({exc})") from None


def check_hdf5_links(f, path: Path) -> None:
    """Refuse an HDF5 file whose objects live elsewhere: external links, virtual or external-storage datasets.

    A prediction that links to the ground-truth file would otherwise score
    perfectly. Soft links stay inside the file, so with external links
    refused they cannot leave it.
    """
    import h5py

    def walk(group, prefix: str) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            where = f"{prefix}{name}"
            if isinstance(link, h5py.ExternalLink):
                raise InputFileError(f"{path}: '{where}' is an external link to {link.filename}:{link.path}; "
                                     f"links to other files are refused")
            if isinstance(link, h5py.SoftLink):
                if group.get(name) is None:
                    raise InputFileError(f"{path}: '{where}' is a dangling soft link to {link.path}")
                continue  # its target is walked where it lives
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                walk(obj, where + "/")
            elif isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
                raise InputFileError(f"{path}: dataset '{where}' stores its data in other files; refused")

    walk(f, "")


def _read_hdf5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            check_hdf5_links(f, path)
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if key is None:
                if len(names) != 1:
                    raise InputFileError(
                        f"{path}: holds {len(names)} datasets {names[:8]}; name one with key=/--key"
                    )
                key = names[0]
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise InputFileError(f"{path}: no dataset '{key}' (found {names[:8]})")
            dset = f[key]
            _check_fits(int(dset.size) * dset.dtype.itemsize, path, dset.shape)
            return dset[()]
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path`` and rename it over ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{path}: cannot write here, {path.parent} is not a folder") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise OutputError(f"{path}: no space left on the device ({os.strerror(exc.errno)}); "
                              f"the file was not written, an older copy is kept") from None
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
