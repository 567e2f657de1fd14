"""End to end through the CLI: run -> record -> leaderboard -> check; resume; skip; errors.

The data is the generated ``synthetic`` stack (48 x 256 x 256, made in a
few seconds into a temporary cache); networks are tiny (width 4) and train
for one or two short epochs, so each run takes seconds on two CPU cores.
"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from grainbench import data
from grainbench.cli import main
from grainbench.io import sha256_file
from grainbench.records import read_record

TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64",
        "--set", "val_patches=4", "--model-arg", "width=4"]


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)  # records, leaderboards and runs/ go to their default places here
    return tmp_path


def _run(*args, epochs=1):
    return main(["run", "--dataset", "synthetic", *TINY, "--set", f"epochs={epochs}", *args])


def _records(root, model=None):
    out = [read_record(p) | {"_path": p} for p in sorted((root / "runs/records/synthetic").glob("*.json"))]
    return [r for r in out if model is None or r["config"]["model"] == model]


def test_run_writes_records_leaderboard_and_figures(work, capsys):
    assert _run("--model", "classical,unet") == 0
    out = capsys.readouterr().out
    assert "classical" in out and "unet" in out and "VI" in out and "split" in out  # the closing results table
    assert not (work / "leaderboards").exists()  # the published folder is written only on --publish
    [cls_rec] = _records(work, "classical")
    [unet_rec] = _records(work, "unet")

    cfg = unet_rec["config"]
    assert (cfg["dataset"], cfg["preset"], cfg["seed"], cfg["split"]) == ("synthetic", "quick", 0, "test")
    assert cfg["model_args"] == {"width": 4} and cfg["preset_overrides"]["epochs"] == 1
    assert cls_rec["config"]["model_args"] == {}  # classical takes no width
    assert cfg["trained_from"] == "trained" and unet_rec["extra"]["fit"]["epochs"] == 1
    assert unet_rec["protocol"]["name"] == "wpunet-2019"
    timings = unet_rec["timings"]
    assert timings["train_s"] > 0 and timings["predict_s"] > 0 and timings["score_s"] > 0
    env = unet_rec["environment"]
    assert env["libraries"]["torch"] and env["grainbench"] and "cuda" in env
    assert unet_rec["dataset"]["hashes"]["generated"] == data.dataset_hashes("synthetic")["generated"]
    # The recorded checkpoint hash is that of the saved weights.
    [model_pt] = (work / "runs/synthetic/unet").glob("*/model.pt")
    assert unet_rec["checkpoint"]["sha256"] == sha256_file(model_pt)
    # Per-slice rows are the test slices (40..47) and their VI adds up.
    per_slice = pd.DataFrame(unet_rec["metrics"]["per_slice"])
    assert list(per_slice["slice"]) == list(range(40, 48))
    np.testing.assert_allclose(per_slice["vi_split"] + per_slice["vi_merge"], per_slice["vi"])
    assert unet_rec["metrics"]["aggregate"]["vi"] == pytest.approx(per_slice["vi"].mean())

    md = (work / "runs/leaderboards/synthetic.md").read_text()
    assert "| classical |" in md and "| unet (width=4) |" in md
    assert unet_rec["_path"].name in md  # each row links its record
    assert "Reported in the papers" not in md or "reported" in md
    csv = pd.read_csv(work / "runs/leaderboards/synthetic.csv")
    reproduced = csv[csv["source"] == "reproduced"]
    vi = reproduced[(reproduced["model"] == "classical") & (reproduced["metric"] == "vi")]["value"]
    assert vi.item() == pytest.approx(cls_rec["metrics"]["aggregate"]["vi"])
    figures = work / "runs/leaderboards/figures/synthetic"
    for model in ("classical", "unet"):
        # preset overrides are part of the name, so differently configured runs keep their own overlay
        [overlay] = figures.glob(f"{model}-quick_batch_size_4_epochs_1_*-overlay.png")
        with Image.open(overlay) as im:
            # the whole 256 x 256 slice drawn at least 1:1, the zoomed crop beside it, title and legend
            assert im.mode == "RGB" and im.size[0] >= 2 * 256 and im.size[1] >= 256
    [split_merge] = figures.glob("*split-merge.png")
    assert split_merge.name in md


def test_check_passes_on_itself_and_fails_on_a_degraded_copy(work, capsys):
    assert _run("--model", "classical", "--no-leaderboard") == 0
    [rec] = _records(work)
    path = rec["_path"]
    assert main(["check", str(path), "--reference", str(path)]) == 0
    # A folder works too: its newest record of the reference's model is checked.
    assert main(["check", str(path.parent), "--reference", str(path)]) == 0

    worse = json.loads(path.read_text())
    worse["metrics"]["aggregate"]["vi"] += 0.05
    worse["metrics"]["aggregate"]["ari"] -= 0.02
    worse_path = work / "worse.json"
    worse_path.write_text(json.dumps(worse))
    capsys.readouterr()
    assert main(["check", str(worse_path), "--reference", str(path)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "vi" in out and "ari" in out
    assert main(["check", str(worse_path), "--reference", str(path), "--tolerance", "vi=0.1",
                 "--tolerance", "ari=0.05"]) == 0


def test_interrupted_training_resumes_then_the_run_is_skipped(work, capsys):
    assert _run("--model", "unet", "--max-epochs", "1", epochs=2) == 3  # stopped after epoch 1 of 2
    assert _records(work) == []
    [last] = (work / "runs/synthetic/unet").glob("*/last.pt")
    assert not (last.parent / "model.pt").exists()

    assert _run("--model", "unet", epochs=2) == 0
    [rec] = _records(work)
    assert rec["config"]["trained_from"] == "resumed"
    assert rec["extra"]["fit"]["epochs"] == 2 and len(rec["extra"]["fit"]["history"]["train_loss"]) == 2

    capsys.readouterr()
    assert _run("--model", "unet", epochs=2) == 0  # complete: nothing is trained or written again
    assert "skipped" in capsys.readouterr().out
    assert len(_records(work)) == 1

    # Without the records the finished checkpoint is loaded, not retrained, and scores the same.
    rec["_path"].unlink()
    assert _run("--model", "unet", epochs=2) == 0
    [again] = _records(work)
    assert again["config"]["trained_from"] == "checkpoint"
    assert again["checkpoint"]["sha256"] == rec["checkpoint"]["sha256"]
    assert again["metrics"]["aggregate"] == pytest.approx(rec["metrics"]["aggregate"])


def test_propagation_method_gets_both_modes_and_seeds_are_summarised(work, capsys):
    assert _run("--model", "wpunet,classical", "--seed", "0,1") == 0
    recs = _records(work, "wpunet")
    assert sorted((r["config"]["mode"], r["config"]["seed"]) for r in recs) == [
        ("chain", 0), ("chain", 1), ("oracle", 0), ("oracle", 1)]
    # The test split starts at slice 40: its predecessor comes from the data, not a bootstrap.
    assert {r["config"]["first_prev"] for r in recs} == {"given"}
    out = capsys.readouterr().out
    assert "±" in out  # two seeds: mean ± spread
    md = (work / "runs/leaderboards/synthetic.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("|") and "| classical |" in line)
    assert "| 2 |" in row and "± 0.0000" in row  # deterministic floor: zero spread over two seeds


def test_rerun_with_a_corrupt_record_beside_it(work, capsys):
    assert _run("--model", "classical") == 0
    folder = work / "runs/records/synthetic"
    (folder / "broken.json").write_text('{"schema_version": 1, "run_id": ')  # cut-off write
    capsys.readouterr()
    assert _run("--model", "classical") == 0  # the good record is still found; the run is skipped
    assert "skipped" in capsys.readouterr().out
    md = (work / "runs/leaderboards/synthetic.md").read_text()
    assert "could not be read" in md and "broken.json" in md and "| classical |" in md


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_model"], "no_such_model"),
    (["--model", "unet", "--preset", "fast"], "fast"),
    (["--model", "classical", "--set", "epochs"], "KEY=VALUE"),
])
def test_bad_requests_fail_with_a_clear_message(work, capsys, args, message):
    assert main(["run", "--dataset", "synthetic", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (work / "runs/records").exists()


def test_manual_dataset_that_is_not_imported_says_how(work, capsys):
    assert main(["run", "--dataset", "pure_iron", "--model", "classical"]) == 2
    err = capsys.readouterr().err
    assert "pure_iron" in err and "import" in err


def test_tolerant_scores_are_recorded_on_request(work):
    from grainbench.methods import create_model
    from grainbench.scoring import score

    assert _run("--model", "classical", "--tolerant", "--no-leaderboard") == 0
    [rec] = _records(work)
    agg = rec["metrics"]["aggregate"]
    test = data.load("synthetic", "test")
    expected = score(create_model("classical").predict(test.image), test.boundary, "wpunet-2019", tolerant=True)
    for key in ("gauss_precision", "gauss_recall", "gauss_f1"):
        assert agg[key] == pytest.approx(expected.aggregate[key])
    assert 0 < agg["gauss_f1"] <= 1


def test_publish_writes_the_published_folder_only_when_asked(work, monkeypatch):
    from grainbench import records

    monkeypatch.setattr(records, "_git_state", lambda cwd: ("0" * 40, False, None))  # a clean checkout
    assert _run("--model", "classical", "--publish") == 0
    assert list((work / "leaderboards/records/synthetic").glob("*.json"))
    assert (work / "leaderboards/synthetic.md").exists()
    assert not (work / "runs/records").exists()
