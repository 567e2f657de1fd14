"""`grainbench score` on files of every supported format, read back as JSON."""

import json

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from grainbench.cli import main
from grainbench.examples import example_pair
from grainbench.scoring import score


@pytest.fixture(scope="module")
def pair():
    preds, gts = zip(*(example_pair((80, 80), 15, seed=s) for s in range(2)))
    return np.stack(preds), np.stack(gts)


def _write(fmt, path, arr):
    if fmt == "npy":
        np.save(path, arr)
    elif fmt == "tif":
        tifffile.imwrite(path, arr)
    elif fmt == "h5":
        with h5py.File(path, "w") as f:
            f["data"] = arr
    elif fmt == "png":
        path.mkdir()
        for i, sl in enumerate(arr):
            img = sl.astype(np.uint8) * 255 if sl.dtype == bool else (sl * 255).round().astype(np.uint8)
            Image.fromarray(img).save(path / f"{i:03d}.png")


@pytest.mark.parametrize("fmt", ["npy", "tif", "h5", "png"])
def test_score_files_round_trip(tmp_path, pair, fmt, capsys):
    preds, gts = pair
    binary_preds = preds > 0.5
    _write(fmt, tmp_path / f"pred.{fmt}", binary_preds)
    _write(fmt, tmp_path / f"gt.{fmt}", gts)
    out = tmp_path / "result.json"
    rc = main(["score", str(tmp_path / f"pred.{fmt}"), str(tmp_path / f"gt.{fmt}"), "--json", str(out)])
    assert rc == 0
    assert "vi_split" in capsys.readouterr().out
    data = json.loads(out.read_text())
    expected = score(binary_preds, gts).aggregate
    assert data["protocol"] == "wpunet-2019@1"
    assert data["aggregate"] == pytest.approx(expected)
    assert len(data["per_slice"]) == 2


def test_score_probability_png_is_scaled(tmp_path, pair):
    preds, gts = pair
    Image.fromarray((preds[0] * 255).round().astype(np.uint8)).save(tmp_path / "p.png")
    Image.fromarray(gts[0].astype(np.uint8) * 255).save(tmp_path / "g.png")
    out = tmp_path / "r.json"
    assert main(["score", str(tmp_path / "p.png"), str(tmp_path / "g.png"), "--json", str(out)]) == 0
    got = json.loads(out.read_text())["aggregate"]["vi"]
    assert got == pytest.approx(score((preds[0] * 255).round() / 255, gts[0]).aggregate["vi"])


def test_score_errors_name_the_file(tmp_path, pair, capsys):
    preds, gts = pair
    np.save(tmp_path / "pred.npy", preds[:, :-4])
    np.save(tmp_path / "gt.npy", gts)
    assert main(["score", str(tmp_path / "pred.npy"), str(tmp_path / "gt.npy")]) == 2
    assert "pred.npy" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing.npy"), str(tmp_path / "gt.npy")]) == 2
    assert "missing.npy: file not found" in capsys.readouterr().err
    bad = preds.copy()
    bad[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert main(["score", str(tmp_path / "nan.npy"), str(tmp_path / "gt.npy")]) == 2
    err = capsys.readouterr().err
    assert "nan.npy" in err and "NaN" in err
    (tmp_path / "x.txt").write_text("hello")
    assert main(["score", str(tmp_path / "x.txt"), str(tmp_path / "gt.npy")]) == 2
    assert "unsupported file type" in capsys.readouterr().err


def test_score_example_and_hwz_axes(tmp_path, pair, capsys):
    assert main(["score", "--example", "--per-slice"]) == 0
    assert "example" in capsys.readouterr().out
    preds, gts = pair
    with h5py.File(tmp_path / "both.h5", "w") as f:  # the pure-iron layout is (H, W, Z)
        f["pred"] = np.moveaxis(preds > 0.5, 0, -1)
        f["boundary"] = np.moveaxis(gts, 0, -1).astype(np.uint8) * 255
    out = tmp_path / "r.json"
    h5 = str(tmp_path / "both.h5")
    rc = main(["score", h5, h5, "--pred-key", "pred", "--gt-key", "boundary", "--axes", "HWZ", "--json", str(out)])
    assert rc == 0
    assert json.loads(out.read_text())["aggregate"] == pytest.approx(score(preds > 0.5, gts).aggregate)
