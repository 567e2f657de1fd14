"""Pixel lists of 2D bool masks, shared by the metrics that only look at the (few) True pixels."""

from __future__ import annotations

import cv2
import numpy as np


def mask_pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (int64) of the True pixels of a 2D bool array, in row-major order.

    The same arrays as :func:`numpy.nonzero`; OpenCV's ``findNonZero`` lists
    them twice as fast and releases the GIL (scoring runs slices on threads).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask_pixels takes a 2D mask, got shape {m.shape}")
    if m.size == 0 or m.strides[1] != 1:  # OpenCV needs contiguous rows (any row step)
        m = np.ascontiguousarray(m)
    found = cv2.findNonZero(m.view(np.uint8)) if m.size else None
    if found is None or found.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    xy = found.reshape(-1, 2).astype(np.int64)  # (x, y) = (column, row)
    return np.ascontiguousarray(xy[:, 1]), np.ascontiguousarray(xy[:, 0])


def transposed(mask: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a 2D bool array's transpose (OpenCV's: fast, and it releases the GIL)."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0 or m.strides[1] != 1:
        m = np.ascontiguousarray(m)
    if m.size == 0:
        return np.ascontiguousarray(m.T)
    return cv2.transpose(m.view(np.uint8)).view(bool)
