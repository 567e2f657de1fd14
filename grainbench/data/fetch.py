"""Downloading datasets into the local cache, and checking what is there.

The cache is ``GRAINBENCH_DATA`` when set, else the platform's user cache
folder for ``grainbench``. Dataset ``NAME`` lives in ``<cache>/NAME/`` with the
registry's relative paths below it, so a cache folder served over HTTP is a
valid mirror.

Downloads go through pooch: each file is streamed to a temporary file in the
target folder, its sha256 is checked, and only then is it renamed into place.
A failed, short or corrupted transfer therefore never leaves a file under the
final name. A mirror (``GRAINBENCH_MIRROR`` or ``mirror=``) replaces every base
URL: file ``PATH`` of dataset ``NAME`` is fetched from ``<mirror>/NAME/PATH``.

``splits=`` fetches only the files those splits need (:func:`split_files`): a
pair dataset's split needs the files of its folder (all of them, because
``every``/``offsets`` select by index among the folder's pairs), a stack needs
its files. So ``fetch("tbm", splits=["train", "val"])`` leaves the test
files out, and a run on ``val`` works without them.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DatasetError
from ..io import sha256_file
from .cache import cache_dir, dataset_dir, read_locks  # noqa: F401  (cache_dir, dataset_dir: re-exported)
from .registry import Dataset, FileEntry, get_dataset

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 2


def mirror_base(name: str, mirror: str | None = None) -> str | None:
    """The base URL of dataset ``name`` on the mirror (``mirror`` or ``GRAINBENCH_MIRROR``), or None."""
    mirror = mirror or os.environ.get("GRAINBENCH_MIRROR") or None
    if mirror is None:
        return None
    if not mirror.startswith(("http://", "https://")):
        raise DatasetError(f"mirror {mirror!r}: must be an http(s) URL")
    return mirror.rstrip("/") + "/" + name + "/"




def split_files(ds: Dataset, splits: Iterable[str] | None = None) -> tuple[FileEntry, ...]:
    """The registry files that ``splits`` of ``ds`` need (all files when ``splits`` is None), in registry order.

    Raises
    ------
    DatasetError
        A split the dataset does not have (the message lists the known ones).
    """
    if splits is None:
        return tuple(ds.files)
    wanted = list(dict.fromkeys(splits))
    unknown = [s for s in wanted if s not in ds.splits]
    if unknown or not wanted:
        raise DatasetError(f"dataset '{ds.name}' has no split {', '.join(map(repr, unknown)) or '(none named)'} "
                           f"(known: {', '.join(ds.splits) or 'none'})")
    if ds.layout_kind != "pairs":
        return tuple(ds.files)  # a stack file holds every split
    folders = [ds.splits[s].dir or "" for s in wanted]
    if "" in folders:
        return tuple(ds.files)
    return tuple(f for f in ds.files if any(f.path.startswith(d.rstrip("/") + "/") for d in folders))


# --------------------------------------------------------------------------- progress

class _RichBar:
    """The progress-bar protocol pooch expects (``total``, ``update``, ``reset``, ``close``), drawn with rich."""

    def __init__(self, progress, label: str):
        self._progress, self._label, self._task = progress, label, None
        self.total = None

    def update(self, n: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self._label, total=self.total)
        self._progress.update(self._task, advance=n)

    def reset(self) -> None:
        if self._task is not None:
            self._progress.reset(self._task, total=self.total)

    def close(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)


@contextmanager
def _progress(enabled: bool, total_files: int, name: str) -> Iterator:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ..cli._console import err_console

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True) as progress:
        yield progress


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch logs one INFO line per file; with 160 files that drowns the progress bar.
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- fetch

def fetch(
    name: str,
    *,
    splits: Iterable[str] | None = None,
    mirror: str | None = None,
    progress: bool = False,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Make dataset ``name`` available in the cache and return its folder.

    Parameters
    ----------
    name : str
        A registry name.
    splits : iterable of str, optional
        Download only the files these splits need (:func:`split_files`); default
        all. Generated and imported datasets ignore it (one file holds every split).
    mirror : str, optional
        Base URL of a mirror holding ``NAME/PATH`` for every file; default
        ``GRAINBENCH_MIRROR``. Replaces the registry's base URL.
    progress : bool
        Draw a progress bar on stderr.
    retries : int
        Extra attempts per file after a network error or a bad hash.
    timeout : float
        Seconds to wait for the server before giving up on an attempt.

    Returns
    -------
    pathlib.Path
        The dataset folder in the cache.

    Raises
    ------
    DatasetError
        Unknown dataset, download failure (404, timeout, refused, short
        transfer) or a hash mismatch after all retries; a manual dataset that
        was not imported yet (the message says where to get it).
    """
    ds = get_dataset(name)
    if ds.source == "https":
        return _fetch_https(ds, split_files(ds, splits), mirror=mirror, progress=progress, retries=retries, timeout=timeout)
    if ds.source in ("manual", "local"):
        from .manual import require_installed

        return require_installed(ds)
    if ds.source == "generate":
        from .generate import generate

        generate(ds.name)
        return dataset_dir(ds.name)
    raise DatasetError(f"dataset '{name}': unknown source {ds.source!r}")  # pragma: no cover


