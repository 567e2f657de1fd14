"""Channels in the data model: Volume forms, the registry's channels, colour loading, methods at in_channels=3."""

import dataclasses
import importlib

import numpy as np
import pytest
import tifffile
import torch
from _data_server import SHARED_TBM, Server, entry, png_bytes, write_registry
from PIL import Image

from grainbench.contract import rgb_to_grey
from grainbench.data.loaders import read_pairs, with_channels
from grainbench.data.registry import get_dataset, parse_entry
from grainbench.data.volume import Volume, as_channels, to_grey
from grainbench.errors import ConfigError, DatasetError, InputFileError
from grainbench.inference import predict_volume
from grainbench.io import read_array
from grainbench.methods import create_model, list_models
from grainbench.plugins import accepts


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_MIRROR", raising=False)
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)


# --------------------------------------------------------------------------- the Volume convention

def test_volume_grey_and_colour_forms():
    rng = np.random.default_rng(0)
    grey = rng.random((2, 5, 7), dtype=np.float32)
    v = Volume(grey, None, grey > 0.5)
    assert v.channels == 1 and v.shape == (2, 5, 7) and v.image is grey and v.stack().shape == (2, 1, 5, 7)
    squeezed = Volume(grey[:, None], None, None)  # (Z, 1, H, W) is stored as the one grey form
    assert squeezed.image.shape == (2, 5, 7) and squeezed.channels == 1
    colour = rng.random((2, 3, 5, 7), dtype=np.float32)
    c = Volume(colour, None, colour[:, 0] > 0.5)
    assert c.channels == 3 and c.shape == (2, 5, 7) and len(c) == 2 and c.stack() is colour
    # luma against PIL's own RGB -> L conversion of the same bytes
    u8 = (colour * 255).round().astype(np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(np.moveaxis(s, 0, -1)).convert("L")) for s in u8])
    np.testing.assert_array_equal(to_grey(u8), pil)
    np.testing.assert_allclose(c.grey(), rgb_to_grey(np.moveaxis(colour, 1, -1)), atol=1e-6)
    with pytest.raises(ValueError, match="boundary shape"):
        Volume(colour, None, np.zeros((2, 3, 5, 7), bool))
    with pytest.raises(ValueError, match="Z, C, H, W"):
        Volume(np.zeros((5, 7)), None, None)
    with pytest.raises(ValueError, match="Z, C, H, W"):
        as_channels(np.zeros(3))


def test_with_channels_reduces_repeats_and_refuses():
    rgb = np.random.default_rng(1).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(with_channels(rgb, 1), rgb_to_grey(np.moveaxis(rgb, 1, -1)))
    grey = rgb[:, 0]
    rep = with_channels(grey, 3)
    assert rep.shape == (2, 3, 4, 4) and all(np.array_equal(rep[:, k], grey) for k in range(3))
    with pytest.raises(InputFileError, match="2 channels, the dataset declares 3"):
        with_channels(rgb[:, :2], 3, where="x.h5")


# --------------------------------------------------------------------------- registry

def test_registry_declares_channels():
    assert get_dataset("tbm").channels == 3
    for name in ("pure_iron", "ss347h", "synthetic", "potts_sim", "alzn_xct"):
        assert get_dataset(name).channels == 1, name
    assert parse_entry("x", entry(channels=3, files=[{"path": "a", "sha256": "0" * 64}])).channels == 3
    for bad in (2, 0, "rgb", True):
        with pytest.raises(DatasetError, match="channels"):
            parse_entry("x", entry(channels=bad, files=[{"path": "a", "sha256": "0" * 64}]))


def test_data_info_shows_channels(capsys):
    from grainbench.cli import main

    assert main(["data", "info", "tbm"]) == 0
    out = capsys.readouterr().out
    assert "channels" in out and "3 (RGB)" in out


# --------------------------------------------------------------------------- PNG and TIFF agree

