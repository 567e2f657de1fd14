"""The ``xct`` layout: grey reconstructions plus hand-labelled slices in groups (seed 004's HandSeg).

The Materials Data Facility record of seed 004 (doi 10.18126/cxf3-hrum) is
downloaded by hand (Globus), and its exact file names are not pinned in
grainbench. A folder laid out as follows is accepted instead::

    ALZN/
      reconstructions/        one grey reconstruction per time step, (Z, H, W):
        t0105.tif               a multi-page TIFF (one page per z slice), or
        t0110.h5                an HDF5 file (dataset "image", or its only 3D dataset)
      handseg/                hand-labelled slices of some reconstructions
        t0105/                  a folder named after the reconstruction's file stem
          0040.png              one label image per slice, named by its 0-based z;
          ...                   dendrite (solid) != 0, liquid/background = 0

Labelled slices, ordered by reconstruction (file-name order) then z, form
consecutive groups of ``group_size`` (8 in seed 004: 112 slices of 2
reconstructions = 14 groups); a split names its groups by index. Every group
must lie in one reconstruction. Nothing is read whole: a split reads only
its labelled slices of each reconstruction (:func:`grainbench.data.chunked.open_stack`),
and :func:`reconstruction_paths` gives the reconstructions for sliding-window
inference over whole volumes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import InputFileError
from ..io import IMAGE_SUFFIXES, TIFF_SUFFIXES, read_array
from .chunked import open_stack

RECON_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5")
_Z_NAME = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Labelled:
    """One hand-labelled slice: its reconstruction (file stem), z (0-based) and label file."""

    recon: str
    z: int
    path: Path


def _dirs(layout: Mapping[str, Any]) -> tuple[str, str, int]:
    return (str(layout.get("reconstructions", "reconstructions")), str(layout.get("labels", "handseg")),
            int(layout.get("group_size", 8)))


def reconstruction_paths(root: Path, layout: Mapping[str, Any]) -> dict[str, Path]:
    """The reconstructions of an ``xct`` folder by file stem, in file-name order."""
    recon_dir = root / _dirs(layout)[0]
    if not recon_dir.is_dir():
        raise InputFileError(f"{recon_dir}: missing folder (one grey reconstruction per time step: "
                             f"{', '.join(RECON_SUFFIXES)})")
    found = sorted(p for p in recon_dir.iterdir() if p.suffix.lower() in RECON_SUFFIXES and p.is_file())
    if not found:
        raise InputFileError(f"{recon_dir}: holds no reconstruction ({', '.join(RECON_SUFFIXES)})")
    stems: dict[str, Path] = {}
    for p in found:
        if p.stem in stems:
            raise InputFileError(f"{p}: two reconstructions named {p.stem!r} ({stems[p.stem].name} and {p.name})")
        stems[p.stem] = p
    return stems


def labelled_slices(root: Path, layout: Mapping[str, Any], recons: Iterable[str]) -> list[Labelled]:
    """Every label file of the ``labels`` folder, ordered by reconstruction then z."""
    label_dir = root / _dirs(layout)[1]
    if not label_dir.is_dir():
        raise InputFileError(f"{label_dir}: missing folder (one sub-folder of label slices per reconstruction)")
    order = {s: i for i, s in enumerate(recons)}
    out: list[Labelled] = []
    for sub in sorted(label_dir.iterdir()):
        if not sub.is_dir():
            raise InputFileError(f"{sub}: expected only folders named after reconstructions in {label_dir}")
        if sub.name not in order:
            raise InputFileError(f"{sub}: no reconstruction named {sub.name!r} in {root / _dirs(layout)[0]} "
                                 f"(found {', '.join(order)})")
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES + TIFF_SUFFIXES or not _Z_NAME.match(f.stem):
                raise InputFileError(f"{f}: label slices must be images named by their 0-based z (e.g. 0040.png)")
            out.append(Labelled(sub.name, int(f.stem), f))
    out.sort(key=lambda s: (order[s.recon], s.z))
    return out


def groups_of(slices: list[Labelled], group_size: int) -> list[list[Labelled]]:
    """Consecutive groups of ``group_size`` labelled slices."""
    return [slices[i:i + group_size] for i in range(0, len(slices), group_size)]


def check_xct(root: Path, layout: Mapping[str, Any], *, n_groups: int, shape: Iterable[int] | None = None
              ) -> list[str]:
    """Check an ``xct`` folder; raise :class:`InputFileError` naming the first bad file.

    Checks: each reconstruction opens as a 3D stack (of ``shape`` (Z, H, W)
    where given), all of one height and width; every label file is one
    binary image of that height and width at a z inside its reconstruction;
    there are exactly ``n_groups`` groups of ``group_size`` slices, each in
    one reconstruction. Only the label slices and the stacks' headers are
    read. Returns the relative paths of the files to install.
    """
    recon_dir, _, group_size = _dirs(layout)
    recons = reconstruction_paths(root, layout)
    depth: dict[str, int] = {}
    hw: tuple[int, int] | None = None
    want = tuple(shape) if shape is not None else None
    for stem, p in recons.items():
        with open_stack(p) as s:
            if want is not None and s.shape != want:
                raise InputFileError(f"{p}: reconstruction has shape {s.shape} (Z, H, W), expected {want}")
            if hw is not None and s.shape[1:] != hw:
                raise InputFileError(f"{p}: slices are {s.shape[1:]}, the other reconstructions' {hw}")
            hw, depth[stem] = s.shape[1:], s.shape[0]
    slices = labelled_slices(root, layout, recons)
    for s in slices:
        if s.z >= depth[s.recon]:
            raise InputFileError(f"{s.path}: z = {s.z} is outside reconstruction {s.recon!r} "
                                 f"({depth[s.recon]} slices)")
        lab = read_array(s.path, mask=True)
        if lab.shape != hw:
            raise InputFileError(f"{s.path}: label slice is {lab.shape}, the reconstructions' slices are {hw}")
        values = np.unique(lab)
        if values.size > 2 or (values.size == 2 and values[0] != 0):
            raise InputFileError(f"{s.path}: not a binary label (values {values[:6].tolist()}...); "
                                 "expected dendrite != 0, liquid = 0")
    if len(slices) != n_groups * group_size:
        raise InputFileError(f"{root / _dirs(layout)[1]}: {len(slices)} labelled slices, expected {n_groups} "
                             f"groups of {group_size} = {n_groups * group_size}")
    for i, g in enumerate(groups_of(slices, group_size)):
        if len({s.recon for s in g}) > 1:
            raise InputFileError(f"{g[0].path.parent}: group {i} (slices {g[0].recon}:{g[0].z} to "
                                 f"{g[-1].recon}:{g[-1].z}) spans two reconstructions; each group of "
                                 f"{group_size} must lie in one")
    return ([f"{recon_dir}/{p.name}" for p in recons.values()]
            + [s.path.relative_to(root).as_posix() for s in slices])


def read_xct_groups(root: Path, layout: Mapping[str, Any], groups: Iterable[int]
                    ) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """The grey slices and label masks of ``groups``: (image (N, H, W) stored dtype, mask (N, H, W) bool,
    names ``"RECON:z"``, whether the slices are consecutive z of one reconstruction)."""
    _, _, group_size = _dirs(layout)
    recons = reconstruction_paths(root, layout)
    slices = labelled_slices(root, layout, recons)
    all_groups = groups_of(slices, group_size)
    chosen: list[Labelled] = []
    for g in groups:
        if not 0 <= g < len(all_groups):
            raise InputFileError(f"{root / _dirs(layout)[1]}: group {g} does not exist ({len(all_groups)} groups)")
        chosen += all_groups[g]
    order = {stem: i for i, stem in enumerate(recons)}
    chosen.sort(key=lambda s: (order[s.recon], s.z))
    images, masks = [], []
    for stem in dict.fromkeys(s.recon for s in chosen):  # each reconstruction opened once, in order
        with open_stack(recons[stem]) as stack:
            images += [np.asarray(stack[s.z]) for s in chosen if s.recon == stem]
    masks = [read_array(s.path, mask=True) != 0 for s in chosen]
    zs = [s.z for s in chosen]
    consecutive = len({s.recon for s in chosen}) == 1 and all(b - a == 1 for a, b in zip(zs, zs[1:]))
    return np.stack(images), np.stack(masks), [f"{s.recon}:{s.z}" for s in chosen], consecutive
