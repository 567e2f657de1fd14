"""Published weights: ``grainbench export`` (safetensors + model card) and ``run/track --weights``.

One tiny U-Net (width 4, one short epoch on the generated ``synthetic``
stack) is trained once for the module; every test exports or loads it.
Downloads go to a 127.0.0.1 HTTP server thread.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from grainbench.cli import main
from grainbench.data import get_dataset
from grainbench.records import load_records, read_record
from grainbench.training.checkpoint import load_checkpoint
from grainbench.weights import METADATA_KEY, read_card

from _data_server import Server

REPO = Path(__file__).resolve().parent.parent
TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64",
        "--set", "val_patches=4", "--set", "epochs=1"]


pytestmark = pytest.mark.slow  # one tiny training for the module, then seconds per test


@pytest.fixture(scope="module")
def trained(synthetic_cache, tmp_path_factory):
    """(root, record path, record): a finished tiny U-Net run under ``root/runs``."""
    root = tmp_path_factory.mktemp("weights")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    mp.setenv("GRAINBENCH_RUNS", str(root / "runs"))
    # the width comes from the preset (as the published quick U-Net's 16), not from a constructor argument
    assert main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--set", "width=4",
                 "--no-leaderboard"]) == 0
    mp.undo()
    [(path, rec)] = load_records(root / "runs/records/synthetic")[0]
    return root, path, rec


@pytest.fixture
def env(trained, synthetic_cache, tmp_path, monkeypatch):
    """A fresh runs folder per test (records of --weights runs land there) beside the trained run's."""
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _export(trained, out: Path) -> tuple[Path, Path]:
    root, _, rec = trained
    assert main(["export", rec["run_id"], "--records", str(root / "runs/records"), "--workdir", str(root / "runs"),
                 "--out", str(out)]) == 0
    return out / f"{rec['run_id']}.safetensors", out / f"{rec['run_id']}.json"


