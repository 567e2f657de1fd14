"""grainbench tune (Ray Tune + ASHA), search-space and settings files, pseudo-labels and the per-epoch hook.

The study test runs 4 real trials (tiny U-Nets, 4 short epochs on the
generated ``synthetic`` stack) on a local Ray instance of 2 CPUs. Two of the
trials learn (lr 3e-3) and two cannot (lr 1e-9); they come in the grid order
good, bad, good, bad and at most two run at once, so the fourth reaches
ASHA's first rung after both of the first two have recorded theirs, and is
below their median: ASHA stops at least one trial early whatever the timing.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grainbench.cli import main
from grainbench.errors import InputFileError
from grainbench.records import read_record
from grainbench.runconfig import load_run_config, write_run_config
from grainbench.space import load_space

REPO = Path(__file__).resolve().parent.parent
TINY = {"patches_per_epoch": 8, "batch_size": 4, "patch_size": 64, "val_patches": 4}


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- search-space files

GOOD_SPACE = """
    [set]
    lr = { loguniform = [1e-5, 1e-2] }
    patch_size = { choice = [64, 96, 128] }
    patch_depth = { choice = [1, 2, 4] }
    batch_size = { choice = [4, 8] }
    augment = { choice = ["flips", "none"] }
    epochs = { randint = [2, 6] }
    val_patches = 4
    [model_arg]
    margin = { choice = [8, 16] }
