"""The dataset registry: ``datasets.toml`` read and validated into dataclasses.

Every entry is checked when the registry is loaded, so a malformed entry fails
at once with a message naming the registry file, the dataset and the field,
instead of deep inside a download or a loader.

Where the registry lives
------------------------
The first of (:func:`default_registry_path`):

1. ``GRAINBENCH_REGISTRY`` (a path), when set;
2. the user registry ``datasets.toml`` in the user config dir (platformdirs:
   ``~/.config/grainbench/datasets.toml`` on Linux), when it exists;
3. ``datasets.toml`` at the root of a source checkout (beside the ``grainbench`` package);
4. the registry shipped in the package (``grainbench/datasets.toml``, read with
   :mod:`importlib.resources`; in the checkout a link to the root's file, so there is one copy).

Datasets the user imported from their own folders live in
``<cache>/local.toml`` and are merged in (see :mod:`grainbench.data.manual`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import DatasetError
from .cache import local_registry_path, read_locks

TASKS = ("boundary", "phase", "tracking")
SOURCES = ("https", "manual", "generate", "local")
LAYOUTS = ("hdf5", "tiff", "npy", "pairs", "xct", "generated", "unpinned")
CHANNELS = (1, 3)  # grey, RGB
_HEX = set("0123456789abcdef")

#: Names of the generators a ``source = "generate"`` entry may name, as "module:function".
GENERATORS = {
    "synthetic": "grainbench.data.synthetic:generate_synthetic",
    "potts_sim": "grainbench.data.potts:generate_potts_sim",
    "alzn_sim": "grainbench.data.dendrites:generate_alzn_sim",
}


@dataclass(frozen=True)
class FileEntry:
    """One file of a dataset: its path relative to the dataset folder and its sha256.

    ``sha256`` is None only for manual datasets without a published checksum;
    their structure is verified instead and the user's hash is pinned locally.
    """

    path: str
    sha256: str | None = None

    def url(self, base_url: str) -> str:
        """The download URL: ``base_url`` joined with the relative path."""
        return base_url.rstrip("/") + "/" + self.path


@dataclass(frozen=True)
class Split:
    """A published split.

    Stacks select slices ``start:stop`` (0-based, half-open) along Z, or a
    ``fraction`` of the stack for generated data whose depth the registry does
    not fix. Pair datasets select the pairs of folder ``dir``; with ``every``,
    only the pairs whose index in sorted-name order ``i`` has
    ``i % every in offsets``. Layout ``xct`` (:mod:`grainbench.data.xct`)
    selects ``groups`` of labelled slices by index.
    """

    name: str
    start: int | None = None
    stop: int | None = None
    fraction: tuple[float, float] | None = None
    dir: str | None = None
    every: int | None = None
    offsets: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()

    def slice_range(self, depth: int) -> tuple[int, int]:
        """The ``(start, stop)`` slice range of this split in a stack of ``depth`` slices."""
        if self.fraction is not None:
            a, b = self.fraction
            return int(round(a * depth)), int(round(b * depth))
        if self.start is None or self.stop is None:
            what = "groups of labelled slices" if self.groups else "pairs of a folder"
            raise DatasetError(f"split '{self.name}' selects {what}, not a slice range")
        return self.start, self.stop

    def select(self, names: list[str]) -> list[str]:
        """The names (sorted) that belong to this split of a pair dataset."""
        names = sorted(names)
        if self.every is None:
            return names
        return [n for i, n in enumerate(names) if i % self.every in self.offsets]


@dataclass(frozen=True)
class Dataset:
    """One registry entry (see ``datasets.toml`` for the meaning of each field)."""

    name: str
    title: str
    task: str
    serial: bool
    modality: str
    licence: str
    citation: str
    homepage: str
    source: str
    layout: Mapping[str, Any]
    splits: Mapping[str, Split]
    files: tuple[FileEntry, ...] = ()
    pixel_size_um: float | None = None
    base_url: str | None = None
    instructions: str | None = None
    generator: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    digest: str | None = None
    #: ``{"digest": sha256 of the integer arrays, "image": fingerprint}``: accepts generated arrays whose
    #: float-derived parts moved within a tolerance (another numpy/scipy), see grainbench.data.hashing.
    tolerant_digest: Mapping[str, Any] | None = None
    shape: tuple[int, ...] | None = None
    notes: str | None = None
    protocol: str | None = None  # default scoring protocol (grainbench.protocol name)
    #: Image channels: 1 = grey, 3 = RGB (``channels`` in datasets.toml, default 1). Loaders keep
    #: this many channels (grey files of an RGB set are repeated, colour files of a grey set become grey).
    channels: int = 1
    #: A stand-in's real counterpart: leaderboards show that dataset's reported paper rows beside this one's.
    reported_from: str | None = None
    #: Version of the data behind the name (``version`` in datasets.toml, default 1); bumped when a
    #: generator or import changes what the arrays hold, so records of the old data are told apart.
    version: int = 1

    @property
    def layout_kind(self) -> str:
        return str(self.layout["kind"])

    def file(self, path: str) -> FileEntry:
        for f in self.files:
            if f.path == path:
                return f
        raise DatasetError(f"dataset '{self.name}' has no file '{path}'")


# --------------------------------------------------------------------------- loading

def user_registry_path() -> Path:
    """Where a user's own registry goes: ``datasets.toml`` in the user config dir of ``grainbench``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("grainbench")) / "datasets.toml"


