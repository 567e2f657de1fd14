"""`grainbench track` end to end on the generated synthetic stack: record, tables, picture, boundary sources."""

import json

import numpy as np
import pytest
from PIL import Image

from grainbench import data
from grainbench.cli import main
from grainbench.records import read_record
from grainbench.tracking import TRACKING_PROTOCOL_ID, create_tracker, dataset_ground_truth, score_volume
from grainbench.tracking.figures import save_orthoslices
from grainbench.tracking.leaderboard import (
    build_tracking_leaderboard,
    reported_tracking,
)


@pytest.fixture
def env(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    return data.load("synthetic", "test"), tmp_path


def _args(tmp_path, *extra):
    return ["track", "--dataset", "synthetic", "--records", str(tmp_path / "records"),
            "--leaderboards", str(tmp_path / "lb"), "--workdir", str(tmp_path / "runs"), "--device", "cpu",
            *extra]


def _records(tmp_path):
    return sorted((tmp_path / "records" / "synthetic" / "tracking").glob("*.json"))


def test_track_ground_truth_boundaries_writes_record_table_and_picture(env, capsys):
    volume, tmp_path = env
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--save-labels", str(tmp_path / "labels.npy"))) == 0
    [path] = _records(tmp_path)
    rec = read_record(path)
    cfg = rec["config"]
    assert cfg["model"] == "max_overlap" and cfg["boundaries"] == "ground-truth" and cfg["protocol"] == TRACKING_PROTOCOL_ID
    assert rec["protocol"]["name"] == "tracking-3d" and rec["dataset"]["hashes"]["generated"]
    agg = rec["metrics"]["aggregate"]
    c = rec["protocol"]["crop"]  # both volumes lose the protocol's border before tracking, as in 2D scoring
    assert c == 10
    truth = dataset_ground_truth("synthetic", volume)[:, c:-c, c:-c]
    labels = np.load(tmp_path / "labels.npy")
    assert agg == pytest.approx(score_volume(labels, truth))
    assert np.array_equal(labels, create_tracker("max_overlap").track(volume.boundary[:, c:-c, c:-c]))
    assert 0 <= agg["vi"] < 0.5 and agg["ari"] > 0.9
    assert rec["timings"]["track_s"] > 0

    md = (tmp_path / "lb" / "synthetic_tracking.md").read_text()
    assert "| max_overlap | ground-truth | 1 |" in md and "duration (s)" in md
    csv = (tmp_path / "lb" / "synthetic_tracking.csv").read_text()
    assert f"reproduced,synthetic,test,{TRACKING_PROTOCOL_ID},max_overlap,ground-truth" in csv
    png = tmp_path / "lb" / "figures" / "synthetic" / "tracking-max_overlap-ground-truth-test.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 600
    out = capsys.readouterr().out
    assert "vi_merge" in out and "record:" in out


def test_a_tracker_argument_gets_its_own_figure(env):
    _, tmp_path = env
    folder = tmp_path / "lb" / "figures" / "synthetic"
    assert main(_args(tmp_path, "--tracker", "max_overlap")) == 0
    default = folder / "tracking-max_overlap-ground-truth-test.png"
    before = default.read_bytes()
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--tracker-arg", "one_to_one=false")) == 0
    assert default.read_bytes() == before  # not overwritten by the other setting
    assert len(list(folder.glob("tracking-max_overlap-*-ground-truth-test.png"))) == 1


def test_tracking_table_leaves_out_older_protocols_and_other_data(env):
    volume, tmp_path = env
    assert main(_args(tmp_path, "--tracker", "max_overlap")) == 0
    [path] = _records(tmp_path)
    rec = json.loads(path.read_text())
    for name, change in [("old-protocol", ("protocol", "version", 1)),
                         ("old-data", ("dataset", "hashes", {"generated": "0" * 64}))]:
        other = json.loads(json.dumps(rec))
        part, key, value = change
        other[part][key] = value
        other["config"]["seed"] = 7  # another seed: it would be averaged into the row if it were kept
        (path.parent / f"{name}.json").write_text(json.dumps(other))
    build_tracking_leaderboard(tmp_path / "records", tmp_path / "lb", "synthetic")
    md = (tmp_path / "lb" / "synthetic_tracking.md").read_text()
    assert "| max_overlap | ground-truth | 1 |" in md
    csv = (tmp_path / "lb" / "synthetic_tracking.csv").read_text()
    assert "old-protocol" not in csv and "old-data" not in csv


def test_track_boundary_file_and_method_sources_share_one_table(env):
    volume, tmp_path = env
    # a probability stack: thresholded and thinned like the dataset's protocol before tracking
    probs = np.where(volume.boundary, 0.9, 0.1).astype(np.float32)
    np.save(tmp_path / "pred.npy", probs)
    assert main(_args(tmp_path, "--tracker", "min_centroid", "--boundaries", "mine",
                      "--boundaries-file", str(tmp_path / "pred.npy"), "--no-figure")) == 0
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--boundaries", "classical", "--no-figure")) == 0
    recs = {read_record(p)["config"]["boundaries"]: read_record(p) for p in _records(tmp_path)}
    assert set(recs) == {"mine", "classical"}
    assert recs["mine"]["config"]["boundaries_file"].endswith("pred.npy")
    assert recs["mine"]["config"]["boundary_protocol"] == "wpunet-2019@1"
    assert recs["classical"]["metrics"]["aggregate"]["vi"] > recs["mine"]["metrics"]["aggregate"]["vi"]
    md = (tmp_path / "lb" / "synthetic_tracking.md").read_text()
    assert "| min_centroid | mine |" in md and "| max_overlap | classical |" in md


def test_track_rejects_bad_inputs_with_one_line(env, capsys):
    _, tmp_path = env
    np.save(tmp_path / "bad.npy", np.zeros((3, 10, 10), np.float32))
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--boundaries-file", str(tmp_path / "bad.npy"))) == 2
    assert "bad.npy" in capsys.readouterr().err
    assert main(_args(tmp_path, "--tracker", "nope")) == 2
    assert "unknown tracker" in capsys.readouterr().err
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--tracker-arg", "min_iou")) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--boundaries", "no_such_method")) == 2
    assert "--boundaries-file" in capsys.readouterr().err
    assert not _records(tmp_path)