def _fetch_https(ds: Dataset, files: tuple[FileEntry, ...], *, mirror: str | None, progress: bool, retries: int, timeout: float) -> Path:
    import pooch
    import requests

    dest = dataset_dir(ds.name)
    base = mirror_base(ds.name, mirror) or ds.base_url
    assert base is not None
    todo = [f for f in files if not _is_good(dest / f.path, f)]
    if not todo:
        return dest
    pup = pooch.create(
        path=dest, base_url=base, registry={f.path: f"sha256:{f.sha256}" for f in todo},
        retry_if_failed=max(int(retries), 0),
    )
    with _quiet_pooch(), _progress(progress, len(todo), ds.name) as bars:
        overall = bars.add_task(f"{ds.name}: {len(todo)} files", total=len(todo)) if bars else None
        for f in todo:
            target = dest / f.path
            if target.exists():  # present but corrupt: never keep it as if it were good
                target.unlink()
            url = f.url(base)
            bar = _RichBar(bars, f.path) if bars else False
            downloader = pooch.HTTPDownloader(progressbar=bar, timeout=timeout)
            try:
                pup.fetch(f.path, downloader=downloader)
            except requests.exceptions.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else "?"
                raise DatasetError(f"dataset '{ds.name}': {url}: HTTP {status} ({_reason(exc)})"
                                   + _mirror_hint(mirror)) from None
            except requests.exceptions.Timeout:
                raise DatasetError(f"dataset '{ds.name}': {url}: timed out after {timeout:g} s"
                                   + _mirror_hint(mirror)) from None
            except requests.exceptions.RequestException as exc:
                raise DatasetError(f"dataset '{ds.name}': {url}: download failed ({_reason(exc)})"
                                   + _mirror_hint(mirror)) from None
            except ValueError as exc:
                if "hash" not in str(exc).lower():
                    raise
                got = _got_hash(str(exc))
                raise DatasetError(
                    f"dataset '{ds.name}': {f.path} from {url} failed its hash check: "
                    f"expected sha256 {f.sha256}, got {got}; the file was deleted"
                ) from None
            finally:
                _remove_stray_temps(target.parent)
            if bars:
                bars.update(overall, advance=1)
    return dest


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _mirror_hint(mirror: str | None) -> str:
    if mirror or os.environ.get("GRAINBENCH_MIRROR"):
        return ""
    return "; no internet here? point GRAINBENCH_MIRROR or --mirror at a copy"


def _got_hash(message: str) -> str:
    # pooch: "... expected sha256:AAA but got BBB. Deleted ..."
    if "but got" in message:
        return message.split("but got", 1)[1].split()[0].rstrip(".")
    return "a different hash"


