"""Install and first run as a user does them: packaging, optional extras, registry lookup, threads, plugins.

The wheel itself is built and installed into a fresh virtual environment by
``.ci/run``; these tests check the pieces that make that work, with optional
packages hidden in a subprocess where it matters.
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import grainbench
from grainbench.cli import main
from grainbench.errors import GrainbenchError

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# What each optional package enables: import name -> (extra, models that need it).
OPTIONAL = {
    "segmentation_models_pytorch": ("smp", {"unet_resnet34", "unet_efficientnet_b0"}),
    "torchvision": ("edges", {"hed", "rcf"}),
    "maxflow": ("finecut", {"fast_finecut"}),
    "timm": ("track", set()),
    "gudhi": ("topo", set()),
    "ray": ("tune", set()),
}

# One process with the optional packages missing (every import of them fails as on a base install) runs
# everything the extras tests look at, so torch is imported once: results go to a JSON file.
HIDDEN_RUN = """
import contextlib, io, json, sys
HIDDEN = set(sys.argv[1].split(","))

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from grainbench.cli import main

def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}

def error_of(code):
    try:
        exec(code)
    except Exception as exc:
        return [f"{type(exc).__module__}.{type(exc).__name__}", str(exc)]
    return None

result = {"models": cli("models", "--json"), "table": cli("models", "unet*"),
          "run": cli("run", "--model", "unet_resnet34", "--dataset", "synthetic"),
          "errors": {extra: error_of(code) for extra, code in json.loads(sys.argv[2]).items()}}
with open(sys.argv[3], "w") as fh:
    json.dump(result, fh)
