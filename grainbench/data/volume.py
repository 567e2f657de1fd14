"""The data model every dataset is normalised to (see design.md, Data model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Volume:
    """A serial stack or 3D volume with its ground truth.

    Attributes
    ----------
    image : (Z, H, W) array
        float32 in [0, 1] (uint8 on disk is converted on access by loaders).
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
        if self.image.ndim != 3:
            raise ValueError(f"{self.name or 'volume'}: image must be (Z, H, W), got shape {self.image.shape}")
        for attr in ("labels", "boundary"):
            arr = getattr(self, attr)
            if arr is not None and arr.shape != self.image.shape:
                raise ValueError(
                    f"{self.name or 'volume'}: {attr} shape {arr.shape} differs from image shape {self.image.shape}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.image.shape[0]
