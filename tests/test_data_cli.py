"""`grainbench data ...` through grainbench.cli.main: exit codes and output."""

import pytest
from _data_server import Server, entry, fake_pure_iron, pair_folder, sha, write_registry

import grainbench.data.registry as registry
from grainbench.cli import main


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAINBENCH_MIRROR", raising=False)
    monkeypatch.delenv("GRAINBENCH_REGISTRY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    registry._CACHE.clear()


def test_list_and_info(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("pure_iron", "potts_sim", "ss347h", "alzn_xct", "synthetic", "tbm"):
        assert name in out
    assert main(["data", "info", "pure_iron"]) == 0
    out = capsys.readouterr().out
    assert "Keep-Passion" in out and "slices 148-295" in out and "grainbench data" not in out


def test_unknown_dataset_is_one_line_exit_2(capsys):
    assert main(["data", "info", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "Traceback" not in err


def test_fetch_manual_explains(capsys):
    assert main(["data", "fetch", "pure_iron"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "grainbench data import pure_iron /path/to/pure_iron_grain_data_sets.hdf5" in err


def test_import_verify_path(tmp_path, capsys):
    src = fake_pure_iron(tmp_path / "pi.hdf5", shape=(8, 8, 296))
    assert main(["data", "import", "pure_iron", str(src)]) == 2  # published shape enforced
    assert "expected (1024, 1024, 296)" in capsys.readouterr().err
    assert main(["data", "import", "pure_iron", str(src), "--any-shape"]) == 0
    assert main(["data", "verify", "pure_iron"]) == 0
    assert "1/1 files ok" in capsys.readouterr().out
    (tmp_path / "cache/pure_iron/pure_iron_grain_data_sets.hdf5").write_bytes(b"changed")
    assert main(["data", "verify", "pure_iron"]) == 1
    assert "changed" in capsys.readouterr().out
    assert main(["data", "path", "pure_iron"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "pure_iron")


def test_fetch_with_mirror_flag(tmp_path, monkeypatch, capsys):
    data = b"abc" * 100
    reg = write_registry(tmp_path / "reg.toml", {"toy": entry(base_url="http://127.0.0.1:9/",
                                                            files=[{"path": "x.bin", "sha256": sha(data)}])})
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(reg))
    with Server() as s:
        s.files = {"m/toy/x.bin": data}
        assert main(["data", "fetch", "toy", "--mirror", s.url + "m", "--retries", "0"]) == 0
    assert (tmp_path / "cache/toy/x.bin").read_bytes() == data
    assert main(["data", "verify", "toy"]) == 0


def test_import_own_folder_and_tile(tmp_path, capsys):
    pytest.importorskip("grainbench.data.tiling")
    src = pair_folder(tmp_path / "big", n=2, size=64)
    assert main(["data", "tile", str(src / "images"), str(src / "masks"), str(tmp_path / "tiles"),
                 "--size", "32"]) == 0
    assert main(["data", "import", "tiled", str(tmp_path / "tiles")]) == 0
    assert main(["data", "list"]) == 0
    assert "tiled" in capsys.readouterr().out
    from grainbench.data import load

    assert load("tiled", "all").shape == (8, 32, 32)


def test_generate_unknown_generator_is_clear(tmp_path, monkeypatch, capsys):
    e = entry(source="generate", generator="no_such_module:gen", layout={"kind": "generated"},
              splits={"test": {"start": 0, "stop": 1}})
    e.pop("base_url")
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(write_registry(tmp_path / "reg.toml", {"g": e})))
    assert main(["data", "generate", "g"]) == 2
    assert "not one of the registered generators" in capsys.readouterr().err
    monkeypatch.setenv("GRAINBENCH_ALLOW_GENERATORS", "1")  # opted in: then the import itself fails clearly
    assert main(["data", "generate", "g"]) == 2
    assert "generator 'no_such_module:gen' is not available" in capsys.readouterr().err
