"""Tiling of image / traced-label pairs (seed 003)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from grainbench.data.tiling import set_line_width, tile_origins, tile_pairs
from grainbench.errors import InputFileError


def _write_pair(tmp_path, stem, h, w, *, rgb=True, mask_size=None):
    rng = np.random.default_rng(list(stem.encode()))
    img = rng.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)
    mh, mw = mask_size or (h, w)
    # A blurry hand trace: thick grey strokes, a horizontal and a vertical one.
    trace = np.zeros((mh, mw))
    trace[mh // 3 - 3 : mh // 3 + 4, :] = 1
    trace[:, mw // 2 - 3 : mw // 2 + 4] = 1
    trace = ndi.gaussian_filter(trace, 1.5)
    mask = np.clip(trace * 255, 0, 255).astype(np.uint8)
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "lab").mkdir(exist_ok=True)
    Image.fromarray(img).save(tmp_path / "img" / f"{stem}.png")
    Image.fromarray(mask).save(tmp_path / "lab" / f"{stem}.png")
    return img, mask


def test_tile_origins_cover_the_axis():
    assert tile_origins(512, 256) == [0, 256]
    assert tile_origins(600, 256) == [0, 256, 344]
    assert tile_origins(512, 256, overlap=128) == [0, 128, 256]
    assert tile_origins(100, 256) == []
    with pytest.raises(ValueError):
        tile_origins(512, 256, overlap=256)


def test_tile_pairs_round_trip(tmp_path):
    img, mask = _write_pair(tmp_path, "10", 128, 192)
    _write_pair(tmp_path, "11", 64, 64, rgb=False)
    out = tmp_path / "tiles"
    n = tile_pairs(tmp_path / "img", tmp_path / "lab", out, size=64)
    assert n == 2 * 3 + 1
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(p.name for p in (out / "masks").iterdir())
    assert "10-64-128.png" in names and "11-0-0.png" in names and len(names) == n
    tile = np.asarray(Image.open(out / "images" / "10-64-128.png"))
    assert np.array_equal(tile, img[64:128, 128:192])  # lossless, colour kept
    m = np.asarray(Image.open(out / "masks" / "10-64-128.png"))
    assert m.shape == (64, 64) and set(np.unique(m)) <= {0, 255}
    assert np.array_equal(m > 0, (mask > 127)[64:128, 128:192])
    assert not list(out.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_tile_pairs_overlap(tmp_path):
    _write_pair(tmp_path, "a", 128, 128)
    out = tmp_path / "tiles"
    n = tile_pairs(tmp_path / "img", tmp_path / "lab", out, size=64, overlap=32)
    assert n == 9
    t00 = np.asarray(Image.open(out / "images" / "a-0-0.png"))
    t01 = np.asarray(Image.open(out / "images" / "a-0-32.png"))
    assert np.array_equal(t00[:, 32:], t01[:, :32])


def test_tile_pairs_line_width(tmp_path):
    _write_pair(tmp_path, "w", 96, 96)
    out = tmp_path / "tiles"
    tile_pairs(tmp_path / "img", tmp_path / "lab", out, size=96, line_width=3)
    m = np.asarray(Image.open(out / "masks" / "w-0-0.png")) > 0
    # Away from the crossing and the ends, a straight trace is 3 pixels wide.
    assert (m[:, 10:40].sum(axis=0) == 3).all()  # the horizontal stroke
    assert (m[60:90, :].sum(axis=1) == 3).all()  # the vertical stroke
    wide = tmp_path / "wide"
    tile_pairs(tmp_path / "img", tmp_path / "lab", wide, size=96)
    assert (np.asarray(Image.open(wide / "masks" / "w-0-0.png")) > 0)[:, 10:40].sum(axis=0).min() > 3


def test_set_line_width_widths():
    line = np.zeros((21, 21), bool)
    line[10, 2:19] = True
    for width in (1, 2, 3, 5):
        assert set_line_width(line, width)[:, 8:12].sum(axis=0).tolist() == [width] * 4


def test_tile_pairs_errors_name_the_file(tmp_path):
    _write_pair(tmp_path, "ok", 64, 64)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "lab" / "orphan.png")
    with pytest.raises(InputFileError, match="orphan.png.*no matching image"):
        tile_pairs(tmp_path / "img", tmp_path / "lab", tmp_path / "out", size=32)
    (tmp_path / "lab" / "orphan.png").unlink()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "img" / "lonely.png")
    with pytest.raises(InputFileError, match="lonely.png.*no matching mask"):
        tile_pairs(tmp_path / "img", tmp_path / "lab", tmp_path / "out", size=32)


def test_tile_pairs_size_mismatch(tmp_path):
    _write_pair(tmp_path, "m", 64, 64, mask_size=(64, 60))
    with pytest.raises(InputFileError, match=r"m\.png.*60 x 64.*64 x 64"):
        tile_pairs(tmp_path / "img", tmp_path / "lab", tmp_path / "out", size=32)
    with pytest.raises(InputFileError, match="smaller than the tile size"):
        _write_pair(tmp_path, "m", 64, 64)
        tile_pairs(tmp_path / "img", tmp_path / "lab", tmp_path / "out", size=128)
