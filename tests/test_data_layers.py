"""The data layer has no import cycle: the registry is read by the others and reads none of them."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import grainbench.data.registry as registry

ABOVE = ("fetch", "generate", "manual", "loaders")


def _imported_data_modules(path: Path) -> set[str]:
    """Modules of grainbench.data that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.startswith("grainbench.data."):
                found.add(node.module.split(".")[2])
            elif node.level == 2 and node.module and node.module.startswith("data."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("grainbench.data.")}
    return found


def test_registry_source_imports_none_of_the_modules_above_it():
    imported = _imported_data_modules(Path(registry.__file__))
    assert "cache" in imported  # the parser sees the one data module it does read
    assert not imported & set(ABOVE), imported


def test_cache_imports_no_data_module():
    from grainbench.data import cache

    assert _imported_data_modules(Path(cache.__file__)) == set()


def test_generate_and_manual_do_not_import_each_other_or_fetch():
    generate = importlib.import_module("grainbench.data.generate")  # the package attribute is the function
    manual = importlib.import_module("grainbench.data.manual")

    assert not _imported_data_modules(Path(generate.__file__)) & {"fetch", "manual", "loaders"}
    assert not _imported_data_modules(Path(manual.__file__)) & {"fetch", "generate", "loaders"}


def test_importing_the_registry_loads_none_of_them_and_reads_the_registry():
    code = ("import sys, grainbench.data.registry as r; r.get_dataset('tbm'); r.dataset_hashes('synthetic'); "
            "print(' '.join(m for m in " + repr(ABOVE) + " if 'grainbench.data.' + m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == ""
