"""Array plumbing shared by every module: numpy or torch in, torch on one device out.

Metrics and post-processing accept numpy arrays or torch tensors. Arithmetic
runs in torch on the input tensor's device (or on ``device=`` when given), so
the same code scores on CUDA and on the CPU. Numpy inputs are wrapped without
a copy where torch allows it.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from .errors import ConfigError

ArrayLike = Union[np.ndarray, torch.Tensor]
DeviceLike = Union[str, torch.device, None]

# numpy dtypes torch.from_numpy cannot wrap directly; widened losslessly.
_WIDEN = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64}


def resolve_device(device: DeviceLike = None) -> torch.device:
    """Turn ``None``/``"auto"``/``"cpu"``/``"cuda"`` into a :class:`torch.device`.

    ``None`` and ``"auto"`` pick CUDA when it is available, else the CPU.
    Asking for CUDA on a machine without it raises a clear error instead of
    failing deep inside torch.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {device!r}: unknown device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} was requested but torch reports no CUDA device; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {str(device)!r}: grainbench runs on cpu or cuda")
    return device


def as_tensor(x: ArrayLike, device: DeviceLike = None, *, name: str = "array") -> torch.Tensor:
    """Return ``x`` as a torch tensor on ``device`` (default: where it already is).

    Raises ``TypeError`` for anything that is neither a numpy array nor a tensor
    (lists are accepted and converted with numpy).
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
        if x.dtype in _WIDEN:
            x = x.astype(_WIDEN[x.dtype])
        elif x.dtype.kind not in "biuf":
            raise TypeError(f"{name}: unsupported dtype {x.dtype} (expected bool, integer or float)")
        if not x.flags.writeable:  # torch cannot wrap read-only memory safely
            x = x.copy()
        t = torch.from_numpy(np.ascontiguousarray(x))
    if device is not None:
        t = t.to(resolve_device(device))
    return t


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str] = ("pred", "gt")) -> None:
    """Raise ``ValueError`` naming both inputs when their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(
            f"shape mismatch: {names[0]} has shape {tuple(a.shape)}, {names[1]} has shape {tuple(b.shape)}"
        )


def check_spatial(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``t`` is a 2D image or a 3D (Z, H, W) volume."""
    if t.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a 2D image or a 3D (Z, H, W) volume, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name}: empty array of shape {tuple(t.shape)}")


def as_labels(x: ArrayLike, device: DeviceLike = None, *, name: str = "labels") -> torch.Tensor:
    """A label image as an int64 tensor; floats must hold whole numbers, labels must be >= 0."""
    t = as_tensor(x, device, name=name)
    check_spatial(t, name)
    if t.dtype.is_floating_point:
        if not torch.isfinite(t).all():
            raise ValueError(f"{name}: label image contains NaN or infinite values")
        if (t != t.round()).any():
            raise ValueError(f"{name}: label image has non-integer values; pass integer grain ids")
    t = t.to(torch.int64)
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name}: negative labels are not allowed (0 means boundary/unlabelled)")
    return t


def as_mask(x: ArrayLike, device: DeviceLike = None, *, name: str = "mask") -> torch.Tensor:
    """A binary map as a bool tensor, under the input contract of :mod:`grainbench.contract`.

    Accepts bool, integers holding only 0/1, 0/255 (or 0/65535 for uint16),
    or floats holding only 0/1. A probability map (other greys or floats) is
    an error: threshold it first with :func:`grainbench.postprocess.binarize`.
    """
    from .contract import require_mask

    t = require_mask(x, name=name)
    check_spatial(t, name)
    return t.to(resolve_device(device)) if device is not None else t
