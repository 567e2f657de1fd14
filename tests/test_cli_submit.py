"""`grainbench submit`: good predictions are scored and recorded; each kind of bad one is refused."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from grainbench import data
from grainbench.cli import main
from grainbench.records import read_record
from grainbench.scoring import score


@pytest.fixture
def env(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    return data.load("synthetic", "test"), tmp_path


def _args(tmp_path, preds, name="mine"):
    return ["submit", "--dataset", "synthetic", "--predictions", str(preds), "--name", name,
            "--records", str(tmp_path / "records"), "--leaderboards", str(tmp_path / "lb")]


def test_submit_png_folder_scores_and_records(env, capsys):
    volume, tmp_path = env
    folder = tmp_path / "preds"
    folder.mkdir()
    truth = volume.boundary
    for i, sl in enumerate(truth):
        Image.fromarray(sl.astype(np.uint8) * 255).save(folder / f"{i:03d}.png")
    assert main(_args(tmp_path, folder)) == 0
    [path] = (tmp_path / "records" / "synthetic").glob("*.json")
    rec = read_record(path)
    assert rec["kind"] == "submission" and rec["config"]["model"] == "mine"
    assert rec["metrics"]["aggregate"]["vi"] == 0.0 and rec["metrics"]["aggregate"]["ari"] == 1.0
    assert rec["dataset"]["hashes"]["generated"]
    md = (tmp_path / "lb" / "synthetic.md").read_text()
    assert "mine (submitted)" in md


def test_submit_probability_npy_matches_score(env):
    volume, tmp_path = env
    rng = np.random.default_rng(0)
    probs = np.clip(volume.boundary * 0.8 + rng.random(volume.shape) * 0.3, 0, 1).astype(np.float32)
    np.save(tmp_path / "p.npy", probs)
    assert main(_args(tmp_path, tmp_path / "p.npy")) == 0
    [path] = (tmp_path / "records" / "synthetic").glob("*.json")
    got = json.loads(path.read_text())["metrics"]["aggregate"]
    assert got == pytest.approx(score(probs, volume.boundary, "wpunet-2019").aggregate)


def test_submit_rejects_each_kind_of_bad_input(env, capsys):
    volume, tmp_path = env
    z, h, w = volume.shape
    good = volume.boundary.astype(np.uint8) * 255

    folder = tmp_path / "few"
    folder.mkdir()
    Image.fromarray(good[0]).save(folder / "000.png")
    assert main(_args(tmp_path, folder)) == 2
    assert f"1 image files, expected {z}" in capsys.readouterr().err

    folder = tmp_path / "shape"
    folder.mkdir()
    for i in range(z):
        Image.fromarray(good[i][:, :-3] if i == 2 else good[i]).save(folder / f"{i:03d}.png")
    assert main(_args(tmp_path, folder)) == 2
    err = capsys.readouterr().err
    assert "002.png: shape" in err and f"expected ({h}, {w})" in err

    bad = np.full(volume.shape, 0.5, np.float32)
    bad[1, 3, 3] = np.nan
    bad[4, 0, 0] = 7.0
    tifffile.imwrite(tmp_path / "bad.tif", bad)
    assert main(_args(tmp_path, tmp_path / "bad.tif")) == 2
    err = capsys.readouterr().err
    assert "[slice 1]: contains NaN" in err and "[slice 4]: float values must lie in [0, 1]" in err

    np.save(tmp_path / "ints.npy", np.full(volume.shape, 3, np.int16))
    assert main(_args(tmp_path, tmp_path / "ints.npy")) == 2
    assert "integer map must be binary (only 0/1 or 0/255)" in capsys.readouterr().err

    np.save(tmp_path / "wrongz.npy", np.zeros((z + 1, h, w), np.float32))
    assert main(_args(tmp_path, tmp_path / "wrongz.npy")) == 2
    assert "expected" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()  # nothing recorded for rejected input
