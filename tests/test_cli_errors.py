"""Errors instead of tracebacks: each case of the issue ends in one line naming the input, exit status 2."""

import errno

import numpy as np
import pytest
import torch
from PIL import Image

import grainbench.data.registry as registry
from grainbench.cli import main


def _one_line(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture
def pair(tmp_path):
    gt = np.zeros((32, 32), np.uint8)
    gt[16, :] = gt[:, 16] = 255
    Image.fromarray(gt).save(tmp_path / "gt.png")
    return tmp_path / "gt.png"


def test_unknown_protocol(pair, capsys):
    assert main(["score", str(pair), str(pair), "--protocol", "nope"]) == 2
    _one_line(capsys, "unknown protocol 'nope'")
    assert main(["score", str(pair), str(pair), "--protocol", "wpunet-2019@x"]) == 2
    _one_line(capsys, "not x")


def test_bad_devices(pair, capsys):
    assert main(["score", str(pair), str(pair), "--device", "bogus"]) == 2
    _one_line(capsys, "device 'bogus': unknown device")
    if not torch.cuda.is_available():
        assert main(["score", str(pair), str(pair), "--device", "cuda"]) == 2
        _one_line(capsys, "no CUDA device")


def test_json_to_a_folder_fails_before_scoring(pair, tmp_path, capsys):
    assert main(["score", str(pair), str(pair), "--json", str(tmp_path)]) == 2
    _one_line(capsys, f"{tmp_path}: --json is a folder")
    assert capsys.readouterr().out == ""  # nothing was scored and printed first


@pytest.mark.parametrize("kind", ["latin-1", "folder"])
def test_unreadable_registry(tmp_path, monkeypatch, capsys, kind):
    if kind == "folder":
        target = tmp_path
    else:
        target = tmp_path / "reg.toml"
        target.write_bytes("[datasets.caf\xe9]\ntitle = 'x'\n".encode("latin-1"))
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(target))
    registry._CACHE.clear()
    assert main(["data", "list"]) == 2
    _one_line(capsys, str(target), "is a folder" if kind == "folder" else "not UTF-8")


def test_decompression_bomb_is_refused(pair, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32 x 32 > 2 x 100: PIL raises its bomb error
    assert main(["score", str(pair), str(pair)]) == 2
    _one_line(capsys, "gt.png: refused, image too large")


def test_array_too_large_is_refused_before_allocating(tmp_path, monkeypatch, capsys, pair):
    # a 40-byte .npy whose header claims a 8 TB array: read_array must not try to allocate it
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100000, 100000, 100)})
    assert main(["score", str(path), str(pair)]) == 2
    _one_line(capsys, "huge.npy: array of shape (100000, 100000, 100) needs", "more than")
    np.save(tmp_path / "small.npy", np.zeros((32, 32), np.uint8))
    monkeypatch.setenv("GRAINBENCH_MAX_ARRAY_BYTES", "100")
    assert main(["score", str(tmp_path / "small.npy"), str(pair)]) == 2
    _one_line(capsys, "small.npy: array of shape (32, 32) needs")


def test_disk_full_keeps_the_old_file(pair, tmp_path, monkeypatch, capsys):
    import grainbench.io as gio

    out = tmp_path / "result.json"
    out.write_text("old result")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gio.os, "fsync", full)
    assert main(["score", str(pair), str(pair), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "result.json: no space left on the device" in err and "Traceback" not in err
    assert out.read_text() == "old result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".result")] == []  # no temp file left


@pytest.fixture
def env(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    return tmp_path


@pytest.mark.parametrize("name", ["x" * 300, "../../etc", "", "a/b", "-rf"])
def test_submit_name_is_checked_before_scoring(env, capsys, name, monkeypatch):
    import grainbench.cli.submit as submit

    def must_not_score(*a, **k):  # pragma: no cover - the check comes first
        raise AssertionError("scored before checking --name")

    monkeypatch.setattr(submit, "score", must_not_score)
    np.save(env / "p.npy", np.zeros((8, 256, 256), np.uint8))
    assert main(["submit", "--dataset", "synthetic", "--predictions", str(env / "p.npy"), f"--name={name}",
                 "--records", str(env / "records")]) == 2
    _one_line(capsys, "--name")
    assert not (env / "records").exists()


def test_submit_unknown_protocol(env, capsys):
    np.save(env / "p.npy", np.zeros((8, 256, 256), np.uint8))
    assert main(["submit", "--dataset", "synthetic", "--predictions", str(env / "p.npy"), "--name", "ok",
                 "--protocol", "nope", "--records", str(env / "records")]) == 2
    _one_line(capsys, "unknown protocol 'nope'")
