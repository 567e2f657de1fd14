"""Exact Euclidean distances from the pixels of one binary map to the nearest pixel of another.

Boundaries are a few percent of an image and most boundary pixels have a
counterpart within a few pixels, so the search is done in two stages:

1. a local search: the integer offsets within ``radius`` pixels, taken in
   rings of increasing distance, are looked up for all unresolved query
   pixels at once (a gather per ring, in torch on the input's device); the
   first ring with a hit holds the exact distance;
2. the few pixels farther than ``radius`` fall back to an exact global
   search: a k-d tree (:class:`scipy.spatial.cKDTree`) on the CPU, or on
   other devices (CUDA) a separable pass: the 1-D distance down each column
   with cumulative max/min, then a min over the row of ``g(r, k)^2 + (c - k)^2``.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from .pixels import mask_pixels

_CHUNK = 8192  # query pixels per block of the separable row pass
LOCAL_RADIUS = 16
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


@functools.lru_cache(maxsize=16)
def _ring_offsets(radius: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Integer offsets grouped by distance ring (k-1, k], each group sorted by distance."""
    r = torch.arange(-radius, radius + 1)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    dy, dx = dy.reshape(-1), dx.reshape(-1)
    d2 = dy * dy + dx * dx
    rings = []
    for k in range(radius + 1):
        sel = (d2 <= k * k) & (d2 > (k - 1) ** 2 if k > 0 else d2 >= 0)
        order = torch.argsort(d2[sel], stable=True)
        offs = torch.stack([dy[sel][order], dx[sel][order]], 1).to(device)
        rings.append((offs, d2[sel][order].to(device=device, dtype=torch.float64).sqrt()))
    return rings


def _local_search(target: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: torch.Tensor,
                  radius: int, known: torch.Tensor | None = None) -> torch.Tensor:
    """Exact distances up to ``radius``; ``inf`` for query pixels with no target that close.

    ``known`` (optional): the distances of :func:`_first_rings`, exact up to
    ring 1 and ``inf`` beyond; the rings from 2 on are searched for the others only.
    """
    padded = torch.nn.functional.pad(target, (radius, radius, radius, radius))
    zs, hp, wp = padded.shape
    flat = padded.reshape(-1)
    # One flat gather per ring: index of each query pixel in the padded stack, plus flat ring offsets.
    base = (z * hp + r + radius) * wp + c + radius
    if known is None:
        out = torch.full((z.numel(),), math.inf, dtype=torch.float64, device=target.device)
        todo, rings = torch.arange(z.numel(), device=target.device), _ring_offsets(radius, target.device)
    else:
        out = known.clone()
        todo = torch.nonzero(torch.isinf(out), as_tuple=True)[0]
        base, rings = base[todo], _ring_offsets(radius, target.device)[2:]
    for offs, dist in rings:
        if todo.numel() == 0:
            break
        hit = flat[base[:, None] + (offs[:, 0] * wp + offs[:, 1])[None, :]]  # (unresolved, ring size)
        found = hit.any(dim=1)
        if found.any():
            first = hit[found].to(torch.int8).argmax(dim=1)  # offsets are sorted: first hit is nearest
            out[todo[found]] = dist[first]
            keep = ~found
            todo, base = todo[keep], base[keep]
    return out


