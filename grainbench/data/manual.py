"""Installing datasets the user got by hand, and the local lock of their hashes.

``grainbench data import NAME PATH`` covers three cases:

* a registered ``manual`` dataset (login-walled hosts, data shared on request):
  the file is checked against the published sha256 where one exists, else
  against the structure the registry describes (keys, shapes, dtypes, value
  ranges), and the user's sha256 is pinned in ``<cache>/locks.toml`` so a later
  change is noticed;
* a registered ``https`` dataset downloaded elsewhere (a folder holding the
  registry's relative paths): every file's sha256 is checked;
* a name the registry does not know and a folder with ``images/`` and
  ``masks/`` of the same file names: a new local dataset, recorded in
  ``<cache>/local.toml``.

Files are copied to a temporary name inside the cache, checked there, and only
then renamed into place, so a failed import leaves an existing good copy as it
was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import DatasetError, InputFileError
from ..io import IMAGE_SUFFIXES, TIFF_SUFFIXES, atomic_write, read_array, sha256_file
from .cache import (  # noqa: F401  (read_locks, pin_hash, ... re-exported: their old home)
    DatasetWarning,
    cache_dir,
    dataset_dir,
    local_registry_path,
    locks_path,
    pin_hash,
    read_locks,
    toml_key,
    toml_value,
    write_locks,
)
from .registry import Dataset, load_registry, parse_entry

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


# --------------------------------------------------------------------------- missing data

def missing_message(ds: Dataset, what: str | None = None) -> str:
    """The error text for a dataset that is not installed: where to get it and the exact import command."""
    target = what or (ds.files[0].path if ds.files else "FOLDER")
    where = ds.instructions or f"see {ds.homepage}"
    home = f" (homepage {ds.homepage})" if ds.homepage and ds.homepage not in where else ""
    return (f"dataset '{ds.name}' is not installed in {dataset_dir(ds.name)}. {where}{home} "
            f"Then run: grainbench data import {ds.name} /path/to/{target}")


def require_installed(ds: Dataset) -> Path:
    """The folder of an installed manual or local dataset; a clear error when it is missing or changed.

    Each file is checked against its pinned sha256 (the registry's or the one
    pinned at import) before the dataset is used, so a file changed in place
    never goes into a record under its old hash; the check re-hashes only
    when the file's size or modification time differ from the import's.
    """
    if ds.layout_kind == "unpinned":
        raise DatasetError(f"dataset '{ds.name}': its file list is not pinned in the registry yet. {ds.instructions}")
    dest = dataset_dir(ds.name)
    if ds.files:
        for f in ds.files:
            if not (dest / f.path).is_file():
                raise DatasetError(missing_message(ds, f.path))
        pins = read_locks().get(ds.name, {})
        for f in ds.files:
            check_unchanged(ds.name, f.path, dest / f.path, f.sha256 or pins.get(f.path))
    elif ds.layout_kind == "xct":  # no published file list: the files pinned at import
        pins = read_locks().get(ds.name, {})
        if not pins or not dest.is_dir():
            raise DatasetError(missing_message(ds))
        for rel, sha in pins.items():
            if not (dest / rel).is_file():
                raise DatasetError(missing_message(ds, rel))
            check_unchanged(ds.name, rel, dest / rel, sha)
    elif not (dest / ds.layout.get("image_dir", "")).is_dir():
        raise DatasetError(missing_message(ds))
    return dest


_STATS = ".stats.json"  # per dataset folder: {relative path: [size, mtime_ns, sha256]} seen at import


def _read_stats(name: str) -> dict[str, list]:
    try:
        stats = json.loads((dataset_dir(name) / _STATS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stats if isinstance(stats, dict) else {}


def _remember_stat(name: str, rel: str, path: Path, sha256: str) -> None:
    stats = _read_stats(name)
    st = path.stat()
    stats[rel] = [st.st_size, st.st_mtime_ns, sha256]
    with atomic_write(dataset_dir(name) / _STATS, "w") as fh:
        json.dump(stats, fh, indent=1)


def check_unchanged(name: str, rel: str, path: Path, pinned: str | None) -> None:
    """Refuse a dataset file whose content is no longer the pinned ``sha256`` (re-hashed when its stat changed)."""
    if pinned is None:
        return
    st = path.stat()
    seen = _read_stats(name).get(rel)
    if seen == [st.st_size, st.st_mtime_ns, pinned]:
        return
    got = sha256_file(path)
    if got != pinned:
        raise DatasetError(f"{path}: changed since it was imported (sha256 {got}, pinned {pinned}); "
                           f"re-import it: grainbench data import {name} PATH")
    _remember_stat(name, rel, path, got)


# --------------------------------------------------------------------------- import

def import_dataset(name: str, path: str | os.PathLike, *, check_shape: bool = True, progress: bool = False) -> Path:
    """Verify a dataset the user obtained by hand and install it into the cache.

    Parameters
    ----------
    name : str
        A registered dataset, or a new name for a local folder of image/mask pairs.
    path : path-like
        The file (e.g. ``pure_iron_grain_data_sets.hdf5``) or folder to import.
    check_shape : bool
        Require the published shape where the registry records one. Turn off
        to import a cut-down copy (tests, quick experiments).
    progress : bool
        Report the copy and check on stderr while they run (:mod:`grainbench.progress`).

    Returns
    -------
    pathlib.Path
        The dataset folder in the cache.

    Raises
    ------
    InputFileError
        The file does not hold what the dataset should (names the file and the problem).
    DatasetError
        Hash mismatch, unknown layout, or a name that cannot be used.
    """
    from ..progress import progress as progress_bar

    with progress_bar(f"importing {name}", None, enabled=progress) as bar:
        bar.line(f"copying, hashing and checking {path}")
        out = _import(name, Path(path).expanduser(), check_shape)
        bar.line("done")
    return out


def _import(name: str, src: Path, check_shape: bool) -> Path:
    if not src.exists():
        raise InputFileError(f"{src}: file not found")
    registry = load_registry()
    if name not in registry:
        return _import_local(name, src)
    ds = registry[name]
    if ds.source == "generate":
        raise DatasetError(f"dataset '{name}' is generated locally; run: grainbench data generate {name}")
    if ds.layout_kind == "unpinned":
        raise DatasetError(f"dataset '{name}': its file list is not pinned in the registry yet, so it cannot "
                           f"be imported. {ds.instructions}")
    if ds.layout_kind == "xct":
        return _import_xct(ds, src, check_shape)
    if ds.source == "local" or (ds.layout_kind == "pairs" and not ds.files):
        return _import_pairs_folder(ds, src)
    if len(ds.files) == 1 and src.is_file():
        _install_file(ds, ds.files[0].path, src, check_shape=check_shape, group=_group_of(ds, src))
        for other in companion_datasets(name, src):
            try:
                _install_file(registry[other], registry[other].files[0].path, src, check_shape=check_shape,
                              group=registry[other].layout["legacy_group"])
            except (InputFileError, DatasetError) as exc:
                warnings.warn(f"dataset '{other}' (in the same file) was not imported: {exc}", DatasetWarning,
                              stacklevel=3)
        return dataset_dir(name)
    if src.is_dir():
        # a folder holding the registry's relative paths (e.g. a copy of tbm made elsewhere)
        for f in ds.files:
            if not (src / f.path).is_file():
                raise InputFileError(f"{src}: missing {f.path} of dataset '{name}'")
        for f in ds.files:
            _install_file(ds, f.path, src / f.path, check_shape=check_shape)
        return dataset_dir(name)
    raise InputFileError(f"{src}: dataset '{name}' has {len(ds.files)} files; pass the folder that holds them")


# --------------------------------------------------------------------------- HDF5 layouts of other years

def _hdf5_groups(path: Path) -> set[str] | None:
    """The top-level groups of an HDF5 file (None when ``path`` is not one)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:  # hard links only: an external link is never followed
            return {k for k in f.keys() if isinstance(f.get(k, getlink=True), h5py.HardLink)
                    and isinstance(f[k], h5py.Group)}
    except OSError:
        return None


