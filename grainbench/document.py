"""One leaderboard page, built once as blocks (headings, text, DataFrame tables, links, images), rendered to
Markdown (what GitHub shows) or to a static HTML page (sortable tables, no server, no network).

Text comes in two kinds: literal strings written by grainbench (may hold
backtick code spans) and :class:`Val` (anything from a record or the user: a
method name, a preset label), which is always escaped. Table cells are
values too; a cell may instead be a list of :class:`Link`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import quote

import pandas as pd

from .tables import md_cell


class Val(str):
    """Untrusted text: escaped in both formats."""


@dataclass(frozen=True)
class Link:
    """A link: ``target`` (relative posix path) in Markdown, ``html_target`` (default the same) in HTML.

    ``quoted``: percent-encode the target (characters Markdown would misread).
    """

    text: str
    target: str
    html_target: str | None = None
    quoted: bool = True


@dataclass
class Heading:
    level: int
    parts: tuple[str, ...]


@dataclass
class Para:
    parts: tuple[str, ...]


@dataclass
class TableBlock:
    """A DataFrame whose columns are the headers; ``html_only`` columns are left out of the Markdown."""

    frame: pd.DataFrame
    html_only: tuple[str, ...] = ()
    kind: str = "table"  # CSS class / data-kind of the HTML table: fair, oracle, reported, tracking


@dataclass
class Image:
    alt: str
    target: str


@dataclass
class Bullets:
    items: list[Link | str] = field(default_factory=list)  # a str: plain (escaped) text


Block = Heading | Para | TableBlock | Image | Bullets


# --------------------------------------------------------------------------- Markdown

def _md_parts(parts: tuple[str, ...]) -> str:
    return "".join(md_cell(p) if isinstance(p, Val) else p for p in parts)


def _md_target(link: Link) -> str:
    return quote(link.target, safe="/._-@+:") if link.quoted else link.target


def _md_cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(f"[{md_cell(link.text)}]({_md_target(link)})" for link in value)
    return md_cell(value)


def markdown_table(frame: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[str]:
    """``| a | b |`` lines of ``frame`` (every cell escaped), a blank line after."""
    cols = [c for c in frame.columns if c not in skip]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame[cols].itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return [*lines, ""]


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + _md_parts(b.parts), ""]
        elif isinstance(b, Para):
            lines += [_md_parts(b.parts), ""]
        elif isinstance(b, TableBlock):
            lines += markdown_table(b.frame, b.html_only)
        elif isinstance(b, Image):
            lines += [f"![{b.alt}]({b.target})", ""]
        elif isinstance(b, Bullets):
            lines += [f"- [{md_cell(i.text)}]({_md_target(i)})" if isinstance(i, Link) else f"- {md_cell(i)}"
                      for i in b.items] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

def _esc(text: str) -> str:
    return html.escape(str(text), quote=True).replace("`", "&#96;")


def _html_parts(parts: tuple[str, ...]) -> str:
    # Values are escaped with their backticks as entities; the literals' `code` spans (which may enclose a
    # value: "protocol `" + Val + "`") become <code> once everything is joined.
    joined = "".join(_esc(p) if isinstance(p, Val) else html.escape(p, quote=True) for p in parts)
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", joined)


def _href(link: Link) -> str:
    return _esc(quote(link.html_target or link.target, safe="/._-@+:#"))


_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def _html_cell(value: object) -> str:
    if isinstance(value, list):
        return "<td>" + ", ".join(f'<a href="{_href(link)}">{_esc(link.text)}</a>' for link in value) + "</td>"
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    number = _NUMBER.match(text)
    sort = f' data-sort="{_esc(number.group(1))}"' if number else ""
    return f"<td{sort}>{_esc(text)}</td>"


def html_table(frame: pd.DataFrame, kind: str = "table") -> str:
    """A ``<table class="sortable">``: headers sort their column when clicked (see :data:`SORT_JS`)."""
    head = "".join(f'<th scope="col" tabindex="0">{_esc(c)}</th>' for c in frame.columns)
    body = "\n".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>"
                     for row in frame.itertuples(index=False))
    return (f'<table class="sortable {_esc(kind)}" data-kind="{_esc(kind)}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>")


#: Click (or Enter on) a header: sort the rows by that column, numbers as numbers, empty cells last;
#: a second click reverses. The header's aria-sort says the order. No library, no network.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, col) {
    function sort() {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (!cell) { return [2, '']; }
        var n = cell.getAttribute('data-sort');
        if (n !== null) { return [0, parseFloat(n)]; }
        var t = cell.textContent.trim();
        return (t === '' || t === '-') ? [2, ''] : [1, t.toLowerCase()];
      }
      rows.sort(function (a, b) {
        var ka = key(a), kb = key(b);
        if (ka[0] !== kb[0]) { return ka[0] - kb[0]; }
        if (ka[0] === 2) { return 0; }
        var c = ka[1] < kb[1] ? -1 : (ka[1] > kb[1] ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sort(); } });
  });
});
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 96em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
td:nth-child(-n+3), th:nth-child(-n+3) { text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
table.oracle th { background: #fff3d6; }
table.reported th { background: #e8eefc; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
"""


def html_page(title: str, body: str, *, nav: str = "") -> str:
    """A complete HTML5 page with the site's CSS and the sorting script inline (no external resources)."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_esc(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n{nav}\n{body}\n<script>{SORT_JS}</script>\n</body>\n</html>\n")


def to_html(blocks: list[Block]) -> str:
    """The body of a page (headings, paragraphs, sortable tables, images, link lists)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_html_parts(b.parts)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_html_parts(b.parts)}</p>")
        elif isinstance(b, TableBlock):
            out.append(html_table(b.frame, b.kind))
        elif isinstance(b, Image):
            out.append(f'<p><img src="{_esc(b.target)}" alt="{_esc(b.alt)}"></p>')
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f'<li><a href="{_href(i)}">{_esc(i.text)}</a></li>' if isinstance(i, Link)
                                        else f"<li>{_esc(i)}</li>" for i in b.items) + "</ul>")
    return "\n".join(out)
