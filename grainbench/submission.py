"""Predictions a user brings as files: read, validate every file, then score like a run.

Accepted: a folder of PNG/TIFF images (one per test slice, in name order), a
TIFF stack, an NPY array or an HDF5 dataset. Each problem is reported with
the file it is in: wrong count, wrong shape, unsupported dtype, values
outside [0, 1] (floats) or not 0/1/0-255 (integers), NaN.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputFileError
from .io import IMAGE_SUFFIXES, TIFF_SUFFIXES, read_array


class SubmissionError(InputFileError):
    """One or more prediction files are unusable; ``problems`` lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid predictions:\n  " + "\n  ".join(problems))


def _check_values(arr: np.ndarray, where: str) -> str | None:
    if arr.dtype == bool:
        return None
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            return f"{where}: contains NaN or infinite values"
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            return f"{where}: float values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]"
        return None
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint8:
            return None  # 8-bit greys are probabilities x 255 (or a 0/255 mask)
        values = np.unique(arr)
        if not np.isin(values, (0, 1, 255)).all():
            return f"{where}: integer values must be 0/1 or 0/255 (or uint8 greys), found {values[:6].tolist()}"
        return None
    return f"{where}: unsupported dtype {arr.dtype} (expected bool, uint8, integer 0/1 or float in [0, 1])"


def read_predictions(path: str | os.PathLike, *, expected_slices: int, expected_shape: tuple[int, int],
                     key: str | None = None) -> np.ndarray:
    """Read and validate a submission; returns a (Z, H, W) float32 probability/binary stack in [0, 1].

    Raises :class:`SubmissionError` listing every bad file at once.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: predictions not found")
    problems: list[str] = []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + TIFF_SUFFIXES)
        if len(files) != expected_slices:
            problems.append(f"{path}: {len(files)} image files, expected {expected_slices} (one per test slice)")
        slices = []
        for f in files:
            try:
                arr = read_array(f)
            except InputFileError as exc:
                problems.append(str(exc))
                continue
            if arr.shape != tuple(expected_shape):
                problems.append(f"{f}: shape {arr.shape}, expected {tuple(expected_shape)}")
                continue
            bad = _check_values(arr, str(f))
            if bad:
                problems.append(bad)
                continue
            slices.append(arr)
        if problems:
            raise SubmissionError(problems)
        stack = np.stack(slices)
    else:
        stack = read_array(path, key=key)
        if stack.ndim == 2 and expected_slices == 1:
            stack = stack[None]
        expected = (expected_slices, *expected_shape)
        if stack.shape != expected:
            raise SubmissionError([f"{path}: shape {stack.shape}, expected {expected} (Z, H, W)"])
        for z, sl in enumerate(stack):
            bad = _check_values(sl, f"{path}[slice {z}]")
            if bad:
                problems.append(bad)
        if problems:
            raise SubmissionError(problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20
                                                   else []))
    if stack.dtype == np.uint8 and not np.isin(stack, (0, 255)).all():
        return stack.astype(np.float32) / 255.0
    if stack.dtype == bool or stack.dtype.kind in "iu":
        return (stack != 0).astype(np.float32)
    return stack.astype(np.float32)
