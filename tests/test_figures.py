import numpy as np
from PIL import Image

from grainbench.figures import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    error_overlay,
    plot_split_merge,
    save_png,
)


def test_error_overlay_colours_and_png_round_trip(tmp_path):
    image = np.full((20, 20), 0.5)
    gt = np.zeros((20, 20), bool)
    gt[:, 5] = True
    gt[:, 15] = True
    pred = np.zeros_like(gt)
    pred[:, 5] = True          # exact hit
    pred[:, 16] = True         # 1 px off line 15
    pred[3, :] = True          # a spurious scratch
    rgb = error_overlay(image, pred, gt)
    assert tuple(rgb[10, 5]) == TP_COLOUR
    assert tuple(rgb[10, 15]) == FN_COLOUR and tuple(rgb[10, 16]) == FP_COLOUR
    assert tuple(rgb[3, 10]) == FP_COLOUR and tuple(rgb[10, 10]) == (127, 127, 127)
    tolerant = error_overlay(image, pred, gt, tolerance=1)
    assert tuple(tolerant[10, 16]) == TP_COLOUR and tuple(tolerant[10, 15]) != FN_COLOUR
    path = save_png(rgb, tmp_path / "overlay.png")
    assert np.array_equal(np.asarray(Image.open(path)), rgb)


def test_split_merge_plot_written(tmp_path):
    path = plot_split_merge({"a": [(0.1, 0.2), (0.2, 0.1)], "b": [(0.3, 0.05)]}, tmp_path / "vi.png")
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.format == "PNG"


def test_a_colour_slice_keeps_its_colours_under_the_overlay():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 24, 24)).astype(np.uint8)
    gt = np.zeros((24, 24), bool)
    gt[:, 8] = True
    rgb = error_overlay(image, gt, gt)
    assert np.array_equal(rgb[:, 12], np.moveaxis(image, 0, -1)[:, 12])  # untouched pixels: the micrograph's own
    assert tuple(rgb[5, 8]) == TP_COLOUR


def test_worst_window_is_the_brute_force_densest_window():
    from grainbench.figures import worst_window

    rng = np.random.default_rng(1)
    errors = rng.random((40, 50)) < 0.05
    errors[22:30, 31:39] = True  # a cluster
    size = 10
    best = max(((errors[y:y + size, x:x + size].sum(), -y, -x) for y in range(31) for x in range(41)))
    assert worst_window(errors, size) == (-best[1], -best[2])


def test_overlay_figure_is_full_resolution_with_title_and_zoom(tmp_path):
    from grainbench.figures import save_overlay_figure

    image = np.full((300, 400), 0.5)
    gt = np.zeros((300, 400), bool)
    gt[:, 100] = True
    pred = gt.copy()
    pred[200:240, 300:340] = True
    path = save_overlay_figure(image, pred, gt, tmp_path / "o.png", title="unet on x, slice 3; protocol p@1")
    with Image.open(path) as im:
        assert im.size[0] >= 400 + 300 and im.size[1] >= 300  # the whole slice 1:1 plus the crop beside it
        pixels = np.asarray(im.convert("RGB"))
    # the full view is drawn pixel for pixel: the true line is one cyan column, the FP block yellow
    cyan = np.all(pixels == TP_COLOUR, axis=-1)
    yellow = np.all(pixels == FP_COLOUR, axis=-1)
    assert cyan.any() and yellow.sum() >= 40 * 40


def test_split_merge_styles_are_distinct_for_many_methods(tmp_path):
    from grainbench.figures import method_style

    styles = [method_style(i) for i in range(25)]
    assert len({(tuple(c), m) for c, m in styles}) == 25
    rng = np.random.default_rng(2)
    per = {f"m{i}": [tuple(rng.random(2) / 5) for _ in range(6)] for i in range(21)}
    path = plot_split_merge(per, tmp_path / "many.png", title="t")
    with Image.open(path) as im:
        assert im.size[0] > 1000  # room for the legend beside the axes


def test_tracking_colours_follow_the_matched_ground_truth_grain():
    from grainbench.tracking.figures import grain_colours, match_to_reference, matched_colours

    rng = np.random.default_rng(3)
    gt = rng.integers(1, 6, (2, 8, 8))
    perm = np.array([0, 4, 5, 1, 3, 2])
    pred = perm[gt]  # the same grains under other ids
    assert match_to_reference(pred, gt) == {int(perm[g]): g for g in range(1, 6)}
    ref, own = grain_colours(5), matched_colours(pred, gt)
    assert np.array_equal(own[pred], ref[gt])  # equal colours = same grain, voxel by voxel
    # a grain split in two: the larger piece keeps the colour, the other is grey (r == g == b)
    gt2 = np.ones((1, 4, 10), int)
    pred2 = np.where(np.arange(10) < 7, 1, 2)[None, None].repeat(4, axis=1)
    assert match_to_reference(pred2, gt2) == {1: 1}
    c = matched_colours(pred2, gt2)
    assert np.array_equal(c[1], grain_colours(1)[1]) and c[2][0] == c[2][1] == c[2][2]
