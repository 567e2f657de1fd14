"""Seed 004's data side: the alzn_sim stand-in, the alzn_xct folder import, lazy stacks, z_depth."""

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.measure import label as sk_label

from grainbench.cli import main
from grainbench.data import get_dataset, load, verify
from grainbench.data.cache import read_locks
from grainbench.data.chunked import open_stack
from grainbench.data.dendrites import ALZN_SIM_SPLITS, _capsule, dendrite_volume, generate_alzn_sim
from grainbench.data.hashing import array_digest
from grainbench.errors import InputFileError


@pytest.fixture(autouse=True)
def env(isolated_cache):
    """Every test gets its own data cache (conftest.isolated_cache)."""


# --------------------------------------------------------------------------- alzn_sim

def test_capsule_marks_the_voxels_within_the_radius_of_the_segment_brute_force():
    mask = np.zeros((20, 24, 22), bool)
    p0, p1, r = np.array([3.2, 4.0, 5.5]), np.array([15.0, 18.5, 9.0]), 3.1
    _capsule(mask, p0, p1, r, r)
    pts = p0 + np.linspace(0, 1, 4001)[:, None] * (p1 - p0)  # the segment, densely sampled
    grid = np.stack(np.indices(mask.shape), -1).reshape(-1, 3).astype(float)
    d = np.min(np.linalg.norm(grid[:, None] - pts[None, ::8], axis=-1), axis=1)  # coarse min, then refine
    near = np.abs(d - r) < 0.3
    fine = np.min(np.linalg.norm(grid[near][:, None] - pts[None], axis=-1), axis=1)
    d[near] = fine
    want = (d <= r).reshape(mask.shape)
    assert (mask != want).sum() <= 2  # only voxels within the sampling error (< 0.01 px) of the surface


def test_the_generator_is_deterministic_and_its_labels_are_the_components_of_the_liquid():
    a = generate_alzn_sim(seed=3, size=64, depths=(8, 8))
    b = generate_alzn_sim(seed=3, size=64, depths=(8, 8))
    c = generate_alzn_sim(seed=4, size=64, depths=(8, 8))
    assert array_digest(a) == array_digest(b) != array_digest(c)
    assert a["image"].shape == a["boundary"].shape == (16, 64, 64) and a["image"].dtype == np.uint8
    assert a["reconstruction"].tolist() == [0] * 8 + [1] * 8
    for z in (0, 9):
        want = sk_label(~a["boundary"][z], connectivity=1)
        assert np.array_equal(a["labels"][z], want)


def test_dendrites_are_darker_than_the_liquid_and_lie_inside_the_sample():
    solid, inside = dendrite_volume((16, 96, 96), np.random.default_rng(0))
    assert solid.any() and not (solid & ~inside).any()
    a = generate_alzn_sim(seed=0, size=96, depths=(16,))
    inside = np.broadcast_to(dendrite_volume((16, 96, 96), np.random.default_rng(
        np.random.SeedSequence(0).spawn(1)[0].spawn(2)[0]))[1], a["image"].shape)
    img, sol = a["image"].astype(float), a["boundary"]
    assert img[sol].mean() < img[inside & ~sol].mean() - 20  # the grey contrast between the phases
    assert img[~inside].mean() < img[sol].mean()  # air is darkest


def test_alzn_sim_is_registered_pinned_and_split_in_groups_of_eight():
    ds = get_dataset("alzn_sim")
    assert ds.task == "phase" and ds.protocol == "phase-2022" and ds.digest and ds.reported_from == "alzn_xct"
    sizes = {s: load("alzn_sim", s) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in sizes.items()} == {"train": 24, "val": 16, "test": 16}
    assert all(len(v) % 8 == 0 for v in sizes.values())
    assert [sizes[s].meta["slices"][0] for s in ("train", "val", "test")] == [a for a, _ in ALZN_SIM_SPLITS.values()]
    assert set(sizes["train"].meta["reconstruction"]) == set(sizes["val"].meta["reconstruction"]) == {0}
    assert set(sizes["test"].meta["reconstruction"]) == {1}
    assert "prev_boundary" in sizes["val"].meta and "prev_boundary" not in sizes["test"].meta  # other reconstruction
    assert 0.03 < sizes["test"].boundary.mean() < 0.3
    report = verify("alzn_sim")
    assert report.rows[0][1] == "ok"


# --------------------------------------------------------------------------- alzn_xct

