"""Manual import (structure check, lock, untouched cache on failure) and every loader layout."""

import hashlib
import importlib
import sys
import types

import h5py
import numpy as np
import pytest
import tifffile
from _data_server import entry, fake_pure_iron, pair_folder, sha, write_registry

import grainbench.data.registry as registry
from grainbench.data import (
    DatasetWarning,
    generate,
    import_dataset,
    load,
    load_pairs,
    verify,
)
from grainbench.data.loaders import (
    normalise,
    read_hdf5_stack,
    to_boundary,
    to_float_image,
)
from grainbench.data.manual import read_locks
from grainbench.errors import DatasetError, InputFileError

loaders_mod = importlib.import_module("grainbench.data.loaders")
generate_mod = importlib.import_module("grainbench.data.generate")


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_MIRROR", raising=False)
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    registry._CACHE.clear()


def cache_files(tmp_path):
    root = tmp_path / "cache"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


# --------------------------------------------------------------------------- normalisation

def test_normalisation_rules():
    assert to_float_image(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert to_float_image(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert to_float_image(np.array([2.0, 4.0])).tolist() == [0.0, 1.0]
    assert to_boundary(np.array([0, 100, 200], np.uint8)).tolist() == [False, False, True]
    assert to_boundary(np.array([0, 1], np.uint8)).tolist() == [False, True]
    with pytest.raises(InputFileError, match="NaN"):
        to_float_image(np.array([np.nan, 1.0]))
    b = np.zeros((1, 5, 5), bool)
    b[0, 2, :] = True
    v = normalise(np.zeros((1, 5, 5), np.uint8), b)
    assert v.labels.dtype == np.int32 and set(np.unique(v.labels)) == {0, 1, 2}
    assert (v.labels[b] == 0).all()


# --------------------------------------------------------------------------- pure_iron (manual HDF5)

def test_missing_manual_dataset_says_where_and_how():
    with pytest.raises(DatasetError) as info:
        load("pure_iron", "test")
    msg = str(info.value)
    assert "https://github.com/Keep-Passion/pure_iron_grain_data_sets" in msg
    assert "grainbench data import pure_iron /path/to/pure_iron_grain_data_sets.hdf5" in msg


def test_import_good_pure_iron_pins_hash_and_loads_splits(tmp_path):
    src = fake_pure_iron(tmp_path / "pi.hdf5", shape=(16, 12, 296))
    with pytest.raises(InputFileError, match=r"shape \(16, 12, 296\), expected \(1024, 1024, 296\)"):
        import_dataset("pure_iron", src)  # the published shape is enforced by default
    assert cache_files(tmp_path) == {}
    dest = import_dataset("pure_iron", src, check_shape=False)
    installed = dest / "pure_iron_grain_data_sets.hdf5"
    assert installed.read_bytes() == src.read_bytes()
    assert read_locks() == {"pure_iron": {"pure_iron_grain_data_sets.hdf5": sha(src.read_bytes())}}
    assert verify("pure_iron").ok and "pinned locally" in verify("pure_iron").rows[0][2]
    sizes = {s: len(load("pure_iron", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 116, "val": 32, "test": 148}
    test = load("pure_iron", "test")
    with h5py.File(src) as f:
        raw_img, raw_bd, raw_lab = f["image"][()], f["boundary"][()], f["label"][()]
    assert test.shape == (148, 16, 12) and test.serial and test.meta["slices"][0] == 148
    np.testing.assert_allclose(test.image, np.moveaxis(raw_img[:, :, 148:], 2, 0) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(test.boundary, np.moveaxis(raw_bd[:, :, 148:], 2, 0) == 255)
    lab = np.moveaxis(raw_lab[:, :, 148:], 2, 0)
    np.testing.assert_array_equal(test.labels, np.where(test.boundary, 0, lab))
    # Propagation methods need the mask of the slice before the split (slice 147 here).
    np.testing.assert_array_equal(test.meta["prev_boundary"], raw_bd[:, :, 147] == 255)
    assert "prev_boundary" not in load("pure_iron", "train").meta  # nothing precedes slice 0


def test_changed_pure_iron_warns_and_repins(tmp_path):
    a = fake_pure_iron(tmp_path / "a.hdf5", shape=(8, 8, 296), seed=1)
    b = fake_pure_iron(tmp_path / "b.hdf5", shape=(8, 8, 296), seed=2)
    import_dataset("pure_iron", a, check_shape=False)
    installed = tmp_path / "cache/pure_iron/pure_iron_grain_data_sets.hdf5"
    installed.write_bytes(b.read_bytes())  # the file changes behind our back
    report = verify("pure_iron")
    assert not report.ok and report.rows[0][1] == "changed"
    with pytest.warns(DatasetWarning, match="changed: pinned sha256"):
        import_dataset("pure_iron", b, check_shape=False)
    assert read_locks()["pure_iron"]["pure_iron_grain_data_sets.hdf5"] == sha(b.read_bytes())


@pytest.mark.parametrize("kwargs, problem", [
    ({"keys": ("image", "labels", "boundary")}, "no dataset 'label'"),
    ({"boundary_high": 1}, None),  # 0/1 is not the declared 0/255
    ({"boundary_dtype": np.float32}, "expected integers"),
])
def test_bad_pure_iron_is_refused_and_cache_untouched(tmp_path, kwargs, problem):
    good = fake_pure_iron(tmp_path / "good.hdf5", shape=(8, 8, 296))
    import_dataset("pure_iron", good, check_shape=False)
    before = cache_files(tmp_path)
    bad = tmp_path / "bad.hdf5"
    if kwargs.get("keys"):
        with h5py.File(bad, "w") as f:
            f["image"] = np.zeros((8, 8, 296), np.uint8)
            f["labels"] = np.zeros((8, 8, 296), np.int32)
            f["boundary"] = np.zeros((8, 8, 296), np.uint8)
    else:
        fake_pure_iron(bad, shape=(8, 8, 296), **kwargs)
    with pytest.raises(InputFileError) as info:
        import_dataset("pure_iron", bad, check_shape=False)
    msg = str(info.value)
    assert str(bad) in msg
    assert problem in msg if problem else "values [1]" in msg
    assert cache_files(tmp_path) == before  # the good copy and the lock are as they were


def test_wrong_shapes_and_non_hdf5_refused(tmp_path):
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f["image"] = np.zeros((8, 8, 10), np.uint8)
        f["label"] = np.zeros((8, 8, 9), np.int32)
        f["boundary"] = np.zeros((8, 8, 10), np.uint8)
    with pytest.raises(InputFileError, match="datasets differ in shape"):
        import_dataset("pure_iron", bad, check_shape=False)
    txt = tmp_path / "notes.hdf5"
    txt.write_text("hello")
    with pytest.raises(InputFileError, match="notes.hdf5: not a readable HDF5"):
        import_dataset("pure_iron", txt)
    with pytest.raises(InputFileError, match="file not found"):
        import_dataset("pure_iron", tmp_path / "nope.hdf5")
    assert cache_files(tmp_path) == {}


def test_hdf5_hwz_blocks_match_full_transpose(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders_mod, "_ROW_BUDGET", 7)  # force many row blocks
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (13, 11, 9), dtype=np.uint8)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["img"] = arr
        f["bd"] = arr > 100
    got = read_hdf5_stack(tmp_path / "s.h5", {"image": "img", "boundary": "bd", "axes": "HWZ"}, 2, 7)
    np.testing.assert_array_equal(got["image"], np.moveaxis(arr[:, :, 2:7], 2, 0))
    np.testing.assert_array_equal(got["boundary"], np.moveaxis(arr[:, :, 2:7] > 100, 2, 0))
    with pytest.raises(DatasetError, match="outside the stack of 9 slices"):
        read_hdf5_stack(tmp_path / "s.h5", {"image": "img", "axes": "HWZ"}, 5, 12)


def test_unpinned_dataset_is_explained(tmp_path):
    from grainbench.data.manual import require_installed
    from grainbench.data.registry import parse_entry

    raw = {"title": "t", "task": "phase", "serial": True, "modality": "m", "licence": "l", "citation": "c",
           "homepage": "h", "source": "manual", "instructions": "Get it from doi 10.18126/cxf3-hrum.",
           "layout": {"kind": "unpinned"}, "splits": {}}
    with pytest.raises(DatasetError, match="not pinned.*10.18126/cxf3-hrum"):
        require_installed(parse_entry("unpinned_set", raw))


def test_alzn_xct_from_a_folder_without_the_layout_names_the_missing_folder(tmp_path):
    with pytest.raises(InputFileError, match="reconstructions: missing folder"):
        import_dataset("alzn_xct", tmp_path)


# --------------------------------------------------------------------------- TIFF and NPY stacks

@pytest.mark.parametrize("kind", ["tiff", "npy"])
def test_stack_layouts_round_trip(tmp_path, monkeypatch, kind):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (6, 10, 12), dtype=np.uint8)
    boundary = np.zeros((6, 10, 12), np.uint8)
    boundary[:, 5, :] = 255
    src = tmp_path / "src"
    src.mkdir()
    ext = "tif" if kind == "tiff" else "npy"
    for nm, arr in (("image", image), ("boundary", boundary)):
        if kind == "tiff":
            tifffile.imwrite(src / f"{nm}.{ext}", arr)
        else:
            np.save(src / f"{nm}.{ext}", arr)
    files = [{"path": f"{nm}.{ext}", "sha256": sha((src / f"{nm}.{ext}").read_bytes())} for nm in ("image", "boundary")]
    reg = write_registry(tmp_path / "reg.toml", {"stack": entry(
        source="manual", instructions="ask", files=files, serial=True, base_url="http://127.0.0.1:9/",
        layout={"kind": kind, "image": f"image.{ext}", "boundary": f"boundary.{ext}"},
        splits={"train": {"start": 0, "stop": 4}, "test": {"start": 4, "stop": 6}})})
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(reg))
    import_dataset("stack", src)
    test = load("stack", "test")
    assert test.shape == (2, 10, 12) and test.image.dtype == np.float32
    np.testing.assert_allclose(test.image, image[4:] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(test.boundary, boundary[4:] == 255)
    assert set(np.unique(test.labels)) == {0, 1, 2}
    assert len(load("stack", "train")) == 4
    np.testing.assert_array_equal(test.meta["prev_boundary"], boundary[3] == 255)
    # a file with the wrong published hash is refused, the good copy stays
    (src / f"image.{ext}").write_bytes(b"x" * 10)
    before = cache_files(tmp_path)
    with pytest.raises(DatasetError, match="expected sha256"):
        import_dataset("stack", src)
    assert cache_files(tmp_path) == before


# --------------------------------------------------------------------------- folders of pairs

def test_local_pairs_import_and_load(tmp_path):
    src = pair_folder(tmp_path / "mine", n=10, size=32, rgb=True)
    import_dataset("my-steel", src)
    vol = load("my-steel", "all")
    assert vol.shape == (10, 32, 32) and not vol.serial and vol.meta["names"][0] == "p00"
    assert vol.image.dtype == np.float32 and vol.boundary.sum() > 0
    assert set(np.unique(vol.labels[0])) == {0, 1, 2, 3, 4}  # a thick cross gives 4 grains
    assert {s: len(load("my-steel", s)) for s in ("train", "val", "test")} == {"train": 6, "val": 2, "test": 2}
    pairs = load_pairs("my-steel", "test")
    assert [p.meta["names"] for p in pairs] == [["p04"], ["p09"]]
    assert verify("my-steel").ok and len(verify("my-steel").rows) == 20
    from grainbench.data import list_datasets

    assert "my-steel" in [d.name for d in list_datasets()]


def test_bad_pair_folders_refused(tmp_path):
    src = pair_folder(tmp_path / "mine", n=3)
    (src / "masks" / "p01.png").unlink()
    with pytest.raises(InputFileError, match=r"images without a mask: \['p01.png'\]"):
        import_dataset("mine", src)
    with pytest.raises(InputFileError, match="images/ is missing"):
        import_dataset("mine", tmp_path)
    with pytest.raises(DatasetError, match="not a usable name"):
        import_dataset("Bad Name", src)
    assert not (tmp_path / "cache" / "mine").exists()


def test_pairs_of_different_sizes_need_load_pairs(tmp_path):
    src = pair_folder(tmp_path / "mixed", n=2, size=32)
    big = pair_folder(tmp_path / "big", n=1, size=40, seed=5)
    for d in ("images", "masks"):
        (src / d / "z.png").write_bytes((big / d / "p00.png").read_bytes())
    import_dataset("mixed", src)
    with pytest.raises(DatasetError, match="load_pairs"):
        load("mixed", "all")
    assert sorted(v.shape for v in load_pairs("mixed", "all")) == [(1, 32, 32), (1, 32, 32), (1, 40, 40)]


# --------------------------------------------------------------------------- generated

@pytest.fixture
def fake_generator(monkeypatch):
    """A tiny seeded generator in place of the real one, and array_digest if part B is absent."""
    def gen(seed=0, shape=(10, 8, 8)):
        rng = np.random.default_rng(seed)
        b = np.zeros(shape, bool)
        b[:, 4, :] = True
        return {"image": rng.integers(0, 256, shape, dtype=np.uint8), "labels": np.where(b, 0, 1).astype(np.int32),
                "boundary": b, "labels3d": np.ones(shape, np.int32)}

    monkeypatch.setitem(sys.modules, "fake_gen_mod", types.SimpleNamespace(gen=gen))
    try:
        importlib.import_module("grainbench.data.hashing")
    except ImportError:
        def array_digest(arrays):
            h = hashlib.sha256()
            for k in sorted(arrays):
                a = np.ascontiguousarray(arrays[k])
                h.update(f"{k}{a.dtype.str}{a.shape}".encode() + a.tobytes())
            return h.hexdigest()

        monkeypatch.setitem(sys.modules, "grainbench.data.hashing", types.SimpleNamespace(array_digest=array_digest))
    from grainbench.data.hashing import array_digest

    return gen, array_digest


def test_generated_dataset(tmp_path, monkeypatch, fake_generator):
    gen, digest = fake_generator
    monkeypatch.setenv("GRAINBENCH_ALLOW_GENERATORS", "1")  # a test generator, not a registered one
    good = digest(gen(seed=0))

    def reg(d):
        e = entry(source="generate", generator="fake_gen_mod:gen", params={"seed": 0}, digest=d,
                  layout={"kind": "generated"}, files=[],
                  splits={"train": {"start": 0, "stop": 7}, "test": {"start": 7, "stop": 10}})
        e.pop("base_url")
        monkeypatch.setenv("GRAINBENCH_REGISTRY", str(write_registry(tmp_path / "reg.toml", {"gen": e})))

    reg("0" * 64)
    with pytest.raises(DatasetError, match=f"expected digest {'0' * 64}, got {good}"):
        generate("gen")
    assert cache_files(tmp_path) == {}
    reg(good)
    vol = load("gen", "test")  # generated on first use
    assert vol.shape == (3, 8, 8) and vol.serial is False and vol.meta["labels3d"].shape == (3, 8, 8)
    assert vol.image.dtype == np.float32 and (vol.labels[vol.boundary] == 0).all()
    assert len(load("gen", "train")) == 7
    assert verify("gen").ok
    path, d = generate("gen")
    assert d == good and path.suffix == ".npz"
    # no digest in the registry: pinned locally, a different result later warns
    reg("")
    generate("gen", force=True)
    assert read_locks()["gen"]["generated"] == good
    monkeypatch.setattr(generate_mod, "_digest", lambda arrays: "f" * 64)
    with pytest.warns(DatasetWarning, match="changed"):
        generate("gen", force=True)


def test_real_synthetic_splits():
    pytest.importorskip("grainbench.data.synthetic")
    pytest.importorskip("grainbench.data.hashing")
    sizes = {s: len(load("synthetic", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 32, "val": 8, "test": 8}
    np.testing.assert_array_equal(load("synthetic", "test").meta["prev_boundary"],
                                  load("synthetic", "val").boundary[-1])
