"""Downloads against a 127.0.0.1 server: good, bad hash, 404, timeout, short transfer, mirror, retry."""

import types

import numpy as np
import pytest
from _data_server import SHARED_TBM, Server, entry, sha, write_registry

import grainbench.data.registry as registry
from grainbench.data import fetch, get_dataset, load, verify
from grainbench.data.fetch import split_files
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


def test_split_files_of_the_real_tbm_entry():
    tbm = get_dataset("tbm")
    train, val, test = (split_files(tbm, [s]) for s in ("train", "val", "test"))
    assert len(train) == len(val) == 128 and set(train) == set(val)  # every/offsets index the whole folder
    assert all(f.path.startswith("TrainDataset/") for f in train)
    assert len(test) == 32 and all(f.path.startswith("TestDataset/") for f in test)
    assert set(split_files(tbm, ["train", "test"])) == set(tbm.files) == set(split_files(tbm))
    with pytest.raises(DatasetError, match="no split 'holdout'.*known: train, val, test"):
        split_files(tbm, ["holdout"])


@pytest.mark.skipif(not (SHARED_TBM / "TrainDataset").is_dir(), reason="real tbm files not available")
def test_real_tbm_train_val_from_an_empty_cache_through_a_local_mirror(tmp_path, monkeypatch, capsys):
    # The real registry entry, unchanged; the mirror serves the 64 train pairs as <mirror>/tbm/PATH
    # and has no test files (as a user who holds them back).
    from grainbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAINBENCH_RUNS", raising=False)
    with Server(root=SHARED_TBM.parent) as s:
        monkeypatch.setenv("GRAINBENCH_MIRROR", s.url)
        assert main(["data", "fetch", "tbm", "--split", "train,val", "--no-progress", "--retries", "0"]) == 0
        assert len(s.requests) == 128 and all(r.startswith("tbm/TrainDataset/") for r in s.requests)
        dest = tmp_path / "cache" / "tbm"
        assert files_in(dest / "TrainDataset") and not (dest / "TestDataset").exists()

        report = verify("tbm")
        assert report.ok and report.present == ["train", "val"] and report.splits["test"] is False
        statuses = {path: st for path, st, _ in report.rows}
        assert sum(st == "ok" for st in statuses.values()) == 128
        assert all(st == "not fetched" for p, st in statuses.items() if p.startswith("TestDataset/"))
        capsys.readouterr()
        assert main(["data", "verify", "tbm"]) == 0
        out = capsys.readouterr().out
        assert "splits present: train, val; not present: test" in out and "32 not fetched" in out

        train, val = load("tbm", "train"), load("tbm", "val")
        assert len(train) == 48 and len(val) == 16 and not train.serial
        assert train.image.dtype == np.float32 and 0 <= train.image.min() and train.image.max() <= 1
        assert train.boundary.dtype == bool and 0.01 < train.boundary.mean() < 0.5
        assert not set(train.meta["names"]) & set(val.meta["names"])

        # A run scored on val needs nothing more; the test split is one clear error (the mirror lacks it).
        n = len(s.requests)
        assert main(["run", "--model", "classical", "--dataset", "tbm", "--split", "val", "--no-leaderboard"]) == 0
        assert len(s.requests) == n
        [path] = (tmp_path / "runs/records/tbm").glob("*.json")
        from grainbench.records import read_record

        rec = read_record(path)
        assert rec["config"]["split"] == "val" and len(rec["metrics"]["per_slice"]) == 16
        assert rec["dataset"]["hashes"] == {f.path: f.sha256 for f in get_dataset("tbm").files}
        with pytest.raises(DatasetError, match="TestDataset/.*HTTP 404"):
            load("tbm", "test")
    # A broken file of a present split is damage, not a partial fetch.
    (dest / "TrainDataset/images").iterdir().__next__().write_bytes(b"x")
    assert not verify("tbm").ok
