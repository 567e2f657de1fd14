import os

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _ignore_the_users_runs_folder():
    """Tests never write into the runs folder of whoever runs them: a ``GRAINBENCH_RUNS`` exported in the
    shell is set aside for the session (tests that need a runs folder set their own, or use ``./runs`` of
    their temporary working folder)."""
    saved = os.environ.pop("GRAINBENCH_RUNS", None)
    yield
    if saved is not None:
        os.environ["GRAINBENCH_RUNS"] = saved


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A data cache holding the generated ``synthetic`` dataset, made once for the whole session.

    Tests that only read it (run, submit, track) share it; point ``GRAINBENCH_DATA`` at it.
    """
    from grainbench import data

    root = tmp_path_factory.mktemp("synthetic-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINBENCH_DATA", str(root))
    data.load("synthetic", "test")  # generates and pins it
    mp.undo()
    return root


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Data cache and runs under ``tmp_path``, the shipped registry only (no user registry), its cache cleared."""
    import grainbench.data.registry as registry

    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    registry._CACHE.clear()
