"""Datasets produced locally by a seeded generator (``source = "generate"``).

The registry entry names the generator, its parameters and the sha256 of the
arrays it must produce (``digest``, computed by
:func:`grainbench.data.hashing.array_digest`). Generated arrays are checked
against that digest and stored in the cache as an uncompressed NPZ (written
atomically, read back without pickle). Where no digest is pinned in the
registry yet, the first result is pinned in the local lock file and a later
different result raises a warning.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from ..io import atomic_write
from .registry import GENERATORS, Dataset, get_dataset

_DIGEST_KEY = "__digest__"
ARRAY_KEYS = ("image", "labels", "boundary")


class DatasetWarning(UserWarning):
    """Something about a dataset deserves attention but does not stop the work."""


def generator_function(ds: Dataset) -> Callable[..., dict[str, np.ndarray]]:
    """Import the generator function an entry names (``"synthetic"`` or ``"module:function"``)."""
    target = GENERATORS.get(ds.generator or "", ds.generator or "")
    module, _, func = target.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise DatasetError(f"dataset '{ds.name}': generator {target!r} is not available ({exc})") from None


def stored_path(ds: Dataset) -> Path:
    """Where the generated arrays of ``ds`` live: one NPZ per distinct parameter set."""
    from .fetch import dataset_dir

    key = hashlib.sha256(json.dumps([ds.generator, dict(ds.params)], sort_keys=True).encode()).hexdigest()[:12]
    return dataset_dir(ds.name) / f"generated-{key}.npz"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    from .hashing import array_digest

    return array_digest({k: v for k, v in arrays.items() if k != _DIGEST_KEY})


def generate(name: str, *, force: bool = False, progress: bool = False) -> tuple[Path, str]:
    """Run the generator of dataset ``name``, check its digest and store the arrays.

    Parameters
    ----------
    name : str
        A registry entry with ``source = "generate"``.
    force : bool
        Regenerate even when a stored copy exists.
    progress : bool
        Report the generation on stderr while it runs (:mod:`grainbench.progress`).

    Returns
    -------
    (path, digest)
        The NPZ file in the cache and the sha256 digest of the arrays.

    Raises
    ------
    DatasetError
        The digest differs from the registry's (nothing is stored), or the
        generator is missing or returns the wrong keys.
    """
    ds = get_dataset(name)
    if ds.source != "generate":
        raise DatasetError(f"dataset '{name}' is not generated (source = {ds.source!r}); use `grainbench data fetch {name}`")
    path = stored_path(ds)
    if path.is_file() and not force:
        with np.load(path, allow_pickle=False) as npz:
            stored = str(npz[_DIGEST_KEY]) if _DIGEST_KEY in npz.files else None
        if stored is not None and (not ds.digest or stored == ds.digest):
            return path, stored
        # a copy made by another generator version: regenerate below
    from ..progress import progress as progress_bar

    with progress_bar(f"generating {name}", None, enabled=progress) as bar:
        bar.line("running the generator")
        arrays = generator_function(ds)(**dict(ds.params))
        bar.line("done")
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise DatasetError(f"dataset '{name}': generator returned keys {sorted(arrays)}, missing {missing}")
    digest = _digest(arrays)
    _check_digest(ds, digest)
    with atomic_write(path) as fh:  # every array the generator made (e.g. labels3d), so the digest re-checks
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}, **{_DIGEST_KEY: np.array(digest)})
    return path, digest


def _check_digest(ds: Dataset, digest: str) -> None:
    if ds.digest:
        if digest != ds.digest:
            raise DatasetError(
                f"dataset '{ds.name}': generated arrays do not match the registry: expected digest "
                f"{ds.digest}, got {digest} (generator or numpy changed?); nothing was stored"
            )
        return
    from .manual import pin_hash

    pin_hash(ds.name, "generated", digest)


def load_generated(name: str) -> dict[str, np.ndarray]:
    """The arrays of a generated dataset, generating them on first use."""
    path, _ = generate(name)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files if k != _DIGEST_KEY}
    except (ValueError, KeyError, OSError) as exc:
        raise DatasetError(f"{path}: stored arrays are unreadable ({exc}); run `grainbench data generate {name} --force`") from None


def verify_generated(ds: Dataset) -> tuple[str, str, str]:
    """Re-hash the stored arrays of a generated dataset: (file, status, detail)."""
    from .manual import read_locks

    path = stored_path(ds)
    if not path.is_file():
        return path.name, "missing", f"not generated yet; run: grainbench data generate {ds.name}"
    with np.load(path, allow_pickle=False) as npz:
        got = _digest({k: npz[k] for k in npz.files})
    want = ds.digest or read_locks().get(ds.name, {}).get("generated")
    if want is None or got == want:
        how = "registry" if ds.digest else "pinned locally" if want else "not pinned"
        return path.name, "ok", f"digest {got} ({how})"
    return path.name, "bad hash" if ds.digest else "changed", f"expected digest {want}, got {got}"


__all__ = ["DatasetWarning", "generate", "load_generated", "verify_generated", "stored_path"]