"""


def test_the_papers_seven_settings_parse_and_convert_to_ray(tmp_path):
    tune = pytest.importorskip("ray.tune")
    from grainbench.space import to_ray

    space = load_space(_write(tmp_path / "space.toml", GOOD_SPACE))
    assert {d.name for d in space.searched} == {"set.lr", "set.patch_size", "set.patch_depth", "set.batch_size",
                                                "set.augment", "set.epochs", "model_arg.margin"}
    assert space.fixed("set") == {"val_patches": 4}
    assert space.max_value("set", "epochs") == 5  # randint excludes its upper bound, as Ray's
    ray_space = to_ray(space)
    assert isinstance(ray_space["set"]["lr"], tune.search.sample.Float)
    assert ray_space["set"]["lr"].lower == 1e-5 and ray_space["set"]["lr"].upper == 1e-2
    assert ray_space["set"]["epochs"].sample() in range(2, 6)
    assert ray_space["model_arg"]["margin"].categories == [8, 16]
    # The same space as JSON reads the same.
    as_json = tmp_path / "space.json"
    as_json.write_text(json.dumps({"set": {"lr": {"loguniform": [1e-5, 1e-2]}, "epochs": 3}}))
    assert [d.name for d in load_space(as_json).searched] == ["set.lr"]


@pytest.mark.parametrize("body, needle", [
    ("[sett]\nlr = { choice = [1e-3] }\n", "unknown table(s) 'sett'"),
    ("[set]\nlrr = { choice = [1e-3] }\n", "unknown field(s) lrr"),
    ("[set]\nlr = { normal = [0, 1] }\n", "is not a distribution"),
    ("[set]\nlr = { loguniform = [0, 1e-2] }\n", "loguniform needs"),
    ("[set]\nlr = { uniform = [1e-2, 1e-3] }\n", "uniform needs"),
    ("[set]\nepochs = { randint = [1.5, 4] }\n", "randint needs"),
    ("[set]\nlr = { choice = [] }\n", "choice needs"),
    ("[set]\nlr = { choice = ['fast'] }\n", "lr='fast' must be a number"),
    ("[set]\nepochs = { choice = [0, 2] }\n", "epochs=0 is out of range"),
    ("[set]\naugment = { choice = ['flips', 'rotate45'] }\n", "augment='rotate45' is not one of"),
    ("[set]\nlr = [1e-3, 1e-4]\n", "a list is not a value"),
    ("[model_arg]\nmargin = { choice = [[8]] }\n", "choice needs"),
    ("[set]\nepochs = 3\n", "nothing to search"),
    ("[set\nlr = 1\n", "not valid TOML"),
])
def test_a_bad_search_space_file_is_one_line_naming_the_file_and_exit_2(work, capsys, body, needle):
    bad = work / "space.toml"
    bad.write_text(body)
    with pytest.raises(InputFileError, match=None) as exc:
        load_space(bad)
    assert needle in str(exc.value) and str(bad) in str(exc.value)
    assert main(["tune", "--model", "unet", "--dataset", "synthetic", "--space", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in " ".join(err.split())
    assert not (work / "runs" / "tune").exists()  # refused before any study folder or Ray


def test_a_space_file_of_another_suffix_or_missing_is_refused(work, capsys):
    assert main(["tune", "--model", "unet", "--dataset", "synthetic", "--space", str(work / "none.toml")]) == 2
    assert "search-space file not found" in capsys.readouterr().err
    yaml = _write(work / "space.yaml", "lr: 1\n")
    assert main(["tune", "--model", "unet", "--dataset", "synthetic", "--space", str(yaml)]) == 2
    assert "must be .toml or .json" in capsys.readouterr().err


# --------------------------------------------------------------------------- settings files (run --config)

def test_settings_file_round_trip_toml_and_json(tmp_path):
    sets, args = {"lr": 1.07e-4, "augment": "none", "epochs": 13, "patience": 3}, {"margin": 16, "residual": False}
    for name in ("best.toml", "best.json"):
        path = write_run_config(tmp_path / name, sets, args, {"study": "s1", "score": 0.5})
        assert load_run_config(path) == (sets, args)


@pytest.mark.parametrize("body, needle", [
    ("[set]\nepochs = 'many'\n", "epochs='many' must be an integer"),
    ("[set]\nbogus = 1\n", "unknown field(s) bogus"),
    ("[model_arg]\nwidth = [4]\n", "must be a number, a string or a boolean"),
    ("[extra]\nx = 1\n", "unknown table(s) 'extra'"),
    ("set = 3\n", "'set' must be a table"),
])
def test_run_config_refuses_a_bad_file_in_one_line(work, capsys, body, needle):
    bad = _write(work / "cfg.toml", body)
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--config", str(bad), "--no-leaderboard"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle in err and "cfg.toml" in err and "Traceback" not in err
    assert not (work / "runs" / "records").exists()


def test_run_config_settings_reach_the_run_and_the_command_line_wins(work, monkeypatch):
    import grainbench.cli.run as cli_run

    seen = {}

    def fake_run_many(models, dataset, seeds, **kw):
        seen.update(kw)
        return []

    monkeypatch.setattr(cli_run, "run_many", fake_run_many)
    cfg = write_run_config(work / "best.toml", {"lr": 1e-3, "epochs": 4}, {"width": 4, "margin": 8})
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--config", str(cfg), "--set", "epochs=2",
                 "--model-arg", "margin=16", "--no-leaderboard"]) == 0
    assert seen["overrides"] == {"lr": 1e-3, "epochs": 2} and seen["model_args"] == {"width": 4, "margin": 16}


def test_a_run_from_a_study_file_records_it_and_shares_the_untuned_table(work):
    from grainbench.leaderboard import build_leaderboards

    tiny = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    base = ["run", "--model", "unet", "--dataset", "synthetic", "--model-arg", "width=4", *tiny, "--no-leaderboard"]
    cfg = write_run_config(work / "best.toml", {"epochs": 1, "lr": 1.5e-3}, {}, {"study": "s1", "trial": "t0"})
    assert main(base) == 0
    assert main([*base, "--config", str(cfg)]) == 0
    records = {json.loads(p.read_text())["config"].get("settings_from") is not None: json.loads(p.read_text())
               for p in (work / "runs" / "records" / "synthetic").glob("*.json")}
    settings = records[True]["config"]["settings_from"]
    assert settings == {"file": "best.toml", "set": {"epochs": 1, "lr": 1.5e-3}, "model_arg": {},
                        "source": {"study": "s1", "trial": "t0"}}
    build_leaderboards(work / "runs" / "records", work / "lb", ["synthetic"], with_figures=False)
    page = (work / "lb" / "synthetic.md").read_text()
    # one table for both (the study's choices are not preset overrides), the tuned row named by its study
    assert page.count("## Reproduced:") == 1 and "unet (width=4) tuned:s1 |" in page, page


# --------------------------------------------------------------------------- no Ray outside tune

def test_importing_grainbench_and_running_do_not_import_ray(work):
    code = textwrap.dedent("""
        import sys
        import grainbench, grainbench.runner, grainbench.space, grainbench.tune, grainbench.pseudo
        from grainbench.cli import main
        rc = main(["run", "--model", "classical", "--dataset", "synthetic", "--split", "val", "--no-leaderboard"])
        assert rc == 0, rc
        print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- the per-epoch hook