def _pair_folders(tmp_path):
    """The same colour pixels as PNG pairs and as TIFF pairs."""
    rng = np.random.default_rng(2)
    folders = {}
    for ext in ("png", "tif"):
        root = tmp_path / ext
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        folders[ext] = root
    for i in range(3):
        img = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        mask = np.zeros((24, 20), np.uint8)
        mask[10:12] = 255
        (folders["png"] / "images" / f"p{i}.png").write_bytes(png_bytes(img))
        (folders["png"] / "masks" / f"p{i}.png").write_bytes(png_bytes(mask))
        tifffile.imwrite(folders["tif"] / "images" / f"p{i}.tif", img, photometric="rgb")
        tifffile.imwrite(folders["tif"] / "masks" / f"p{i}.tif", mask)
    return folders


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_png_and_tiff_load_identically(tmp_path, channels):
    folders = _pair_folders(tmp_path)
    layout = {"kind": "pairs", "image_dir": "images", "mask_dir": "masks"}
    png_imgs, png_masks, _ = read_pairs(folders["png"], layout, None, channels)
    tif_imgs, tif_masks, _ = read_pairs(folders["tif"], layout, None, channels)
    for p, t, m, n in zip(png_imgs, tif_imgs, png_masks, tif_masks):
        np.testing.assert_array_equal(p, t)
        np.testing.assert_array_equal(m, n)
    ref = [np.asarray(Image.open(p).convert("RGB" if channels == 3 else "L"))
           for p in sorted((folders["png"] / "images").iterdir())]
    for got, want in zip(png_imgs, ref):
        np.testing.assert_array_equal(got, np.moveaxis(want, -1, 0) if channels == 3 else want)
    assert png_imgs[0].shape == ((3, 24, 20) if channels == 3 else (24, 20))


def test_read_array_colour_keyword(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(img))
    np.testing.assert_array_equal(read_array(tmp_path / "a.png", colour=True), img)
    np.testing.assert_array_equal(read_array(tmp_path / "a.png"), np.asarray(Image.fromarray(img).convert("L")))


@pytest.mark.skipif(not (SHARED_TBM / "TrainDataset").is_dir(), reason="real TBM files not present")
def test_real_tbm_keeps_colour(monkeypatch):
    from grainbench.data import fetch, load

    real = get_dataset("tbm")
    train_only = dataclasses.replace(real, files=tuple(f for f in real.files if f.path.startswith("TrainDataset/")))
    fetch_mod = importlib.import_module("grainbench.data.fetch")
    monkeypatch.setattr(fetch_mod, "get_dataset", lambda name: train_only)
    with Server(root=SHARED_TBM.parent) as s:
        monkeypatch.setenv("GRAINBENCH_MIRROR", s.url)
        fetch("tbm", retries=0)
    val = load("tbm", "val")
    assert val.channels == 3 and val.image.shape == (16, 3, 256, 256) and val.shape == (16, 256, 256)
    first = SHARED_TBM / "TrainDataset" / "images" / f"{val.meta['names'][0]}.png"
    want = np.moveaxis(np.asarray(Image.open(first).convert("RGB")), -1, 0) / 255.0
    np.testing.assert_allclose(val.image[0], want, atol=1e-6)
    assert not np.allclose(val.image[0, 0], val.image[0, 1])  # really colour, not grey repeated


# --------------------------------------------------------------------------- methods at in_channels = 3

