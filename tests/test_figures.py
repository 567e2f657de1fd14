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