def test_the_epoch_hook_sees_every_epoch_and_can_stop_training(synthetic_cache, monkeypatch):
    from grainbench import data
    from grainbench.methods import create_model
    from grainbench.training.hooks import on_epoch

    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    train, val = data.load("synthetic", "train"), data.load("synthetic", "val")
    seen = []
    with on_epoch(lambda epoch, m: seen.append((epoch, m))):
        fit = create_model("unet", width=4).fit(train, val, preset="quick", progress=False, epochs=3, **TINY)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [m["val_loss"] for _, m in seen] == pytest.approx(fit.history["val_loss"])
    assert [m["train_loss"] for _, m in seen] == pytest.approx(fit.history["train_loss"])

    class Stop(Exception):
        pass

    def stop_after_first(epoch, metrics):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop), on_epoch(stop_after_first):
        create_model("unet", width=4).fit(train, val, preset="quick", progress=False, epochs=3, **TINY)
    create_model("unet", width=4).fit(train, val, preset="quick", progress=False, epochs=1, **TINY)  # listener gone


def test_augment_none_crops_without_rotating_or_flipping(synthetic_cache, monkeypatch):
    from grainbench import data
    from grainbench.training.sampling import PatchSampler

    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    vol = data.load("synthetic", "train")
    s = PatchSampler(vol, 32, seed=1, augment=False)
    batch = s.sample(6)
    rng = np.random.default_rng(1)  # the same draws: slice, y, x
    zs, ys, xs = rng.integers(0, len(vol), 6), rng.integers(0, 256 - 31, 6), rng.integers(0, 256 - 31, 6)
    for k, (z, y, x) in enumerate(zip(zs, ys, xs)):
        assert np.array_equal(batch.boundary[k], vol.boundary[z, y:y + 32, x:x + 32])


# --------------------------------------------------------------------------- pseudo-labels

def _train_parent(work):
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--model-arg", "width=4", "--set", "epochs=1",
                 *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")], "--no-leaderboard"]) == 0
    [rec_path] = (work / "runs/records/synthetic").glob("*.json")
    [model_pt] = (work / "runs/synthetic/unet").glob("*/model.pt")
    return read_record(rec_path), model_pt


@pytest.mark.slow
def test_pseudo_labels_are_the_parents_scored_predictions_and_are_recorded(work):
    from grainbench import data
    from grainbench.protocol import get_protocol
    from grainbench.pseudo import load_parent, pseudo_label
    from grainbench.scoring import prepare_prediction

    parent, model_pt = _train_parent(work)
    protocol = get_protocol("wpunet-2019")
    train = data.load("synthetic", "train")
    labelled = pseudo_label(train, model_pt, protocol=protocol, cache_dir=work / "cache", key="k1")
    # Independently: the parent's probabilities through the scoring's own preparation of a prediction.
    method = load_parent(model_pt)
    expected = prepare_prediction(method.predict(train.image), protocol).numpy()
    assert labelled.boundary.dtype == bool and np.array_equal(labelled.boundary, expected)
    assert not np.array_equal(labelled.boundary, train.boundary) and np.array_equal(labelled.image, train.image)
    # Cached: the file is what is read back (a file of the wrong shape is replaced).
    cached = work / "cache" / "k1.npy"
    assert np.array_equal(np.load(cached), expected)
    np.save(cached, np.zeros((2, 2), bool))
    again = pseudo_label(train, model_pt, protocol=protocol, cache_dir=work / "cache", key="k1")
    assert np.array_equal(again.boundary, expected) and np.load(cached).shape == expected.shape

    # Through the CLI: a new run (own work folder), recorded with its label source.
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--model-arg", "width=4", "--set", "epochs=1",
                 *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")], "--pseudo-labels", parent["run_id"],
                 "--no-leaderboard"]) == 0
    records = [read_record(p) for p in (work / "runs/records/synthetic").glob("*.json")]
    [child] = [r for r in records if r["config"]["pseudo_labels"]]
    assert child["config"]["pseudo_labels"]["sha256"] == parent["checkpoint"]["sha256"]
    assert child["config"]["pseudo_labels"]["run_id"] == parent["run_id"]
    assert len(list((work / "runs/synthetic/unet").glob("*/model.pt"))) == 2
    assert len(list((work / "runs/pseudo-labels/synthetic").glob("*.npy"))) == 1


