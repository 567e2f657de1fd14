"""``grainbench data ...``: list, inspect, fetch, import, verify, generate and tile datasets."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from rich.table import Table

from ..errors import DatasetError
from ._console import console, err_console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data", help="list, fetch, import and verify datasets",
        description="Datasets of the registry (datasets.toml) and your own: list them, show one, download, "
                    "import a file you got by hand, verify hashes, generate synthetic data, cut tiles.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    s = sub.add_parser("list", help="table of all datasets and whether each is installed")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="everything the registry says about one dataset")
    s.add_argument("name")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("fetch", help="download (https), generate, or check an imported (manual) dataset")
    s.add_argument("name")
    s.add_argument("--split", type=_names, default=None, metavar="S[,S...]",
                   help="fetch only the files these splits need, e.g. train,val (default: every split)")
    s.add_argument("--mirror", help="base URL serving NAME/PATH for every file (default: $GRAINBENCH_MIRROR)")
    s.add_argument("--retries", type=int, default=2, help="extra attempts per file (default 2)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt (default 30)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("import", help="verify and install a dataset you downloaded by hand, or add your own folder",
                       description="Install a manual dataset from PATH (checked against its published sha256, or "
                                   "its structure, and pinned in the local lock), or, for a new NAME, a folder "
                                   "with images/ and masks/ of the same file names as a local dataset.")
    s.add_argument("name")
    s.add_argument("path")
    s.add_argument("--any-shape", action="store_true",
                   help="accept a stack whose shape differs from the published one (e.g. a cut-down copy)")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("verify", help="re-hash the installed files of a dataset")
    s.add_argument("name")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("generate", help="run the generator of a generated dataset and check its digest")
    s.add_argument("name")
    s.add_argument("--force", action="store_true", help="regenerate even when a stored copy exists")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("path", help="print the dataset's folder in the cache (or the cache itself)")
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_path)

    s = sub.add_parser("tile", help="cut image/mask pairs into equal tiles (a folder usable by `data import`)")
    s.add_argument("image_dir")
    s.add_argument("mask_dir")
    s.add_argument("out_dir")
    s.add_argument("--size", type=int, default=256, help="tile size in pixels (default 256)")
    s.add_argument("--overlap", type=int, default=0, help="overlap of neighbouring tiles in pixels (default 0)")
    s.add_argument("--line-width", type=int, default=None, help="redraw mask traces with this width in pixels")
    s.set_defaults(func=cmd_tile)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated split names, got {text!r}")
    return names


def _with_warnings(fn):
    """Run ``fn`` and print dataset warnings (e.g. a pinned hash that changed) as yellow lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    for w in caught:
        err_console.print(f"[bold yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)
    return result


def _installed(ds) -> str:
    from ..data.cache import dataset_dir
    from ..data.generate import stored_path

    if ds.source == "generate":
        return "yes" if stored_path(ds).is_file() else "on first use"
    if ds.layout_kind == "unpinned":
        return "not pinned"
    d = dataset_dir(ds.name)
    if ds.files:
        have = sum((d / f.path).is_file() for f in ds.files)
        return "yes" if have == len(ds.files) else f"{have}/{len(ds.files)} files" if have else "no"
    return "yes" if (d / ds.layout.get("image_dir", "")).is_dir() else "no"


def cmd_list(args: argparse.Namespace) -> int:
    from ..data.registry import list_datasets

    table = Table(title="grainbench datasets")
    for col in ("name", "task", "serial", "source", "installed"):
        table.add_column(col, no_wrap=True)
    table.add_column("title", overflow="fold")
    for ds in list_datasets():
        table.add_row(ds.name, ds.task, "yes" if ds.serial else "no", ds.source, _installed(ds), ds.title)
    console.print(table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..data.cache import dataset_dir
    from ..data.registry import get_dataset

    ds = get_dataset(args.name)
    table = Table(show_header=False, title=f"{ds.name}: {ds.title}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("task", ds.task), ("serial", str(ds.serial)),
        ("channels", f"{ds.channels} ({'RGB' if ds.channels == 3 else 'grey'})"), ("modality", ds.modality),
        ("pixel size", f"{ds.pixel_size_um:g} µm" if ds.pixel_size_um else "unknown"),
        ("licence", ds.licence), ("citation", ds.citation), ("homepage", ds.homepage or "-"),
        ("source", ds.source), ("layout", ", ".join(f"{k}={v}" for k, v in ds.layout.items())),
        ("files", f"{len(ds.files)}" + (f" from {ds.base_url}" if ds.base_url else "")),
        ("splits", "; ".join(f"{n}: {_describe_split(s)}" for n, s in ds.splits.items()) or "-"),
        ("installed", f"{_installed(ds)} ({dataset_dir(ds.name)})"),
    ]
    if ds.shape:
        rows.append(("shape", " x ".join(map(str, ds.shape))))
    if ds.generator:
        rows.append(("generator", f"{ds.generator} {dict(ds.params)}; digest {ds.digest or 'not pinned'}"))
    if ds.instructions:
        rows.append(("how to get it", ds.instructions))
    if ds.notes:
        rows.append(("notes", ds.notes))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    return 0


def _describe_split(s) -> str:
    if s.fraction:
        return f"{s.fraction[0]:.0%}-{s.fraction[1]:.0%} of the slices"
    if s.start is not None:
        return f"slices {s.start}-{s.stop - 1} (0-based)"
    if s.groups:
        return f"groups {list(s.groups)} of labelled slices"
    what = f"folder {s.dir or '.'}"
    return what + (f", index % {s.every} in {list(s.offsets)}" if s.every else "")


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..data.fetch import fetch

    path = _with_warnings(lambda: fetch(args.name, splits=args.split, mirror=args.mirror, progress=not args.no_progress,
                                        retries=args.retries, timeout=args.timeout))
    console.print(f"[green]ok[/] {args.name}: {path}", highlight=False)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..data.cache import dataset_dir
    from ..data.manual import companion_datasets, import_dataset

    also = companion_datasets(args.name, args.path)
    path = _with_warnings(lambda: import_dataset(args.name, args.path, check_shape=not args.any_shape,
                                                 progress=True))
    console.print(f"[green]imported[/] {args.name} into {path}", highlight=False)
    for name in also:
        if dataset_dir(name).is_dir():
            console.print(f"[green]also imported[/] {name} (from the same file) into {dataset_dir(name)}",
                          highlight=False)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..data.fetch import verify

    report = verify(args.name)
    table = Table(title=f"verify {args.name}")
    for col in ("file", "status", "detail"):
        table.add_column(col, overflow="fold")
    colour = {"ok": "green", "missing": "yellow", "changed": "yellow", "bad hash": "red", "not fetched": "dim"}
    bad = [r for r in report.rows if r[1] not in ("ok", "not fetched")]
    shown = bad if len(report.rows) > 20 and bad else [r for r in report.rows if r[1] != "not fetched"] \
        if len(report.rows) > 20 else report.rows
    for path, status, detail in shown:
        table.add_row(path, f"[{colour.get(status, 'white')}]{status}[/]", detail)
    console.print(table)
    n_ok = sum(r[1] == "ok" for r in report.rows)
    skipped = sum(r[1] == "not fetched" for r in report.rows)
    console.print(f"{n_ok}/{len(report.rows)} files ok" + (f", {skipped} not fetched" if skipped else ""),
                  highlight=False)
    if report.splits:
        absent = [s for s, ok in report.splits.items() if not ok]
        console.print(f"splits present: {', '.join(report.present) or 'none'}"
                      + (f"; not present: {', '.join(absent)}" if absent else ""), highlight=False)
    return 0 if report.ok else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from ..data.generate import generate

    path, digest = _with_warnings(lambda: generate(args.name, force=args.force, progress=True))
    console.print(f"[green]ok[/] {args.name}: {path}\ndigest {digest}", highlight=False)
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from ..data.cache import cache_dir, dataset_dir
    from ..data.registry import get_dataset

    if args.name is None:
        print(cache_dir())
    else:
        get_dataset(args.name)  # unknown names are an error, not a made-up folder
        print(dataset_dir(args.name))
    return 0


def cmd_tile(args: argparse.Namespace) -> int:
    try:
        from ..data.tiling import tile_pairs
    except ImportError as exc:
        raise DatasetError(f"tiling is not available in this installation ({exc})") from None
    for d in (args.image_dir, args.mask_dir):
        if not Path(d).is_dir():
            raise DatasetError(f"{d}: not a folder")
    n = tile_pairs(args.image_dir, args.mask_dir, args.out_dir, size=args.size, overlap=args.overlap,
                   line_width=args.line_width)
    console.print(f"[green]ok[/] wrote {n} tile pairs to {args.out_dir}", highlight=False)
    return 0
