"""The ``alzn_sim`` stand-in: dendritic solid in liquid, rendered like in-situ XCT (task ``phase``).

Seed 004 segments dendrites of Al-20wt%Zn growing in their melt in XCT
reconstructions (852 x 852 x 250, 2 reconstructions, HandSeg labels: 14 groups
of 8 slices, 6 / 4 / 4 groups for train / val / test). Its data are behind a
manual download (``alzn_xct``); this generator is the phase twin of
``synthetic``: small, deterministic, exact labels, no download.

Geometry (:func:`dendrite_volume`)
----------------------------------
A cylindrical sample (the machined rod, radius ``sample_radius`` of the
field) of liquid holding ``n_dendrites`` solid dendrites. Each dendrite has a
random crystal orientation (a uniformly random rotation); its growth
directions are the six <100> directions of that frame (cubic aluminium).
From the nucleus grows one primary arm along each of them, a tapered capsule
(radius ``primary_radius`` at the root down to ``tip_radius``, length drawn in
``arm_length``). Along every primary arm, every ``branch_spacing`` voxels,
secondary arms sprout along each of the four <100> directions perpendicular
to it with probability ``branch_probability``; they are shorter the closer
they are to the tip (``branch_ratio`` of the remaining arm length) and
thinner (``branch_radius``). Solid is the union of the capsules, clipped to
the sample. The test ``|p - q|^2 <= r^2`` is exact float arithmetic with no
library call, so the labels are the same bits on every numpy.

Image (:func:`render_xct`)
--------------------------
The grey levels of a reconstruction: air outside the rod, liquid, and the
darker solid (the Zn-poor dendrites absorb less; ``solid_grey`` <
``liquid_grey``); a 3D Gaussian point-spread blur (partial volumes at the
phase boundary); cupping (beam hardening: brighter towards the rod's
surface); ring artefacts (concentric rings about the rotation axis at fixed
radii, the same in every slice, as from miscalibrated detector pixels, their
strength jittering slice to slice); streaks (a few straight lines across each
slice at random angles); Gaussian noise. Each effect draws from its own
random stream spawned from the seed.

Dataset (:func:`generate_alzn_sim`)
-----------------------------------
Two reconstructions (independent samples, child seeds of ``seed``), A with
40 and B with 16 slices of 192 x 192, stacked along z into 56 slices = 7
groups of 8 consecutive slices (HandSeg's groups, scaled down from 14 to 7).
The split scales 6 / 4 / 4 groups to 3 / 2 / 2: train = groups 0-2 (slices
0-24 of A), val = groups 3-4 (24-40, the rest of A), test = groups 5-6
(40-56, all of B), so every split is one run of physically adjacent slices
of one reconstruction (3D networks see true z context) and the test
reconstruction is never seen in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

#: Slice ranges (0-based, half-open) of the stacked 56-slice stand-in; 7 groups of 8 slices.
ALZN_SIM_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 24), "val": (24, 40), "test": (40, 56)}
#: Slices of the two reconstructions (A, B) in stacking order.
ALZN_SIM_DEPTHS = (40, 16)
GROUP_SIZE = 8

#: Geometry of the default stand-in (lengths in voxels).
GEOMETRY_DEFAULTS: dict[str, Any] = {
    "n_dendrites": 12,
    "sample_radius": 0.46,  # of the field width
    "arm_length": (30.0, 60.0),
    "primary_radius": 5.0,
    "tip_radius": 2.0,
    "branch_spacing": 7.0,
    "branch_probability": 0.6,
    "branch_ratio": 0.5,
    "branch_radius": 2.6,
}

#: Grey levels and artefacts of the default stand-in (intensities in [0, 1]).
RENDER_DEFAULTS: dict[str, Any] = {
    "air_grey": 0.12,
    "liquid_grey": 0.62,
    "solid_grey": 0.44,
    "blur_sigma": 1.0,
    "cupping": 0.05,
    "rings": 14,
    "ring_strength": 0.035,
    "streaks": 2.0,  # mean per slice (Poisson)
    "streak_strength": 0.07,
    "noise_sigma": 0.04,
}

_STREAMS = ("geometry", "rings", "streaks", "noise")


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3 x 3 rotation (from a random unit quaternion)."""
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def _capsule(mask: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> None:
    """Mark the voxels within the tapered capsule p0 (radius r0) -> p1 (radius r1); in place."""
    lo = np.maximum(np.floor(np.minimum(p0, p1) - max(r0, r1)).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(p0, p1) + max(r0, r1)).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return
    z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = p1 - p0
    dd = float(d @ d) or 1.0
    t = np.clip(((z - p0[0]) * d[0] + (y - p0[1]) * d[1] + (x - p0[2]) * d[2]) / dd, 0.0, 1.0)
    r = r0 + (r1 - r0) * t
    dist2 = (z - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (x - p0[2] - t * d[2]) ** 2
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= dist2 <= r * r


def dendrite_volume(shape: tuple[int, int, int], rng: np.random.Generator, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Solid dendrites in a cylindrical sample of liquid (see the module docstring).

    Parameters
    ----------
    shape : (Z, H, W)
    rng : numpy Generator
        The geometry stream.
    **kw
        Overrides of :data:`GEOMETRY_DEFAULTS`.

    Returns
    -------
    (solid, inside) : two (Z, H, W) bool arrays
        Solid voxels, and the voxels inside the sample (the rest is air).
    """
    g = {**GEOMETRY_DEFAULTS, **kw}
    unknown = set(kw) - set(GEOMETRY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown geometry parameters {sorted(unknown)}; expected some of {sorted(GEOMETRY_DEFAULTS)}")
    zn, h, w = shape
    radius = g["sample_radius"] * w
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.ogrid[:h, :w]
    inside2d = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius
    solid = np.zeros(shape, dtype=bool)
    for _ in range(int(g["n_dendrites"])):
        rot = _rotation(rng)
        dirs = np.concatenate([rot.T, -rot.T])  # the six <100> directions, rows (z, y, x)
        rho, phi = radius * 0.85 * np.sqrt(rng.random()), 2 * np.pi * rng.random()
        nucleus = np.array([rng.uniform(-0.1 * zn, 1.1 * zn), cy + rho * np.sin(phi), cx + rho * np.cos(phi)])
        for k, u in enumerate(dirs):
            length = rng.uniform(*g["arm_length"])
            tip = nucleus + length * u
            _capsule(solid, nucleus, tip, g["primary_radius"], g["tip_radius"])
            perpendicular = [v for j, v in enumerate(dirs) if j % 3 != k % 3]
            s = g["branch_spacing"]
            while s < length - 2:
                root = nucleus + s * u
                r_root = g["primary_radius"] + (g["tip_radius"] - g["primary_radius"]) * s / length
                for v in perpendicular:
                    if rng.random() < g["branch_probability"]:
                        blen = g["branch_ratio"] * (length - s) * rng.uniform(0.6, 1.0)
                        _capsule(solid, root, root + blen * v, min(g["branch_radius"], r_root), 1.0)
                s += g["branch_spacing"] * rng.uniform(0.8, 1.2)
    inside = np.broadcast_to(inside2d, shape).copy()
    solid &= inside
    return solid, inside


def render_xct(solid: np.ndarray, inside: np.ndarray, seed: int | np.random.SeedSequence, **kw: Any) -> np.ndarray:
    """Grey XCT reconstruction of a solid/liquid/air volume as uint8 (see the module docstring).

    Parameters
    ----------
    solid, inside : (Z, H, W) bool arrays
        From :func:`dendrite_volume`.
    seed : int or SeedSequence
        Artefact streams are spawned from it (rings, streaks, noise).
    **kw
        Overrides of :data:`RENDER_DEFAULTS`.
    """
    c = {**RENDER_DEFAULTS, **kw}
    unknown = set(kw) - set(RENDER_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown render parameters {sorted(unknown)}; expected some of {sorted(RENDER_DEFAULTS)}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rings_rng, streak_rng, noise_rng = (np.random.default_rng(s) for s in ss.spawn(3))
    zn, h, w = solid.shape
    img = np.where(inside, np.where(solid, c["solid_grey"], c["liquid_grey"]), c["air_grey"]).astype(np.float32)
    if c["blur_sigma"] > 0:
        img = ndi.gaussian_filter(img, c["blur_sigma"], mode="nearest")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.ogrid[:h, :w]
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2).astype(np.float32)
    rmax = float(r.max())
    img += (c["cupping"] * (r / rmax) ** 2 * inside).astype(np.float32)
    if c["rings"] > 0:  # fixed radii (detector pixels), strength jittering per slice
        radii = rings_rng.uniform(2.0, rmax, size=int(c["rings"]))
        amps = rings_rng.normal(0.0, c["ring_strength"], size=int(c["rings"]))
        profile = sum(a * np.exp(-(r - q) ** 2 / (2 * 0.7 ** 2)) for q, a in zip(radii, amps)).astype(np.float32)
        jitter = rings_rng.uniform(0.6, 1.4, size=zn).astype(np.float32)
        img += jitter[:, None, None] * profile[None]
    yx = np.stack(np.mgrid[:h, :w], -1).astype(np.float32)
    for z in range(zn):
        for _ in range(streak_rng.poisson(c["streaks"])):
            angle = streak_rng.uniform(0, np.pi)
            through = np.array([cy, cx]) + streak_rng.uniform(-0.4, 0.4, size=2) * np.array([h, w])
            normal = np.array([np.cos(angle), -np.sin(angle)], dtype=np.float32)
            dist = (yx - through.astype(np.float32)) @ normal
            amp = streak_rng.uniform(0.4, 1.0) * c["streak_strength"] * streak_rng.choice([-1.0, 1.0])
            img[z] += (amp * np.exp(-dist ** 2 / (2 * 0.9 ** 2))).astype(np.float32)
    img += noise_rng.normal(0.0, c["noise_sigma"], size=img.shape).astype(np.float32)
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def phase_labels(solid: np.ndarray) -> np.ndarray:
    """Per-slice 4-connected components of the non-solid pixels (ids from 1), 0 on solid: the labels of
    the normal form (:func:`grainbench.data.loaders.normalise` derives the same from a phase mask)."""
    labels = np.zeros(solid.shape, dtype=np.int32)
    four = ndi.generate_binary_structure(2, 1)
    for z in range(solid.shape[0]):
        ndi.label(~solid[z], structure=four, output=labels[z])
    return labels


def generate_alzn_sim(seed: int = 0, size: int = 192, depths: tuple[int, ...] = ALZN_SIM_DEPTHS,
                      **kw: Any) -> dict[str, np.ndarray]:
    """Generate the ``alzn_sim`` dataset: reconstructions of ``depths`` slices stacked along z.

    Parameters
    ----------
    seed : int
        The same seed gives the same arrays; reconstruction ``i`` uses child
        ``i`` of ``SeedSequence(seed)`` (its geometry and artefact streams
        are spawned from that).
    size : int
        Slice height and width.
    depths : tuple of int
        Slices of each reconstruction; the default (40, 16) makes the 7
        groups of :data:`ALZN_SIM_SPLITS`.
    **kw
        Overrides of :data:`GEOMETRY_DEFAULTS` and :data:`RENDER_DEFAULTS`.

    Returns
    -------
    dict with, all (Z, H, W), Z = sum(depths):

    ``"image"`` uint8
        The grey reconstructions.
    ``"boundary"`` bool
        The solid (dendrite) phase: the phase task's foreground.
    ``"labels"`` int32
        :func:`phase_labels` of the solid.
    ``"reconstruction"`` int32, shape (Z,)
        Which reconstruction each slice comes from (0 = A, 1 = B).
    """
    geometry = {k: v for k, v in kw.items() if k in GEOMETRY_DEFAULTS}
    render = {k: v for k, v in kw.items() if k in RENDER_DEFAULTS}
    unknown = set(kw) - set(geometry) - set(render)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}")
    images, solids, which = [], [], []
    for i, (child, depth) in enumerate(zip(np.random.SeedSequence(seed).spawn(len(depths)), depths)):
        geo_ss, render_ss = child.spawn(2)
        solid, inside = dendrite_volume((int(depth), size, size), np.random.default_rng(geo_ss), **geometry)
        images.append(render_xct(solid, inside, render_ss, **render))
        solids.append(solid)
        which.append(np.full(int(depth), i, dtype=np.int32))
    solid = np.concatenate(solids)
    return {"image": np.concatenate(images), "boundary": solid, "labels": phase_labels(solid),
            "reconstruction": np.concatenate(which)}
