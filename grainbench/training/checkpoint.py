"""Checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values only (no pickled
objects), so loading never executes code from the file.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputFileError
from ..io import atomic_write, sha256_file

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> str:
    """Write ``state`` to ``path`` atomically; returns the file's sha256.

    A crash while writing leaves the previous checkpoint in place.
    """
    buf = io.BytesIO()
    torch.save({"checkpoint_version": CHECKPOINT_VERSION, **state}, buf)
    data = buf.getvalue()
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise InputFileError(f"{path}: not a readable grainbench checkpoint ({exc})") from None
    if not isinstance(state, dict) or "checkpoint_version" not in state:
        raise InputFileError(f"{path}: not a grainbench checkpoint")
    if state["checkpoint_version"] > CHECKPOINT_VERSION:
        raise InputFileError(f"{path}: checkpoint version {state['checkpoint_version']} is newer than "
                             f"this grainbench understands ({CHECKPOINT_VERSION})")
    return state


file_sha256 = sha256_file  # the checkpoint hash stored in run records
