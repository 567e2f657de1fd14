"""Predictions a user brings as files: read, validate every file, then score like a run.

Accepted: a folder of PNG/TIFF images (one per test slice, in name order), a
TIFF stack, an NPY array or an HDF5 dataset, with values under the input
contract of :mod:`grainbench.contract`. Each problem is reported with the
file it is in: wrong count, wrong shape, unsupported dtype, values outside
the contract, NaN.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .contract import as_probability
from .errors import InputFileError
from .io import IMAGE_SUFFIXES, TIFF_SUFFIXES, read_array


class SubmissionError(InputFileError):
    """One or more prediction files are unusable; ``problems`` lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid predictions:\n  " + "\n  ".join(problems))


#: A submission's name: shown on leaderboards and part of its record's file name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+()-]{0,63}")


def check_submission_name(name: str) -> str:
    """Refuse a ``--name`` that cannot become part of a record's file name (checked before any scoring).

    Raises
    ------
    InputFileError
        Unless ``name`` is 1-64 letters, digits, spaces and ``_.+()-``, starting with a letter or digit.
    """
    if not NAME_PATTERN.fullmatch(name or ""):
        shown = name if len(name) <= 40 else name[:40] + f"... ({len(name)} characters)"
        raise InputFileError(f"--name {shown!r}: use 1 to 64 letters, digits, spaces or _.+()-, starting with a "
                             f"letter or digit")
    return name


def _read_values(arr: np.ndarray, where: str) -> tuple[np.ndarray | None, str | None]:
    """``arr`` as float32 in [0, 1] under the input contract, or the problem with it."""
    try:
        return as_probability(arr, name=where).cpu().numpy().astype(np.float32, copy=False), None
    except (ValueError, TypeError) as exc:
        return None, str(exc)


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
                arr = read_array(f, mask=True)
            except InputFileError as exc:
                problems.append(str(exc))
                continue
            if arr.shape != tuple(expected_shape):
                problems.append(f"{f}: shape {arr.shape}, expected {tuple(expected_shape)}")
                continue
            values, bad = _read_values(arr, str(f))  # each file on its own, as `score` reads it
            if bad:
                problems.append(bad)
                continue
            slices.append(values)
        if problems:
            raise SubmissionError(problems)
        stack = np.stack(slices)
    else:
        stack = read_array(path, key=key, mask=True)
        if stack.ndim == 2 and expected_slices == 1:
            stack = stack[None]
        expected = (expected_slices, *expected_shape)
        if stack.shape != expected:
            raise SubmissionError([f"{path}: shape {stack.shape}, expected {expected} (Z, H, W)"])
        for z, sl in enumerate(stack):  # every bad slice named at once
            _, bad = _read_values(sl, f"{path}[slice {z}]")
            if bad:
                problems.append(bad)
        if problems:
            raise SubmissionError(problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20
                                                   else []))
        stack, bad = _read_values(stack, str(path))  # one array, read whole as `score` reads it
        if bad:
            raise SubmissionError([bad])
    return stack