def _group_of(ds: Dataset, src: Path) -> str | None:
    """The group holding ``ds``'s datasets in ``src``: None for the root layout, else ``layout.legacy_group``.

    An HDF5 entry may name a ``legacy_group``: an older release of the file kept
    the datasets under that group (the 2019 pure-iron file: ``real/image`` ...,
    beside ``simulated/``). The root layout wins when the root holds the image.
    """
    group = ds.layout.get("legacy_group") if ds.layout_kind == "hdf5" else None
    if not isinstance(group, str):
        return None
    import h5py

    try:
        with h5py.File(src, "r") as f:
            at_root = isinstance(f.get(ds.layout["image"]), h5py.Dataset)
            return group if not at_root and isinstance(f.get(group), h5py.Group) else None
    except OSError:
        return None  # check_structure names the unreadable file


def companion_datasets(name: str, path: str | os.PathLike) -> list[str]:
    """Other registered datasets that an import of ``name`` from HDF5 ``path`` installs too.

    Those whose ``legacy_group`` is a group of the file (the 2019 pure-iron file's
    ``simulated/`` group is ``potts_authors``, the authors' own Potts volume),
    when the file holds ``name``'s datasets under its own legacy group.
    """
    registry = load_registry()
    ds = registry.get(name)
    path = Path(path).expanduser()
    if ds is None or not path.is_file() or _group_of(ds, path) is None:
        return []
    groups = _hdf5_groups(path) or set()
    return [n for n, e in registry.items() if n != name and e.layout_kind == "hdf5" and len(e.files) == 1
            and e.layout.get("legacy_group") in groups]


