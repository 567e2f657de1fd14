"""The input contract: what an array or a file means as a prediction or a ground-truth mask.

One place decides whether an array is a *binary map* or a *probability
map*; the API (:func:`grainbench.score`), ``grainbench score``,
``grainbench submit``, ``grainbench track --boundaries-file``, the metrics
and the dataset loaders all go through :func:`interpret`.

==============================  ===========================================
array                           meaning
==============================  ===========================================
bool                            binary map
any integer dtype, only {0, 1}  binary map
integer, only {0, 255}          binary map (an 8-bit mask)
uint16+, only {0, 65535}        binary map (a 16-bit mask)
float in [0, 1], only {0, 1}    binary map
float in [0, 1], other values   probability
unsigned integer, other values  probability = value / dtype maximum
signed integer, other values    refused
NaN, inf, floats outside [0,1]  refused
==============================  ===========================================

Files: a mask saved as RGB or RGBA counts as grey when its colour channels
are equal (a fully transparent-or-opaque alpha is ignored); a mask carried
only in the alpha channel (colour constant) is that alpha channel; a palette
image is expanded to its colours first. Any other colour mask is refused
naming the file (:func:`mask_from_colour`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

from .errors import InputFileError

ArrayLike = Union[np.ndarray, torch.Tensor]
Kind = Literal["mask", "probability"]

__all__ = ["GREY_WEIGHTS", "Interpreted", "as_binary", "as_probability", "interpret", "mask_from_colour", "require_mask",
           "rgb_to_grey"]

# ITU-R 601-2 luma, the weights PIL's convert("L") uses; TIFF and PNG share them.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Interpreted:
    """An array read under the contract.

    Attributes
    ----------
    kind : {"mask", "probability"}
    values : torch.Tensor
        A bool tensor for a mask; for a probability a float tensor in [0, 1]
        (float32 for integer greys, the input's float dtype otherwise).
    """

    kind: Kind
    values: torch.Tensor


_TORCH_UNSIGNED = tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))


def _to_array(x: ArrayLike, name: str) -> np.ndarray | torch.Tensor:
    """A tensor, or a numpy array for the unsigned dtypes wider than 8 bits torch barely supports."""
    if isinstance(x, torch.Tensor):
        return x.cpu().numpy() if x.dtype in _TORCH_UNSIGNED else x
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: unsupported dtype {x.dtype} (expected bool, integer or float)")
    if x.dtype.kind == "u" and x.dtype.itemsize > 1:
        return x
    if x.dtype == bool:  # bool arrays whose bytes are not 0/1 (PIL's 1-bit images) break torch
        x = np.ascontiguousarray(x).view(np.uint8) != 0
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    if not x.flags.writeable:  # torch cannot wrap read-only memory safely
        x = x.copy()
    return torch.from_numpy(np.ascontiguousarray(x))


def _all(test, t: torch.Tensor) -> bool:
    """``bool(test(t).all())``, slice by slice along the first axis of a stack: no full-size temporary."""
    if t.ndim >= 3 and t.shape[0] > 1:
        return all(bool(test(s).all()) for s in t)
    return bool(test(t).all())


def _is_binary(t: torch.Tensor) -> bool:
    """Whether a float tensor holds only 0 and 1; a value strictly between them among the first
    4096 answers at once, without a pass over the whole array (probability maps nearly always)."""
    head = t.reshape(-1)[:4096]
    if bool(((head > 0) & (head < 1)).any()):
        return False
    return _all(lambda x: (x == 0) | (x == 1), t)


def interpret(x: ArrayLike, *, name: str = "prediction") -> Interpreted:
    """Read ``x`` under the input contract (module docstring): a binary map or a probability.

    Parameters
    ----------
    x : array or tensor
        Any shape; the caller checks the shape.
    name : str
        Named in every error (a file name, ``"pred"``, ``"gt"``).

    Returns
    -------
    Interpreted

    Raises
    ------
    ValueError
        NaN/inf, floats outside [0, 1], or signed integers that are neither
        0/1 nor 0/255.
    TypeError
        Not an array, or a dtype that is not bool, integer or float.
    """
    t = _to_array(x, name)
    if isinstance(t, np.ndarray):  # uint16, uint32, uint64
        top = int(np.iinfo(t.dtype).max)
        if _binary_values(np.unique(t).tolist(), top):
            return Interpreted("mask", torch.from_numpy(np.ascontiguousarray(t != 0)))
        return Interpreted("probability", torch.from_numpy((t.astype(np.float64) / top).astype(np.float32)))
    if t.dtype == torch.bool:
        return Interpreted("mask", t)
    if t.dtype.is_floating_point:
        if t.numel():
            lo, hi = float(t.min()), float(t.max())  # both NaN if any value is: one pass checks both rules
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"{name}: contains NaN or infinite values")
            if lo < 0 or hi > 1:
                raise ValueError(f"{name}: float values must lie in [0, 1] (a probability or a 0/1 mask), "
                                 f"found range [{lo:.4g}, {hi:.4g}]")
        if _is_binary(t):
            return Interpreted("mask", t != 0)
        return Interpreted("probability", t)  # float32 or float64 as given: metrics keep the precision
    # integers torch holds: int8..int64 and uint8
    values = torch.unique(t).tolist()
    if t.dtype == torch.uint8:
        if _binary_values(values, 255):
            return Interpreted("mask", t != 0)
        return Interpreted("probability", t.to(torch.float32) / 255.0)
    if _binary_values(values, None):
        return Interpreted("mask", t != 0)
    raise ValueError(f"{name}: a signed integer map must be binary (only 0/1 or 0/255), found values "
                     f"{values[:6]}{' ...' if len(values) > 6 else ''} (save greys as uint8/uint16 or floats in [0, 1])")


def _binary_values(values: list, top: int | None) -> bool:
    """True when ``values`` are a subset of {0, 1}, {0, 255} or {0, top}."""
    s = set(values)
    return s <= {0, 1} or s <= {0, 255} or (top is not None and s <= {0, top})


def as_probability(x: ArrayLike, *, name: str = "prediction") -> torch.Tensor:
    """``x`` as a float tensor in [0, 1]: a mask becomes float32 0/1, a probability stays as it is."""
    r = interpret(x, name=name)
    return r.values.to(torch.float32) if r.kind == "mask" else r.values


def as_binary(x: ArrayLike, threshold: float = 0.5, *, name: str = "prediction") -> torch.Tensor:
    """``x`` as a bool tensor: a mask as given, a probability thresholded (``p > threshold``)."""
    r = interpret(x, name=name)
    return r.values if r.kind == "mask" else r.values > threshold


def require_mask(x: ArrayLike, *, name: str = "mask") -> torch.Tensor:
    """``x`` as a bool tensor; a probability map (greys) is an error."""
    r = interpret(x, name=name)
    if r.kind != "mask":
        p = r.values
        sample = torch.unique(p)[:5].tolist()
        raise ValueError(f"{name}: expected a binary map (bool, 0/1, 0/255 or 0/65535), found grey values "
                         f"{[round(v, 4) for v in sample]} (as a fraction of the maximum); threshold it first")
    return r.values


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) or (..., 4) colour to grey with the ITU-R 601-2 weights; integer dtypes are kept (rounded)."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:  # PIL's integer form of the same weights, so PNG and TIFF agree to the bit
        r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
    grey = rgb[..., :3].astype(np.float64) @ np.asarray(GREY_WEIGHTS)
    if rgb.dtype.kind in "iu":
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(rgb.dtype)
    return grey.astype(rgb.dtype if rgb.dtype.kind == "f" else np.float64)


def mask_from_colour(arr: np.ndarray, path: object) -> np.ndarray:
    """A mask saved with colour channels (..., 3) RGB or (..., 4) RGBA as one grey channel.

    * RGBA whose alpha is constant: the RGB part decides.
    * RGB(A) with equal channels: that channel.
    * RGBA whose colour is constant but whose alpha varies: the alpha channel
      (a mask drawn as transparency).
    * Anything else is refused: a colour mask has no agreed boundary colour.

    Raises
    ------
    InputFileError
        Naming ``path``.
    """
    channels = arr.shape[-1]
    if channels not in (3, 4):
        raise InputFileError(f"{path}: expected 3 (RGB) or 4 (RGBA) channels, got {channels}")
    rgb = arr[..., :3]
    alpha = arr[..., 3] if channels == 4 else None
    if alpha is not None and np.unique(alpha).size > 1:
        if all(np.unique(rgb[..., c]).size == 1 for c in range(3)):
            return np.ascontiguousarray(alpha)
        raise InputFileError(f"{path}: colour mask with transparency is ambiguous; save the mask as a "
                             f"greyscale (or 1-bit) image")
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0])
    raise InputFileError(f"{path}: a colour (RGB) mask is not accepted, its channels differ; save the mask "
                         f"as a greyscale (or 1-bit) image")
