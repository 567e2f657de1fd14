"""Small helpers shared by the 3D baselines (3D U-Net, FC-DenseNet 3D).

The 3D networks may pool the z axis on fewer levels than the in-plane axes
(``z_pools``): seed 004 trained on 4-slice sub-volumes, which a network that
halves z at every level cannot take. A level that does not pool z uses a
(1, 2, 2) window.
"""

from __future__ import annotations

from typing import Any

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


def z_depth_settings(z_depth: int | None, preset_defaults: dict[str, dict[str, Any]], levels: int,
                     z_pools: int | None, tile_depth: int, margin_depth: int
                     ) -> tuple[dict[str, dict[str, Any]], int | None, int, int]:
    """What the ``z_depth`` setting of a 3D baseline changes (seed 004: 4 slices were best).

    ``z_depth`` slices per training sub-volume (every preset's ``patch_depth``;
    ``--set patch_depth=`` still wins) and per inference tile (``tile_depth``,
    keeping ``z_depth // 4`` slices of margin at each end); z is pooled on at
    most ``log2(z_depth)`` levels unless ``z_pools`` is given. ``None``
    changes nothing. Returns (preset defaults, z_pools, tile_depth, margin_depth).
    """
    if z_depth is None:
        return preset_defaults, z_pools, tile_depth, margin_depth
    if isinstance(z_depth, bool) or not isinstance(z_depth, int) or z_depth < 1:
        raise ValueError(f"z_depth must be a whole number >= 1, got {z_depth!r}")
    from grainbench.training.presets import PRESETS

    defaults = {name: {**preset_defaults.get(name, {}), "patch_depth": z_depth} for name in PRESETS}
    pools = z_pools if z_pools is not None else min(levels, z_depth.bit_length() - 1)
    return defaults, pools, z_depth, z_depth // 4
