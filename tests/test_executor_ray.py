"""``grainbench run --executor ray``: the same runs as the local executor, in parallel on a local Ray cluster.

One Ray cluster (2 CPUs) serves the whole module. The runs are the tiny
settings of ``.ci/run`` on ``synthetic``; the local executor's records of
the same command are the reference.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from grainbench.cli import main
from grainbench.executors import RayExecutor, error_line, forwarded_env, make_executor
from grainbench.records import read_record
from grainbench.regression import DEFAULT_TOLERANCES, HEADLINE
from grainbench.runner import RunError

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
TINY = ["--dataset", "synthetic", "--preset", "quick", "--model-arg", "width=4", "--set", "patches_per_epoch=8",
        "--set", "batch_size=4", "--set", "patch_size=64", "--set", "val_patches=4"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for the module (short session folder: Ray's sockets live in it).

    Its workers have this folder on ``PYTHONPATH``, as a user's nodes have the module of their own method.
    """
    temp = tempfile.mkdtemp(prefix="gbray-")
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    mp.undo()
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(root, *args, epochs=1):
    return main(["run", *TINY, "--set", f"epochs={epochs}", "--records", str(root / "records"),
                 "--workdir", str(root / "runs"), "--leaderboards", str(root / "boards"), *args])


def _records(root):
    return [read_record(p) | {"_path": p} for p in sorted((root / "records/synthetic").glob("*.json"))]


def _key(rec):
    cfg = rec["config"]
    return cfg["model"], cfg["seed"], cfg["mode"]


def test_ray_runs_give_the_local_records_and_a_rerun_skips_them(cluster, work, capsys):
    local, remote = work / "local", work / "ray"
    assert _run(local, "--model", "classical,unet", "--seed", "0,1") == 0
    capsys.readouterr()
    assert _run(remote, "--model", "classical,unet", "--seed", "0,1", "--executor", "ray") == 0
    err = capsys.readouterr().err
    finished = [line for line in err.splitlines() if " seed " in line and ": done in " in line]
    assert len(finished) == 4 and {line.rsplit("(", 1)[1] for line in finished} == {"1/4)", "2/4)", "3/4)", "4/4)"}

    ref = {_key(r): r for r in _records(local)}
    got = {_key(r): r for r in _records(remote)}
    assert sorted(got) == sorted(ref) == sorted((m, s, None) for m in ("classical", "unet") for s in (0, 1))
    for key, rec in got.items():
        want = ref[key]
        same = ("model_args", "preset_overrides", "split", "protocol", "preset", "post", "post_params")
        assert {k: rec["config"][k] for k in same} == {k: want["config"][k] for k in same}
        assert rec["dataset"] == want["dataset"] and rec["code_version"] == want["code_version"]
        assert len(rec["metrics"]["per_slice"]) == len(want["metrics"]["per_slice"]) == 8
        for m in HEADLINE:
            if m in want["metrics"]["aggregate"]:
                a, b = rec["metrics"]["aggregate"][m], want["metrics"]["aggregate"][m]
                assert abs(a - b) <= DEFAULT_TOLERANCES[m].allowed(b), (key, m, a, b)
        if key[0] == "unet":  # trained on the worker, checkpoint where the driver said
            assert rec["config"]["trained_from"] == "trained"
            assert (remote / "runs/synthetic/unet").is_dir()
    # Figures made on the worker are written here and the record names them.
    overlays = [Path(r["figures"]["overlay"]) for r in got.values() if r["figures"]]
    assert overlays and all(p.is_file() and remote / "boards" in p.parents for p in overlays)
    assert (remote / "boards/synthetic.md").is_file()  # the leaderboard, rebuilt at the end

    # The same command again: nothing is sent, nothing written.
    files = sorted((remote / "records/synthetic").iterdir())
    assert _run(remote, "--model", "classical,unet", "--seed", "0,1", "--executor", "ray") == 0
    out = capsys.readouterr()
    assert "4 of 4 run(s) skipped" in out.err and out.out.count("record (skipped)") == 4
    assert sorted((remote / "records/synthetic").iterdir()) == files


def test_a_failing_run_is_reported_and_the_others_finish(cluster, work, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))  # the driver imports the method too (validation)
    failing = "gbtest_failing_method:Exploding"
    rc = _run(work, "--model", f"classical,{failing}", "--seed", "0,1", "--executor", "ray", "--no-leaderboard")
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("failed: RuntimeError: deliberate failure while predicting") >= 2, err
    assert "second line" not in err and "Traceback" not in err
    assert "2 of 4 run(s) failed" in err
    recs = _records(work)
    assert sorted((r["config"]["model"], r["config"]["seed"]) for r in recs) == [("classical", 0), ("classical", 1)]


def test_an_interrupted_ray_run_resumes(cluster, work, capsys):
    assert _run(work, "--model", "unet", "--executor", "ray", "--max-epochs", "1", "--no-leaderboard",
                epochs=2) == 3
    assert _records(work) == [] and list((work / "runs/synthetic/unet").glob("*/last.pt"))
    assert _run(work, "--model", "unet", "--executor", "ray", "--no-leaderboard", epochs=2) == 0
    [rec] = _records(work)
    assert rec["config"]["trained_from"] == "resumed" and rec["extra"]["fit"]["epochs"] == 2


# --------------------------------------------------------------------------- no cluster needed

def test_ray_options_are_refused_with_the_local_executor_and_checked(work, capsys):
    assert _run(work, "--model", "classical", "--address", "auto") == 2
    assert "--address only apply with --executor ray" in capsys.readouterr().err
    assert not (work / "records").exists()
    with pytest.raises(RunError, match="cpus-per-run"):
        make_executor("ray", cpus_per_run=0)
    with pytest.raises(RunError, match="gpus-per-run"):
        RayExecutor(gpus_per_run=-1)
    assert make_executor("ray", address="auto", gpus_per_run=0.5) == RayExecutor("auto", 1.0, 0.5)


def test_workers_get_the_grainbench_variables_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = forwarded_env({"GRAINBENCH_DATA": "cache", "GRAINBENCH_MIRROR": "http://10.0.0.1:8000",
                         "OMP_NUM_THREADS": "2", "HOME": "/root", "PATH": "/bin"})
    assert env == {"GRAINBENCH_DATA": str(tmp_path / "cache"), "GRAINBENCH_MIRROR": "http://10.0.0.1:8000",
                   "OMP_NUM_THREADS": "2"}


def test_error_line_is_the_first_line_of_the_workers_exception():
    class TaskError(Exception):  # what Ray raises: the worker's exception as `cause`
        def __init__(self, cause):
            super().__init__(f"ray.exceptions.RayTaskError: traceback...\n{cause}")
            self.cause = cause

    assert error_line(TaskError(ValueError("bad value\nmore"))) == "ValueError: bad value"
    assert error_line(TaskError(RunError("method 'x' has presets ()"))) == "method 'x' has presets ()"
    assert error_line(MemoryError()) == "MemoryError"


def test_a_run_the_cluster_cannot_hold_is_refused_before_any_work(cluster, work, capsys):
    assert _run(work, "--model", "classical", "--executor", "ray", "--gpus-per-run", "1") == 2
    assert "--gpus-per-run 1: the Ray cluster has 0 GPUs in all" in capsys.readouterr().err
    assert _run(work, "--model", "classical", "--executor", "ray", "--cpus-per-run", "3") == 2
    assert "--cpus-per-run 3: the Ray cluster has 2 CPUs in all" in capsys.readouterr().err
    assert not (work / "records").exists()