def test_pseudo_labels_from_a_method_without_weights_are_refused(work, capsys):
    assert main(["run", "--model", "classical", "--dataset", "synthetic", "--split", "val", "--no-leaderboard",
                 "--pseudo-labels", "nothing-here"]) == 2
    assert "--pseudo-labels nothing-here" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real ASHA study

@pytest.mark.slow
def test_a_four_trial_asha_study_stops_one_early_and_writes_the_best(work, capsys):
    pytest.importorskip("ray.tune")
    import ray

    from grainbench.runner import resolve_init_from

    space = _write(work / "space.toml", f"""
        [set]
        lr = {{ grid = [3e-3, 1e-9] }}
        epochs = 4
        augment = "none"
        {chr(10).join(f"{k} = {v}" for k, v in TINY.items())}
        [model_arg]
        width = 4
    """)
    rc = main(["tune", "--model", "unet", "--dataset", "synthetic", "--space", str(space), "--samples", "2",
               "--study", "s1", "--num-cpus", "2", "--max-concurrent", "2", "--device", "cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    assert not ray.is_initialized()  # the local instance it started is stopped
    folder = work / "runs/tune/s1"
    study = json.loads((folder / "study.json").read_text())
    trials = study["trials"]
    assert len(trials) == 4 and not any(t["error"] for t in trials)
    stopped = [t for t in trials if t["stopped_early"]]
    assert stopped and all(t["epochs"] < 4 and t["record"] is None for t in stopped)
    assert all(t["settings"]["set"]["lr"] == 1e-9 for t in stopped)  # ASHA stops the ones that cannot learn
    finished = [t for t in trials if t["status"] == "finished"]
    assert all(t["epochs"] == 4 for t in finished)
    # One record per finished trial, tagged with the study and the trial, scored on val.
    records = {p: read_record(p) for p in (folder / "records/synthetic").glob("*.json")}
    assert sorted(str(p) for p in records) == sorted(t["record"] for t in finished)
    for t in finished:
        rec = records[Path(t["record"])]
        assert rec["config"]["tune"] == {"study": "s1", "trial": t["trial"]} and rec["config"]["split"] == "val"
        assert rec["metrics"]["aggregate"]["vi"] == pytest.approx(t["score"])
    # The best is the finished trial of lowest val VI; its settings file and checkpoint are there.
    best = min(finished, key=lambda t: t["score"])
    assert study["best"] == best["trial"]
    overrides, model_args = load_run_config(folder / "best.toml")
    assert overrides == {**best["settings"]["set"]} and model_args == {"width": 4}
    assert Path(best["checkpoint"]).is_file()
    assert f"best trial {best['trial']}" in " ".join(out.out.split())
    # Step 2 starts from it: the trial's record resolves to its weights in the study's work folder.
    parent = resolve_init_from(best["record"], records_dir=folder / "records", work_root=folder / "work")
    assert Path(parent.path) == Path(best["checkpoint"]).resolve()
    assert parent.sha256 == records[Path(best["record"])]["checkpoint"]["sha256"]
    # A study of that name exists now: refused.
    assert main(["tune", "--model", "unet", "--dataset", "synthetic", "--space", str(space), "--study", "s1"]) == 2
    assert "exists" in capsys.readouterr().err
