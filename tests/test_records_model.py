"""The typed record model: ill-typed or deeply nested records are reported and skipped, the schema is
published, records carry what reproduces their row, and the code version follows the code."""

import copy
import json
import subprocess

import jsonschema
import numpy as np
import pytest

from grainbench import __version__
from grainbench.cli import main
from grainbench.examples import example_pair
from grainbench.leaderboard import build_leaderboards
from grainbench.protocol import get_protocol
from grainbench.records import (
    LIBRARIES,
    RecordError,
    code_version,
    make_record,
    read_record,
    record_schema,
    write_record,
)
from grainbench.scoring import score


def _record(model="unet", seed=0, dataset="synthetic", mode=None):
    pred, gt = example_pair((96, 96), 20, seed=seed)
    result = score(pred, gt, "wpunet-2019")
    cfg = {"model": model, "dataset": dataset, "split": "test", "protocol": "wpunet-2019@1", "preset": "quick",
           "seed": seed, "mode": mode}
    return make_record(config=cfg, protocol=get_protocol("wpunet-2019").to_dict(), aggregate=result.aggregate,
                       per_slice=result.per_slice.to_dict(orient="records"), timings={"score_s": 0.1})


ILL_TYPED = {
    "model-is-a-dict": lambda r: r["config"].__setitem__("model", {"name": "unet"}),
    "dataset-is-a-list": lambda r: r["config"].__setitem__("dataset", ["synthetic"]),
    "per-slice-missing": lambda r: r["metrics"].pop("per_slice"),
    "model-args-is-a-list": lambda r: r["config"].__setitem__("model_args", ["width", 8]),
    "aggregate-not-numbers": lambda r: r["metrics"]["aggregate"].__setitem__("vi", "low"),
    "protocol-version-a-string": lambda r: r["protocol"].__setitem__("version", "one"),
}


@pytest.mark.parametrize("case", sorted(ILL_TYPED))
def test_ill_typed_record_is_one_error_naming_the_file_and_field(tmp_path, case):
    rec = _record()
    ILL_TYPED[case](rec)
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match=rf"{case}\.json: field '"):
        read_record(path)


def test_leaderboard_build_reports_and_skips_ill_typed_records(tmp_path, capsys):
    records = tmp_path / "records" / "synthetic"
    write_record(_record("good"), records)
    for case, spoil in ILL_TYPED.items():
        rec = _record("spoilt")
        spoil(rec)
        (records / f"{case}.json").write_text(json.dumps(rec))
    assert main(["leaderboard", "build", "--records", str(tmp_path / "records"), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "synthetic.md").read_text()
    assert "| 1 | good |" in md and "spoilt" not in md.split("## Records that could not be read")[0]
    bad = md.split("## Records that could not be read")[1]
    assert all(f"{case}.json" in bad for case in ILL_TYPED)


def test_deeply_nested_json_is_reported_not_a_recursion_error(tmp_path):
    rec = _record("good")
    good = write_record(rec, tmp_path / "records" / "synthetic")
    deep = tmp_path / "records" / "synthetic" / "deep.json"
    deep.write_text(json.dumps(rec)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(RecordError, match="deep.json: nested too deeply"):
        read_record(deep)
    shallow_but_deep = copy.deepcopy(rec)
    node = shallow_but_deep["extra"]
    for _ in range(200):  # parses fine, but no record nests this deep
        node["x"] = {}
        node = node["x"]
    (tmp_path / "records" / "synthetic" / "deep2.json").write_text(json.dumps(shallow_but_deep))
    with pytest.raises(RecordError, match="nested deeper than"):
        read_record(tmp_path / "records" / "synthetic" / "deep2.json")
    md_path, *_ = build_leaderboards(tmp_path / "records", tmp_path / "out")["synthetic"]
    md = md_path.read_text()
    assert "deep.json" in md and "deep2.json" in md and good.name in md


def test_schema_one_records_are_reported_as_such(tmp_path):
    rec = _record()
    rec["schema_version"] = 1
    path = tmp_path / "old.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match="schema version 1 is not supported"):
        read_record(path)


def test_published_schema_validates_written_records(tmp_path, capsys):
    assert main(["schema", "record"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == record_schema() and schema["properties"]["schema_version"]["const"] == 2
    path = write_record(_record(), tmp_path)
    jsonschema.validate(json.loads(path.read_text()), schema)
    bad = json.loads(path.read_text())
    bad["config"]["dataset"] = ["synthetic"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_record_carries_what_reproduces_it():
    rec = _record()
    env = rec["environment"]
    assert set(env["libraries"]) == set(LIBRARIES)
    assert env["libraries"]["numpy"] == np.__version__
    import torch

    assert env["libraries"]["torch"] == torch.__version__.split("+")[0] or env["libraries"]["torch"] == torch.__version__
    assert env["precision"] == "fp32"  # CPU scoring; CUDA runs record bf16-autocast
    assert set(env["determinism"]) >= {"deterministic_algorithms", "cudnn_benchmark", "cudnn_deterministic"}
    assert rec["code_version"].startswith(__version__)


def test_make_record_refuses_names_that_would_reach_a_path():
    with pytest.raises(RecordError, match="not a valid name"):
        _record(dataset="../README")
    with pytest.raises(RecordError, match="not a valid name"):
        _record(model="a|b\n<script>")


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_code_version_follows_the_code(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "t")
    (repo / "code.py").write_text("x = 1\n")
    (repo / "leaderboards").mkdir()
    (repo / "leaderboards" / "t.md").write_text("table\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "c")
    clean = code_version(repo)
    assert clean.startswith(f"{__version__}+git.") and "dirty" not in clean
    (repo / "leaderboards" / "t.md").write_text("rebuilt table\n")
    assert code_version(repo) == clean  # rebuilding the published tables is not a code change
    (repo / "code.py").write_text("x = 2\n")
    dirty = code_version(repo)
    assert ".dirty." in dirty and code_version(repo) == dirty  # the same code, the same version
    (repo / "code.py").write_text("x = 3\n")
    assert code_version(repo) not in (dirty, clean)
    assert code_version(tmp_path / "elsewhere" if (tmp_path / "elsewhere").mkdir() is None else None) == __version__