def _colour_volume(z=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    boundary = np.zeros((z, size, size), bool)
    boundary[:, size // 2] = boundary[:, :, size // 3] = True
    image = np.stack([0.6 + 0.1 * rng.standard_normal((z, size, size)) - 0.3 * boundary * k for k in (1, 0, 2)], 1)
    return Volume(np.clip(image, 0, 1).astype(np.float32), None, boundary, serial=True, name="c/test")


def _small(name, **kw):
    from grainbench.extras import MissingExtraError
    from grainbench.methods import get_model_class

    cls_args = {"width": 4} if accepts(get_model_class(name), "width") else {}
    try:
        return create_model(name, **cls_args, **kw)
    except MissingExtraError as exc:  # an optional extra (PyMaxflow, smp) not installed
        pytest.skip(str(exc))


BUILTIN = list_models()


@pytest.mark.parametrize("name", BUILTIN)
def test_every_baseline_predicts_colour(name):
    vol = _colour_volume()
    m = _small(name, in_channels=3)
    assert m.in_channels == 3 and m.config()["in_channels"] == 3
    if hasattr(m, "tile_depth"):
        m.tile, m.margin = 32, 0
    mode = "oracle" if m.context == "2d+prev" else None
    pred = predict_volume(m, vol, mode=mode)
    assert pred.prob.shape == vol.shape and pred.prob.dtype == np.float32
    assert 0 <= pred.prob.min() <= pred.prob.max() <= 1
    with pytest.raises(ValueError, match="built for 3-channel"):
        m.predict(vol.grey()) if m.context != "2d+prev" else m.predict(vol.grey(), vol.boundary)


@pytest.mark.parametrize("name", [n for n in BUILTIN if n not in ("classical", "fast_finecut")])
def test_colour_only_widens_the_convolutions_reading_the_image(name):
    # a colour net differs from the grey one only in convolutions that read the image (one, or several in
    # densely connected nets such as DefectSegNet): 2 more input channels per slice read, same outputs
    grey, colour = _small(name), _small(name, in_channels=3)
    g, c = dict(grey.net.named_parameters()), dict(colour.net.named_parameters())
    assert g.keys() == c.keys()
    slices = 2 * grey.depth + 1 if grey.context == "2.5d" and name != "unet_bdclstm" else 1  # bdclstm: shared U-Net
    changed = [k for k in g if g[k].shape != c[k].shape]
    assert changed
    for k in changed:  # grown along one axis (the input channels) by 2 per slice read, nothing else
        diff = [(x, y) for x, y in zip(g[k].shape, c[k].shape) if x != y]
        assert len(g[k].shape) == len(c[k].shape) and len(diff) == 1 and diff[0][1] - diff[0][0] == 2 * slices, k
    assert colour.num_parameters() - grey.num_parameters() == sum(c[k].numel() - g[k].numel() for k in changed)
    assert next(iter(g)) in changed  # the first convolution reads the image


def test_grey_method_refuses_colour_and_grey_checkpoint_is_refused(tmp_path):
    grey = create_model("unet", width=4)
    with pytest.raises(ValueError, match="built for grey images"):
        grey.predict(np.zeros((1, 3, 32, 32), np.float32))
    grey.save(tmp_path / "grey.pt")
    colour = create_model("unet", width=4, in_channels=3)
    with pytest.raises(InputFileError, match=r"grey images \(in_channels=1\).*3 channel"):
        colour.load(tmp_path / "grey.pt")
    assert colour.in_channels == 3  # nothing changed
    create_model("unet", width=4).load(tmp_path / "grey.pt")  # same channels: fine
    with pytest.raises(ConfigError, match="in_channels"):
        create_model("unet", in_channels=0)


def test_classical_sees_isoluminant_colour_boundaries():
    # two halves of equal luma but different colour: no grey edge, a clear colour edge along x = 16
    img = np.zeros((1, 3, 32, 32), np.float32)
    left, right = np.array([0.7, 0.3, 0.5]), np.array([0.3, 0.5, 0.7])
    w = np.asarray((0.299, 0.587, 0.114))
    right = right + (left @ w - right @ w)  # same luma
    img[0, :, :, :16] = left[:, None, None]
    img[0, :, :, 16:] = right[:, None, None]
    img[0, :, 8, :] *= 0.4  # and one dark horizontal line, visible in grey too
    grey = create_model("classical").predict(to_grey(img))
    colour = create_model("classical", in_channels=3).predict(img)
    assert (grey[0, 20:30, 12:20] <= 0.5).all()  # grey: the colour edge is invisible
    assert (colour[0, 20:30, 14:18] > 0.5).any(axis=1).all()  # colour: found on every row
    assert (colour[0, 6:11, 2:12] > 0.5).any() and (grey[0, 6:11, 2:12] > 0.5).any()  # the dark line: both


def test_sampler_keeps_channels_in_slice_order():
    from grainbench.training.sampling import PatchSampler, full_slices

    vol = _colour_volume(z=5, size=32)
    b = PatchSampler(vol, 16, augment=False, seed=0).sample(3)
    assert b.image.shape == (3, 3, 16, 16)
    img = vol.image
    hits = [any(np.array_equal(img[z, :, y:y + 16, x:x + 16], p) for z in range(5) for y in range(17)
                for x in range(17)) for p in b.image]
    assert all(hits)
    m = create_model("unet_bdclstm", width=4, in_channels=3)
    m.norm = (0.0, 1.0)
    x = m.make_input(img)
    assert x.shape == (5, 9, 32, 32) == (5, m.net_in_channels, 32, 32)
    np.testing.assert_array_equal(x[2].reshape(3, 3, 32, 32), img[1:4])  # slices z-1, z, z+1, C each
    full = full_slices(vol, "2.5d", depth=1)
    np.testing.assert_array_equal(full.image, x)
