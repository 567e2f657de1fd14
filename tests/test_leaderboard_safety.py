"""Leaderboards that cannot be hijacked, fair rows apart from oracle rows, degenerate predictions last."""

import json
import re

import numpy as np
import pytest

from grainbench.cli import main
from grainbench.examples import example_pair
from grainbench.leaderboard import build_leaderboards
from grainbench.names import NameError_, validate_name
from grainbench.protocol import get_protocol
from grainbench.records import make_record, write_record
from grainbench.scoring import score


def _record(model="unet", seed=0, dataset="synthetic", mode=None, shift=1, pred=None, model_args=None,
            figures=None, kind="run"):
    p, gt = example_pair((96, 96), 20, seed=seed)
    p = np.roll(p, shift - 1, axis=1) if pred is None else pred
    result = score(p, gt, "wpunet-2019")
    cfg = {"model": model, "dataset": dataset, "split": "test", "protocol": "wpunet-2019@1",
           "preset": "quick" if kind == "run" else None, "seed": seed if kind == "run" else None, "mode": mode,
           "model_args": model_args or {}}
    return make_record(config=cfg, protocol=get_protocol("wpunet-2019").to_dict(), aggregate=result.aggregate,
                       per_slice=result.per_slice.to_dict(orient="records"), figures=figures, kind=kind)


def _raw(tmp_path, name, **changes):
    """A record file written by hand (as an attacker would), with config fields changed."""
    rec = _record()
    rec["config"].update(changes)
    path = tmp_path / "records" / "synthetic" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


@pytest.mark.parametrize("bad", ["../README", "/tmp/elsewhere", "a/b", "", ".hidden", "x\ny", "a|b", "<b>", "a..b"])
def test_one_validator_refuses_names_that_leave_their_folder(bad):
    with pytest.raises(NameError_):
        validate_name(bad, "dataset")


@pytest.mark.parametrize("good", ["synthetic", "wpunet-2019@1", "mypkg.module:MyMethod", "unet_v2.1", "quick"])
def test_one_validator_accepts_plain_names(good):
    assert validate_name(good) == good


@pytest.mark.parametrize("dataset", ["../README", "/tmp/hijacked-abs", "../../x"])
def test_a_record_cannot_write_outside_the_output_folder(tmp_path, dataset):
    readme = tmp_path / "README.md"
    readme.write_text("the real README\n")
    write_record(_record(), tmp_path / "records" / "synthetic")
    _raw(tmp_path, "evil.json", dataset=dataset)
    out = tmp_path / "out"
    assert main(["leaderboard", "build", "--records", str(tmp_path / "records"), "--out", str(out)]) == 0
    assert readme.read_text() == "the real README\n"
    assert not (tmp_path / "hijacked-abs.md").exists() and not list(tmp_path.parent.glob("x.md"))
    assert sorted(p.name for p in out.glob("*.md")) == ["synthetic.md"]
    assert "evil.json" in (out / "synthetic.md").read_text().split("could not be read")[1]
    # and a dataset named on the command line is checked the same way
    assert main(["leaderboard", "build", "--records", str(tmp_path / "records"), "--out", str(out),
                 "--dataset", "../README"]) == 2
    assert readme.read_text() == "the real README\n"


def _table_rows(md):
    return [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def _cells(line):
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_cells_are_escaped_and_file_names_cannot_forge_rows(tmp_path):
    records = tmp_path / "records" / "synthetic"
    write_record(_record("unet", model_args={"note": "x | 9 | fake\n| 1 | row", "html": "<img src=x onerror=alert(1)>"}),
                 records)
    write_record(_record("classical"), records)
    # a record file whose name holds a newline, a pipe and HTML
    odd = records / "odd|name\n<script>.json"
    odd.write_text(json.dumps(_record("fcn")))
    _raw(tmp_path, "script.json", model="<script>alert(1)</script>")  # refused: not a valid name
    md = build_leaderboards(tmp_path / "records", tmp_path / "out")["synthetic"][0].read_text()
    assert "<img" not in md and "<script>" not in md
    rows = _table_rows(md.split("## Records that could not be read")[0])
    header = rows[0]
    for row in rows[1:]:
        assert len(_cells(row)) == len(_cells(header)), row
    assert sum("fake" in r for r in rows) == 1  # the newline did not start a row of its own
    assert "odd%7Cname%0A%3Cscript%3E.json" in md  # the link target is percent-encoded
    assert "script.json" in md.split("could not be read")[1]


def test_overlays_are_linked_from_records_only(tmp_path):
    out = tmp_path / "out"
    figures = out / "figures" / "synthetic"
    figures.mkdir(parents=True)
    ghost = figures / "deleted_run-quick-overlay.png"  # a picture a deleted run left
    ghost.write_bytes(b"\x89PNG\r\n\x1a\n")
    mine = figures / "unet-quick-overlay.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n")
    outside = tmp_path / "outside-overlay.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\n")
    records = tmp_path / "records" / "synthetic"
    write_record(_record("unet", figures={"overlay": str(mine)}), records)
    write_record(_record("classical", figures={"overlay": str(outside)}), records)
    md = build_leaderboards(tmp_path / "records", out)["synthetic"][0].read_text()
    assert "figures/synthetic/unet-quick-overlay.png" in md
    assert "deleted_run" not in md and "outside-overlay" not in md