def test_export_writes_safetensors_and_a_model_card_of_the_run(trained, env):
    root, _, rec = trained
    weights, card_path = _export(trained, env / "w")
    card = json.loads(card_path.read_text())
    assert card["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (card["method"], card["constructor_args"], card["in_channels"]) == ("unet", {}, 1)
    assert card["method_config"]["width"] == 4
    assert (card["dataset"], card["split"], card["preset"], card["record_id"]) == \
        ("synthetic", "test", "quick", rec["run_id"])
    assert card["preset_overrides"] == {"patches_per_epoch": 8, "batch_size": 4, "patch_size": 64,
                                        "val_patches": 4, "epochs": 1, "width": 4}
    assert card["metrics"] == rec["metrics"]["aggregate"]
    assert card["checkpoint_sha256"] == rec["checkpoint"]["sha256"]
    assert card["grainbench_version"]
    # The tensors are exactly the checkpoint's network, and the file carries the card itself.
    [model_pt] = (root / "runs/synthetic/unet").glob("*/model.pt")
    net = load_checkpoint(model_pt)["method_state"]["net"]
    tensors = load_file(weights)
    assert set(tensors) == set(net) and all(torch.equal(tensors[k], net[k]) for k in net)
    inner = read_card(weights)
    assert inner["record_id"] == rec["run_id"] and inner["metrics"] == card["metrics"]


def _assert_same_scores(rec_a: dict, rec_b: dict) -> None:
    assert rec_b["metrics"]["aggregate"] == rec_a["metrics"]["aggregate"]
    assert rec_b["metrics"]["per_slice"] == rec_a["metrics"]["per_slice"]


def test_run_with_a_weights_file_reproduces_the_row_without_training(trained, env, capsys):
    root, _, rec = trained
    weights, card_path = _export(trained, env / "w")
    assert main(["run", "--weights", str(weights)]) == 0  # everything else from the model card
    [(path, new)] = load_records(env / "runs/records/synthetic")[0]
    _assert_same_scores(rec, new)
    cfg = new["config"]
    assert cfg["trained_from"] == "weights" and new["timings"]["train_s"] == 0.0
    assert cfg["weights"]["sha256"] == json.loads(card_path.read_text())["weights_sha256"]
    assert cfg["weights"]["record_id"] == rec["run_id"]
    assert new["checkpoint"]["sha256"] == cfg["weights"]["sha256"]
    assert not list((env / "runs/synthetic").rglob("*.pt"))  # nothing trained, nothing saved
    table = (env / "runs/leaderboards/synthetic.md").read_text()
    assert f"| unet \\[weights {cfg['weights']['sha256'][:8]}\\] |" in table
    # The same command again is skipped (its record exists); other weights would be another run.
    assert main(["run", "--weights", str(weights)]) == 0
    assert "skipped" in capsys.readouterr().err
    assert len(load_records(env / "runs/records/synthetic")[0]) == 1


def test_run_with_a_pinned_url_downloads_into_the_cache_and_reproduces(trained, env, synthetic_cache, capsys):
    _, _, rec = trained
    weights, card_path = _export(trained, env / "w")
    digest = json.loads(card_path.read_text())["weights_sha256"]
    cached = Path(synthetic_cache) / "weights" / f"{digest}.safetensors"
    cached.unlink(missing_ok=True)
    with Server(root=env / "w") as server:
        url = server.url + weights.name
        assert main(["run", "--weights", f"{url}#sha256={digest}", "--no-leaderboard"]) == 0
        assert cached.is_file()
        [(_, new)] = load_records(env / "runs/records/synthetic")[0]
        _assert_same_scores(rec, new)
        assert new["config"]["weights"]["source"] == url
        # The hash may come apart too; a cached file is not fetched again.
        n = len(server.requests)
        assert main(["run", "--weights", url, "--weights-sha256", digest, "--no-leaderboard", "--force"]) == 0
        assert len(server.requests) == n
        # Unpinned URLs are refused before any download.
        assert main(["run", "--weights", url, "--no-leaderboard"]) == 2
        assert "pinned by its sha256" in capsys.readouterr().err
        assert len(server.requests) == n
    cached.unlink()


def test_a_hash_mismatch_deletes_the_download_and_names_both_hashes(trained, env, synthetic_cache, capsys):
    weights, _ = _export(trained, env / "w")
    wrong = "0" * 64
    with Server(root=env / "w") as server:
        code = main(["run", "--weights", f"{server.url}{weights.name}#sha256={wrong}", "--no-leaderboard"])
    err = capsys.readouterr().err
    assert code == 2 and "sha256 mismatch" in err and wrong in err
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in err
    assert not (Path(synthetic_cache) / "weights" / f"{wrong}.safetensors").exists()
    assert not list((Path(synthetic_cache) / "weights").glob("tmp*"))
    # A local file with the wrong pin is refused too, and left where it is.
    assert main(["run", "--weights", str(weights), "--weights-sha256", wrong]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err and weights.is_file()
    assert not (env / "runs/records").exists()


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error:") and not any("Traceback" in line for line in lines)
    return lines[-1]


def test_bad_weights_get_one_line_and_exit_2(trained, env, capsys):
    weights, _ = _export(trained, env / "w")
    # wrong method
    assert main(["run", "--weights", str(weights), "--model", "hed", "--no-leaderboard"]) == 2
    assert "weights of method 'unet', not 'hed'" in _one_error_line(capsys)
    # wrong shapes: another width
    assert main(["run", "--weights", str(weights), "--model-arg", "width=8", "--no-leaderboard"]) == 2
    assert "trained with width=4, not 8" in _one_error_line(capsys)
    # truncated file
    cut = env / "cut.safetensors"
    cut.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["run", "--weights", str(cut), "--no-leaderboard"]) == 2
    assert f"{cut}: not a readable safetensors file" in _one_error_line(capsys)
    # a pickle (a torch checkpoint) is never unpickled
    pt = env / "model.safetensors"
    torch.save({"x": torch.zeros(1)}, pt)
    assert main(["run", "--weights", str(pt), "--no-leaderboard"]) == 2
    assert "not a readable safetensors file" in _one_error_line(capsys)
    # safetensors without a card
    bare = env / "bare.safetensors"
    save_file(load_file(weights), bare)
    assert main(["run", "--weights", str(bare), "--no-leaderboard"]) == 2
    assert "without a grainbench model card" in _one_error_line(capsys)
    # wrong in-channels: the same tensors, a card saying RGB (the first conv does not change: refused by the card)
    card = read_card(weights)
    card.pop("tensor_names")
    rgb = env / "rgb.safetensors"
    save_file(load_file(weights), rgb, metadata={METADATA_KEY: json.dumps({**card, "in_channels": 3})})
    assert main(["run", "--weights", str(rgb), "--no-leaderboard"]) == 2
    assert "weights take 3 image channel(s), the data has 1" in _one_error_line(capsys)
    # wrong shapes: tensors of width 4 under a card saying width 8
    wide = env / "wide.safetensors"
    save_file(load_file(weights), wide, metadata={METADATA_KEY: json.dumps(
        {**card, "method_config": {**card["method_config"], "width": 8}})})
    assert main(["run", "--weights", str(wide), "--no-leaderboard"]) == 2
    assert "weights do not fit unet" in _one_error_line(capsys)
    assert main(["run", "--weights", str(env / "missing.safetensors")]) == 2
    assert "weights file not found" in _one_error_line(capsys)
    assert not (env / "runs/records").exists()


def test_track_boundaries_from_published_weights(trained, env):
    _, _, rec = trained
    weights, card_path = _export(trained, env / "w")
    digest = json.loads(card_path.read_text())["weights_sha256"]
    assert main(["track", "--dataset", "synthetic", "--tracker", "max_overlap", "--weights", str(weights),
                 "--no-figure"]) == 0
    [(_, tr)] = load_records(env / "runs/records/synthetic/tracking")[0]
    assert tr["config"]["boundaries"] == "unet"
    assert tr["config"]["boundary_weights_sha256"] == digest
    assert tr["config"]["boundary_weights"].endswith(f"#sha256={digest}")
    assert f"unet \\[weights {digest[:8]}\\]" in (env / "runs/leaderboards/synthetic_tracking.md").read_text()


PUBLISHED_WEIGHTS = REPO / "leaderboards" / "weights"


def _published_cards() -> list[Path]:
    return sorted(PUBLISHED_WEIGHTS.glob("*/*.json")) if PUBLISHED_WEIGHTS.is_dir() else []


@pytest.mark.skipif(not _published_cards(),
                    reason=f"no published weights under {PUBLISHED_WEIGHTS} (the maintainer exports them with "
                           "`grainbench export RUN_ID --records leaderboards/records --out leaderboards/weights/"
                           "<dataset>` after `grainbench run --publish`; see README, Publishing weights)")
@pytest.mark.parametrize("card_path", _published_cards(), ids=lambda p: p.stem)
def test_a_published_row_is_reproduced_from_its_weights_alone(card_path, synthetic_cache, tmp_path, monkeypatch):
    """The committed record's metrics, from the committed weights file and nothing else (no training)."""
    _reproduce(card_path, REPO / "leaderboards" / "records", synthetic_cache, tmp_path, monkeypatch)


def test_the_reproduction_check_on_a_published_layout_made_here(trained, synthetic_cache, tmp_path, monkeypatch):
    """The check above, on the tiny run exported the way the README tells a maintainer to."""
    root, path, rec = trained
    published = tmp_path / "leaderboards"
    (published / "records/synthetic").mkdir(parents=True)
    shutil.copy(path, published / "records/synthetic")
    _, card_path = _export(trained, published / "weights/synthetic")
    _reproduce(card_path, published / "records", synthetic_cache, tmp_path / "reader", monkeypatch)


def _reproduce(card_path: Path, records: Path, synthetic_cache, tmp_path: Path, monkeypatch) -> None:
    card = json.loads(card_path.read_text())
    weights = card_path.with_name(card["weights_file"])
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["weights_sha256"]
    [record] = (records / card["dataset"]).glob(f"{card['record_id']}.json")
    published = read_record(record)
    if get_dataset(card["dataset"]).layout_kind != "generated":
        pytest.skip(f"{card['dataset']} is not generated locally; this test reproduces rows of generated sets")
    device = "cuda" if published["environment"]["device"].startswith("cuda") else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"{record.name} was scored on {published['environment']['device']}; reproducing it needs CUDA")
    # synthetic from the session's cache; any other generated set is generated into this test's folder
    data = synthetic_cache if card["dataset"] == "synthetic" else tmp_path / "data"
    monkeypatch.setenv("GRAINBENCH_DATA", str(data))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    shutil.copy(weights, tmp_path / weights.name)  # the file alone, away from the checkout
    assert main(["run", "--weights", str(tmp_path / weights.name), "--no-leaderboard", "--device", device]) == 0
    recs = [r for _, r in load_records(tmp_path / "runs/records" / card["dataset"])[0]
            if r["config"].get("mode") == published["config"].get("mode")]
    [new] = recs
    assert set(new["metrics"]["aggregate"]) >= set(published["metrics"]["aggregate"])
    # The published row was scored on another machine: one forward pass on another CPU may round the last
    # bits differently and flip a pixel that sat on the threshold (a flipped pixel moves VI by ~1e-5).
    # (training itself is not bit-reproducible across CPUs: the reason weights are published). Rows made
    # here, as in the test above, agree to 1e-6.
    tol = dict(rel=1e-6, abs=1e-9) if records != REPO / "leaderboards" / "records" else dict(rel=1e-3, abs=1e-3)
    for name, value in published["metrics"]["aggregate"].items():
        assert new["metrics"]["aggregate"][name] == pytest.approx(value, **tol), name


def test_model_and_dataset_are_required_without_weights(synthetic_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dataset", "synthetic"]) == 2
    assert "--model and --dataset are required" in _one_error_line(capsys)
    assert main(["run", "--model", "classical", "--dataset", "synthetic", "--weights-sha256", "0" * 64]) == 2
    assert "--weights-sha256 needs --weights" in _one_error_line(capsys)
    assert main(["run", "--weights", "http://127.0.0.1:9/w.safetensors#sha256=abc"]) == 2
    assert "64 hex digits" in _one_error_line(capsys)
    assert not (tmp_path / "runs").exists()