def make_xct_copy(root, *, depth=60, hw=(32, 40), per_recon=56):
    """A small copy of the documented alzn_xct layout: a TIFF and an HDF5 reconstruction, 2 x 56 label slices."""
    import h5py

    rng = np.random.default_rng(0)
    (root / "reconstructions").mkdir(parents=True)
    vols = {}
    for i, name in enumerate(["t0105", "t0110"]):
        vol = rng.integers(0, 256, (depth, *hw), dtype=np.uint8)
        vols[name] = vol
        if i == 0:
            tifffile.imwrite(root / "reconstructions" / f"{name}.tif", vol)
        else:
            with h5py.File(root / "reconstructions" / f"{name}.h5", "w") as f:
                f.create_dataset("image", data=vol, chunks=(1, *hw))
        d = root / "handseg" / name
        d.mkdir(parents=True)
        for z in range(2, 2 + per_recon):
            Image.fromarray(((vol[z] > 128) * 255).astype(np.uint8)).save(d / f"{z:04d}.png")
    return vols


def test_alzn_xct_imports_a_folder_laid_out_as_documented(tmp_path, capsys):
    src = tmp_path / "ALZN"
    vols = make_xct_copy(src)
    assert main(["data", "import", "alzn_xct", str(src), "--any-shape"]) == 0
    assert len(read_locks()["alzn_xct"]) == 2 + 112
    parts = {s: load("alzn_xct", s) for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in parts.items()} == {"train": 48, "val": 32, "test": 32}
    names = [n for v in parts.values() for n in v.meta["names"]]
    assert len(set(names)) == 112
    for v in parts.values():  # each slice is the reconstruction's, its label the file's
        for i in (0, len(v) - 1):
            recon, z = v.meta["names"][i].split(":")
            np.testing.assert_allclose(v.image[i], vols[recon][int(z)] / 255.0, atol=1e-6)
            assert np.array_equal(v.boundary[i], vols[recon][int(z)] > 128)
    # groups 5-6 (t0105) and 12-13 (t0110): labelled slices 40-55 of each
    assert parts["test"].meta["names"][0] == "t0105:42" and parts["test"].meta["names"][16] == "t0110:42"
    assert all(st == "ok" for _, st, _ in verify("alzn_xct").rows)


def test_alzn_xct_refuses_the_published_shape_mismatch_without_any_shape(tmp_path, capsys):
    src = tmp_path / "ALZN"
    make_xct_copy(src)
    assert main(["data", "import", "alzn_xct", str(src)]) == 2
    err = capsys.readouterr().err
    assert "t0105.tif" in err and "(250, 852, 852)" in err