"""

# What fails without each extra, as a user would hit it.
TRIGGERS = {
    "smp": "from grainbench.methods import create_model; create_model('unet_resnet34')",
    "edges": "from grainbench.methods import create_model; create_model('hed', width=4).num_parameters()",
    "finecut": "from grainbench.methods import create_model; create_model('fast_finecut')",
    "topo": "from grainbench.training.losses import get_loss; get_loss('topo')",
    "track": "from grainbench.tracking import get_tracker_class as g; g('vgg13_bn')().build()",
    "tune": "from grainbench.space import Dimension, Space, to_ray; to_ray(Space((Dimension('set', 'lr', 'choice', "
            "(1e-3,)),)))",
}


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """What grainbench does with torchvision, timm, smp, gudhi, PyMaxflow and ray all missing."""
    tmp = tmp_path_factory.mktemp("hidden")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRAINBENCH_DATA": str(tmp / "data"),
           "GRAINBENCH_RUNS": str(tmp / "runs")}
    out = tmp / "result.json"
    proc = subprocess.run([sys.executable, "-c", HIDDEN_RUN, ",".join(OPTIONAL), json.dumps(TRIGGERS), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return {**json.loads(out.read_text()), "tmp": tmp}


# --------------------------------------------------------------------------- extras

def test_models_lists_every_method_when_the_optional_packages_are_missing(hidden):
    from importlib.metadata import entry_points

    models = hidden["models"]
    assert models["rc"] == 0 and "Traceback" not in models["err"], models["err"]
    rows = {r["name"]: r for r in json.loads(models["out"])}
    # Nothing hidden from the listing (entry points, not this process's registry: other tests register models).
    assert sorted(rows) == sorted({ep.name for ep in entry_points(group="grainbench.methods")})
    needs = {m: extra for extra, ms in OPTIONAL.values() for m in ms}
    for name, row in rows.items():
        if name in needs:
            assert not row["available"] and row["extra"] == needs[name], row
            assert f'pip install "grainbench[{needs[name]}]"' in row["error"]
        else:
            assert row["available"] and row["params"] is not None and row["extra"] == "", row


def test_models_table_names_the_extra_to_install(hidden):
    table = hidden["table"]
    assert table["rc"] == 0, table["err"]
    lines = {line.split()[1]: line for line in table["out"].splitlines() if line.startswith("│")}
    assert 'pip install "grainbench[smp]"' in lines["unet_resnet34"]
    assert "31.04M" in lines["unet"]


@pytest.mark.parametrize("extra", sorted(TRIGGERS))
def test_every_missing_optional_package_names_its_extra(hidden, extra):
    kind, message = hidden["errors"][extra]
    assert kind == "grainbench.extras.MissingExtraError"
    assert f'pip install "grainbench[{extra}]"' in message


def test_run_with_a_missing_extra_is_one_line_and_status_2(hidden):
    run = hidden["run"]
    assert run["rc"] == 2 and "Traceback" not in run["err"], run["err"]
    assert 'pip install "grainbench[smp]"' in run["err"]
    assert not (hidden["tmp"] / "data" / "synthetic").exists()  # failed before any work


def test_extras_declare_what_the_code_imports():
    from grainbench.extras import OPTIONAL as DECLARED

    extras = PYPROJECT["project"]["optional-dependencies"]
    base = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    for module, (extra, dist) in DECLARED.items():
        assert any(req.lower().startswith(dist.lower()) for req in extras[extra]), (extra, dist)
        assert dist.lower() not in base  # optional means not in the base install
        assert OPTIONAL[module][0] == extra
    named = {e for e in extras if e not in ("all", "test")}
    assert extras["all"] == [f"grainbench[{','.join(sorted(named, key=list(extras).index))}]"]
    assert "grainbench[all]" in extras["test"]


def test_every_third_party_import_is_a_declared_dependency():
    """Each package that grainbench/ or baselines/ imports is a base dependency or an extra (zarr was neither)."""
    import ast
    import importlib.metadata as md
    import re

    declared = {re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")
                for req in PYPROJECT["project"]["dependencies"]}
    from grainbench.extras import OPTIONAL as EXTRAS

    declared |= {re.split(r"[<>=\[ ]", dist, maxsplit=1)[0].lower() for _, dist in EXTRAS.values()}
    owners = md.packages_distributions()
    stdlib = sys.stdlib_module_names
    missing = {}
    for path in [*(REPO / "grainbench").rglob("*.py"), *(REPO / "baselines").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - stdlib - {"grainbench", "baselines", "__future__"}:
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


# --------------------------------------------------------------------------- packaging

def test_package_list_matches_the_package_folders():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "grainbench").rglob("__init__.py")}
    assert listed == found | {"grainbench.baselines"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"grainbench.baselines": "baselines"}
    assert not any(p == "baselines" or p.startswith("baselines.") for p in listed)  # PyPI 'baselines' collision


def test_entry_points_name_grainbench_baselines_that_exist():
    import importlib

    eps = PYPROJECT["project"]["entry-points"]["grainbench.methods"]
    assert len(eps) >= 18
    for name, target in eps.items():
        module, _, attr = target.partition(":")
        assert module.startswith("grainbench.baselines."), target
        assert getattr(importlib.import_module(module), attr).name == name


def test_checkout_baselines_import_as_grainbench_baselines():
    import grainbench.baselines.wpunet as wp

    assert Path(grainbench.__file__).parent.parent == REPO  # this checkout's code, not an installed copy
    assert Path(wp.__file__).resolve() == REPO / "baselines" / "wpunet.py"


def test_registry_ships_in_the_package_as_the_one_root_copy():
    from importlib.resources import files

    packaged = files("grainbench").joinpath("datasets.toml")
    assert packaged.read_bytes() == (REPO / "datasets.toml").read_bytes()
    assert "datasets.toml" in PYPROJECT["tool"]["setuptools"]["package-data"]["grainbench"]


def test_registry_lookup_order(tmp_path, monkeypatch):
    from grainbench.data import registry

    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert registry.default_registry_path() == REPO / "datasets.toml"
    user = registry.user_registry_path()
    assert user == tmp_path / "config" / "grainbench" / "datasets.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[datasets.mine]\ntask = "boundary"\n')
    assert registry.default_registry_path() == user
    env = tmp_path / "env.toml"
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(env))
    assert registry.default_registry_path() == env


def test_installed_package_reads_its_packaged_registry(tmp_path, monkeypatch):
    """A copy of the package outside any checkout (as a wheel installs it) still finds its registry."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(REPO / "grainbench", site / "grainbench", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("GRAINBENCH_REGISTRY", None)
    code = ("import grainbench.data.registry as r; p = r.default_registry_path(); "
            "print(p); print(sorted(r.load_registry(include_local=False))[:2])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(site / "grainbench" / "datasets.toml")


# --------------------------------------------------------------------------- plugins

def test_model_class_is_found_in_the_current_folder(tmp_path, monkeypatch):
    """The console script does not put the current folder on sys.path; --model mymodule:MyClass still works."""
    from grainbench.methods import get_model_class

    (tmp_path / "gb_cwd_method.py").write_text(
        "from grainbench.baselines.classical import Classical\n\n"
        "class Mine(Classical):\n    name = 'mine'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path), os.getcwd())])
    monkeypatch.delitem(sys.modules, "gb_cwd_method", raising=False)
    assert get_model_class("gb_cwd_method:Mine").name == "mine"


def test_missing_model_module_says_where_it_looked(tmp_path, monkeypatch):
    from grainbench.methods import MethodError, get_model_class

    monkeypatch.chdir(tmp_path)
    with pytest.raises(MethodError, match=r"no_such_gb_module.*current folder .*PYTHONPATH"):
        get_model_class("no_such_gb_module:Mine")


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize("cores,load,want", [(2, 0.0, 2), (2, 0.6, 1), (2, 0.4, 2), (2, 3.0, 1), (16, 4.2, 12),
                                             (16, 40.0, 1), (1, 0.0, 1)])
def test_threads_fit_beside_the_load(cores, load, want):
    from grainbench.threads import threads_for

    assert threads_for(cores, load) == want


def test_thread_overrides_in_order(monkeypatch):
    from grainbench import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "load_average", lambda: 5.0)
    assert threads.choose_threads(None, {}).threads == 3
    assert threads.choose_threads(None, {"OMP_NUM_THREADS": "2"}).threads is None  # torch honours it itself
    assert threads.choose_threads(None, {"OMP_NUM_THREADS": "2", "GRAINBENCH_THREADS": "6"}).threads == 6
    assert threads.choose_threads("4", {"GRAINBENCH_THREADS": "6"}).threads == 4
    with pytest.raises(GrainbenchError, match="GRAINBENCH_THREADS.*'many'"):
        threads.choose_threads(None, {"GRAINBENCH_THREADS": "many"})


def test_load_is_the_lagging_average_capped_by_what_runs_now(monkeypatch):
    from grainbench import threads

    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.9, 1.0, 0.5))
    monkeypatch.setattr(threads, "running_now", lambda: 0.2)  # the other job just ended
    assert threads.load_average() == 0.2
    monkeypatch.setattr(threads, "running_now", lambda: 3.0)  # a burst: the average decides
    assert threads.load_average() == 1.9
    monkeypatch.setattr(threads, "running_now", lambda: None)  # no /proc
    assert threads.load_average() == 1.9


def test_running_now_counts_a_busy_process():
    import multiprocessing as mp
    import time

    from grainbench import threads

    if threads.running_now() is None:
        pytest.skip("no /proc/loadavg")
    stop = time.monotonic() + 3
    busy = mp.get_context("spawn").Process(target=_spin, args=(stop,))
    busy.start()
    try:
        time.sleep(1.0)  # past its start-up
        assert threads.running_now(samples=10) >= 0.5
    finally:
        busy.terminate()
        busy.join()


def _spin(until: float) -> None:
    import time

    while time.monotonic() < until:
        pass


@pytest.mark.parametrize("argv", [["--threads", "1", "data", "list"], ["data", "list", "--threads", "1"]])
def test_threads_option_sets_torch_threads(argv, capsys):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_threads_value_is_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setenv("GRAINBENCH_THREADS", "0")
    assert main(["data", "list"]) == 2
    assert "GRAINBENCH_THREADS" in capsys.readouterr().err