def _remove_stray_temps(folder: Path) -> None:
    # pooch deletes its temporary file itself; this only guards against a
    # version that does not, so no tmp* file lingers next to good files.
    if not folder.is_dir():
        return
    for p in folder.glob("tmp*"):
        if p.is_file() and p.suffix == "":
            try:
                p.unlink()
            except OSError:
                pass


def _is_good(path: Path, entry: FileEntry) -> bool:
    return path.is_file() and (entry.sha256 is None or sha256_file(path) == entry.sha256)


# --------------------------------------------------------------------------- verify

@dataclass
class VerifyReport:
    """What :func:`verify` found.

    ``rows``: per file ``(path, status, detail)``, status ``ok``, ``missing``,
    ``bad hash``, ``changed``, or ``not fetched`` (every split the file belongs
    to is absent: a partial fetch, not damage). ``splits``: per split, whether
    all its files are present and good.
    """

    name: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (path, status, detail)
    splits: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every file good or deliberately not fetched, and at least one split present."""
        return (all(status in ("ok", NOT_FETCHED) for _, status, _ in self.rows)
                and (not self.splits or any(self.splits.values())))

    @property
    def present(self) -> list[str]:
        """The splits whose files are all present and good."""
        return [s for s, ok in self.splits.items() if ok]


NOT_FETCHED = "not fetched"


def verify(name: str) -> VerifyReport:
    """Re-hash every installed file of ``name`` against the registry (or the local lock).

    Nothing is deleted or downloaded; the report says what is wrong. Generated
    datasets re-check the digest of their stored arrays.
    """
    ds = get_dataset(name)
    report = VerifyReport(name)
    if ds.source == "generate":
        from .generate import verify_generated

        report.rows.append(verify_generated(ds))
        report.splits = {s: report.rows[0][1] == "ok" for s in ds.splits}
        return report
    dest = dataset_dir(name)
    locks = read_locks().get(name, {})
    entries = list(ds.files)
    if ds.source == "local" or (ds.layout_kind in ("pairs", "xct") and not ds.files):
        entries = [FileEntry(p, None) for p in sorted(locks)]
        if not entries:
            report.rows.append(("", "missing", f"not imported; run: grainbench data import {name} PATH"))
    for f in entries:
        path = dest / f.path
        if not path.is_file():
            report.rows.append((f.path, "missing", str(path)))
            continue
        got = sha256_file(path)
        want = f.sha256 or locks.get(f.path)
        if want is None:
            report.rows.append((f.path, "ok", f"sha256 {got} (no published or pinned hash)"))
        elif got == want:
            how = "published" if f.sha256 else "pinned locally"
            report.rows.append((f.path, "ok", f"sha256 {got} ({how})"))
        elif f.sha256:
            report.rows.append((f.path, "bad hash", f"expected sha256 {want}, got {got}"))
        else:
            report.rows.append((f.path, "changed", f"pinned sha256 {want}, now {got}"))
    _mark_splits(ds, report, entries)
    return report


def _mark_splits(ds: Dataset, report: VerifyReport, entries: list[FileEntry]) -> None:
    """Fill ``report.splits``; files of splits that are wholly absent become ``not fetched``."""
    status = {path: st for path, st, _ in report.rows}
    needs = {s: [f.path for f in split_files(ds, [s])] if ds.files else [f.path for f in entries]
             for s in ds.splits}
    report.splits = {s: bool(paths) and all(status.get(p) == "ok" for p in paths) for s, paths in needs.items()}
    if ds.source != "https":
        return
    touched = {s for s, paths in needs.items() if any(status.get(p) != "missing" for p in paths)}
    for i, (path, st, detail) in enumerate(report.rows):
        if st == "missing" and not any(path in needs[s] for s in touched):
            report.rows[i] = (path, NOT_FETCHED, f"{detail} (split {', '.join(s for s in needs if path in needs[s])} "
                                                 f"not fetched; grainbench data fetch {ds.name} --split ...)")
