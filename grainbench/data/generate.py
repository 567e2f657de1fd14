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
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from ..io import atomic_write
from .cache import DatasetWarning, dataset_dir, pin_hash, read_locks
from .registry import GENERATORS, Dataset, get_dataset

_DIGEST_KEY = "__digest__"
ARRAY_KEYS = ("image", "labels", "boundary")


#: Set to 1 to let a registry entry run a generator other than the registered ones (any "module:function").
ALLOW_ENV = "GRAINBENCH_ALLOW_GENERATORS"


def generator_function(ds: Dataset) -> Callable[..., dict[str, np.ndarray]]:
    """Import the generator function an entry names.

    Only the registered generators (:data:`grainbench.data.registry.GENERATORS`)
    run, unless ``GRAINBENCH_ALLOW_GENERATORS=1``: a registry entry naming any
    ``module:function`` (``os:system``) would otherwise run arbitrary code.
    """
    name = ds.generator or ""
    if name in GENERATORS:
        target = GENERATORS[name]
    elif os.environ.get(ALLOW_ENV) == "1":
        target = name
    else:
        raise DatasetError(f"dataset '{ds.name}': generator {name!r} is not one of the registered generators "
                           f"({', '.join(GENERATORS)}); set {ALLOW_ENV}=1 to run it")
    module, _, func = target.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise DatasetError(f"dataset '{ds.name}': generator {target!r} is not available ({exc})") from None


def stored_path(ds: Dataset) -> Path:
    """Where the generated arrays of ``ds`` live: one NPZ per distinct parameter set."""
    key = hashlib.sha256(json.dumps([ds.generator, dict(ds.params)], sort_keys=True).encode()).hexdigest()[:12]
    return dataset_dir(ds.name) / f"generated-{key}.npz"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    from .hashing import array_digest

    return array_digest({k: v for k, v in arrays.items() if k != _DIGEST_KEY})


class _Broken(Exception):
    """A stored NPZ cannot be read (truncated, not a zip, missing arrays)."""


def _read_stored(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """The arrays of a stored NPZ and the digest stored with them; :class:`_Broken` if unreadable."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:  # our handle: closed on errors too
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, zlib.error) as exc:
        raise _Broken(f"{type(exc).__name__}: {exc}") from None
    stored = arrays.pop(_DIGEST_KEY, None)
    return arrays, None if stored is None else str(stored)


def _pinned(ds: Dataset) -> str | None:
    return ds.digest or read_locks().get(ds.name, {}).get("generated")


def _mismatch(ds: Dataset, arrays: dict[str, np.ndarray], digest: str) -> str | None:
    """None when ``arrays`` (of exact digest ``digest``) are the dataset's; else what is wrong.

    Equal digests pass; otherwise, where the registry gives a ``tolerant_digest``,
    integer arrays must match exactly and float-derived ones within a tolerance
    (a numpy/scipy release may move a rendered grey level by one).
    """
    from .hashing import matches_stable_pin

    want = _pinned(ds)
    if want is None or digest == want:
        return None
    why = matches_stable_pin(arrays, ds.tolerant_digest) if ds.tolerant_digest else "no tolerant digest pinned"
    if why is None:
        return None
    return f"expected digest {want}, got {digest}; {why}"


def _generate(name: str, force: bool = False, progress: bool = False
              ) -> tuple[Path, str, dict[str, np.ndarray]]:
    ds = get_dataset(name)
    if ds.source != "generate":
        raise DatasetError(f"dataset '{name}' is not generated (source = {ds.source!r}); use `grainbench data fetch {name}`")
    path = stored_path(ds)
    rebuild = f"grainbench data generate {name} --force"
    if path.is_file() and not force:
        try:
            arrays, stored = _read_stored(path)
        except _Broken as exc:  # truncated or damaged: it is only a cache, make it again
            warnings.warn(f"{path}: stored arrays are unreadable ({exc}); regenerating", DatasetWarning,
                          stacklevel=3)
        else:
            digest = _digest(arrays)  # recomputed on every load: the stored digest is not trusted
            if _mismatch(ds, arrays, digest) is None:
                return path, ds.digest or digest, arrays
            if stored != digest:  # the file no longer holds what was stored: edited or damaged
                raise DatasetError(f"{path}: stored arrays do not match the digest stored with them (edited or "
                                   f"damaged); nothing was used. Rebuild it: {rebuild}")
            # a consistent copy from another generator version: regenerate below
    from ..progress import progress as progress_bar

    with progress_bar(f"generating {name}", None, enabled=progress) as bar:
        bar.line("running the generator")
        arrays = generator_function(ds)(**dict(ds.params))
        bar.line("done")
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise DatasetError(f"dataset '{name}': generator returned keys {sorted(arrays)}, missing {missing}")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    digest = _digest(arrays)
    _check_digest(ds, arrays, digest)
    with atomic_write(path) as fh:  # every array the generator made (e.g. labels3d), so the digest re-checks
        np.savez(fh, **arrays, **{_DIGEST_KEY: np.array(digest)})
    return path, ds.digest or digest, arrays


def generate(name: str, *, force: bool = False, progress: bool = False) -> tuple[Path, str]:
    """Run the generator of dataset ``name``, check its digest and store the arrays.

    A stored copy is re-hashed before it is used (the digest stored inside
    it is not trusted); an unreadable one is regenerated with a warning.

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
        The NPZ file in the cache and the digest the dataset is recorded under
        (the registry's where it pins one).

    Raises
    ------
    DatasetError
        The digest differs from the registry's (nothing is stored), the
        stored copy was edited, or the generator is missing, not registered
        or returns the wrong keys.
    """
    path, digest, _ = _generate(name, force, progress)
    return path, digest


def _check_digest(ds: Dataset, arrays: dict[str, np.ndarray], digest: str) -> None:
    if ds.digest:
        problem = _mismatch(ds, arrays, digest)
        if problem:
            raise DatasetError(
                f"dataset '{ds.name}': generated arrays do not match the registry: {problem} "
                f"(generator or numpy changed?); nothing was stored"
            )
        return
    pin_hash(ds.name, "generated", digest)


def load_generated(name: str) -> dict[str, np.ndarray]:
    """The arrays of a generated dataset, generating them on first use and re-hashing them on every load."""
    return _generate(name)[2]


def verify_generated(ds: Dataset) -> tuple[str, str, str]:
    """Re-hash the stored arrays of a generated dataset: (file, status, detail)."""
    path = stored_path(ds)
    if not path.is_file():
        return path.name, "missing", f"not generated yet; run: grainbench data generate {ds.name}"
    try:
        arrays, _ = _read_stored(path)
    except _Broken as exc:
        return path.name, "broken", f"unreadable ({exc}); run: grainbench data generate {ds.name} --force"
    got = _digest(arrays)
    want = _pinned(ds)
    problem = _mismatch(ds, arrays, got)
    if problem is None:
        how = "registry" if ds.digest else "pinned locally" if want else "not pinned"
        tol = "" if want is None or got == want else ", within the float tolerance"
        return path.name, "ok", f"digest {got} ({how}{tol})"
    return path.name, "bad hash" if ds.digest else "changed", problem


__all__ = ["DatasetWarning", "generate", "load_generated", "verify_generated", "stored_path"]
