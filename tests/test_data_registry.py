"""The registry: the shipped datasets.toml is valid and complete; malformed entries fail clearly."""

import csv

import pytest
from _data_server import REPO, SHARED_TBM, entry, write_registry

import grainbench.data.registry as registry
from grainbench.data import get_dataset, list_datasets
from grainbench.errors import DatasetError


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    monkeypatch.delenv("GRAINBENCH_MIRROR", raising=False)
    registry._CACHE.clear()


def test_shipped_registry_has_every_dataset():
    names = [d.name for d in list_datasets()]
    assert names == ["pure_iron", "potts_authors", "potts_sim", "alzn_sim", "ss347h", "alzn_xct", "synthetic", "tbm"]
    for d in list_datasets():
        assert d.title and d.citation and d.licence and d.task in registry.TASKS
        assert d.source in ("https", "manual", "generate")
    assert get_dataset("alzn_xct").task == "phase"
    assert get_dataset("potts_sim").task == "tracking"
    assert "10.18126/cxf3-hrum" in get_dataset("alzn_xct").homepage


@pytest.mark.parametrize("name, sizes", [
    ("pure_iron", {"train": 116, "val": 32, "test": 148}),   # WPU-Net: 001-116, 117-148, 149-296
    ("potts_sim", {"train": 240, "val": 80, "test": 80}),
    ("synthetic", {"train": 32, "val": 8, "test": 8}),
])
def test_stack_split_sizes(name, sizes):
    ds = get_dataset(name)
    depth = ds.shape[-1] if name == "pure_iron" else ds.shape[0]
    got = {k: s.slice_range(depth)[1] - s.slice_range(depth)[0] for k, s in ds.splits.items()}
    assert got == sizes
    # contiguous and covering the stack
    ranges = sorted(s.slice_range(depth) for s in ds.splits.values())
    assert ranges[0][0] == 0 and ranges[-1][1] == depth
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_synthetic_splits_match_generator():
    synthetic = pytest.importorskip("grainbench.data.synthetic")
    ds = get_dataset("synthetic")
    assert {k: (s.start, s.stop) for k, s in ds.splits.items()} == synthetic.SYNTHETIC_SPLITS


def test_tbm_files_and_splits():
    ds = get_dataset("tbm")
    assert ds.source == "https" and ds.licence == "MIT" and len(ds.files) == 160
    train = [f.path.split("/")[-1] for f in ds.files if f.path.startswith("TrainDataset/images/")]
    test = [f for f in ds.files if f.path.startswith("TestDataset/images/")]
    assert len(train) == 64 and len(test) == 16
    sizes = {k: len(s.select(train)) for k, s in ds.splits.items() if s.dir == "TrainDataset"}
    assert sizes == {"train": 48, "val": 16}
    assert not set(ds.splits["train"].select(train)) & set(ds.splits["val"].select(train))


@pytest.mark.skipif(not (SHARED_TBM / "MANIFEST.tsv").is_file(), reason="tbm MANIFEST not available")
def test_tbm_entry_matches_manifest():
    ds = get_dataset("tbm")
    with open(SHARED_TBM / "MANIFEST.tsv") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert set(rows) == {f.path for f in ds.files}
    for f in ds.files:
        assert f.sha256 == rows[f.path]["sha256"]
        assert f.url(ds.base_url) == rows[f.path]["url"]


def test_unknown_dataset_suggests(tmp_path):
    with pytest.raises(DatasetError, match="did you mean pure_iron"):
        get_dataset("pure_irn")


@pytest.mark.parametrize("change, field, problem", [
    ({"task": "segmentation"}, "task", "must be one of"),
    ({"source": "ftp"}, "source", "must be one of"),
    ({"serial": "yes"}, "serial", "must be bool"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"files": [{"path": "a.png", "sha256": "abc"}]}, "files[0].sha256", "64 hex digits"),
    ({"files": [{"path": "a.png"}]}, "files[0].sha256", "is missing"),
    ({"files": [{"path": "../evil.png", "sha256": "0" * 64}]}, "files[0]", "inside the dataset folder"),
    ({"base_url": "ftp://x/"}, "base_url", "http(s) URL"),
    ({"layout": {"kind": "zarr"}}, "layout", "'kind' must be one of"),
    ({"splits": {"test": {"start": 5, "stop": 2}}, "layout": {"kind": "npy", "image": "i.npy"}},
     "splits.test", "start < stop"),
])
def test_malformed_entry_names_entry_and_field(tmp_path, monkeypatch, change, field, problem):
    good = entry(files=[{"path": "a.png", "sha256": "0" * 64}])
    good.update(change)
    reg = write_registry(tmp_path / "reg.toml", {"broken": good})
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(reg))
    with pytest.raises(DatasetError) as info:
        list_datasets()
    msg = str(info.value)
    assert "reg.toml" in msg and "dataset 'broken'" in msg and f"field '{field}'" in msg and problem in msg


def test_missing_field_and_bad_toml(tmp_path, monkeypatch):
    e = entry(files=[{"path": "a.png", "sha256": "0" * 64}])
    del e["licence"]
    reg = write_registry(tmp_path / "reg.toml", {"nolic": e})
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(reg))
    with pytest.raises(DatasetError, match="dataset 'nolic', field 'licence': is missing"):
        list_datasets()
    reg.write_text("[datasets.x\n")
    registry._CACHE.clear()
    with pytest.raises(DatasetError, match="not valid TOML"):
        list_datasets()


def test_shipped_registry_is_at_repo_root():
    assert registry.default_registry_path() == REPO / "datasets.toml"


def test_every_default_protocol_exists():
    from grainbench.data import list_datasets
    from grainbench.protocol import get_protocol

    for ds in list_datasets():
        proto = get_protocol(ds.protocol)
        assert (proto.task == "phase") == (ds.task == "phase"), ds.name