def _extract_group(src: Path, group: str, layout: Mapping[str, Any], dst: Path) -> None:
    """Write the layout's datasets of ``src[group]`` at the root of a new HDF5 file ``dst`` (the current layout)."""
    import h5py

    from ..io import check_hdf5_links

    try:
        fi = h5py.File(src, "r")
    except OSError as exc:
        raise InputFileError(f"{src}: not a readable HDF5 file ({exc})") from None
    with fi, h5py.File(dst, "w") as fo:
        check_hdf5_links(fi, src)
        g = fi[group]
        roles = {r: layout[r] for r in ("image", "labels", "boundary") if isinstance(layout.get(r), str)}
        for role, key in roles.items():
            if not isinstance(g.get(key), h5py.Dataset):
                raise InputFileError(f"{src}: no dataset '{group}/{key}' ({role}); found {sorted(g.keys())} in "
                                     f"{group}/; expected {', '.join(roles.values())} at the root (or under "
                                     f"{group}/, the older layout)")
        for key in roles.values():  # in blocks along the first axis: a full stack never sits in memory
            d = fo.create_dataset(key, shape=g[key].shape, dtype=g[key].dtype, track_times=False)
            step = max(1, (1 << 24) // max(1, int(np.prod(g[key].shape[1:]))))
            for i in range(0, g[key].shape[0], step):
                d[i:i + step] = g[key][i:i + step]


# --------------------------------------------------------------------------- installing a file

def _install_file(ds: Dataset, rel: str, src: Path, *, check_shape: bool, group: str | None = None) -> None:
    """Copy (or, from ``group`` of an older HDF5 layout, convert) ``src`` to ``rel`` of ``ds``, checked first.

    Everything is staged in a temporary folder inside the cache and renamed
    into place only when the checks pass, so a failed import leaves the cache
    exactly as it was (no empty dataset folder, no cache folder made for nothing).
    """
    entry = ds.file(rel)
    folder, root = dataset_dir(ds.name), cache_dir()
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{ds.name}.", suffix=".importing", dir=root))
    tmp = stage / rel
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if group is None:
            got = _copy_hashing(src, tmp)
        else:
            _extract_group(src, group, ds.layout, tmp)
            got = sha256_file(tmp)
        if entry.sha256 is not None and group is None:
            if got != entry.sha256:
                raise DatasetError(f"{src}: not the published {rel} of dataset '{ds.name}': "
                                   f"expected sha256 {entry.sha256}, got {got}")
        else:
            # no published checksum: the structure is the evidence (checked on the copy we install)
            check_structure(ds, tmp, shown_as=src if group is None else Path(f"{src}[{group}/]"),
                            check_shape=check_shape)
        if not folder.exists():
            os.replace(stage, folder)  # the whole new dataset folder appears at once
        else:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, folder / rel)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if made_root:
            try:
                root.rmdir()
            except OSError:
                pass
        raise
    shutil.rmtree(stage, ignore_errors=True)
    if entry.sha256 is None or group is not None:
        pin_hash(ds.name, rel, got)
    _remember_stat(ds.name, rel, folder / rel, got)