def default_registry_path() -> Path:
    """The registry file in use: ``GRAINBENCH_REGISTRY``, the user registry, the checkout's or the packaged one."""
    env = os.environ.get("GRAINBENCH_REGISTRY")
    if env:
        return Path(env).expanduser()
    user = user_registry_path()
    if user.is_file():
        return user
    here = Path(__file__).resolve().parent.parent  # the grainbench package
    checkout = here.parent / "datasets.toml"
    if checkout.is_file() and (here.parent / "pyproject.toml").is_file():
        return checkout
    from importlib.resources import files

    packaged = files("grainbench").joinpath("datasets.toml")
    if packaged.is_file():
        return Path(str(packaged))
    raise DatasetError(f"datasets.toml not found in the installed package ({packaged}): reinstall grainbench, "
                       f"or set GRAINBENCH_REGISTRY to a registry file (or write one to {user})")


_CACHE: dict[tuple, dict[str, Dataset]] = {}


def load_registry(path: str | os.PathLike | None = None, *, include_local: bool = True) -> dict[str, Dataset]:
    """Read and validate a registry file.

    Parameters
    ----------
    path : path-like, optional
        The TOML file; default :func:`default_registry_path`.
    include_local : bool
        Also merge the user's own datasets from ``<cache>/local.toml``.

    Returns
    -------
    dict mapping dataset name to :class:`Dataset`, in file order.
    """
    path = Path(path) if path is not None else default_registry_path()
    sources = [path]
    if include_local:
        local = local_registry_path()
        if local.is_file():
            sources.append(local)
    key = tuple((str(p), p.stat().st_mtime_ns) for p in sources if p.exists())
    if key in _CACHE:
        return dict(_CACHE[key])
    out: dict[str, Dataset] = {}
    for src in sources:
        for name, entry in _read_toml(src).items():
            if name in out:
                raise DatasetError(f"{src}: dataset '{name}' is already defined in {sources[0]}")
            out[name] = parse_entry(name, entry, where=str(src))
    _CACHE.clear()  # one registry state at a time; files change rarely
    _CACHE[key] = out
    return dict(out)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{path}: registry file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a registry file (check GRAINBENCH_REGISTRY)") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: registry file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{path}: not valid TOML ({exc})") from None
    datasets = doc.get("datasets")
    if not isinstance(datasets, dict):
        raise DatasetError(f"{path}: expected tables [datasets.NAME], found none")
    return datasets


def list_datasets(path: str | os.PathLike | None = None) -> list[Dataset]:
    """All registered datasets (the registry's own, then the user's local ones)."""
    return list(load_registry(path).values())


def get_dataset(name: str, path: str | os.PathLike | None = None) -> Dataset:
    """The registry entry called ``name``; an unknown name suggests close matches."""
    reg = load_registry(path)
    if name not in reg:
        close = difflib.get_close_matches(name, reg, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(reg)}"
        raise DatasetError(f"unknown dataset '{name}'{hint}")
    return reg[name]


# --------------------------------------------------------------------------- validation

