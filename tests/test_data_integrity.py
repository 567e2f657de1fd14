"""Data checked when it is used: generated caches re-hashed on load, broken caches rebuilt, imported files
re-checked against their pins, imports validated before the cache changes, registry values typed."""

import shutil

import h5py
import numpy as np
import pytest
from _data_server import entry, fake_pure_iron, write_registry

import grainbench.data.registry as registry
from grainbench import data
from grainbench.cli import main
from grainbench.data.generate import DatasetWarning, _read_stored, generate, stored_path, verify_generated
from grainbench.data.hashing import array_digest, matches_stable_pin, stable_pin
from grainbench.errors import DatasetError


@pytest.fixture
def own_synthetic(synthetic_cache, tmp_path, monkeypatch):
    """A private copy of the session's generated synthetic cache, safe to damage."""
    root = tmp_path / "cache"
    shutil.copytree(synthetic_cache, root)
    monkeypatch.setenv("GRAINBENCH_DATA", str(root))
    registry._CACHE.clear()
    return stored_path(data.get_dataset("synthetic"))


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(path, **arrays)  # the stored __digest__ entry is kept as it was


def test_edited_generated_cache_is_refused_when_loaded(own_synthetic, capsys):
    path = own_synthetic
    with np.load(path) as npz:
        boundary = npz["boundary"].copy()
    boundary[:, ::7, :] = True  # edit the ground truth, keep the digest entry
    _rewrite(path, boundary=boundary)
    with pytest.raises(DatasetError, match="do not match the digest stored with them"):
        data.load("synthetic", "test")
    assert main(["run", "--model", "classical", "--dataset", "synthetic", "--no-leaderboard",
                 "--records", str(path.parent / "records")]) == 2
    err = capsys.readouterr().err
    assert path.name in err and "grainbench data generate synthetic --force" in err
    assert not (path.parent / "records").exists()  # nothing scored, nothing recorded
    assert main(["data", "generate", "synthetic"]) == 2
    assert main(["data", "generate", "synthetic", "--force"]) == 0  # the command the message names
    assert data.load("synthetic", "test").boundary.shape == (8, 256, 256)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_generated_cache_is_named_and_rebuilt(own_synthetic, damage, capsys):
    path = own_synthetic
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"not a zip file")
    name, status, detail = verify_generated(data.get_dataset("synthetic"))
    assert status == "broken" and "--force" in detail
    assert main(["data", "verify", "synthetic"]) == 1
    assert "broken" in capsys.readouterr().out
    with pytest.warns(DatasetWarning, match=f"{path.name}.*unreadable.*regenerating"):
        vol = data.load("synthetic", "test")
    assert vol.boundary.shape == (8, 256, 256)
    _, stored = _read_stored(path)
    assert stored == data.get_dataset("synthetic").digest  # rebuilt, the registry's arrays again


def test_one_ulp_of_the_float_parts_keeps_the_generated_data_valid(monkeypatch):
    """A numpy/scipy release that moves the rendered floats by 1 ulp flips some rounded grey levels:
    the exact digest changes, the tolerant check (integers exact, image fingerprint) still accepts it."""
    from grainbench.data.synthetic import generate_synthetic

    small = dict(seed=3, shape=(4, 64, 64))
    ref = generate_synthetic(**small)
    rint = np.rint
    monkeypatch.setattr(np, "rint", lambda x, *a, **k: rint(np.nextafter(x, np.inf), *a, **k))
    moved = generate_synthetic(**small)
    monkeypatch.undo()
    for k in ("labels", "boundary", "labels3d"):
        assert np.array_equal(ref[k], moved[k])
    pin = stable_pin(ref)
    assert matches_stable_pin(moved, pin) is None
    # a real edit is still caught: of the image, or of the ground truth
    edited = dict(moved, image=moved["image"].copy())
    edited["image"][0, :20, :20] = 255 - edited["image"][0, :20, :20]
    assert "image" in matches_stable_pin(edited, pin)
    assert "label/boundary" in matches_stable_pin(dict(moved, boundary=~moved["boundary"]), pin)


def test_registry_synthetic_accepts_a_one_grey_level_drift(own_synthetic):
    path = own_synthetic
    with np.load(path) as npz:
        image = npz["image"].copy()
        digest = str(npz["__digest__"])
    rng = np.random.default_rng(0)
    idx = rng.choice(image.size, 200, replace=False)  # what a 1-ulp change does: a few values move by one
    image.flat[idx] = np.where(image.flat[idx] < 255, image.flat[idx] + 1, 254)
    arrays, _ = _read_stored(path)
    arrays["image"] = image
    new_digest = array_digest(arrays)
    assert new_digest != digest
    np.savez(path, **arrays, __digest__=np.array(new_digest))  # as a newer scipy would have stored it
    _, status, detail = verify_generated(data.get_dataset("synthetic"))
    assert status == "ok" and "within the float tolerance" in detail
    first = data.get_dataset("synthetic").splits["test"].start
    np.testing.assert_allclose(data.load("synthetic", "test").image[0], image[first] / 255.0, atol=1e-6)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    registry._CACHE.clear()
    return tmp_path


