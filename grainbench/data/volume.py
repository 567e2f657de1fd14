"""The data model every dataset is normalised to (see design.md, Data model).

Channels
--------
One convention everywhere: a grey image is ``(Z, H, W)``, a colour image is
``(Z, C, H, W)`` with the channel axis second (C = 3 for RGB). A single
channel ``(Z, 1, H, W)`` is stored as ``(Z, H, W)``, so there is exactly one
form of grey and every grey consumer (metrics overlays, tracking, figures,
existing code that indexes ``image[z]`` as an (H, W) slice) is unchanged.
Code that handles any number of channels calls :func:`as_channels` (always
``(Z, C, H, W)``); code that needs one channel calls :func:`to_grey` /
:meth:`Volume.grey` (ITU-R 601-2 luma, :func:`grainbench.contract.rgb_to_grey`,
the same weights the PNG and TIFF readers use). The registry declares how
many channels a dataset has (``Dataset.channels``) and the loaders keep
exactly that many; methods are built with ``in_channels`` equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def as_channels(image: np.ndarray) -> np.ndarray:
    """``(Z, C, H, W)`` view of an image stack: a grey ``(Z, H, W)`` stack gets C = 1.

    Raises
    ------
    ValueError
        An array that is neither 3- nor 4-dimensional.
    """
    image = np.asarray(image)
    if image.ndim == 3:
        return image[:, None]
    if image.ndim == 4:
        return image
    raise ValueError(f"image must be (Z, H, W) or (Z, C, H, W), got shape {image.shape}")


def image_channels(image: np.ndarray) -> int:
    """Channels of a ``(Z, H, W)`` (1) or ``(Z, C, H, W)`` (C) image stack."""
    return 1 if np.ndim(image) == 3 else int(np.shape(image)[1])


def to_grey(image: np.ndarray) -> np.ndarray:
    """A ``(Z, H, W)`` grey stack from a grey or ``(Z, C, H, W)`` stack (luma for C >= 3, the mean otherwise)."""
    from ..contract import rgb_to_grey

    image = np.asarray(image)
    if image.ndim == 3:
        return image
    c = as_channels(image)
    if c.shape[1] == 1:
        return c[:, 0]
    if c.shape[1] >= 3:
        return rgb_to_grey(np.moveaxis(c, 1, -1))
    return c.mean(axis=1, dtype=np.float64).astype(c.dtype if c.dtype.kind == "f" else np.float32)


@dataclass
class Volume:
    """A serial stack or 3D volume with its ground truth.

    Attributes
    ----------
    image : (Z, H, W) or (Z, C, H, W) array
        float32 in [0, 1] (uint8 on disk is converted on access by loaders).
        Grey images are (Z, H, W) (a given (Z, 1, H, W) is squeezed to it),
        colour images (Z, C, H, W); see the module docstring.
    labels : (Z, H, W) int32 array or None
        Grain ids, 0 = boundary/unlabelled. None where only boundaries exist.
    boundary : (Z, H, W) bool array or None
        True on grain boundaries (task ``boundary``/``tracking``) or on the
        foreground phase (task ``phase``).
    serial : bool
        Slice z+1 is physically next to slice z.
    name : str
        Dataset name plus split, e.g. ``"synthetic/test"``.
    meta : dict
        Anything else a loader knows (pixel size, source slice indices, ...).
    """

    image: np.ndarray
    labels: np.ndarray | None
    boundary: np.ndarray | None
    serial: bool = False
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim == 4 and self.image.shape[1] == 1:
            self.image = self.image[:, 0]
        if self.image.ndim not in (3, 4):
            raise ValueError(f"{self.name or 'volume'}: image must be (Z, H, W) or (Z, C, H, W), "
                             f"got shape {self.image.shape}")
        for attr in ("labels", "boundary"):
            arr = getattr(self, attr)
            if arr is not None and arr.shape != self.shape:
                raise ValueError(
                    f"{self.name or 'volume'}: {attr} shape {arr.shape} differs from image shape {self.shape}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (Z, H, W), whatever the channels."""
        s = self.image.shape
        return (s[0], s[-2], s[-1])

    @property
    def channels(self) -> int:
        """Image channels: 1 for grey, 3 for RGB."""
        return image_channels(self.image)

    def stack(self) -> np.ndarray:
        """The image as (Z, C, H, W) (a view; C = 1 for grey)."""
        return as_channels(self.image)

    def grey(self) -> np.ndarray:
        """The image as one (Z, H, W) grey channel (luma of RGB); for overlays and figures."""
        return to_grey(self.image)

    def __len__(self) -> int:
        return self.image.shape[0]

    def take(self, indices: Any, part: str = "") -> "Volume":
        """The slices ``indices`` (in that order) as a new Volume; ``part`` is appended to the name.

        Per-slice lists a loader put in ``meta`` (``names``, ``slices``) are
        subset alike; the result is serial only if the slices are consecutive
        in a serial stack.
        """
        idx = np.asarray(indices, dtype=np.intp)
        meta = dict(self.meta)
        for key in ("names", "slices"):
            ids = meta.get(key)
            if isinstance(ids, (list, tuple)) and len(ids) == len(self):
                meta[key] = [ids[i] for i in idx]
        consecutive = bool(idx.size) and bool(np.all(np.diff(idx) == 1))
        return Volume(
            image=self.image[idx], labels=None if self.labels is None else self.labels[idx],
            boundary=None if self.boundary is None else self.boundary[idx],
            serial=self.serial and consecutive, name=f"{self.name}:{part}" if part else self.name, meta=meta)