@pytest.mark.parametrize("breakage, named", [
    ("label_shape", "0010.png"),
    ("label_name", "slice10.png"),
    ("label_values", "0011.png"),
    ("z_outside", "0070.png"),
    ("missing_group", "handseg"),
    ("bad_reconstruction", "t0105.tif"),
    ("orphan_labels", "t0999"),
])
def test_a_broken_copy_is_refused_naming_the_file_and_nothing_enters_the_cache(tmp_path, capsys, breakage, named):
    src = tmp_path / "ALZN"
    make_xct_copy(src)
    labels = src / "handseg" / "t0105"
    if breakage == "label_shape":
        Image.fromarray(np.zeros((31, 40), np.uint8)).save(labels / "0010.png")
    elif breakage == "label_name":
        (labels / "0010.png").rename(labels / "slice10.png")
    elif breakage == "label_values":
        Image.fromarray(np.arange(32 * 40).reshape(32, 40).astype(np.uint8)).save(labels / "0011.png")
    elif breakage == "z_outside":
        (labels / "0010.png").rename(labels / "0070.png")
    elif breakage == "missing_group":
        for z in range(2, 10):
            (labels / f"{z:04d}.png").unlink()
    elif breakage == "bad_reconstruction":
        (src / "reconstructions" / "t0105.tif").write_bytes(b"not a tiff at all")
    elif breakage == "orphan_labels":
        (src / "handseg" / "t0999").mkdir()
    assert main(["data", "import", "alzn_xct", str(src), "--any-shape"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert named in err[-1] and err[-1].startswith("error:")
    cache = tmp_path / "cache"
    assert not (cache / "alzn_xct").exists() and "alzn_xct" not in read_locks()


def test_alzn_xct_not_imported_says_how_to_get_it(capsys):
    with pytest.raises(Exception) as exc:
        load("alzn_xct", "test")
    assert "data import alzn_xct" in str(exc.value)
    assert "exact MDF file names are not known" in get_dataset("alzn_xct").instructions


def test_an_imported_file_changed_in_place_is_refused(tmp_path):
    src = tmp_path / "ALZN"
    make_xct_copy(src)
    assert main(["data", "import", "alzn_xct", str(src), "--any-shape"]) == 0
    target = tmp_path / "cache" / "alzn_xct" / "handseg" / "t0110" / "0042.png"
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(target)
    with pytest.raises(Exception, match="changed since it was imported"):
        load("alzn_xct", "test")


# --------------------------------------------------------------------------- lazy stacks

@pytest.mark.parametrize("suffix", [".tif", ".h5", ".zarr", ".npy"])
def test_open_stack_reads_what_numpy_holds(tmp_path, suffix):
    import h5py
    import zarr

    a = np.random.default_rng(1).integers(0, 65535, (7, 30, 41), dtype=np.uint16)
    path = tmp_path / f"s{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, a)
    elif suffix == ".h5":
        with h5py.File(path, "w") as f:
            f.create_dataset("volume", data=a, chunks=(1, 15, 41))
    elif suffix == ".zarr":
        z = zarr.create_array(str(path), shape=a.shape, chunks=(2, 16, 16), dtype=a.dtype)
        z[:] = a
    else:
        np.save(path, a)
    with open_stack(path) as s:
        assert s.shape == a.shape and s.dtype == a.dtype and len(s) == 7
        assert np.array_equal(s[3], a[3]) and np.array_equal(s[1:4, 5:20, ::3], a[1:4, 5:20, ::3])
        assert np.array_equal(s[[5, 0, 5]], a[[5, 0, 5]]) and np.array_equal(np.asarray(s), a)


def test_a_lazy_stack_stands_as_a_volume_image(tmp_path):
    from grainbench.data.volume import Volume

    a = np.random.default_rng(2).integers(0, 255, (6, 10, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", a)
    with open_stack(tmp_path / "v.tif") as s:
        v = Volume(image=s, labels=None, boundary=None, serial=True)
        assert v.shape == (6, 10, 12) and len(v) == 6
        assert np.array_equal(v.take([4, 1]).image, a[[4, 1]])


@pytest.mark.parametrize("content", [b"garbage", None])
def test_open_stack_names_the_bad_file(tmp_path, content):
    path = tmp_path / "bad.h5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputFileError, match="bad.h5"):
        open_stack(path)


# --------------------------------------------------------------------------- z_depth

def test_z_depth_sets_training_sub_volumes_and_inference_tiles():
    from baselines.fc_densenet3d import FCDenseNet3D
    from baselines.unet3d import UNet3D
    from grainbench.training.presets import PRESETS

    m = UNet3D(z_depth=4, width=2)
    assert (m.tile_depth, m.margin_depth) == (4, 1) and m.config()["z_pools"] == 2
    assert all(m.preset_defaults[p]["patch_depth"] == 4 for p in PRESETS)
    assert UNet3D.preset_defaults["quick"]["patch_depth"] == 8  # the class's defaults are untouched
    again = UNet3D(**{k: v for k, v in m.config().items() if k not in ("name", "context")})
    assert again.config() == m.config()
    f = FCDenseNet3D(z_depth=4, width=4)
    assert f.config()["z_depth"] == 4 and f.tile_depth == 4
    assert m.predict(np.random.default_rng(0).random((6, 20, 20), dtype=np.float32)).shape == (6, 20, 20)
    with pytest.raises(ValueError, match="z_depth"):
        UNet3D(z_depth=0)


@pytest.mark.parametrize("layout, splits, problem", [
    ({"kind": "xct", "labels": "handseg", "group_size": 8}, {"test": {"groups": [0]}}, "'reconstructions'"),
    ({"kind": "xct", "reconstructions": "r", "labels": "../up", "group_size": 8}, {"test": {"groups": [0]}},
     "'labels'"),
    ({"kind": "xct", "reconstructions": "r", "labels": "l", "group_size": 0}, {"test": {"groups": [0]}},
     "group_size"),
    ({"kind": "xct", "reconstructions": "r", "labels": "l", "group_size": 8}, {"test": {"groups": [1, 1]}},
     "distinct group indices"),
    ({"kind": "xct", "reconstructions": "r", "labels": "l", "group_size": 8}, {"test": {"start": 0, "stop": 8}},
     "distinct group indices"),
])
def test_the_registry_checks_xct_layouts_and_group_splits(layout, splits, problem):
    from grainbench.data.registry import parse_entry
    from grainbench.errors import DatasetError

    raw = {"title": "t", "task": "phase", "serial": True, "modality": "m", "licence": "l", "citation": "c",
           "homepage": "h", "source": "manual", "instructions": "i", "layout": layout, "splits": splits}
    with pytest.raises(DatasetError, match=problem):
        parse_entry("x", raw)
