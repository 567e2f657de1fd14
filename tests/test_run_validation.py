"""Runs do what they record: presets validated after overrides, widths checked, early one-line errors,
and propagation methods on non-serial stacks in one recorded mode."""

import numpy as np
import pytest
from _data_server import entry, write_registry

import grainbench.data.registry as registry
from grainbench.cli import main
from grainbench.errors import ConfigError
from grainbench.methods import create_model
from grainbench.methods.api import Method
from grainbench.methods.registry import register_model
from grainbench.records import read_record
from grainbench.training.presets import get_preset


@pytest.mark.parametrize("override, message", [
    ({"optimizer": "sgd"}, "optimizer='sgd' is not one of rmsprop, adam"),
    ({"init": "he"}, "init='he' is not one of xavier, default"),
    ({"select": "best"}, "select='best' is not one of val_loss, last"),
    ({"epochz": 3}, "unknown field(s) epochz"),
    ({"lr": "fast"}, "lr='fast' must be a number"),
    ({"lr": float("nan")}, "lr=nan is out of range"),
    ({"epochs": -1}, "epochs=-1 is out of range"),
    ({"epochs": 2.5}, "epochs=2.5 must be an integer"),
    ({"patch_size": 100000}, "patch_size=100000 is out of range"),
    ({"width": 0}, "width=0 is out of range"),
    ({"loss": "l2"}, "loss='l2' is not one of"),
])
def test_presets_are_validated_after_overrides(override, message):
    with pytest.raises(ConfigError) as info:
        get_preset("quick", **override)
    assert message in str(info.value)
    assert get_preset("quick", epochs=2, optimizer="rmsprop").optimizer == "rmsprop"


@pytest.fixture
def env(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.setenv("GRAINBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _run(tmp_path, *extra):
    return ["run", "--dataset", "synthetic", "--no-leaderboard", "--records", str(tmp_path / "records"),
            "--workdir", str(tmp_path / "work"), "--device", "cpu", *extra]


@pytest.mark.parametrize("extra, message", [
    (["--model", "unet", "--set", "optimizer=sgd"], "optimizer='sgd' is not one of"),
    (["--model", "unet", "--set", "epochz=3"], "unknown field(s) epochz"),
    (["--model", "unet", "--set", "lr=fast"], "lr='fast' must be a number"),
    (["--model", "unet", "--set", "lr=nan"], "lr='nan' must be a number"),
    (["--model", "unet", "--set", "lr=NaN"], "lr=nan is out of range"),
    (["--model", "unet", "--set", "epochs=-1"], "epochs=-1 is out of range"),
    (["--model", "unet", "--set", "patch_size=100000"], "patch_size=100000 is out of range"),
    (["--model", "unet", "--model-arg", "width=0"], "width=0 must be a whole number >= 1"),
    (["--model", "classical", "--protocol", "nope"], "unknown protocol 'nope'"),
    (["--model", "../../etc"], "'../../etc' is not a 'package.module:Class' path"),
])
def test_bad_run_settings_are_one_line_before_any_work(env, capsys, extra, message):
    assert main(_run(env, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (env / "work").exists() and not (env / "records").exists()


def test_width_below_one_is_refused_by_the_method():
    with pytest.raises(ConfigError, match="width=0"):
        create_model("unet", width=0)
    with pytest.raises(ConfigError, match="width=-3"):
        create_model("unet", width=-3)
    assert create_model("unet", width=4).config()["width"] == 4


def test_corrupt_fit_json_and_locks_are_one_line(env, capsys, monkeypatch, tmp_path):
    from grainbench.runner import RunSpec

    args = ["--model", "unet", "--preset", "quick", "--model-arg", "width=4", "--set", "epochs=1",
            "--set", "patches_per_epoch=8", "--set", "val_patches=2", "--set", "patch_size=32"]
    assert main(_run(env, *args)) == 0
    capsys.readouterr()
    work = RunSpec(model="unet", dataset="synthetic", preset="quick", seed=0, model_args={"width": 4},
                   overrides={"epochs": 1, "patches_per_epoch": 8, "val_patches": 2, "patch_size": 32}
                   ).work_dir(env / "work")
    (work / "fit.json").write_text("{not json")
    for rec in (env / "records" / "synthetic").glob("*.json"):
        rec.unlink()  # so the run is redone from the checkpoint
    assert main(_run(env, *args)) == 2
    err = capsys.readouterr().err
    assert "fit.json: corrupt training summary" in err.strip().splitlines()[-1] and "Traceback" not in err
    (work / "fit.json").unlink()

    # a checkpoint of another method, and one whose tensors do not fit its config
    from grainbench.errors import InputFileError
    from grainbench.training.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(InputFileError, match="checkpoint of method 'unet', not 'attention_unet'"):
        create_model("attention_unet").load(work / "model.pt")
    state = load_checkpoint(work / "model.pt")
    state["config"]["method"]["width"] = 8
    save_checkpoint(work / "model.pt", {k: v for k, v in state.items() if k != "checkpoint_version"})
    with pytest.raises(InputFileError, match="model.pt: weights do not fit method 'unet'"):
        create_model("unet").load(work / "model.pt")
    assert main(_run(env, *args)) == 2
    err = capsys.readouterr().err
    assert "model.pt: weights do not fit method 'unet'" in err.strip().splitlines()[-1] and "Traceback" not in err

    locks = tmp_path / "locks-cache"  # a cache whose lock file is damaged
    locks.mkdir()
    monkeypatch.setenv("GRAINBENCH_DATA", str(locks))
    (locks / "locks.toml").write_bytes(b"\xff\xfe not toml")
    assert main(_run(env, "--model", "classical")) == 2
    err = capsys.readouterr().err
    assert "locks.toml: lock file is not valid TOML" in err
    assert not list((env / "records").glob("synthetic/*.json"))  # found before predicting and scoring


@register_model
class _EchoPrev(Method):
    """A propagation method whose output is its previous mask: it shows which prior it was given."""

    name = "echo_prev_test"
    context = "2d+prev"

    def __init__(self, device=None):
        self.device = device

    def predict(self, image, prev_boundary=None):
        return np.asarray(prev_boundary, np.float32)


def test_propagation_on_a_non_serial_stack_runs_once_with_an_empty_prior(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAINBENCH_DATA", str(tmp_path / "cache"))
    e = entry(source="generate", generator="synthetic", params={"seed": 1, "shape": [4, 48, 48]},
              layout={"kind": "generated"}, splits={"test": {"start": 0, "stop": 4}}, serial=False)
    e.pop("base_url")
    monkeypatch.setenv("GRAINBENCH_REGISTRY", str(write_registry(tmp_path / "reg.toml", {"shuffled": e})))
    registry._CACHE.clear()
    base = ["run", "--dataset", "shuffled", "--model", "echo_prev_test", "--no-leaderboard",
            "--records", str(tmp_path / "records"), "--workdir", str(tmp_path / "work"), "--device", "cpu"]
    assert main(base) == 0
    recs = [read_record(p) for p in (tmp_path / "records" / "shuffled").glob("*.json")]
    assert [r["config"]["mode"] for r in recs] == ["no-prior"]  # one mode, never oracle or chain
    assert recs[0]["config"]["first_prev"] == "empty"
    assert recs[0]["metrics"]["aggregate"]["bf1"] == 0.0  # it was given nothing: an empty prior
    assert main([*base, "--mode", "oracle"]) == 2
    assert "not serial" in capsys.readouterr().err
