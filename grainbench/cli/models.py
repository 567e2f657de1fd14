"""``grainbench models``: list the methods with parameter count, context, reference and presets."""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from ..extras import install_hint
from ..methods import list_models, model_info
from ._console import console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the segmentation methods",
        description="List registered methods (entry-point group 'grainbench.methods') with their parameter "
                    "count at the default configuration, input context, paper reference and training presets.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="glob on the method name (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    infos = [model_info(name) for name in list_models(args.pattern)]
    if args.json:
        print(json.dumps([{"name": i.name, "params": i.params, "params_m": i.params_m, "context": i.context,
                           "reference": i.reference, "presets": list(i.presets), "available": i.available,
                           "extra": i.extra, "error": i.error} for i in infos], indent=2))
        return 0
    table = Table(show_header=True, header_style="bold")
    for col, kw in (("name", {}), ("params", {"justify": "right"}), ("context", {}), ("presets", {}),
                    ("reference", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for i in infos:
        presets = ", ".join(i.presets) or "none (no training)"
        if i.extra:  # an optional package is missing: say which extra installs it
            table.add_row(i.name, "-", i.context, presets,
                          f"[yellow]needs[/] {escape(install_hint(i.extra))}  ({escape(i.reference)})")
        elif not i.available:
            table.add_row(i.name, "-", i.context, presets, f"[yellow]unavailable:[/] {escape(i.error)}")
        else:
            table.add_row(i.name, i.params_m, i.context, presets, i.reference)
    console.print(table)
    return 0