def _copy_hashing(src: Path, dst: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for block in iter(lambda: fi.read(chunk), b""):
            h.update(block)
            fo.write(block)
        fo.flush()
        os.fsync(fo.fileno())
    return h.hexdigest()


# --------------------------------------------------------------------------- structure checks

def check_structure(ds: Dataset, path: Path, *, shown_as: Path | None = None, check_shape: bool = True) -> None:
    """Check that ``path`` has the layout the registry describes for ``ds``; raise InputFileError if not."""
    kind = ds.layout_kind
    where = shown_as or path
    if kind == "hdf5":
        shape = ds.shape if check_shape else None
        found = check_hdf5(path, ds.layout, shape=shape, shown_as=shown_as)
        depth = found[ds.layout.get("axes", "ZHW").index("Z")]
    elif kind in ("tiff", "npy"):
        arr = read_array(path)
        if arr.ndim != 3:
            raise InputFileError(f"{where}: expected a (Z, H, W) stack, got shape {arr.shape}")
        _check_values(arr, where, "stack")
        depth = arr.shape[0]
    else:
        raise DatasetError(f"dataset '{ds.name}': no structure check for layout {kind!r}")
    for sname, sp in ds.splits.items():  # every split must fit, or a later run would crash
        if sp.fraction is None and sp.stop is not None and sp.stop > depth:
            raise InputFileError(f"{where}: {depth} slices, but split '{sname}' of dataset '{ds.name}' needs "
                                 f"slices {sp.start}:{sp.stop}")


def _check_values(arr: np.ndarray, where: object, what: str) -> None:
    """Refuse an empty array (a zero-sized axis) or one with NaN/inf values."""
    if 0 in arr.shape:
        raise InputFileError(f"{where}: {what} has shape {arr.shape}, an axis of size 0")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputFileError(f"{where}: {what} holds NaN or infinite values")


def check_hdf5(path: Path, layout: Mapping[str, Any], *, shape: Iterable[int] | None = None,
               shown_as: Path | None = None) -> None:
    """Check an HDF5 stack: datasets present, same 3D shape, integer labels, boundary values as declared,
    no empty axis, finite image values, no links to other files. Returns the common shape.

    Values are read in blocks along the first axis so a 1024 x 1024 x 296 stack
    is checked without loading it whole.
    """
    import h5py

    from ..io import check_hdf5_links

    where = shown_as or path
    roles = {r: layout[r] for r in ("image", "labels", "boundary") if isinstance(layout.get(r), str)}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(f"{where}: not a readable HDF5 file ({exc})") from None
    with f:
        check_hdf5_links(f, where)
        found = sorted(f.keys())
        for role, key in roles.items():
            if key not in f or not isinstance(f[key], h5py.Dataset):
                legacy = layout.get("legacy_group")
                hint = (f"; expected {', '.join(roles.values())} at the root (or under {legacy}/, the older "
                        "layout)") if isinstance(legacy, str) else ""
                raise InputFileError(f"{where}: no dataset '{key}' ({role}); found {found}{hint}")
        shapes = {key: f[key].shape for key in roles.values()}
        axes = layout.get("axes", "ZHW")
        for key, s in shapes.items():
            if len(s) != 3:
                raise InputFileError(f"{where}: dataset '{key}' has shape {s}, expected 3 axes ({', '.join(axes)})")
        if len(set(shapes.values())) != 1:
            raise InputFileError(f"{where}: datasets differ in shape {shapes}")
        if shape is not None and tuple(shape) != next(iter(shapes.values())):
            raise InputFileError(f"{where}: shape {next(iter(shapes.values()))}, expected {tuple(shape)} "
                                 f"(axes {', '.join(axes)}); to import a cut-down or other-sized copy, "
                                 "use --any-shape (check_shape=False)")
        common = next(iter(shapes.values()))
        if 0 in common:
            raise InputFileError(f"{where}: datasets have shape {common}, an axis of size 0")
        img = f[roles["image"]]
        if img.dtype.kind not in "uif" or img.dtype.itemsize > 8:
            raise InputFileError(f"{where}: dataset '{roles['image']}' has dtype {img.dtype}, expected a numeric image")
        if img.dtype.kind == "f":
            for block in _blocks(img):
                if not np.isfinite(block).all():
                    raise InputFileError(f"{where}: dataset '{roles['image']}' holds NaN or infinite values")
        if "labels" in roles and f[roles["labels"]].dtype.kind not in "ui":
            raise InputFileError(f"{where}: dataset '{roles['labels']}' has dtype {f[roles['labels']].dtype}, "
                                 "expected integer grain ids")
        bd = f[roles["boundary"]]
        if bd.dtype.kind not in "uib":
            raise InputFileError(f"{where}: dataset '{roles['boundary']}' has dtype {bd.dtype}, expected integers")
        allowed = set(layout.get("boundary_values", [0, 1, 255]))
        for block in _blocks(bd):
            bad = set(np.unique(block).tolist()) - allowed
            if bad:
                raise InputFileError(f"{where}: dataset '{roles['boundary']}' holds values {sorted(bad)[:5]}, "
                                     f"expected only {sorted(allowed)}")
        if "labels" in roles:
            for block in _blocks(f[roles["labels"]]):
                if block.size and block.min() < 0:
                    raise InputFileError(f"{where}: dataset '{roles['labels']}' has negative grain ids")
    return tuple(common)


def _blocks(dset, budget: int = 1 << 24):
    step = max(1, budget // max(1, int(np.prod(dset.shape[1:]))))
    for i in range(0, dset.shape[0], step):
        yield dset[i:i + step]


def pair_names(folder: Path, image_dir: str = "images", mask_dir: str = "masks") -> list[str]:
    """File names present in both ``folder/image_dir`` and ``folder/mask_dir``; a clear error on any mismatch."""
    idir, mdir = folder / image_dir, folder / mask_dir
    for d in (idir, mdir):
        if not d.is_dir():
            raise InputFileError(f"{folder}: expected folders {image_dir}/ and {mask_dir}/ with files of the "
                                 f"same names; {d.name}/ is missing")
    suffixes = IMAGE_SUFFIXES + TIFF_SUFFIXES
    imgs = {p.name for p in idir.iterdir() if p.suffix.lower() in suffixes}
    masks = {p.name for p in mdir.iterdir() if p.suffix.lower() in suffixes}
    if not imgs:
        raise InputFileError(f"{idir}: holds no PNG/JPEG/BMP/TIFF images")
    if imgs != masks:
        no_mask, no_img = sorted(imgs - masks), sorted(masks - imgs)
        parts = []
        if no_mask:
            parts.append(f"images without a mask: {no_mask[:5]}")
        if no_img:
            parts.append(f"masks without an image: {no_img[:5]}")
        raise InputFileError(f"{folder}: " + "; ".join(parts))
    return sorted(imgs)


def check_pairs(folder: Path, image_dir: str = "images", mask_dir: str = "masks") -> list[str]:
    """Check a folder of image/mask pairs: same names, readable, same height/width, 2D masks."""
    names = pair_names(folder, image_dir, mask_dir)
    for n in names:
        img = read_array(folder / image_dir / n)
        if img.ndim == 3 and img.shape[-1] in (3, 4):
            img = img[..., 0]
        mask = read_array(folder / mask_dir / n, mask=True)
        if mask.ndim != 2:
            raise InputFileError(f"{folder / mask_dir / n}: mask must be one 2D image, got shape {mask.shape}")
        if img.shape[:2] != mask.shape:
            raise InputFileError(f"{folder / mask_dir / n}: mask shape {mask.shape} differs from image shape {img.shape[:2]}")
    return names


# --------------------------------------------------------------------------- folders of pairs

def _import_pairs_folder(ds: Dataset, src: Path) -> Path:
    image_dir, mask_dir = ds.layout.get("image_dir", "images"), ds.layout.get("mask_dir", "masks")
    if not src.is_dir():
        raise InputFileError(f"{src}: dataset '{ds.name}' is a folder with {image_dir}/ and {mask_dir}/; pass that folder")
    names = check_pairs(src, image_dir, mask_dir)
    hashes = _install_tree(ds.name, src, [f"{d}/{n}" for d in (image_dir, mask_dir) for n in names])
    locks = read_locks()
    old = locks.get(ds.name)
    if old and old != hashes:
        warnings.warn(f"dataset '{ds.name}': the imported files differ from the ones pinned before; "
                      "the new hashes are pinned", DatasetWarning, stacklevel=3)
    locks[ds.name] = hashes
    write_locks(locks)
    return dataset_dir(ds.name)


def xct_groups(ds: Dataset) -> int:
    """How many groups of labelled slices an ``xct`` dataset's splits name (the highest index + 1)."""
    return 1 + max((g for sp in ds.splits.values() for g in sp.groups), default=-1)


def _import_xct(ds: Dataset, src: Path, check_shape: bool) -> Path:
    """Check a folder in the ``xct`` layout (:mod:`grainbench.data.xct`), then install it whole."""
    from .xct import check_xct

    if not src.is_dir():
        raise InputFileError(f"{src}: dataset '{ds.name}' is a folder with {ds.layout['reconstructions']}/ and "
                             f"{ds.layout['labels']}/ (see `grainbench data info {ds.name}`); pass that folder")
    rels = check_xct(src, ds.layout, n_groups=xct_groups(ds), shape=ds.shape if check_shape else None)
    hashes = _install_tree(ds.name, src, rels)  # checked before anything enters the cache
    locks = read_locks()
    locks[ds.name] = hashes
    write_locks(locks)
    for rel, sha in hashes.items():
        _remember_stat(ds.name, rel, dataset_dir(ds.name) / rel, sha)
    return dataset_dir(ds.name)


def _install_tree(name: str, src: Path, rels: list[str]) -> dict[str, str]:
    """Copy ``rels`` from ``src`` into a temporary folder, then swap it in for the dataset folder."""
    dest = dataset_dir(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".importing", dir=dest.parent))
    hashes = {}
    try:
        for rel in rels:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            hashes[rel] = _copy_hashing(src / rel, tmp / rel)
        old = None
        if dest.exists():
            old = dest.with_name(f".{name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return hashes


def _import_local(name: str, src: Path) -> Path:
    if not _NAME.match(name):
        raise DatasetError(f"'{name}' is not a registered dataset, and not a usable name for a new one "
                           "(lower-case letters, digits, '_' and '-')")
    if not src.is_dir():
        raise DatasetError(f"'{name}' is not a registered dataset; to add your own, pass a folder with "
                           f"images/ and masks/ of the same file names (got the file {src})")
    entry = {
        "title": f"{name} (imported from {src.resolve()})",
        "task": "boundary",
        "serial": False,
        "modality": "user images",
        "licence": "the user's own",
        "citation": "",
        "homepage": "",
        "source": "local",
        "notes": "splits by index in file-name order: i % 5 in {0, 1, 2} train, 3 val, 4 test; all = every pair",
        "layout": {"kind": "pairs", "image_dir": "images", "mask_dir": "masks", "threshold": 127},
        "splits": {
            "train": {"dir": "", "every": 5, "offsets": [0, 1, 2]},
            "val": {"dir": "", "every": 5, "offsets": [3]},
            "test": {"dir": "", "every": 5, "offsets": [4]},
            "all": {"dir": ""},
        },
    }
    ds = parse_entry(name, entry, where="local.toml")  # never write an entry the registry would reject
    dest = _import_pairs_folder(ds, src)
    local = local_registry_path()
    doc: dict[str, Any] = {}
    if local.is_file():
        with open(local, "rb") as fh:
            doc = tomllib.load(fh).get("datasets", {})
    doc[name] = entry
    lines = ["# Datasets imported from your own folders (grainbench data import NAME FOLDER).", ""]
    for n, e in doc.items():
        lines.append(f"[datasets.{toml_key(n)}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in e.items()]
        lines.append("")
    with atomic_write(local, "w") as fh:
        fh.write("\n".join(lines))
    return dest
