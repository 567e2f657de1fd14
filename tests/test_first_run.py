"""The first run as a user sees it: why a run is skipped, progress while it works, a table that fits 80 columns."""

import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from grainbench.cli import main
from grainbench.cli.run import ALL_COLUMNS, DEFAULT_COLUMNS, summary_renderable

TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64",
        "--set", "val_patches=4", "--model-arg", "width=4", "--set", "epochs=2"]


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_skipped_run_says_why_and_how_to_rerun(work, capsys):
    assert main(["run", "--dataset", "synthetic", "--model", "classical", "--no-leaderboard"]) == 0
    [record] = (work / "runs" / "records" / "synthetic").glob("*.json")
    capsys.readouterr()
    assert main(["run", "--dataset", "synthetic", "--model", "classical", "--no-leaderboard"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich may wrap the long path
    assert f"classical: skipped: a record of this run exists ({record}); pass --force to rerun" in err


def test_training_and_prediction_report_progress_in_a_log(work, capsys):
    """stderr is not a terminal here: one plain line per epoch and per slice batch, no bar."""
    assert main(["run", "--dataset", "synthetic", "--model", "unet", *TINY, "--no-leaderboard"]) == 0
    err = capsys.readouterr().err
    epochs = re.findall(r"unet \[quick\]: epoch (\d)/2 loss [\d.]+ val [\d.]+ [\d.]+ patches/s", err)
    assert epochs == ["1", "2"]
    assert re.findall(r"unet: predicting: (\d+)/8 slices", err) == ["8"]  # 8 test slices: one batch of 8
    assert "unet: scoring: done" in err
    assert "\r" not in err and "━" not in err  # no bar drawn into a log


def test_wpunet_chain_prediction_reports_each_slice_batch(work, capsys):
    assert main(["run", "--dataset", "synthetic", "--model", "wpunet", *TINY, "--set", "epochs=1",
                 "--mode", "chain", "--no-leaderboard"]) == 0
    err = capsys.readouterr().err
    assert re.findall(r"wpunet: predicting \(chain\): (\d+)/8 slices", err) == ["8"]
    assert "wpunet [quick]: epoch 1/1" in err


def test_data_generate_reports_while_it_works(synthetic_cache, tmp_path, monkeypatch, capsys):
    import importlib
    import shutil

    generate = importlib.import_module("grainbench.data.generate")  # the module; grainbench.data.generate is its function

    shutil.copytree(synthetic_cache / "synthetic", tmp_path / "synthetic")
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path))
    stored = generate.load_generated("synthetic")  # the generator's output, without the wait
    monkeypatch.setattr(generate, "generator_function", lambda ds: lambda **params: stored)
    assert main(["data", "generate", "synthetic", "--force"]) == 0
    err = capsys.readouterr().err
    assert "generating synthetic: running the generator" in err and "generating synthetic: done" in err


def _summary(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out = []
    for model, mode, seeds in rows:
        row = {"model": model, "mode": mode, "seeds": seeds}
        for c in ALL_COLUMNS:
            row[c], row[f"{c}_std"] = rng.uniform(0, 2), rng.uniform(0, 0.1)
        out.append(row)
    return pd.DataFrame(out)


def test_results_table_keeps_every_number_whole_at_80_columns():
    table = _summary([("wpunet", "oracle", 3), ("wpunet", "chain", 3), ("unet (width=8)", "-", 1),
                      ("classical", "-", 3)])
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(summary_renderable(table, "synthetic: wpunet, unet, classical (preset quick, seeds 0,1,2)"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for _, row in table.iterrows():
        for c in DEFAULT_COLUMNS["boundary"]:
            assert f"{row[c]:.4f}" in text
            if row["seeds"] > 1:
                assert f"±{row[c + '_std']:.4f}" in text


def test_columns_option_chooses_the_metrics(capsys):
    table = _summary([("unet", "-", 1)])
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(summary_renderable(table, "t", ("bde", "dice")))
    text = console.export_text()
    assert f"{table['bde'][0]:.4f}" in text and f"{table['dice'][0]:.4f}" in text
    assert f"{table['vi'][0]:.4f}" not in text
    with pytest.raises(SystemExit):
        main(["run", "--dataset", "synthetic", "--model", "unet", "--columns", "vi,nosuch"])
    assert "unknown metric(s) nosuch" in capsys.readouterr().err


def test_the_readme_method_example_runs_with_model(work, monkeypatch, capsys):
    """The README's minimal method, saved beside the user as tinynet.py, trains and scores with --model."""
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "class TinyNet" in b]
    assert 10 <= len([line for line in code.splitlines() if line.strip()]) <= 20
    (work / "tinynet.py").write_text(code)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(work))])  # as the console script
    monkeypatch.delitem(sys.modules, "tinynet", raising=False)
    assert main(["run", "--dataset", "synthetic", "--model", "tinynet:TinyNet", *TINY, "--set", "epochs=1",
                 "--no-leaderboard"]) == 0
    [record] = (work / "runs" / "records" / "synthetic").glob("*tinynet*.json")
    assert "tinynet" in capsys.readouterr().out
