"""Records that reproduce their row: skip rules (config, data hashes, code version), --force, the full preset,
training time over resumed segments, and RNG states in last.pt."""

import pytest
import torch

from grainbench import data, runner
from grainbench.cli import main
from grainbench.records import read_record
from grainbench.training import ENGINE_VERSION, load_checkpoint
from grainbench.training.presets import Preset

TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64", "--set", "val_patches=4",
        "--model-arg", "width=4"]


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _records(root):
    return sorted((root / "runs/records/synthetic").glob("*.json"))


def _classical(*extra):
    return main(["run", "--model", "classical", "--dataset", "synthetic", "--no-leaderboard", *extra])


def test_a_run_is_skipped_only_for_the_same_data_and_code_and_force_reruns(work, monkeypatch, capsys):
    assert _classical() == 0
    [first] = _records(work)
    capsys.readouterr()
    assert _classical() == 0
    err = capsys.readouterr().err
    assert f"skipped: a record of this run exists ({first.relative_to(work)}); pass --force to rerun" in " ".join(err.split())
    assert _records(work) == [first]

    # the dataset's files were replaced (other hashes): the old numbers no longer stand
    real = data.dataset_hashes
    monkeypatch.setattr(runner.data, "dataset_hashes", lambda name: {**real(name), "generated": "new-data"})
    assert _classical() == 0
    assert len(_records(work)) == 2
    monkeypatch.setattr(runner.data, "dataset_hashes", real)

    # the code changed: rerun
    monkeypatch.setattr(runner, "code_version", lambda: "0.0.0+git.other")
    assert _classical() == 0
    assert len(_records(work)) == 3
    monkeypatch.undo()
    monkeypatch.chdir(work)

    capsys.readouterr()
    assert _classical("--force") == 0
    assert len(_records(work)) == 4 and "skipped" not in capsys.readouterr().err


def test_record_holds_the_full_preset_and_the_time_of_every_training_segment(work):
    args = ["run", "--model", "unet", "--dataset", "synthetic", "--no-leaderboard", *TINY, "--set", "epochs=2"]
    assert main([*args, "--max-epochs", "1"]) == 3  # interrupted after epoch 1
    [last] = (work / "runs/synthetic/unet").glob("*/last.pt")
    state = load_checkpoint(last)
    first_segment = state["train_seconds"]
    assert first_segment > 0 and "cuda_rng" in state and state["torch_rng"].dtype == torch.uint8
    assert main(args) == 0  # resumes and finishes
    [path] = _records(work)
    rec = read_record(path)
    fit = rec["extra"]["fit"]
    assert rec["timings"]["train_s"] == pytest.approx(fit["seconds"])
    assert fit["seconds"] > first_segment  # both segments, not only the last
    assert fit["engine"] == ENGINE_VERSION  # records of the one training engine say so
    preset = rec["config"]["preset_config"]
    assert set(preset) == set(Preset.__dataclass_fields__)
    assert preset["epochs"] == 2 and preset["patch_size"] == 64 and preset["optimizer"] == "adam"
    assert rec["environment"]["determinism"]["deterministic_algorithms"] is True
    assert rec["environment"]["precision"] == "fp32"
    assert rec["config"]["mode"] is None and rec["figures"] == {}


@pytest.mark.gpu
def test_a_resumed_cuda_run_with_dropout_equals_an_uninterrupted_one(tmp_path):
    import numpy as np
    import torch.nn.functional as F

    from grainbench.data.volume import Volume
    from grainbench.examples import labels_to_boundary, voronoi_labels
    from grainbench.methods import create_model

    labels = np.stack([voronoi_labels((64, 64), 12, seed=s) for s in range(6)])
    boundary = np.stack([labels_to_boundary(x) for x in labels])
    image = np.where(boundary, 0.2, 0.8).astype(np.float32)
    train, val = Volume(image[:4], None, boundary[:4], True), Volume(image[4:], None, boundary[4:], True)
    tiny = dict(patches_per_epoch=8, batch_size=4, patch_size=64, val_patches=4, epochs=3, width=4)

    def with_dropout(method):  # dropout on the CUDA RNG, as a network with dropout layers draws it
        loss = method.training_loss
        method.training_loss = lambda logits, target, fn: loss(F.dropout(logits, 0.3, training=True), target, fn)
        return method

    full = with_dropout(create_model("unet", device="cuda"))
    full.fit(train, val, preset="quick", seed=3, progress=False, checkpoint_dir=tmp_path / "a", **tiny)
    end_full = torch.cuda.get_rng_state()
    part = with_dropout(create_model("unet", device="cuda"))
    part.fit(train, val, preset="quick", seed=3, progress=False, checkpoint_dir=tmp_path / "b", max_epochs=1, **tiny)
    resumed = with_dropout(create_model("unet", device="cuda"))
    resumed.fit(train, val, preset="quick", seed=3, progress=False, checkpoint_dir=tmp_path / "b", **tiny)
    assert torch.equal(torch.cuda.get_rng_state(), end_full)
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_publishing_needs_a_clean_tree_and_clean_records(work, monkeypatch, capsys):
    from grainbench import records

    monkeypatch.setattr(records, "_git_state", lambda cwd: ("0" * 40, True, "f" * 64))  # uncommitted changes
    assert _classical("--publish") == 2
    assert "uncommitted changes" in capsys.readouterr().err
    assert not (work / "leaderboards").exists()
    assert _classical() == 0  # an ordinary run is fine; its record says dirty
    [path] = _records(work)
    assert read_record(path)["git"]["dirty"] is True
    md = main(["leaderboard", "build", "--records", "runs/records", "--out", "plain"])
    assert md == 0 and "† dirty tree" in (work / "plain" / "synthetic.md").read_text()
    assert main(["leaderboard", "build", "--records", "runs/records", "--out", "pub", "--publish"]) == 2
    assert "not from a clean commit" in capsys.readouterr().err and not (work / "pub").exists()
