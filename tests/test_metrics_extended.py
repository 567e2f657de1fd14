"""The extended metric group, each against a brute-force version of its definition."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import f1_score, jaccard_score, rand_score

from grainbench.metrics.delineation import completeness_correctness_quality, pratt_figure_of_merit
from grainbench.metrics.overlap import frequency_weighted_iou, mean_iou
from grainbench.metrics.rand import rand_index
from grainbench.protocol import EXTENDED_METRICS, get_protocol
from grainbench.scoring import score


def _nearest(query, target):
    """Distance of every True pixel of ``query`` (row-major) to the nearest True pixel of ``target``, by brute force."""
    q, t = np.argwhere(query), np.argwhere(target)
    if len(t) == 0:
        return np.full(len(q), np.inf)
    return np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1)).min(1)


def _brute(pred, gt, theta):
    d_pred, d_gt = _nearest(pred, gt), _nearest(gt, pred)
    n_p, n_g = len(d_pred), len(d_gt)
    fom = sum(1.0 / (1.0 + d * d / 9.0) for d in d_pred) / max(n_p, n_g)
    tp = (d_pred <= theta).sum()
    matched_gt = (d_gt <= theta).sum()
    return {"pratt_fom": fom, "completeness": matched_gt / n_g, "correctness": tp / n_p,
            "quality": tp / (tp + (n_p - tp) + (n_g - matched_gt))}


def _maps(rng, shape=(14, 17)):
    pred = rng.random(shape) < rng.uniform(0.1, 0.5)
    gt = rng.random(shape) < rng.uniform(0.1, 0.5)
    return pred, gt


def test_extended_group_matches_brute_force(rng):
    protocol = dataclasses.replace(get_protocol("wpunet-2019"), crop=0)
    four = ndimage.generate_binary_structure(2, 1)
    for _ in range(8):
        pred, gt = _maps(rng)
        row = score(pred, gt, protocol, metrics="extended").per_slice.iloc[0]
        assert set(EXTENDED_METRICS) <= set(row.index)
        want = _brute(pred, gt, protocol.quality_tolerance)
        for k, v in want.items():
            assert row[k] == pytest.approx(v, abs=1e-12), k
        # Rand index over all pixels, boundary pixels one cluster: scikit-learn's rand_score
        lp, lg = ndimage.label(~pred, four)[0], ndimage.label(~gt, four)[0]
        assert row["rand_index"] == pytest.approx(rand_score(lg.ravel(), lp.ravel()), abs=1e-12)
        assert rand_index(lp, lg) == pytest.approx(row["rand_index"], abs=1e-12)
        # two classes (boundary = 1, background = 0)
        ious = jaccard_score(gt.ravel(), pred.ravel(), average=None, labels=[0, 1])
        assert row["mean_iou"] == pytest.approx(ious.mean(), abs=1e-12)
        freq = np.array([(~gt).mean(), gt.mean()])
        assert row["fw_iou"] == pytest.approx((freq * ious).sum(), abs=1e-12)
        # Dice of grain (non-boundary) pixels beside the existing boundary Dice
        assert row["dice_grain"] == pytest.approx(f1_score(~gt.ravel(), ~pred.ravel()), abs=1e-12)
        assert row["dice"] == pytest.approx(f1_score(gt.ravel(), pred.ravel()), abs=1e-12)


def test_functions_match_brute_force(rng):
    for theta in (0.0, 1.0, 2.5):
        pred, gt = _maps(rng, (11, 9))
        want = _brute(pred, gt, theta)
        assert pratt_figure_of_merit(pred, gt) == pytest.approx(want["pratt_fom"], abs=1e-12)
        c, r, q = completeness_correctness_quality(pred, gt, theta)
        assert (c, r, q) == pytest.approx((want["completeness"], want["correctness"], want["quality"]), abs=1e-12)
        ious = jaccard_score(gt.ravel(), pred.ravel(), average=None, labels=[0, 1])
        assert mean_iou(pred, gt) == pytest.approx(ious.mean())
        assert frequency_weighted_iou(pred, gt) == pytest.approx(gt.mean() * ious[1] + (~gt).mean() * ious[0])


def test_extended_is_off_by_default_and_changes_no_standard_number(rng):
    pred, gt = _maps(rng, (40, 40))
    standard = score(pred, gt, "wpunet-2019").aggregate
    extended = score(pred, gt, "wpunet-2019", metrics="extended").aggregate
    assert not set(EXTENDED_METRICS) & set(standard)
    assert {k: extended[k] for k in standard} == standard
    same = score(gt, gt, "wpunet-2019", metrics="extended").aggregate
    assert all(same[k] == 1.0 for k in EXTENDED_METRICS)
    with pytest.raises(ValueError, match="unknown metric group"):
        score(pred, gt, "wpunet-2019", metrics="everything")


def test_empty_maps():
    empty = np.zeros((6, 6), bool)
    line = empty.copy()
    line[3] = True
    assert pratt_figure_of_merit(empty, empty) == 1.0 and completeness_correctness_quality(empty, empty) == (1, 1, 1)
    assert pratt_figure_of_merit(empty, line) == 0.0 and completeness_correctness_quality(empty, line) == (0, 0, 0)
    assert pratt_figure_of_merit(line, empty) == 0.0


def test_cli_metrics_flag(tmp_path, capsys):
    from grainbench.cli import main

    assert main(["score", "--example", "--metrics", "extended", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "pratt_fom" in out and "dice_grain" in out and "astm_g_error" in out
    assert main(["score", "--example"]) == 0
    out = capsys.readouterr().out
    assert "astm_g_error" in out and "pratt_fom" not in out


def test_run_records_the_extended_group(synthetic_cache, tmp_path, monkeypatch):
    from grainbench.cli import main
    from grainbench.records import read_record

    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dataset", "synthetic", "--model", "classical", "--metrics", "extended",
                 "--no-leaderboard", "--columns", "vi,astm_g_error,grain_count_ratio"]) == 0
    [path] = sorted((tmp_path / "runs/records/synthetic").glob("*.json"))
    aggregate = read_record(path)["metrics"]["aggregate"]
    assert set(EXTENDED_METRICS) <= set(aggregate) and "astm_g_error" in aggregate
