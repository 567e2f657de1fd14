"""Sparse contingency tables of two label maps, computed without loops over labels.

The table is returned in coordinate form: for every pair of labels that
overlap, the pair and its pixel count. Everything downstream (VI, ARI, IoU
matrices) works from these three vectors in float64, which is exact for
counts below 2**53 and cannot overflow the way int64 pair counts do on large
volumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Use a dense bincount when the label grid is at most this many times the
# pixel count; otherwise fall back to torch.unique (a sort).
_DENSE_FACTOR = 4


@dataclass(frozen=True)
class Contingency:
    """Overlap counts of two label maps in sparse form.

    Attributes
    ----------
    rows, cols : int64 tensors
        Label of the first and second map for each non-empty cell (original label values).
    counts : float64 tensor
        Number of pixels carrying that pair of labels.
    total : float
        Total number of pixels counted (after masking).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    counts: torch.Tensor
    total: float

    def without_zero(self) -> "Contingency":
        """The table restricted to pixels labelled non-zero in both maps (0 = boundary/unlabelled)."""
        keep = (self.rows != 0) & (self.cols != 0)
        counts = self.counts[keep]
        return Contingency(self.rows[keep], self.cols[keep], counts, float(counts.sum()))

    def marginals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(row_sums, row_index, col_sums, col_index)``: the pixel count of each label present in
        either map (float64), and for every cell the index of its row/column in those sums."""
        _, row_index = torch.unique(self.rows, return_inverse=True)
        _, col_index = torch.unique(self.cols, return_inverse=True)
        sums = []
        for index in (row_index, col_index):
            n = int(index.max()) + 1 if index.numel() else 0
            sums.append(torch.zeros(n, dtype=torch.float64, device=self.counts.device).index_add_(0, index, self.counts))
        return sums[0], row_index, sums[1], col_index

def contingency_table(labels0: torch.Tensor, labels1: torch.Tensor) -> Contingency:
    """Sparse contingency table of two non-negative integer label tensors of equal shape.

    Parameters
    ----------
    labels0, labels1 : int32 or int64 tensors
        Label maps on the same device (OpenCV's int32 labels are used as they are).
    """
    a = labels0.reshape(-1)
    b = labels1.reshape(-1)
    n = a.numel()
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=a.device)
        return Contingency(empty, empty, torch.zeros(0, dtype=torch.float64, device=a.device), 0.0)
    a_max = int(a.max()) + 1
    b_max = int(b.max()) + 1
    if a_max * b_max <= _DENSE_FACTOR * n + 1024:
        # Dense grid is small: one bincount, no sort. The key in int32 where it fits (7x faster to form).
        key_dtype = torch.int32 if a_max * b_max < 2**31 else torch.int64
        key = a.to(key_dtype) * b_max + b.to(key_dtype)
        dense = torch.bincount(key, minlength=a_max * b_max)
        cells = torch.nonzero(dense, as_tuple=False).reshape(-1)
        counts = dense[cells]
    else:
        a, b = a.to(torch.int64), b.to(torch.int64)
        # Labels are sparse or large: compact each map first so the key cannot overflow.
        a_values, a = torch.unique(a, return_inverse=True)
        b_values, b = torch.unique(b, return_inverse=True)
        b_max = b_values.numel()
        cells, counts = torch.unique(a * b_max + b, return_counts=True)
        rows = a_values[torch.div(cells, b_max, rounding_mode="floor")]
        cols = b_values[cells % b_max]
        return Contingency(rows, cols, counts.to(torch.float64), float(n))
    rows = torch.div(cells, b_max, rounding_mode="floor")
    cols = cells - rows * b_max
    return Contingency(rows, cols, counts.to(torch.float64), float(n))
