"""ASTM E112 intercepts (NIST's chord rules and patterns) and the grain-size agreement columns of a score."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from grainbench.leaderboard import build_leaderboards
from grainbench.metrics.grains import astm_grain_size_number, grain_size_agreement
from grainbench.metrics.intercept import intercept_lengths
from grainbench.protocol import GRAIN_SIZE_METRICS, get_protocol
from grainbench.records import make_record, write_record
from grainbench.scoring import score

NIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist_steel"
NIST = NIST if NIST.is_dir() else Path("/work/shared/data/nist_steel")
PIXEL_UM = 50.0 / 222.0  # NIST's scale: 222 px = 50 um


def _brute_chords(row):
    """Chords of one path from the definition: grain runs with a boundary pixel on both sides, > 2 px."""
    out, start = [], None
    for i, v in enumerate(row):
        if v:
            if start is not None and i - start > 2:
                out.append(i - start)
            start = i + 1
        elif i == 0:
            start = None  # a path that begins on grain: its first run is partial
    return out


def _grid(n_cells, period):
    """Square grains: one-pixel boundary lines every ``period`` px, the image framed by boundary."""
    n = n_cells * period + 1
    b = np.zeros((n, n), bool)
    b[::period, :] = True
    b[:, ::period] = True
    return b


@pytest.mark.skipif(not (NIST / "grains_steel_highlighted_segmented.tif").is_file(),
                    reason="NIST etched-steel data not present")
def test_nist_segments_and_grain_size_numbers_reproduced():
    import tifffile

    seg = tifffile.imread(NIST / "grains_steel_highlighted_segmented.tif") > 0
    e112 = np.loadtxt(NIST / "grains_steel_highlighted_distances_e112.csv", delimiter=",", skiprows=1)
    grid = np.loadtxt(NIST / "grains_steel_highlighted_distances_line_grid.csv", delimiter=",", skiprows=1)

    paths = intercept_lengths(seg, "e112", per_path=True)
    assert sum(len(p) for p in paths) == len(e112) == 127
    for k, ours in enumerate(paths, start=1):  # 4 lines then 3 circles, NIST's ids 1..7
        theirs = e112[e112[:, 0] == k, 1]
        np.testing.assert_allclose(np.sort(ours), np.sort(theirs), rtol=0, atol=1e-9)
        if k <= 4:  # along a line the chords come in NIST's order too
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    angles = (0.0, 45.0, 90.0, 135.0, 180.0)
    per_angle = intercept_lengths(seg, "line-grid", angles=angles, step=60, per_path=True)
    assert sum(len(p) for p in per_angle) == len(grid) == 871
    for angle, ours in zip(angles, per_angle):
        np.testing.assert_array_equal(np.sort(ours), np.sort(grid[grid[:, 0] == angle, 1]))

    g_e112 = astm_grain_size_number(seg, PIXEL_UM, method="e112")
    g_grid = astm_grain_size_number(seg, PIXEL_UM, method="line-grid")
    assert g_e112 == pytest.approx(10.34, abs=0.02) and g_grid == pytest.approx(10.51, abs=0.02)
    # NIST's G from their own segment list, by the formula in their README
    for g, theirs in ((g_e112, e112[:, 1]), (g_grid, grid[:, 1])):
        l_mm = theirs.mean() * PIXEL_UM * 1e-3
        assert g == pytest.approx(-6.643856 * math.log10(l_mm) - 3.288, abs=1e-9)
    # The original intercept count (boundary pixels and partial end segments as grain length) stays available.
    assert astm_grain_size_number(seg, PIXEL_UM) == pytest.approx(10.11, abs=0.01)


def test_chord_rules_on_one_path():
    row = np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0], bool)
    # partial start dropped, thick boundary not counted, 2-px chord dropped, partial end dropped
    np.testing.assert_array_equal(intercept_lengths(row[None], "rows-columns"), [4, 3])


def test_rows_columns_chords_match_brute_force(rng):
    for _ in range(20):
        b = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.uniform(0.05, 0.6)
        rows, cols = intercept_lengths(b, "rows-columns", per_path=True)
        assert rows.tolist() == [c for r in b for c in _brute_chords(r)]
        assert cols.tolist() == [c for r in b.T for c in _brute_chords(r)]


@pytest.mark.parametrize("period", [8, 16, 25])
def test_square_grid_has_known_intercepts_and_g(period):
    b = _grid(6, period)
    chords = intercept_lengths(b, "rows-columns")
    n = b.shape[0]
    # every row off the 7 boundary lines crosses 6 grains of period - 1 px; columns the same
    assert chords.size == 2 * 6 * (n - 7) and np.all(chords == period - 1)
    # ASTM E112: G = 0 at a mean intercept of 0.32 mm, and G grows by 2 when the intercept halves
    g0 = astm_grain_size_number(b, 320.0 / (period - 1), method="rows-columns")
    assert abs(g0) < 0.01
    assert astm_grain_size_number(b, 160.0 / (period - 1), method="rows-columns") == pytest.approx(g0 + 2, abs=1e-5)
    # every pattern reads a square grid's chords; lines along the grid axes read period - 1 exactly
    for pattern in ("e112", "line-grid"):
        assert intercept_lengths(b, pattern).size > 0
    grid0 = intercept_lengths(b, "line-grid", angles=(0.0,), step=3)
    assert np.all(grid0 == period - 1)


def test_e112_circles_are_closed_and_line_ends_dropped():
    n = 201
    b = np.zeros((n, n), bool)
    b[:, n // 2] = True  # one vertical boundary through the centre
    lines_and_circles = intercept_lengths(b, "e112", per_path=True)
    horizontal, vertical, d1, d2 = lines_and_circles[:4]
    assert horizontal.size == 0 and vertical.size == 0 and d1.size == 0 and d2.size == 0  # only partial runs
    for frac, arcs in zip((0.7958, 0.5305, 0.2653), lines_and_circles[4:]):
        radius = round(frac * (n + 2) / 2)
        assert arcs.size == 2  # a circle crosses the line twice: two closed arcs, none partial
        assert arcs.sum() == pytest.approx(2 * math.pi * radius, abs=6.0)


def test_unknown_pattern_and_bad_step():
    with pytest.raises(ValueError, match="unknown intercept pattern"):
        intercept_lengths(np.zeros((5, 5), bool), "spiral")
    with pytest.raises(ValueError, match="step"):
        intercept_lengths(np.zeros((5, 5), bool), "line-grid", step=0)
    with pytest.raises(ValueError, match="unknown method"):
        astm_grain_size_number(np.zeros((5, 5), bool), 1.0, method="spiral")


def _protocol_no_crop():
    return dataclasses.replace(get_protocol("wpunet-2019"), crop=0)


def test_agreement_of_ground_truth_with_itself_is_perfect():
    gt = _grid(5, 20)
    row = score(gt, gt, _protocol_no_crop()).aggregate
    assert row["astm_g_error"] == 0.0 and row["grain_count_ratio"] == 1.0 and row["intercept_js"] == 0.0
    assert set(GRAIN_SIZE_METRICS) <= set(row) and set(get_protocol("wpunet-2019").metrics) <= set(row)


def test_agreement_of_a_finer_grid_from_the_definitions():
    gt = _grid(4, 32)  # 129 px, 16 grains of 31 px chords
    pred = _grid(8, 16)  # same size, 64 grains of 15 px chords
    row = score(pred, gt, _protocol_no_crop()).per_slice.iloc[0]
    assert row["astm_g_error"] == pytest.approx(6.643856 * math.log10(31 / 15), abs=1e-9)
    assert row["grain_count_ratio"] == pytest.approx(64 / 16)
    assert row["intercept_js"] == pytest.approx(1.0)  # all chords 15 vs all 31: disjoint histograms
    direct = grain_size_agreement(pred, gt)
    assert direct["astm_g_error"] == pytest.approx(row["astm_g_error"])
    # no boundary at all: measured as one grain across the image
    empty = score(np.zeros_like(gt), gt, _protocol_no_crop()).per_slice.iloc[0]
    assert empty["astm_g_error"] == pytest.approx(6.643856 * math.log10(129 / 31), abs=1e-9)
    assert empty["grain_count_ratio"] == pytest.approx(1 / 16) and empty["intercept_js"] == 1.0


def test_grain_size_columns_in_the_leaderboard(tmp_path):
    gt = _grid(4, 32)
    records = tmp_path / "records" / "synthetic"
    for model, pred in (("same", gt), ("finer", _grid(8, 16))):
        result = score(pred, gt, "wpunet-2019")
        cfg = {"model": model, "dataset": "synthetic", "split": "test", "protocol": "wpunet-2019@1",
               "preset": "quick", "seed": 0, "mode": None}
        write_record(make_record(config=cfg, protocol=get_protocol("wpunet-2019").to_dict(),
                                 aggregate=result.aggregate, per_slice=result.per_slice.to_dict(orient="records")),
                     records)
    md_path, *_ = build_leaderboards(tmp_path / "records", tmp_path / "out", with_figures=False)["synthetic"]
    md = md_path.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| # |"))
    assert "| astm_g_error | grain_count_ratio |" in header and "`dice_grain`" in md
    same = next(line for line in md.splitlines() if "| same |" in line)
    assert "| 0.0000 | 1.0000 |" in same
