"""Where datasets live on disk, and the local lock of the hashes pinned there.

The lowest layer of :mod:`grainbench.data`: it imports no other module of the
package's data layer, so the registry, the fetcher, the generators and the
importer can all read it without importing one another.

The cache is ``GRAINBENCH_DATA`` when set, else the platform's user cache
folder for ``grainbench``; dataset ``NAME`` lives in ``<cache>/NAME/``.
``<cache>/locks.toml`` pins the sha256 of files (or generated arrays) that
have no published checksum, so a later change is noticed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any, Mapping

from ..errors import DatasetError
from ..io import atomic_write


class DatasetWarning(UserWarning):
    """Something about a dataset deserves attention but does not stop the work."""


def cache_dir() -> Path:
    """The data cache: ``GRAINBENCH_DATA``, else the user cache dir of ``grainbench``."""
    env = os.environ.get("GRAINBENCH_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("grainbench"))


def dataset_dir(name: str) -> Path:
    """The folder that holds dataset ``name`` in the cache (it may not exist yet)."""
    return cache_dir() / name


def local_registry_path() -> Path:
    """The user's own datasets (imported folders): ``<cache>/local.toml``."""
    return cache_dir() / "local.toml"


# --------------------------------------------------------------------------- locks

def locks_path() -> Path:
    return cache_dir() / "locks.toml"


def read_locks() -> dict[str, dict[str, str]]:
    """The pinned hashes: ``{dataset: {relative path or "generated": sha256}}``."""
    path = locks_path()
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: lock file is not valid TOML ({exc}); delete it to re-pin") from None
    except OSError as exc:
        raise DatasetError(f"{path}: lock file is unreadable ({exc.strerror})") from None
    return {k: dict(v) for k, v in doc.items() if isinstance(v, dict)}


def write_locks(locks: Mapping[str, Mapping[str, str]]) -> None:
    lines = ["# sha256 of the files you imported where no checksum is published (grainbench data import).", ""]
    for name in sorted(locks):
        lines.append(f"[{toml_key(name)}]")
        lines += [f"{toml_key(p)} = {toml_value(h)}" for p, h in sorted(locks[name].items())]
        lines.append("")
    with atomic_write(locks_path(), "w") as fh:
        fh.write("\n".join(lines))


def pin_hash(name: str, path: str, sha256: str) -> None:
    """Pin ``sha256`` for file ``path`` of dataset ``name``; warn when it replaces a different pin."""
    locks = read_locks()
    old = locks.get(name, {}).get(path)
    if old == sha256:
        return
    if old is not None:
        warnings.warn(
            f"dataset '{name}': {path} changed: pinned sha256 {old}, now {sha256}; the new hash is pinned",
            DatasetWarning, stacklevel=2,
        )
    locks.setdefault(name, {})[path] = sha256
    write_locks(locks)


# --------------------------------------------------------------------------- tiny TOML writer

def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_\-]+", k) else json.dumps(k)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