def test_track_cnn_trains_once_then_reuses_weights(env, capsys):
    _, tmp_path = env
    tiny = ["--tracker", "densenet161", "--no-figure", "--tracker-arg", "arch=test_resnet", "--tracker-arg",
            "input_size=32", "--tracker-arg", "epochs=1", "--tracker-arg", "pairs_per_epoch=256",
            "--tracker-arg", "val_pairs=256", "--tracker-arg", "lr=0.001"]
    assert main(_args(tmp_path, *tiny)) == 0
    assert "training on synthetic/train" in capsys.readouterr().err
    assert len(list((tmp_path / "runs" / "tracking" / "synthetic" / "densenet161").glob("*/model.pt"))) == 1
    assert main(_args(tmp_path, *tiny)) == 0
    assert "loading weights" in capsys.readouterr().err
    recs = {r["config"]["trained_from"]: r for r in map(read_record, _records(tmp_path))}
    first, second = recs["trained"], recs["checkpoint"]
    assert first["metrics"]["aggregate"] == second["metrics"]["aggregate"]
    assert first["checkpoint"]["sha256"] == second["checkpoint"]["sha256"]
    assert first["extra"]["fit"]["steps"] == 256 // 40 + 1 and first["config"]["model_args"]["arch"] == "test_resnet"
    # the table keeps the newest run of the same configuration only
    md = (tmp_path / "lb" / "synthetic_tracking.md").read_text()
    assert md.count("| densenet161 (arch=test_resnet") == 1 and "| 1 | densenet161" in md
    assert json.loads(json.dumps(first))  # plain JSON


def test_tracking_table_lists_reported_rows_apart(tmp_path):
    paths = build_tracking_leaderboard(tmp_path / "records", tmp_path, "potts_sim")
    md = paths[0].read_text()
    assert "No reproduced tracking runs yet." in md and "### Table 3 (reported)" in md
    assert "| densenet161 | Densenet161 | ground-truth | 0.5124 | 0.9391 | 759.9 |" in md
    rep = reported_tracking("pure_iron")
    assert set(rep["table"]) == {"Table 4", "Table 5"} and len(rep) == 10


def test_orthoslices_picture(tmp_path):
    vol = np.arange(4 * 6 * 8).reshape(4, 6, 8) % 5
    path = save_orthoslices({"a": vol, "b": vol + 1}, tmp_path / "x" / "o.png", title="t")
    with Image.open(path) as im:
        assert im.format == "PNG"


def test_boundaries_that_stop_short_of_the_image_edge_do_not_merge_grains(env):
    """Predicted lines often end a pixel or two before the edge; the protocol's crop keeps
    the grains on either side apart, as the 2D scoring does."""
    volume, tmp_path = env
    short = volume.boundary.copy()
    short[:, :3, :] = short[:, -3:, :] = short[:, :, :3] = short[:, :, -3:] = False
    np.save(tmp_path / "short.npy", short)
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--no-figure")) == 0
    assert main(_args(tmp_path, "--tracker", "max_overlap", "--boundaries", "short",
                      "--boundaries-file", str(tmp_path / "short.npy"), "--no-figure")) == 0
    recs = {read_record(p)["config"]["boundaries"]: read_record(p)["metrics"]["aggregate"] for p in _records(tmp_path)}
    assert recs["short"] == pytest.approx(recs["ground-truth"])
