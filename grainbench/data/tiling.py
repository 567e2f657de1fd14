"""Cut aligned image / traced-label pairs into tiles (seed 003, section 1).

Hand-traced labels come as blurry anti-aliased strokes. Each label is
binarised, optionally brought to a fixed line width (skeletonise, then dilate
with a disk of that diameter), and cut with its image into tiles named
``<stem>-<row>-<col>.png`` (pixel offsets of the tile's top-left corner, the
naming of the tbm set, e.g. ``10-256-512.png``), one image tile for exactly one
mask tile.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..io import IMAGE_SUFFIXES, TIFF_SUFFIXES, atomic_write, read_image

_SUFFIXES = IMAGE_SUFFIXES + TIFF_SUFFIXES


def _by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in _SUFFIXES:
            if p.stem in found:
                raise InputFileError(f"{p}: two files with stem '{p.stem}' ({found[p.stem].name} and {p.name})")
            found[p.stem] = p
    return found


def tile_origins(length: int, size: int, overlap: int = 0) -> list[int]:
    """Start offsets of tiles of ``size`` along an axis of ``length``, stepping ``size - overlap``.

    The last tile is moved back to end at the edge, so the whole axis is covered.
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    if length < size:
        return []
    starts = list(range(0, length - size + 1, size - overlap))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def set_line_width(mask: np.ndarray, width: int) -> np.ndarray:
    """Thin a binary trace to its skeleton and dilate it to ``width`` pixels.

    The structuring element is a disk of diameter ``width`` (for 3: the 3 x 3
    square), so a straight horizontal or vertical line ends ``width`` pixels wide.
    """
    from scipy import ndimage as ndi

    from ..skeleton import skeletonize

    if width < 1:
        raise ValueError(f"line width must be >= 1, got {width}")
    skel = skeletonize(np.asarray(mask, dtype=bool))
    c = (width - 1) / 2
    yy, xx = np.mgrid[:width, :width] - c
    disk = yy**2 + xx**2 <= (width / 2) ** 2 + 1e-9
    return ndi.binary_dilation(skel, structure=disk)


def _read_pixels(path: Path) -> np.ndarray:
    """Image pixels in their own mode (grey, RGB, 16 bit), for lossless crops."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def tile_pairs(
    image_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    size: int = 256,
    overlap: int = 0,
    line_width: int | None = None,
    threshold: int = 127,
) -> int:
    """Cut aligned image/mask pairs into tiles with one-to-one names.

    Parameters
    ----------
    image_dir, mask_dir : path-like
        Folders of images and of their traced labels; an image and its mask
        share a file stem (``10.png`` and ``10.tif`` pair up).
    out_dir : path-like
        Tiles go to ``out_dir/images/<stem>-<row>-<col>.png`` and
        ``out_dir/masks/<stem>-<row>-<col>.png``.
    size : int
        Tile side in pixels.
    overlap : int
        Pixels shared by neighbouring tiles (``0 <= overlap < size``). Tiles
        step by ``size - overlap``; the last row/column of tiles ends at the
        image edge, so the whole image is covered.
    line_width : int, optional
        Bring the traced lines to this width (skeletonise, then dilate), e.g. 3.
    threshold : int
        A mask pixel is a boundary when its grey value is ``> threshold``.

    Returns
    -------
    int
        Number of tile pairs written.

    Raises
    ------
    InputFileError
        A mask without an image or an image without a mask (naming the file),
        an image and mask of different sizes, or an image smaller than ``size``.
    """
    image_dir, mask_dir, out_dir = Path(image_dir), Path(mask_dir), Path(out_dir)
    tile_origins(size, size, overlap)  # validates size and overlap
    images, masks = _by_stem(image_dir), _by_stem(mask_dir)
    for stem, p in masks.items():
        if stem not in images:
            raise InputFileError(f"{p}: mask has no matching image '{stem}.*' in {image_dir}")
    for stem, p in images.items():
        if stem not in masks:
            raise InputFileError(f"{p}: image has no matching mask '{stem}.*' in {mask_dir}")
    count = 0
    for stem in sorted(images):
        img = _read_pixels(images[stem])
        mask = read_image(masks[stem])
        if img.shape[:2] != mask.shape[:2]:
            raise InputFileError(
                f"{masks[stem]}: mask is {mask.shape[1]} x {mask.shape[0]} but image {images[stem]} is "
                f"{img.shape[1]} x {img.shape[0]} (width x height)"
            )
        h, w = mask.shape[:2]
        if h < size or w < size:
            raise InputFileError(f"{images[stem]}: image is {w} x {h}, smaller than the tile size {size}")
        binary = mask > threshold
        if line_width is not None:
            binary = set_line_width(binary, line_width)
        out_mask = binary.astype(np.uint8) * 255
        for r in tile_origins(h, size, overlap):
            for c in tile_origins(w, size, overlap):
                name = f"{stem}-{r}-{c}.png"
                _write_png(out_dir / "images" / name, img[r : r + size, c : c + size])
                _write_png(out_dir / "masks" / name, out_mask[r : r + size, c : c + size])
                count += 1
    return count
