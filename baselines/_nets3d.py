"""Small helpers shared by the 3D baselines (3D U-Net, FC-DenseNet 3D).

The 3D networks may pool the z axis on fewer levels than the in-plane axes
(``z_pools``): seed 004 trained on 4-slice sub-volumes, which a network that
halves z at every level cannot take. A level that does not pool z uses a
(1, 2, 2) window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def level_strides(levels: int, z_pools: int | None) -> list[tuple[int, int, int]]:
    """Pooling window of each level: (2, 2, 2) on the first ``z_pools`` levels, (1, 2, 2) below them.

    ``z_pools=None`` pools z on every level (isotropic, as the papers).
    """
    z = levels if z_pools is None else z_pools
    if not 0 <= z <= levels:
        raise ValueError(f"z_pools must be between 0 and {levels}, got {z_pools}")
    return [(2 if i < z else 1, 2, 2) for i in range(levels)]


def pad_to_multiple(x: torch.Tensor, multiple: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Replicate-pad a (N, C, D, H, W) tensor at the far ends up to multiples; returns it and the original size."""
    size = tuple(x.shape[2:])
    extra = [(-s) % m for s, m in zip(size, multiple)]
    if any(extra):
        # F.pad lists the last axis first
        x = F.pad(x, (0, extra[2], 0, extra[1], 0, extra[0]), mode="replicate")
    return x, size  # type: ignore[return-value]


def count_parameters(net: torch.nn.Module) -> int:
    """Learnable parameters of a module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
