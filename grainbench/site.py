"""The static HTML leaderboard site, written beside the Markdown tables on every build.

Layout inside the leaderboards folder (publishable as is, e.g. as GitHub Pages; no server, no network):

- ``index.html``: every dataset with a page, linking its page, Markdown and CSV;
- ``<dataset>.html`` and ``<dataset>_tracking.html``: the same blocks as the Markdown
  (:mod:`grainbench.document`): fair table, upper-bound (oracle) table and reported
  rows apart, sortable columns, each row linking its record page and figures;
- ``pages/records/<dataset>/<run_id>.html``: one record, its figures, its
  metrics and the whole JSON pretty-printed, linking the JSON file.

Every value from a record is HTML-escaped; every file is written atomically inside the folder.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

from .document import Block, html_page, to_html
from .io import atomic_write, safe_name

INDEX = "index.html"


def _rel(target: str | os.PathLike, start: Path) -> str:
    return quote(Path(os.path.relpath(target, start)).as_posix(), safe="/._-@+:")


def record_page(path: str | os.PathLike, out_dir: Path) -> str:
    """Where the HTML page of record ``path`` goes, relative to ``out_dir``: ``pages/records/<dataset>/<id>.html``."""
    path = Path(path)
    return f"pages/records/{safe_name(path.parent.name)}/{safe_name(path.stem)}.html"


def figures_of(rec: dict | None, out_dir: Path) -> list[tuple[str, Path]]:
    """The pictures a record names that exist inside ``out_dir``, by kind."""
    root = Path(out_dir).resolve()
    found = []
    for kind, picture in sorted(((rec or {}).get("figures") or {}).items()):
        path = Path(picture).resolve()
        if path.is_file() and root in path.parents:
            found.append((kind, path))
    return found


def _nav(out_dir: Path, page_dir: Path, extra: list[tuple[str, Path]] = ()) -> str:
    links = [("all datasets", out_dir / INDEX), *extra]
    return "<nav>" + " · ".join(f'<a href="{_rel(p, page_dir)}">{html.escape(t)}</a>' for t, p in links) + "</nav>"


def write_page(path: Path, title: str, blocks: list[Block], out_dir: Path, *,
               extra_nav: list[tuple[str, Path]] = ()) -> Path:
    """``blocks`` as one HTML page at ``path`` (a top-level page of ``out_dir``: links are relative to it)."""
    with atomic_write(path, "w") as fh:
        fh.write(html_page(title, to_html(blocks), nav=_nav(out_dir, path.parent, list(extra_nav))))
    return path


def write_record_page(record_path: str | os.PathLike, record: dict, out_dir: Path, page: str,
                      dataset_page: Path) -> Path:
    """The page of one record at ``out_dir / page``: identity, figures, aggregate metrics, the JSON itself."""
    path = out_dir / page
    here = path.parent
    cfg = record.get("config", {})
    facts = [("run id", record.get("run_id")), ("method", cfg.get("model")), ("dataset", cfg.get("dataset")),
             ("split", cfg.get("split")), ("protocol", cfg.get("protocol")), ("preset", cfg.get("preset")),
             ("seed", cfg.get("seed")), ("mode", cfg.get("mode")), ("model arguments", cfg.get("model_args")),
             ("weights", (cfg.get("weights") or {}).get("sha256") or record.get("checkpoint", {}).get("sha256")),
             ("weights from outside", (cfg.get("weights") or {}).get("source")),
             ("git commit", record.get("git", {}).get("commit")), ("dirty tree", record.get("git", {}).get("dirty")),
             ("device", record.get("environment", {}).get("device")), ("created", record.get("created"))]
    esc = html.escape
    rows = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{esc(json.dumps(v) if isinstance(v, dict) else str(v))}"
                   "</td></tr>" for k, v in facts if v not in (None, "", {}))
    metrics = record.get("metrics", {}).get("aggregate", {})
    mrows = "".join(f'<tr><td>{esc(k)}</td><td data-sort="{v!r}">{v:.6g}</td></tr>' for k, v in sorted(metrics.items())
                    if isinstance(v, (int, float)))
    pictures = "".join(f'<figure><img src="{_rel(p, here)}" alt="{esc(kind)}"><figcaption>{esc(kind)}: '
                       f'<a href="{_rel(p, here)}">{esc(p.name)}</a></figcaption></figure>'
                       for kind, p in figures_of(record, out_dir))
    body = (f"<h1>Record {esc(str(record.get('run_id')))}</h1>\n"
            f'<p><a href="{_rel(record_path, here)}">the record as JSON</a></p>\n'
            f"<table>{rows}</table>\n{pictures}\n<h2>Aggregate metrics</h2>\n"
            f'<table class="sortable metrics"><thead><tr><th scope="col" tabindex="0">metric</th>'
            f'<th scope="col" tabindex="0">value</th></tr></thead><tbody>{mrows}</tbody></table>\n'
            f"<h2>Full record</h2>\n<pre>{esc(json.dumps(record, indent=2, sort_keys=True))}</pre>")
    with atomic_write(path, "w") as fh:
        fh.write(html_page(f"record {record.get('run_id')}", body,
                           nav=_nav(out_dir, here, [(dataset_page.stem, dataset_page)])))
    return path


def write_index(out_dir: Path) -> Path:
    """``index.html``: a line per dataset page in ``out_dir`` (with its tracking page, Markdown and CSV)."""
    pages = sorted(p for p in out_dir.glob("*.html") if p.name != INDEX)
    items = []
    for page in pages:
        stem = page.stem
        extra = [f'<a href="{quote(f"{stem}{ext}")}">{ext[1:]}</a>' for ext in (".md", ".csv")
                 if (out_dir / f"{stem}{ext}").is_file()]
        label = stem.replace("_tracking", " (3D tracking)") if stem.endswith("_tracking") else stem
        items.append(f'<li><a href="{quote(page.name)}">{html.escape(label)}</a> '
                     f"({', '.join(extra)})</li>")
    body = ("<h1>grainbench leaderboards</h1>\n<p>Built from the run records only. Each dataset page holds the "
            "fair ranking, the upper-bound (oracle) rows and the numbers reported in the papers apart; click a "
            "column header to sort.</p>\n<ul>" + "".join(items) + "</ul>")
    path = out_dir / INDEX
    with atomic_write(path, "w") as fh:
        fh.write(html_page("grainbench leaderboards", body))
    return path
