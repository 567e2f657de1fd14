"""Tracking's Python API (``grainbench track`` is a thin layer over it) and the import layering of the tables."""

import json
import subprocess
import sys

import numpy as np
import pytest

from grainbench import data
from grainbench.records import read_record
from grainbench.runner import RunSpec, config_tag
from grainbench.tracking import create_tracker, dataset_ground_truth, protocol_crop, score_volume
from grainbench.tracking.runner import TrackingSpec, run_tracking


@pytest.fixture
def volume(synthetic_cache, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    return data.load("synthetic", "test")


def test_run_tracking_scores_and_records_like_a_direct_call(volume, tmp_path):
    spec = TrackingSpec(tracker="max_overlap", dataset="synthetic", tracker_args={"min_iou": 0.1})
    out = run_tracking(spec, records_dir=tmp_path / "records", work_root=tmp_path / "runs", device="cpu",
                       log=lambda msg: None)
    boundary, gt = protocol_crop(np.asarray(volume.boundary, bool), dataset_ground_truth("synthetic", volume))
    labels = create_tracker("max_overlap", min_iou=0.1).track(boundary)
    expected = score_volume(labels, gt)
    np.testing.assert_array_equal(out.labels, labels)
    rec = read_record(out.record_path)
    assert out.record_path.parent == tmp_path / "records" / "synthetic" / "tracking"
    assert rec["metrics"]["aggregate"]["vi"] == pytest.approx(expected["vi"])
    cfg = rec["config"]
    # the boundary source has its own field; mode is a scoring mode only
    assert cfg["boundaries"] == "ground-truth" and cfg["mode"] is None and cfg["model_args"] == {"min_iou": 0.1}


def test_tracker_weights_are_named_with_the_runner_hashing():
    args = {"epochs": 2, "arch": "resnet18"}
    work = TrackingSpec(tracker="vgg13_bn", dataset="synthetic", seed=1, tracker_args=args).work_dir("runs")
    assert work.as_posix() == f"runs/tracking/synthetic/vgg13_bn/{config_tag('default', args)}-seed1"
    assert TrackingSpec(tracker="vgg13_bn", dataset="synthetic").work_dir("runs").name == "default-seed0"
    # the same rule as method runs
    spec = RunSpec(model="unet", dataset="synthetic", model_args={"width": 8})
    assert spec.work_dir(__import__("pathlib").Path("r")).parent.parent.name == "synthetic"
    assert spec.work_dir(__import__("pathlib").Path("r")).name == f"{config_tag('quick', [{'width': 8}, {}])}-seed0"


def test_no_import_cycle_between_the_leaderboards():
    code = ("import sys; import grainbench.tracking.leaderboard; "
            "print(json.dumps('grainbench.leaderboard' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) is False  # the tracking tables need only the shared helpers (grainbench.tables)


def test_track_cli_is_thin():
    import inspect

    import grainbench.cli.track as cli

    source = inspect.getsource(cli)
    for leaked in ("make_record", "hashlib", "sha256_file", "create_tracker(", "score_volume("):
        assert leaked not in source
