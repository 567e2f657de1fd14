"""`data import pure_iron FILE` with the file as users have it: today's root layout and the 2019 layout
(real/ beside simulated/, the authors' Potts volume, which becomes ``potts_authors``); failed imports
leave the cache exactly as it was and name the option that helps."""

import h5py
import numpy as np
import pytest

import grainbench.data.registry as registry
from grainbench.cli import main
from grainbench.data import import_dataset, load, verify
from grainbench.data.cache import read_locks
from grainbench.data.manual import companion_datasets
from grainbench.errors import InputFileError
from grainbench.io import sha256_file


@pytest.fixture(autouse=True)
def env(isolated_cache):
    """Every test gets its own data cache (conftest.isolated_cache)."""


def snapshot(root):
    """Every file and folder under ``root`` with its bytes (None for folders); {} when absent."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def volume(shape, seed, high=255):
    """(image, label, boundary) in axes (H, W, Z): two lines of boundary between four grains."""
    rng = np.random.default_rng(seed)
    h, w, z = shape
    boundary = np.zeros(shape, np.uint8)
    boundary[h // 2] = high
    boundary[:, w // 2] = high
    label = np.ones(shape, np.int32)
    label[h // 2:] = 2
    label[:, w // 2:] += 2
    label[boundary > 0] = 0
    return rng.integers(0, 256, shape, dtype=np.uint8), label, boundary


def write(path, groups):
    """An HDF5 file: ``groups`` maps a group ("" = root) to (image, label, boundary)."""
    with h5py.File(path, "w") as f:
        for group, arrays in groups.items():
            g = f.require_group(group) if group else f
            for key, arr in zip(("image", "label", "boundary"), arrays):
                if arr is not None:
                    g.create_dataset(key, data=arr)
    return path


def test_the_2019_layout_imports_real_and_the_authors_simulated_volume(tmp_path, capsys):
    real, sim = volume((8, 10, 296), 1), volume((12, 9, 20), 2, high=1)
    src = write(tmp_path / "pure_iron_2019.hdf5", {"real": real, "simulated": sim})
    assert companion_datasets("pure_iron", src) == ["potts_authors"]
    assert main(["data", "import", "pure_iron", str(src), "--any-shape"]) == 0
    assert "also imported potts_authors" in capsys.readouterr().out

    # Installed in the current (root) layout: the loaders read it like today's file.
    with h5py.File(tmp_path / "cache/pure_iron/pure_iron_grain_data_sets.hdf5") as f:
        assert sorted(f) == ["boundary", "image", "label"]
        for key, arr in zip(("image", "label", "boundary"), real):
            np.testing.assert_array_equal(f[key][()], arr)
    test = load("pure_iron", "test")
    np.testing.assert_array_equal(test.boundary, np.moveaxis(real[2][:, :, 148:296] > 0, -1, 0))
    assert len(load("pure_iron", "train")) == 116

    # The authors' simulated volume: a tracking dataset split 60/20/20 along Z in slice order.
    entry = registry.get_dataset("potts_authors")
    assert entry.task == "tracking" and entry.serial
    sizes = {s: load("potts_authors", s).meta["slices"] for s in ("train", "val", "test")}
    assert sizes == {"train": list(range(0, 12)), "val": list(range(12, 16)), "test": list(range(16, 20))}
    sim_test = load("potts_authors", "test")
    np.testing.assert_array_equal(sim_test.boundary, np.moveaxis(sim[2][:, :, 16:20] > 0, -1, 0))
    locks = read_locks()
    for name, rel in (("pure_iron", "pure_iron_grain_data_sets.hdf5"), ("potts_authors", "potts_authors.hdf5")):
        assert locks[name][rel] == sha256_file(tmp_path / "cache" / name / rel)
        assert verify(name).ok

    # The conversion is deterministic: importing the same file again re-pins nothing, warns of nothing.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import_dataset("pure_iron", src, check_shape=False)
    assert read_locks() == locks

    # Tracking scored on the authors' own data, with the ground-truth boundaries.
    assert main(["track", "--dataset", "potts_authors", "--tracker", "max_overlap", "--no-leaderboard"]) == 0
    from grainbench.records import read_record

    [rec] = [read_record(p) for p in (tmp_path / "runs/records/potts_authors").rglob("*.json")]
    assert rec["config"]["dataset"] == "potts_authors" and rec["config"]["split"] == "test"
    assert rec["dataset"]["hashes"] == {"potts_authors.hdf5": locks["potts_authors"]["potts_authors.hdf5"]}


def test_the_root_layout_still_imports_and_installs_the_file_as_it_is(tmp_path):
    src = write(tmp_path / "today.hdf5", {"": volume((8, 8, 296), 3)})
    assert companion_datasets("pure_iron", src) == []
    import_dataset("pure_iron", src, check_shape=False)
    installed = tmp_path / "cache/pure_iron/pure_iron_grain_data_sets.hdf5"
    assert installed.read_bytes() == src.read_bytes()
    assert not (tmp_path / "cache/potts_authors").exists()


def test_an_incomplete_simulated_group_imports_real_and_warns(tmp_path):
    img, lab, bd = volume((8, 8, 20), 4)
    src = write(tmp_path / "old.hdf5", {"real": volume((8, 8, 296), 5), "simulated": (None, lab, bd)})
    with pytest.warns(UserWarning, match="potts_authors.*no dataset 'simulated/image'"):
        import_dataset("pure_iron", src, check_shape=False)
    assert (tmp_path / "cache/pure_iron/pure_iron_grain_data_sets.hdf5").is_file()
    assert not (tmp_path / "cache/potts_authors").exists()
    assert "potts_authors" not in read_locks()


@pytest.mark.parametrize("layout", ["root", "2019"])
@pytest.mark.parametrize("bad, option", [
    ("shape", "use --any-shape"),
    ("missing", "at the root (or under real/"),
    ("dtype", "expected integers"),
])
def test_a_failed_import_leaves_the_cache_exactly_as_it_was(tmp_path, capsys, layout, bad, option):
    image, label, boundary = volume((8, 8, 296), 6)
    if bad == "missing":
        image = None
    if bad == "dtype":
        boundary = boundary.astype(np.float32)
    src = write(tmp_path / "bad.hdf5", {"" if layout == "root" else "real": (image, label, boundary)})
    args = ["data", "import", "pure_iron", str(src)] + ([] if bad == "shape" else ["--any-shape"])
    cache = tmp_path / "cache"

    assert main(args) == 2  # from an empty cache: no cache folder, no empty pure_iron/ left behind
    [line] = [x for x in capsys.readouterr().err.splitlines() if "error" in x]  # one line (a progress line besides)
    assert "bad.hdf5" in line and option in line
    assert not cache.exists()

    other = write(tmp_path / "other.hdf5", {"": volume((8, 8, 296), 7)})  # a cache with a good copy in it
    import_dataset("pure_iron", other, check_shape=False)
    before = snapshot(cache)
    assert main(args) == 2
    assert snapshot(cache) == before
    with pytest.raises(InputFileError):
        import_dataset("pure_iron", src, check_shape=bad == "shape")
    assert snapshot(cache) == before