def _first_rings(target: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """Distances 0 (on the target) and 1 (a 4-neighbour on it) at the query pixels; ``inf`` elsewhere.

    Rings 0 and 1 of :func:`_local_search` settle most boundary pixels (about
    95 % on grain maps); one OpenCV dilation by a cross (it releases the GIL)
    and two lookups settle them without the rings' gathers.
    """
    if rows.size == 0:
        return torch.zeros(0, dtype=torch.float64)
    t = np.ascontiguousarray(target, dtype=bool).view(np.uint8)
    near = cv2.dilate(t, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    out = np.where(t[rows, cols] != 0, 0.0, np.where(near[rows, cols] != 0, 1.0, math.inf))
    return torch.from_numpy(out)


def _column_distance(target: torch.Tensor) -> torch.Tensor:
    """Distance along axis -2 to the nearest target pixel in the same column; inf if none."""
    h = target.shape[-2]
    idx = torch.arange(h, device=target.device, dtype=torch.int64).view(*([1] * (target.ndim - 2)), h, 1)
    idx = idx.expand_as(target)
    big = 4 * h + 4
    last = torch.where(target, idx, torch.full_like(idx, -big)).cummax(dim=-2).values
    nxt = torch.where(target, idx, torch.full_like(idx, big)).flip(-2).cummin(dim=-2).values.flip(-2)
    g = torch.minimum(idx - last, nxt - idx).to(torch.float32)
    return torch.where(g > 2 * h, torch.full_like(g, math.inf), g)


def _separable_search(target: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Exact in-plane distances at the given pixels of a (Z, H, W) stack, all in torch."""
    g2 = _column_distance(target).square()
    cols = torch.arange(target.shape[-1], device=target.device, dtype=torch.float32)
    out = torch.empty(z.numel(), dtype=torch.float32, device=target.device)
    for start in range(0, z.numel(), _CHUNK):
        sl = slice(start, start + _CHUNK)
        d2 = g2[z[sl], r[sl]] + (c[sl, None].to(torch.float32) - cols[None, :]).square()
        out[sl] = d2.min(dim=1).values
    return out.sqrt().to(torch.float64)


def _kdtree_search(target: torch.Tensor, z: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Exact in-plane distances at the given pixels with one k-d tree per slice (CPU)."""
    t = target.cpu().numpy()
    zq, pts = z.cpu().numpy(), torch.stack([r, c], 1).cpu().numpy()
    out = np.full(len(zq), np.inf)
    for zi in np.unique(zq):
        sel = zq == zi
        if t[zi].any():
            out[sel] = _tree_distances(np.argwhere(t[zi]), pts[sel])
    return torch.from_numpy(out).to(target.device)


def _tree_distances(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distance (float64) from each query (row, col) to the nearest of ``points`` (a k-d tree)."""
    # An unbalanced tree with large leaves builds 1.5x as fast (the queries are few). One query thread for
    # a few far pixels: they take microseconds, starting a pool takes milliseconds (and scoring's
    # threads already use the cores).
    tree = cKDTree(points, leafsize=128, balanced_tree=False, compact_nodes=False)
    return tree.query(queries, k=1, workers=1 if len(queries) < 4096 else -1)[0]


def slice_distances(target: torch.Tensor, target_pixels: tuple[np.ndarray, np.ndarray],
                    query_pixels: tuple[np.ndarray, np.ndarray], *, radius: int = LOCAL_RADIUS) -> torch.Tensor:
    """:func:`nearest_distances` of one CPU slice whose pixel lists are known.

    ``target`` is the (H, W) bool CPU tensor; ``target_pixels`` and
    ``query_pixels`` the (rows, cols) of its and the query's True pixels in
    row-major order (:func:`~grainbench.metrics.pixels.mask_pixels`), which
    scoring lists once per map for both directions and the other metrics.
    """
    r, c = (torch.from_numpy(x) for x in query_pixels)
    if radius > 0:
        known = _first_rings(target.numpy(), *query_pixels)
        out = _local_search(target[None], torch.zeros_like(r), r, c, radius, known) if radius > 1 else known
    else:
        out = torch.full((r.numel(),), math.inf, dtype=torch.float64)
    far = torch.nonzero(torch.isinf(out), as_tuple=True)[0]
    if far.numel() and target_pixels[0].size:
        points = np.stack(target_pixels, 1)  # np.argwhere's array
        out[far] = torch.from_numpy(_tree_distances(points, torch.stack([r[far], c[far]], 1).numpy()))
    return out


def nearest_distances(target: torch.Tensor, query: torch.Tensor, *, per_slice: bool = True,
                      backend: str = "auto", radius: int = LOCAL_RADIUS) -> torch.Tensor:
    """Distance from every True pixel of ``query`` to the nearest True pixel of ``target``.

    Parameters
    ----------
    target, query : bool tensors of shape (H, W) or (Z, H, W)
    per_slice : bool
        For stacks, measure in-plane distances slice by slice (the convention
        of seed 004: metrics act on z-slices). ``False`` measures 3-D
        distances with a k-d tree on the CPU.
    backend : {"auto", "kdtree", "torch"}
        Global search for pixels beyond ``radius``: ``auto`` uses the k-d
        tree for CPU tensors and the torch separable pass elsewhere.
    radius : int
        Reach of the local search (0 disables it).

    Returns
    -------
    float64 tensor with one distance per query pixel, in row-major order of
    the query pixels; ``inf`` where the target (slice) is empty.
    """
    if backend not in ("auto", "kdtree", "torch"):
        raise ValueError(f"unknown distance backend {backend!r} (expected 'auto', 'kdtree' or 'torch')")
    if not per_slice and target.ndim == 3:
        t, q = target.cpu().numpy(), query.cpu().numpy()
        if not q.any():
            return torch.zeros(0, dtype=torch.float64, device=target.device)
        if not t.any():
            return torch.full((int(q.sum()),), math.inf, dtype=torch.float64, device=target.device)
        d = cKDTree(np.argwhere(t)).query(np.argwhere(q), k=1, workers=-1)[0]
        return torch.from_numpy(d).to(target.device)
    if target.ndim == 2 and target.device.type == "cpu" and backend != "torch":
        return slice_distances(target, mask_pixels(target.numpy()), mask_pixels(query.numpy()), radius=radius)
    if target.ndim == 2:
        target, query = target[None], query[None]
    z, r, c = torch.nonzero(query, as_tuple=True)
    out = _local_search(target, z, r, c, radius) if radius > 0 else \
        torch.full((z.numel(),), math.inf, dtype=torch.float64, device=target.device)
    far = torch.nonzero(torch.isinf(out), as_tuple=True)[0]
    if far.numel():
        if backend == "auto":
            backend = "kdtree" if target.device.type == "cpu" else "torch"
        search = _kdtree_search if backend == "kdtree" else _separable_search
        out[far] = search(target, z[far], r[far], c[far])
    return out