def test_oracle_rows_are_an_unranked_upper_bound_table(tmp_path):
    records = tmp_path / "records" / "synthetic"
    write_record(_record("fast_finecut", mode="oracle", shift=1), records)  # the best VI, with the true z-1 mask
    write_record(_record("fast_finecut", mode="chain", shift=3), records)
    write_record(_record("unet", shift=2), records)
    md = build_leaderboards(tmp_path / "records", tmp_path / "out")["synthetic"][0].read_text()
    fair, upper = md.split("Upper bound: ground-truth previous slice")
    assert "| 1 | unet |" in fair and "| 2 | fast_finecut | chain |" in fair
    assert "oracle" not in "".join(_table_rows(fair))
    assert "| - | fast_finecut | oracle |" in upper


def test_degenerate_predictions_rank_last(tmp_path):
    gt = example_pair((96, 96), 20, seed=0)[1]
    records = tmp_path / "records" / "synthetic"
    write_record(_record("classical", shift=4, kind="submission"), records)  # a poor but real method: the floor
    write_record(_record("all_boundary", pred=np.ones(gt.shape), kind="submission"), records)
    write_record(_record("all_grain", pred=np.zeros(gt.shape), kind="submission"), records)
    md = build_leaderboards(tmp_path / "records", tmp_path / "out")["synthetic"][0].read_text()
    rows = _table_rows(md)[1:]
    assert rows[0].startswith("| 1 | classical (submitted) |")
    assert {r.split("|")[2].strip() for r in rows[1:]} == {"all_boundary (submitted)", "all_grain (submitted)"}
    assert all(r.startswith("| - |") and "degenerate" in r for r in rows[1:])
    assert "degenerate: no grains" in md


def test_submitted_all_boundary_and_all_grain_rank_below_the_classical_floor(synthetic_cache, tmp_path,
                                                                            monkeypatch):
    from grainbench import data
    from grainbench.methods import create_model

    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    test = data.load("synthetic", "test")
    preds = {"classical_floor": create_model("classical").predict(test.image),
             "all_boundary": np.ones(test.shape, np.float32), "all_grain": np.zeros(test.shape, np.float32)}
    for name, pred in preds.items():
        np.save(tmp_path / f"{name}.npy", pred)
        assert main(["submit", "--dataset", "synthetic", "--predictions", str(tmp_path / f"{name}.npy"),
                     "--name", name, "--no-leaderboard"]) == 0
    md = build_leaderboards(tmp_path / "runs" / "records", tmp_path / "out")["synthetic"][0].read_text()
    rows = _table_rows(md)[1:]
    assert rows[0].startswith("| 1 | classical_floor (submitted) |")
    assert all(r.startswith("| - |") and "degenerate" in r for r in rows[1:]) and len(rows) == 3
    # the all-boundary map has the best VI of the three (0 under the gala convention), yet ranks last
    vi = {r.split("|")[2].strip(): float(r.split("|")[5]) for r in rows}
    assert vi["all_boundary (submitted)"] < vi["classical_floor (submitted)"]


def test_run_summary_ranks_degenerate_predictions_last(tmp_path):
    from grainbench.runner import RunOutcome, RunSpec, summary_table

    gt = example_pair((96, 96), 20, seed=0)[1]
    records = tmp_path / "records"
    paths = [write_record(_record("all_boundary", pred=np.ones(gt.shape)), records),
             write_record(_record("classical", shift=4), records)]
    table = summary_table([RunOutcome(RunSpec("x", "synthetic"), "done", paths)])
    assert list(table["model"]) == ["classical", "all_boundary"]
    assert list(table["flag"]) == ["", "no grains"]


def test_run_summary_lists_oracle_rows_after_the_fair_ranking(tmp_path):
    from grainbench.runner import RunOutcome, RunSpec, summary_table

    records = tmp_path / "records"
    paths = [write_record(_record("fast_finecut", mode="oracle", shift=1), records),
             write_record(_record("fast_finecut", mode="chain", shift=3), records),
             write_record(_record("unet", shift=2), records)]
    table = summary_table([RunOutcome(RunSpec("x", "synthetic"), "done", paths)])
    assert list(zip(table["model"], table["mode"])) == [("unet", "-"), ("fast_finecut", "chain"),
                                                         ("fast_finecut", "oracle")]
