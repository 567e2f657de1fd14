"""Random training patches from serial stacks: crop, rotation by 90 degrees, flips.

For propagation methods (context ``"2d+prev"``) the previous slice's
boundary mask is cut and transformed together with the image, so a patch
always sees the matching region of slice z-1. For ``"2.5d"`` the neighbours
z-k..z+k (clamped at the ends) are returned as channels. For ``"3d"`` a
patch is a sub-volume of ``patch_depth`` consecutive slices, rotated and
flipped in-plane like the 2D patches and also flipped along z (seed 004
reflects across the x, y and z planes).

Channels: images are read as (Z, C, H, W) (:func:`grainbench.data.volume.as_channels`,
C = 1 for grey); a 2D patch holds the C channels of its slice, a 2.5D patch
the C channels of each neighbour in slice order, a 3D patch is (C, D, P, P).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.volume import Volume, as_channels


@dataclass
class Batch:
    """A batch of patches as numpy arrays.

    ``image`` (N, K, P, P) float32 in [0, 1] (K = C image channels, or
    (2k+1) * C for 2.5D), ``boundary`` (N, P, P) bool, ``prev`` (N, P, P)
    bool or None; for 3D patches ``image`` is (N, C, D, P, P) and
    ``boundary`` (N, D, P, P).
    """

    image: np.ndarray
    boundary: np.ndarray
    prev: np.ndarray | None


def volume_arrays(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Image as (Z, C, H, W) float32 in [0, 1] and boundary as (Z, H, W) bool, checked."""
    if volume.boundary is None:
        raise ValueError(f"{volume.name or 'volume'}: training needs a boundary ground truth")
    image = volume.image
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    image = as_channels(np.asarray(image, np.float32))
    return image, np.asarray(volume.boundary, bool)


class PatchSampler:
    """Draws augmented patches from one volume with its own seeded generator.

    Parameters
    ----------
    volume : Volume
        The training split.
    patch_size : int
        Side of the square patches (256 in the paper). Slices smaller than a
        patch are an error.
    context : str
        ``"2d"``, ``"2d+prev"`` (the first slice is skipped, as in the
        authors' data loader), ``"2.5d"`` or ``"3d"``.
    depth : int
        Neighbours on each side for ``"2.5d"``.
    patch_depth : int
        Slices per patch for ``"3d"`` (at most the volume's).
    seed : int
        Seed of the generator; :attr:`rng` can be saved and restored to resume.
    augment : bool
        Random rotations by 90 degrees and flips (the paper's augmentation).
    """

    def __init__(self, volume: Volume, patch_size: int, *, context: str = "2d", depth: int = 1,
                 seed: int = 0, augment: bool = True, patch_depth: int = 16) -> None:
        self.image, self.boundary = volume_arrays(volume)
        z, _, h, w = self.image.shape
        if patch_size > h or patch_size > w:
            raise ValueError(f"patch size {patch_size} exceeds the slice size {h} x {w}")
        if context == "3d" and not 1 <= patch_depth <= z:
            raise ValueError(f"patch depth {patch_depth} must be between 1 and the volume's {z} slices")
        self.patch_depth = patch_depth
        self.first = 1 if context == "2d+prev" else 0
        if z <= self.first:
            raise ValueError(f"{volume.name or 'volume'}: {z} slice(s) is too few for context {context!r}")
        self.patch_size, self.context, self.depth, self.augment = patch_size, context, depth, augment
        self.rng = np.random.default_rng(seed)

    @property
    def n_slices(self) -> int:
        """Slices that can be sampled (all but the first for propagation methods); for ``"3d"``
        the number of disjoint sub-volumes, ``Z // patch_depth``."""
        if self.context == "3d":
            return max(1, self.image.shape[0] // self.patch_depth)
        return self.image.shape[0] - self.first

    def _one(self, z: int, y: int, x: int, k: int, fv: bool, fh: bool, fz: bool = False):
        p = self.patch_size
        if self.context == "3d":
            zz = slice(z, z + self.patch_depth)
            arrays = [self.image[zz, :, y:y + p, x:x + p].transpose(1, 0, 2, 3),
                      self.boundary[zz, y:y + p, x:x + p][None]]
        else:
            if self.context == "2.5d":
                zs = np.clip(np.arange(z - self.depth, z + self.depth + 1), 0, self.image.shape[0] - 1)
                img = self.image[zs, :, y:y + p, x:x + p].reshape(-1, p, p)
            else:
                img = self.image[z, :, y:y + p, x:x + p]
            arrays = [img, self.boundary[z, y:y + p, x:x + p][None]]
            if self.context == "2d+prev":
                arrays.append(self.boundary[z - 1, y:y + p, x:x + p][None])
        out = []
        for a in arrays:  # (K, P, P), or (C, D, P, P) for 3D: transform the last two axes (and z)
            a = np.rot90(a, k, axes=(-2, -1))
            if fv:
                a = a[..., ::-1, :]
            if fh:
                a = a[..., ::-1]
            if fz:
                a = a[:, ::-1]
            out.append(np.ascontiguousarray(a))
        return out

    def sample(self, n: int) -> Batch:
        """``n`` random patches (slice, position, rotation and flips drawn from :attr:`rng`)."""
        h, w = self.image.shape[-2:]
        p = self.patch_size
        vol = self.context == "3d"
        last = self.image.shape[0] - self.patch_depth + 1 if vol else self.image.shape[0]
        zs = self.rng.integers(self.first, last, n)
        ys = self.rng.integers(0, h - p + 1, n)
        xs = self.rng.integers(0, w - p + 1, n)
        n_flips = 3 if vol else 2  # 3D patches are also flipped along z
        if self.augment:
            ks = self.rng.integers(0, 4, n)
            flips = self.rng.random((n, n_flips)) < 0.5
        else:
            ks, flips = np.zeros(n, int), np.zeros((n, n_flips), bool)
        parts = [self._one(z, y, x, k, *f) for z, y, x, k, f in zip(zs, ys, xs, ks, flips)]
        image = np.stack([q[0] for q in parts])
        boundary = np.stack([q[1][0] for q in parts])
        prev = np.stack([q[2][0] for q in parts]) if self.context == "2d+prev" else None
        return Batch(image, boundary, prev)

    def epoch(self, patches: int, batch_size: int):
        """Yield batches that together hold ``patches`` patches."""
        done = 0
        while done < patches:
            n = min(batch_size, patches - done)
            yield self.sample(n)
            done += n

    # Resumable state: the PCG64 state is a dict of Python ints (JSON-safe).
    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def full_slices(volume: Volume, context: str = "2d", depth: int = 1) -> Batch:
    """Every slice as one un-augmented sample (validation); skips slice 0 for ``"2d+prev"``."""
    image, boundary = volume_arrays(volume)
    first = 1 if context == "2d+prev" else 0
    zs = np.arange(first, image.shape[0])
    if context == "2.5d":
        idx = np.clip(zs[:, None] + np.arange(-depth, depth + 1)[None], 0, image.shape[0] - 1)
        img = image[idx].reshape(len(zs), -1, *image.shape[-2:])
    else:
        img = image[zs]
    prev = boundary[zs - 1] if context == "2d+prev" else None
    return Batch(img, boundary[zs], prev)
