"""score(): post-processing, protocols, per-slice tables, and CPU == CUDA."""

import numpy as np
import pytest
import torch
from _helpers import brute_force_dsb_map
from skimage.measure import label
from skimage.morphology import skeletonize
from sklearn.metrics import adjusted_rand_score

from grainbench.examples import example_pair, labels_to_boundary, voronoi_labels
from grainbench.metrics import (
    boundary_displacement_error,
    boundary_f1,
    dice,
    foreground_iou,
    mask_boundary,
    pixel_accuracy,
)
from grainbench.postprocess import binarize, crop_border, thin_boundary
from grainbench.protocol import (
    Protocol,
    get_protocol,
    list_protocols,
    register_protocol,
)
from grainbench.scoring import score


@pytest.fixture(scope="module")
def stack():
    gts, preds = [], []
    for seed in range(3):
        pred, gt = example_pair((96, 96), 20, seed=seed)
        gts.append(gt)
        preds.append(pred)
    return np.stack(preds), np.stack(gts)


def test_score_matches_reference_pipeline(stack):
    preds, gts = stack
    result = score(preds, gts, "wpunet-2019")
    assert list(result.per_slice["slice"]) == [0, 1, 2]
    for z in range(3):
        # The reference pipeline, written out with scikit-image/scikit-learn.
        from scipy import ndimage as ndi
        b = preds[z] > 0.5
        b = ndi.binary_closing(np.pad(b, 3, mode="edge"), np.ones((3, 3)))[3:-3, 3:-3]
        b = skeletonize(b)[10:-10, 10:-10]
        g = gts[z][10:-10, 10:-10]
        lp, lg = label(~b, connectivity=1), label(~g, connectivity=1)
        row = result.per_slice.iloc[z]
        assert row["ari"] == pytest.approx(adjusted_rand_score(lg.ravel(), lp.ravel()), abs=1e-12)
        assert row["map"] == pytest.approx(brute_force_dsb_map(b, g), abs=1e-12)
        assert row["bf1"] == pytest.approx(boundary_f1(b, g, tolerance=4))
        assert row["bde"] == pytest.approx(boundary_displacement_error(b, g))
        assert row["dice"] == pytest.approx(dice(b, g))
        assert row["vi"] == pytest.approx(row["vi_split"] + row["vi_merge"])
    for k, v in result.aggregate.items():
        assert v == pytest.approx(result.per_slice[k].mean())


def test_crop_equals_scoring_the_cropped_arrays(stack):
    _, gts = stack
    preds = np.roll(gts, 2, axis=2)
    preds[:, :10, :] = True  # garbage in the cropped frame only
    cropped = score(preds, gts).aggregate
    no_crop = Protocol(name="no-crop", version=1, crop=0)
    thinned = thin_boundary(preds, closing_size=1).numpy()  # the reference thins first, then crops
    as_is = Protocol(name="as-is", version=1, crop=0, closing_size=1, skeletonize=False)
    manual = score(thinned[:, 10:-10, 10:-10], gts[:, 10:-10, 10:-10], as_is).aggregate
    assert cropped == pytest.approx(manual)
    assert score(preds, gts, no_crop).aggregate["vi"] != pytest.approx(cropped["vi"])


def test_ground_truth_scores_perfectly_against_itself(stack):
    _, gts = stack
    agg = score(gts, gts).aggregate
    assert agg["vi"] == 0.0 and agg["ari"] == 1.0 and agg["map"] == 1.0
    assert agg["bf1"] == 1.0 and agg["bde"] == 0.0 and agg["dice"] == 1.0
    assert agg["betti0_error"] == 0 and agg["size_js"] == 0.0


def test_flaws_make_scores_worse(stack):
    preds, gts = stack
    agg = score(preds, gts).aggregate
    assert agg["vi"] > 0.05 and agg["ari"] < 1 and agg["map"] < 1


def test_thin_boundary_is_one_pixel_and_idempotent():
    gt = labels_to_boundary(voronoi_labels((64, 64), 10, seed=3))
    thick = np.asarray(thin_boundary(gt)) | np.roll(gt, 1, 0)
    thin = thin_boundary(thick).numpy()
    assert np.array_equal(skeletonize(thin), thin)  # 1 pixel wide
    assert np.array_equal(thin_boundary(thin, closing_size=1).numpy(), thin)


def test_binarize_validates_probabilities():
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.array([[0.2, np.nan]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(np.array([[0.2, 1.5]]))
    with pytest.raises(ValueError, match="binary"):
        binarize(np.array([[0, 3]]))
    assert binarize(np.array([[0, 255]], np.uint8)).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="crop"):
        crop_border(torch.zeros(15, 15), 10)


def test_nan_prediction_is_a_clear_error(stack):
    preds, gts = stack
    bad = preds.copy()
    bad[0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score(bad, gts)
    with pytest.raises(ValueError, match="shape"):
        score(preds[:, :-1], gts)


def test_phase_protocol_scores_masks(rng):
    gt = np.zeros((2, 64, 64), bool)
    gt[:, 20:40, 15:50] = True
    pred = np.roll(gt, 2, axis=2).astype(np.float32) * 0.8
    result = score(pred, gt, "phase-2022")
    row = result.per_slice.iloc[0]
    p = pred[0] > 0.5
    assert row["accuracy"] == pytest.approx(pixel_accuracy(p, gt[0]))
    assert row["iou"] == pytest.approx(foreground_iou(p, gt[0]))
    assert row["bf1"] == 1.0
    assert row["bde"] == pytest.approx(boundary_displacement_error(mask_boundary(p), mask_boundary(gt[0])))
    assert "vi" not in result.aggregate


def test_protocol_registry():
    p = get_protocol("wpunet-2019@1")
    assert p.crop == 10 and p.bf1_tolerance == 4 and p.map_thresholds[0] == 0.5 and p.map_thresholds[-1] == 0.95
    assert {x.name for x in list_protocols()} >= {"wpunet-2019", "phase-2022", "traced-2023"}
    with pytest.raises(KeyError, match="unknown protocol"):
        get_protocol("nope")
    with pytest.raises(KeyError, match="version"):
        get_protocol("wpunet-2019@7")
    with pytest.raises(ValueError, match="already registered"):
        register_protocol(Protocol(name="wpunet-2019", version=2))


def test_traced_protocol_thins_thick_ground_truth():
    gt = labels_to_boundary(voronoi_labels((80, 80), 12, seed=1))
    from scipy import ndimage as ndi
    thick = ndi.binary_dilation(gt, iterations=2)
    traced = score(gt, thick, "traced-2023").aggregate
    plain = score(gt, thick, "wpunet-2019").aggregate
    assert traced["bf1"] == pytest.approx(1.0) and traced["dice"] > 0.6
    assert plain["dice"] < 0.5 < traced["dice"]


@pytest.mark.gpu
def test_cuda_scores_equal_cpu_scores(stack):
    preds, gts = stack
    cpu = score(preds, gts, device="cpu").aggregate
    cuda = score(torch.from_numpy(preds).cuda(), torch.from_numpy(gts).cuda(), device="cuda").aggregate
    assert cuda.keys() == cpu.keys()
    for k in cpu:
        assert cuda[k] == pytest.approx(cpu[k], abs=1e-9), k