def test_imported_hdf5_changed_in_place_is_noticed_before_a_record(fresh, capsys):
    src = fake_pure_iron(fresh / "pi.hdf5", shape=(16, 12, 296))
    assert main(["data", "import", "pure_iron", str(src), "--any-shape"]) == 0
    assert data.load("pure_iron", "test").shape[0] == 148
    installed = fresh / "cache" / "pure_iron" / "pure_iron_grain_data_sets.hdf5"
    with h5py.File(installed, "r+") as f:  # same size, new content
        f["boundary"][0, :, :] = 255
    with pytest.raises(DatasetError, match="changed since it was imported.*grainbench data import pure_iron"):
        data.load("pure_iron", "test")
    assert main(["run", "--model", "classical", "--dataset", "pure_iron", "--no-leaderboard",
                 "--records", str(fresh / "records")]) == 2
    assert "changed since it was imported" in capsys.readouterr().err
    assert not (fresh / "records").exists()


def _good_then(fresh, make_bad, capsys):
    good = fake_pure_iron(fresh / "good.hdf5", shape=(16, 12, 296))
    assert main(["data", "import", "pure_iron", str(good), "--any-shape"]) == 0
    installed = fresh / "cache" / "pure_iron" / "pure_iron_grain_data_sets.hdf5"
    before = installed.read_bytes()
    locks = (fresh / "cache" / "locks.toml").read_text()
    bad = make_bad(fresh / "bad.hdf5")
    assert main(["data", "import", "pure_iron", str(bad), "--any-shape"]) == 2
    err = capsys.readouterr().err
    assert installed.read_bytes() == before  # the good copy is kept
    assert (fresh / "cache" / "locks.toml").read_text() == locks  # and its pin
    assert data.load("pure_iron", "test").shape[0] == 148
    return err


def test_import_refuses_nan_images_before_the_cache_changes(fresh, capsys):
    def nan_image(path):
        fake_pure_iron(path, shape=(16, 12, 296))
        with h5py.File(path, "r+") as f:
            img = f["image"][()].astype(np.float32)
            img[3, 3, 3] = np.nan
            del f["image"]
            f["image"] = img
        return path

    assert "NaN or infinite" in _good_then(fresh, nan_image, capsys)


def test_import_refuses_too_few_slices_for_the_splits(fresh, capsys):
    err = _good_then(fresh, lambda p: fake_pure_iron(p, shape=(16, 12, 100)), capsys)
    assert "100 slices" in err and "split" in err


def test_import_refuses_a_zero_height_stack(fresh, capsys):
    def empty(path):
        with h5py.File(path, "w") as f:
            f["image"] = np.zeros((0, 12, 296), np.uint8)
            f["label"] = np.zeros((0, 12, 296), np.int32)
            f["boundary"] = np.zeros((0, 12, 296), np.uint8)
        return path

    err = _good_then(fresh, empty, capsys)
    assert "axis of size 0" in err


def test_import_refuses_hdf5_with_external_links(fresh, capsys):
    def linked(path):
        other = fake_pure_iron(path.with_name("elsewhere.hdf5"), shape=(16, 12, 296))
        fake_pure_iron(path, shape=(16, 12, 296), keys=("image", "label"))
        with h5py.File(path, "r+") as f:
            f["boundary"] = h5py.ExternalLink(str(other), "/boundary")
        return path

    assert "external link" in _good_then(fresh, linked, capsys)


@pytest.mark.parametrize("bounds", [{"start": True, "stop": 2}, {"start": 0, "stop": 2.0},
                                    {"start": 0, "stop": False}])
def test_split_bounds_of_the_wrong_type_are_refused(fresh, monkeypatch, capsys, bounds):
    e = entry(source="generate", generator="synthetic", layout={"kind": "generated"}, splits={"test": bounds})
    e.pop("base_url")
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(write_registry(fresh / "reg.toml", {"toy": e})))
    with pytest.raises(DatasetError, match="integers 0 <= start < stop"):
        data.get_dataset("toy")
    assert main(["data", "info", "toy"]) == 2
    assert "splits.test" in capsys.readouterr().err


def test_only_registered_generators_run_unless_the_user_opts_in(fresh, monkeypatch, capsys):
    marker = fresh / "ran"
    e = entry(source="generate", generator="os:system", params={"command": f"touch {marker}"},
              layout={"kind": "generated"}, splits={"test": {"start": 0, "stop": 1}})
    e.pop("base_url")
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(write_registry(fresh / "reg.toml", {"evil": e})))
    assert main(["data", "generate", "evil"]) == 2
    err = capsys.readouterr().err
    assert "not one of the registered generators" in err and "GRAINBENCH_ALLOW_GENERATORS=1" in err
    with pytest.raises(DatasetError):
        generate("evil")
    assert not marker.exists()  # the command never ran
