"""Run records, the regression gate and leaderboards built from records."""

import copy
import json

import pandas as pd
import pytest

from grainbench.cli import main
from grainbench.examples import example_pair
from grainbench.leaderboard import build_leaderboards, reported_results
from grainbench.protocol import get_protocol
from grainbench.records import RecordError, make_record, read_record, write_record
from grainbench.regression import compare_records
from grainbench.scoring import score


def _record(model="unet", seed=0, shift=1, dataset="synthetic", kind="run"):
    pred, gt = example_pair((96, 96), 20, seed=seed)
    import numpy as np
    pred = np.roll(pred, shift - 1, axis=1)
    result = score(pred, gt, "wpunet-2019")
    cfg = {"model": model, "dataset": dataset, "split": "test", "protocol": "wpunet-2019@1", "preset": "quick",
           "seed": seed, "mode": None}
    return make_record(config=cfg, protocol=get_protocol("wpunet-2019").to_dict(), aggregate=result.aggregate,
                       per_slice=result.per_slice.to_dict(orient="records"), kind=kind,
                       timings={"score_s": 0.1})


def test_record_round_trip_and_no_silent_overwrite(tmp_path):
    rec = _record()
    path = write_record(rec, tmp_path)
    back = read_record(path)
    assert back["metrics"]["aggregate"] == pytest.approx(rec["metrics"]["aggregate"])
    assert back["environment"]["libraries"]["torch"] and back["protocol"]["crop"] == 10
    assert back["config"]["seed"] == 0 and "commit" in back["git"]
    with pytest.raises(RecordError, match="exists already"):
        write_record(rec, tmp_path)
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_corrupt_records_are_reported_not_half_read(tmp_path):
    path = write_record(_record(), tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(RecordError, match="corrupt record"):
        read_record(path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(RecordError, match="schema version 99 is not supported"):
        read_record(other)


def test_check_passes_on_itself_and_fails_on_a_degraded_copy(tmp_path, capsys):
    rec = _record()
    ref_path = write_record(rec, tmp_path / "ref")
    assert main(["check", str(ref_path), "--reference", str(ref_path)]) == 0
    worse = copy.deepcopy(rec)
    worse["run_id"] += "-worse"
    worse["metrics"]["aggregate"]["vi"] += 0.05
    worse["metrics"]["aggregate"]["map"] -= 0.001
    worse_path = write_record(worse, tmp_path / "new")
    capsys.readouterr()
    assert main(["check", str(worse_path), "--reference", str(ref_path)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "vi" in out
    # Tolerances: map within 0.01 passes, vi within 0.1 passes.
    assert main(["check", str(worse_path), "--reference", str(ref_path), "--tolerance", "0.01",
                 "--tolerance", "vi=0.1"]) == 0
    changes = {c.metric: c for c in compare_records(worse, rec)}
    assert changes["vi"].regressed and changes["vi"].worse_by == pytest.approx(0.05)
    better = copy.deepcopy(rec)
    better["metrics"]["aggregate"]["vi"] -= 0.1
    assert not any(c.regressed for c in compare_records(better, rec))


def test_check_refuses_incomparable_records(tmp_path, capsys):
    a = _record()
    b = _record(dataset="tbm")
    pa, pb = write_record(a, tmp_path), write_record(b, tmp_path)
    assert main(["check", str(pa), "--reference", str(pb)]) == 2
    assert "dataset differs" in capsys.readouterr().err
    assert main(["check", str(pa), "--reference", str(tmp_path / "nope.json")]) == 2


def test_leaderboard_built_from_records_only(tmp_path):
    records = tmp_path / "records"
    for seed in (0, 1):
        write_record(_record("good", seed=seed, shift=1), records / "synthetic")
        write_record(_record("bad", seed=seed, shift=4), records / "synthetic")
    (records / "synthetic" / "broken.json").write_text("{not json")
    written = build_leaderboards(records, tmp_path / "out")
    md_path, csv_path, html_path, *figures = written["synthetic"]
    md = md_path.read_text()
    assert html_path.name == "synthetic.html" and figures[-1].name == "index.html"  # the site beside the tables
    [figure] = figures[:-1]  # one split vs merge plot for the one (protocol, preset) table
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.name in md
    assert md.index("| good") < md.index("| bad")  # best (lowest VI) first
    assert "±" in md and "broken.json" in md
    assert "(reported)" not in md  # no paper reports numbers on the generated set
    table = pd.read_csv(csv_path)
    assert set(table["source"]) == {"reproduced"}
    assert len(table[(table["metric"] == "vi")]) == 4
    good_vi = table[(table["model"] == "good") & (table["metric"] == "vi")]["value"].mean()
    assert f"{good_vi:.4f}" in md
    # every row links a record that exists
    for line in md.splitlines():
        if line.startswith("| 1 |"):
            link = line.split("](")[1].split(")")[0]
            assert (md_path.parent / link).exists()


def test_reported_rows_kept_apart(tmp_path):
    records = tmp_path / "records"
    write_record(_record("unet", dataset="pure_iron"), records)
    md_path, csv_path, *_ = build_leaderboards(records, tmp_path)["pure_iron"]
    md = md_path.read_text()
    assert md.index("Reproduced") < md.index("Reported in the papers")
    assert "0.1874" in md and "WPU-Net" in md
    table = pd.read_csv(csv_path)
    rep = table[table["source"] == "reported"]
    assert len(rep) == len(reported_results("pure_iron"))
    assert set(table[table["source"] == "reproduced"]["model"]) == {"unet"}


def test_leaderboard_cli(tmp_path, capsys):
    write_record(_record(), tmp_path / "records")
    assert main(["leaderboard", "build", "--records", str(tmp_path / "records"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "synthetic.md").exists() and (tmp_path / "synthetic.csv").exists()
