"""Downloads against a 127.0.0.1 server: good, bad hash, 404, timeout, short transfer, mirror, retry."""

import dataclasses
import importlib
import types

import numpy as np
import pytest
from _data_server import SHARED_TBM, Server, entry, sha, write_registry

import grainbench.data.registry as registry
from grainbench.data import fetch, get_dataset, load, verify
from grainbench.errors import DatasetError

A, B = b"first file " * 1000, b"second file " * 3000


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_MIRROR", raising=False)
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    # retries without waiting (pooch.core.time is the time module: replace it there only)
    monkeypatch.setattr("pooch.core.time", types.SimpleNamespace(sleep=lambda s: None))
    registry._CACHE.clear()


@pytest.fixture
def server():
    with Server() as s:
        s.files = {"data/a.bin": A, "data/sub/b.bin": B}
        yield s


def use_registry(tmp_path, monkeypatch, base_url, files):
    reg = write_registry(tmp_path / "reg.toml", {"toy": entry(base_url=base_url, files=files)})
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(reg))


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


GOOD = [{"path": "a.bin", "sha256": sha(A)}, {"path": "sub/b.bin", "sha256": sha(B)}]


def test_good_download_then_cached(tmp_path, monkeypatch, server):
    use_registry(tmp_path, monkeypatch, server.url + "data/", GOOD)
    dest = fetch("toy", retries=0)
    assert (dest / "a.bin").read_bytes() == A and (dest / "sub/b.bin").read_bytes() == B
    assert files_in(dest) == ["a.bin", "sub/b.bin"]
    n = len(server.requests)
    fetch("toy")
    assert len(server.requests) == n  # nothing downloaded again
    assert verify("toy").ok


def test_wrong_hash_names_expected_and_got_and_leaves_nothing(tmp_path, monkeypatch, server):
    wrong = "ab" * 32
    use_registry(tmp_path, monkeypatch, server.url + "data/", [{"path": "a.bin", "sha256": wrong}])
    with pytest.raises(DatasetError) as info:
        fetch("toy", retries=0)
    msg = str(info.value)
    assert f"expected sha256 {wrong}" in msg and f"got {sha(A)}" in msg and "a.bin" in msg
    assert files_in(tmp_path / "cache" / "toy") == []


def test_404_is_clear(tmp_path, monkeypatch, server):
    use_registry(tmp_path, monkeypatch, server.url + "nothing/", GOOD)
    with pytest.raises(DatasetError, match=r"toy.*nothing/a\.bin: HTTP 404"):
        fetch("toy", retries=0)
    assert files_in(tmp_path / "cache" / "toy") == []


def test_timeout_is_clear(tmp_path, monkeypatch, server):
    server.mode["data/a.bin"] = "slow"
    use_registry(tmp_path, monkeypatch, server.url + "data/", GOOD[:1])
    with pytest.raises(DatasetError, match=r"a\.bin.*(timed out|download failed)"):
        fetch("toy", retries=0, timeout=0.3)
    assert files_in(tmp_path / "cache" / "toy") == []


def test_connection_refused_is_clear(tmp_path, monkeypatch):
    use_registry(tmp_path, monkeypatch, "http://127.0.0.1:9/", GOOD[:1])
    with pytest.raises(DatasetError, match="download failed.*GRAINBENCH_MIRROR"):
        fetch("toy", retries=0, timeout=2)


def test_interrupted_transfer_leaves_no_file(tmp_path, monkeypatch, server):
    server.mode["data/sub/b.bin"] = "short"
    use_registry(tmp_path, monkeypatch, server.url + "data/", GOOD)
    with pytest.raises(DatasetError, match=r"sub/b\.bin"):
        fetch("toy", retries=1)
    assert files_in(tmp_path / "cache" / "toy") == ["a.bin"]  # the good file stays, no partial b.bin
    assert server.requests.count("data/sub/b.bin") == 2  # retried once
    server.mode.clear()
    fetch("toy", retries=0)
    assert (tmp_path / "cache/toy/sub/b.bin").read_bytes() == B


def test_retry_recovers(tmp_path, monkeypatch, server):
    server.mode["data/a.bin"] = "fail-once"
    use_registry(tmp_path, monkeypatch, server.url + "data/", GOOD[:1])
    dest = fetch("toy", retries=1)
    assert (dest / "a.bin").read_bytes() == A


def test_mirror_replaces_base_url(tmp_path, monkeypatch, server):
    server.files = {"mirror/toy/a.bin": A, "mirror/toy/sub/b.bin": B}
    use_registry(tmp_path, monkeypatch, "http://127.0.0.1:9/dead/", GOOD)
    monkeypatch.setenv("GRAINBENCH_MIRROR", server.url + "mirror")
    fetch("toy", retries=0, timeout=5)
    assert all(r.startswith("mirror/toy/") for r in server.requests)
    monkeypatch.delenv("GRAINBENCH_MIRROR")
    (tmp_path / "cache/toy/a.bin").unlink()
    fetch("toy", retries=0, mirror=server.url + "mirror/")  # the argument does the same
    assert (tmp_path / "cache/toy/a.bin").read_bytes() == A


def test_corrupt_cached_file_is_replaced_and_verify_reports_it(tmp_path, monkeypatch, server):
    use_registry(tmp_path, monkeypatch, server.url + "data/", GOOD)
    dest = fetch("toy", retries=0)
    (dest / "a.bin").write_bytes(b"garbage")
    report = verify("toy")
    assert not report.ok
    assert [r[1] for r in report.rows] == ["bad hash", "ok"]
    assert sha(b"garbage") in report.rows[0][2]
    fetch("toy", retries=0)
    assert (dest / "a.bin").read_bytes() == A


@pytest.mark.skipif(not (SHARED_TBM / "TrainDataset").is_dir(), reason="real tbm files not available")
def test_real_tbm_train_through_local_mirror(monkeypatch):
    # The real registry entry, restricted to the train files present locally; served as <mirror>/tbm/PATH.
    real = get_dataset("tbm")
    train_only = dataclasses.replace(real, files=tuple(f for f in real.files if f.path.startswith("TrainDataset/")))
    fetch_mod = importlib.import_module("grainbench.data.fetch")  # the package attribute is the function
    monkeypatch.setattr(fetch_mod, "get_dataset", lambda name: train_only)
    with Server(root=SHARED_TBM.parent) as s:
        monkeypatch.setenv("GRAINBENCH_MIRROR", s.url)
        dest = fetch("tbm", retries=0)
        assert len(s.requests) == 128
    assert verify("tbm").rows  # hashes were checked on the way in
    train, val = load("tbm", "train"), load("tbm", "val")
    assert train.shape == (48, 256, 256) and val.shape == (16, 256, 256)
    assert train.image.dtype == np.float32 and 0 <= train.image.min() and train.image.max() <= 1
    assert train.boundary.dtype == bool and 0.01 < train.boundary.mean() < 0.5
    assert train.labels.dtype == np.int32 and (train.labels[train.boundary] == 0).all()
    assert not train.serial and len(train.meta["names"]) == 48
    assert not set(train.meta["names"]) & set(val.meta["names"])
    assert (dest / "TrainDataset/images").is_dir()