class _Entry:
    """Typed field access that names the registry file, dataset and field on error."""

    def __init__(self, name: str, raw: Any, where: str):
        self.name, self.raw, self.where = name, raw, where
        if not isinstance(raw, dict):
            self.fail("", f"must be a table, got {type(raw).__name__}")

    def fail(self, fld: str, problem: str) -> None:
        at = f", field '{fld}'" if fld else ""
        raise DatasetError(f"{self.where}: dataset '{self.name}'{at}: {problem}")

    def get(self, fld: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        if fld not in self.raw:
            if required:
                self.fail(fld, "is missing")
            return default
        value = self.raw[fld]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML booleans are ints in Python; keep them apart.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.fail(fld, f"must be {names}, got {type(value).__name__} {value!r}")
        return value


def _check_sha(e: _Entry, fld: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value.lower()) <= _HEX:
        e.fail(fld, f"must be a sha256 of 64 hex digits, got {value!r}")
    return value.lower()


def parse_entry(name: str, raw: Any, *, where: str = "datasets.toml") -> Dataset:
    """Validate one ``[datasets.NAME]`` table and build its :class:`Dataset`."""
    e = _Entry(name, raw, where)
    known = (set(Dataset.__dataclass_fields__) - {"name", "pixel_size_um"}) | {"pixel_size"}
    unknown = sorted(set(raw) - known)
    if unknown:
        e.fail(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    task = e.get("task", str)
    if task not in TASKS:
        e.fail("task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    source = e.get("source", str)
    if source not in SOURCES:
        e.fail("source", f"must be one of {', '.join(SOURCES)}, got {source!r}")

    version = e.get("version", int, required=False, default=1)
    if isinstance(version, bool) or version < 1:
        e.fail("version", f"must be an integer >= 1, got {version!r}")

    layout = e.get("layout", dict)
    if layout.get("kind") not in LAYOUTS:
        e.fail("layout", f"'kind' must be one of {', '.join(LAYOUTS)}, got {layout.get('kind')!r}")
    if layout["kind"] == "hdf5":
        for k in ("image", "boundary"):
            if not isinstance(layout.get(k), str):
                e.fail("layout", f"an hdf5 layout needs '{k}' = the dataset name inside the file")
        if layout.get("axes", "ZHW") not in ("ZHW", "HWZ"):
            e.fail("layout", f"'axes' must be ZHW or HWZ, got {layout.get('axes')!r}")
    if layout["kind"] in ("tiff", "npy") and not isinstance(layout.get("image"), str):
        e.fail("layout", f"a {layout['kind']} layout needs 'image' = the image file")
    if layout["kind"] == "xct":
        for k in ("reconstructions", "labels"):
            if not isinstance(layout.get(k), str) or not layout[k] or ".." in Path(layout[k]).parts:
                e.fail("layout", f"an xct layout needs '{k}' = a folder name inside the dataset folder")
        if not _is_int(layout.get("group_size")) or layout["group_size"] < 1:
            e.fail("layout", f"an xct layout needs 'group_size' = a positive integer, got {layout.get('group_size')!r}")
    if layout["kind"] == "pairs":
        for k in ("image_dir", "mask_dir"):
            if not isinstance(layout.get(k), str):
                e.fail("layout", f"a pairs layout needs '{k}'")

    files: list[FileEntry] = []
    for i, f in enumerate(e.get("files", list, required=False, default=[])):
        fld = f"files[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not f["path"]:
            e.fail(fld, "must be a table with a non-empty 'path'")
        rel = f["path"]
        if rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            e.fail(fld, f"path {rel!r} must be relative and stay inside the dataset folder")
        sha = f.get("sha256")
        if sha is not None:
            sha = _check_sha(e, f"{fld}.sha256", sha)
        elif source == "https":
            e.fail(f"{fld}.sha256", f"is missing for {rel!r} (every downloaded file needs a sha256)")
        files.append(FileEntry(rel, sha))
    if len({f.path for f in files}) != len(files):
        e.fail("files", "lists the same path twice")

    base_url = e.get("base_url", str, required=source == "https")
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        e.fail("base_url", f"must be an http(s) URL, got {base_url!r}")
    if source == "https" and not files:
        e.fail("files", "an https dataset must list its files with sha256")

    generator = e.get("generator", str, required=source == "generate")
    if generator is not None and generator not in GENERATORS and ":" not in generator:
        e.fail("generator", f"must be one of {', '.join(GENERATORS)} or 'module:function', got {generator!r}")
    digest = e.get("digest", str, required=False)
    if digest:
        digest = _check_sha(e, "digest", digest)
    tolerant = e.get("tolerant_digest", dict, required=False)
    if tolerant is not None:
        _check_sha(e, "tolerant_digest.digest", tolerant.get("digest"))
        for key, fp in tolerant.items():
            if key != "digest" and not (isinstance(fp, list) and fp
                                        and all(_is_number(x) for x in fp)):
                e.fail(f"tolerant_digest.{key}", f"must be a list of numbers (a fingerprint), got {fp!r}")

    pixel = e.get("pixel_size", (int, float), required=False)
    if pixel is not None and pixel <= 0:
        e.fail("pixel_size", f"must be positive (micrometres per pixel), got {pixel}")
    shape = e.get("shape", list, required=False)
    if shape is not None and not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        e.fail("shape", f"must be a list of positive integers, got {shape!r}")

    channels = e.get("channels", int, required=False, default=1)
    if channels not in CHANNELS:
        e.fail("channels", f"must be 1 (grey) or 3 (RGB), got {channels!r}")

    splits = {}
    for sname, sraw in e.get("splits", dict).items():
        splits[sname] = _parse_split(e, sname, sraw, layout["kind"])
    if not splits and layout["kind"] != "unpinned":
        e.fail("splits", "must define at least one split")

    return Dataset(
        name=name,
        title=e.get("title", str),
        task=task,
        serial=e.get("serial", bool),
        modality=e.get("modality", str),
        licence=e.get("licence", str),
        citation=e.get("citation", str),
        homepage=e.get("homepage", str),
        source=source,
        layout=dict(layout),
        splits=splits,
        files=tuple(files),
        pixel_size_um=float(pixel) if pixel is not None else None,
        base_url=base_url,
        instructions=e.get("instructions", str, required=source == "manual"),
        generator=generator,
        params=dict(e.get("params", dict, required=False, default={})),
        digest=digest or None,
        tolerant_digest=dict(tolerant) if tolerant else None,
        shape=tuple(shape) if shape is not None else None,
        notes=e.get("notes", str, required=False),
        protocol=e.get("protocol", str, required=False),
        channels=channels,
        reported_from=e.get("reported_from", str, required=False),
        version=version,
    )


def _is_int(x: Any) -> bool:
    """A TOML integer (TOML booleans are Python ints too: ``start = true`` is not slice 1)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _parse_split(e: _Entry, sname: str, raw: Any, kind: str) -> Split:
    fld = f"splits.{sname}"
    if not isinstance(raw, dict):
        e.fail(fld, "must be a table")
    if kind == "pairs":
        d = raw.get("dir", "")
        every = raw.get("every")
        offsets = raw.get("offsets", [])
        if not isinstance(d, str):
            e.fail(fld, "'dir' must be a folder name")
        if every is not None and (not _is_int(every) or every < 1 or not isinstance(offsets, list) or not offsets
                                  or not all(_is_int(o) and 0 <= o < every for o in offsets)):
            e.fail(fld, "'every' must be a positive integer with 'offsets' a list of integers in [0, every)")
        return Split(sname, dir=d, every=every, offsets=tuple(offsets))
    if kind == "xct":
        groups = raw.get("groups")
        if (not isinstance(groups, list) or not groups or not all(_is_int(g) and g >= 0 for g in groups)
                or len(set(groups)) != len(groups)):
            e.fail(fld, f"an xct split needs 'groups' = distinct group indices (0-based), got {groups!r}")
        return Split(sname, groups=tuple(groups))
    if "fraction" in raw:
        fr = raw["fraction"]
        if (not isinstance(fr, list) or len(fr) != 2 or not all(_is_number(x) for x in fr)
                or not 0 <= fr[0] < fr[1] <= 1):
            e.fail(fld, f"'fraction' must be [a, b] with 0 <= a < b <= 1, got {fr!r}")
        return Split(sname, fraction=(float(fr[0]), float(fr[1])))
    start, stop = raw.get("start"), raw.get("stop")
    if not (_is_int(start) and _is_int(stop) and 0 <= start < stop):
        e.fail(fld, f"needs integers 0 <= start < stop (0-based, stop excluded), got start={start!r} stop={stop!r}")
    return Split(sname, start=start, stop=stop)


def dataset_hashes(name: str) -> dict[str, str]:
    """What identifies the data a result was computed on: the generator digest, the registry's
    file hashes, or for manual datasets the hashes pinned at import (``<cache>/locks.toml``)."""
    entry = get_dataset(name)
    hashes = {f.path: f.sha256 for f in entry.files if f.sha256}
    if entry.digest:
        hashes["generated"] = entry.digest
    if entry.version > 1:  # version 1 entries record no version, as before versions existed
        hashes["version"] = str(entry.version)
    hashes.update(read_locks().get(name, {}))
    return hashes
