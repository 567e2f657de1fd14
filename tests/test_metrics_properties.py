"""Invariances, perfect scores, hand-made cases and degenerate inputs."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from grainbench.metrics import (
    adjusted_rand_index,
    astm_grain_size_number,
    betti_numbers,
    boundary_displacement_error,
    boundary_f1,
    cldice,
    dice,
    mean_average_precision,
    mean_lineal_intercept,
    variation_of_information,
)

label_maps = arrays(np.int64, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.integers(0, 5))


@settings(max_examples=40, deadline=None)
@given(label_maps, st.data())
def test_vi_and_ari_invariant_to_relabelling(seg, data):
    gt = data.draw(arrays(np.int64, seg.shape, elements=st.integers(0, 4)))
    perm = np.array(data.draw(st.permutations(range(1, 6))))
    # A bijection of non-zero labels onto arbitrary new ids (0 stays 0: it means boundary).
    relabel = np.concatenate([[0], perm * 17 + 3])
    seg2 = relabel[seg]
    assert variation_of_information(seg2, gt) == pytest.approx(variation_of_information(seg, gt), abs=1e-12)
    assert adjusted_rand_index(seg2, gt) == pytest.approx(adjusted_rand_index(seg, gt), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_identical_labels_score_perfectly(seg):
    assert variation_of_information(seg, seg) == (0.0, 0.0)
    assert adjusted_rand_index(seg, seg) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(3, 20), st.integers(3, 20))))
def test_identical_boundaries_score_perfectly(b):
    assert mean_average_precision(b, b) == pytest.approx(1.0)
    assert boundary_f1(b, b) == 1.0
    assert boundary_displacement_error(b, b) == 0.0
    assert dice(b, b) == 1.0


def test_one_grain_split_in_two_is_one_bit_of_split_error():
    gt = np.ones((20, 20), int)
    seg = gt.copy()
    seg[:, 10:] = 2
    split, merge = variation_of_information(seg, gt)
    assert (split, merge) == (pytest.approx(1.0), 0.0)


def test_two_grains_merged_is_one_bit_of_merge_error():
    gt = np.ones((20, 20), int)
    gt[:, 10:] = 2
    seg = np.ones((20, 20), int)
    split, merge = variation_of_information(seg, gt)
    assert (split, merge) == (0.0, pytest.approx(1.0))


def test_uneven_split_matches_entropy():
    gt = np.ones((10, 10), int)
    seg = gt.copy()
    seg[:, 7:] = 2  # 70 / 30 split
    expected = -(0.7 * math.log2(0.7) + 0.3 * math.log2(0.3))
    assert variation_of_information(seg, gt)[0] == pytest.approx(expected)


def test_vi_drops_pixels_that_are_zero_in_either_map():
    gt = np.ones((10, 10), int)
    seg = np.ones((10, 10), int)
    seg[:, 5:] = 2
    gt_with_boundary = gt.copy()
    gt_with_boundary[:, 5:] = 0  # the second half is unlabelled in the truth
    assert variation_of_information(seg, gt_with_boundary) == (0.0, 0.0)


@pytest.mark.parametrize("shift", [1, 3, 4, 5, 7])
def test_shifted_straight_boundary(shift):
    gt = np.zeros((40, 60), bool)
    gt[:, 20] = True
    pred = np.roll(gt, shift, axis=1)
    assert boundary_displacement_error(pred, gt) == pytest.approx(shift)
    assert boundary_f1(pred, gt, tolerance=4) == (1.0 if shift <= 4 else 0.0)


def test_map_one_grain_split_in_two():
    gt = np.zeros((30, 30), bool)
    pred = gt.copy()
    pred[:, 15] = True
    # gt: 1 grain; pred: 2 grains with IoU 14*28/(28*28)=0.5 and 13*28/(28*28)<0.5 -> no TP at any threshold.
    assert mean_average_precision(pred, gt) == 0.0
    gt[:, 15] = True
    assert mean_average_precision(pred, gt) == 1.0


# --- degenerate input -----------------------------------------------------------------------------

def test_all_boundary_prediction_is_defined():
    gt = np.zeros((20, 20), bool)
    gt[:, 10] = True
    pred = np.ones((20, 20), bool)
    assert mean_average_precision(pred, gt) == 0.0
    assert mean_average_precision(pred, pred) == 1.0
    assert variation_of_information(np.zeros((5, 5), int), np.ones((5, 5), int)) == (0.0, 0.0)
    assert 0 < boundary_f1(pred, gt) < 1


def test_single_grain_everywhere():
    one = np.ones((8, 8), int)
    assert adjusted_rand_index(one, one) == 1.0
    assert variation_of_information(one, one) == (0.0, 0.0)


def test_empty_prediction_gives_finite_worst_values():
    gt = np.zeros((30, 40), bool)
    gt[:, 10] = True
    empty = np.zeros_like(gt)
    assert boundary_f1(empty, gt) == 0.0
    bde = boundary_displacement_error(empty, gt)
    assert math.isfinite(bde) and bde == pytest.approx(math.hypot(30, 40))
    assert dice(empty, gt) == 0.0
    assert dice(empty, empty) == 1.0
    assert boundary_f1(empty, empty) == 1.0 and boundary_displacement_error(empty, empty) == 0.0


@pytest.mark.parametrize("fn", [variation_of_information, adjusted_rand_index])
def test_shape_mismatch_is_an_error(fn):
    with pytest.raises(ValueError, match="shape mismatch"):
        fn(np.ones((4, 4), int), np.ones((4, 5), int))
    with pytest.raises(ValueError, match="shape mismatch"):
        boundary_f1(np.ones((4, 4), bool), np.ones((5, 4), bool))


def test_nan_and_wrong_dtypes_are_errors():
    with pytest.raises(ValueError, match="NaN"):
        variation_of_information(np.full((3, 3), np.nan), np.ones((3, 3)))
    with pytest.raises(ValueError, match="binary"):
        boundary_f1(np.full((3, 3), 0.5), np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="dtype"):
        dice(np.array([["a", "b"], ["c", "d"]]), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="negative"):
        adjusted_rand_index(-np.ones((3, 3), int), np.ones((3, 3), int))
    with pytest.raises(ValueError, match="2D image or a 3D"):
        dice(np.ones(5, bool), np.ones(5, bool))


def test_torch_and_numpy_inputs_agree(rng):
    a = rng.integers(0, 6, (30, 30))
    b = rng.integers(0, 6, (30, 30))
    assert variation_of_information(torch.from_numpy(a), torch.from_numpy(b)) == variation_of_information(a, b)
    assert adjusted_rand_index(torch.from_numpy(a), b) == adjusted_rand_index(a, b)


# --- topology and grain size --------------------------------------------------------------------

def test_betti_numbers_of_a_grid():
    b = np.zeros((31, 31), bool)
    b[[0, 10, 20, 30], :] = True
    b[:, [0, 10, 20, 30]] = True
    assert betti_numbers(b) == (1, 9)
    b[15, 10] = False  # a gap in one cell wall: two cells merge, still one network
    assert betti_numbers(b) == (1, 8)
    b[10, 1:10] = False  # cut off a whole wall segment: the piece between junctions is gone
    assert betti_numbers(b) == (1, 7)


def test_cldice_values():
    b = np.zeros((20, 20), bool)
    b[:, 10] = True
    assert cldice(b, b) == pytest.approx(1.0)
    assert cldice(b, np.roll(b, 5, axis=1)) == 0.0


def test_lineal_intercept_and_astm_number():
    b = np.zeros((100, 100), bool)
    b[:, ::10] = True  # vertical lines every 10 px: each row crosses 10 boundaries
    # rows: 100 rows x 10 intercepts; columns: lines along a boundary column count once each (10).
    assert mean_lineal_intercept(b) == pytest.approx(2 * 100 * 100 / (100 * 10 + 10))
    # ASTM E112: a mean intercept of 0.32 mm is grain size number ~0.
    b = np.zeros((64, 64), bool)
    b[:, ::32] = True
    b[::32, :] = True
    l_px = mean_lineal_intercept(b)
    g = astm_grain_size_number(b, pixel_size_um=320.0 / l_px)
    assert g == pytest.approx(-6.643856 * math.log10(0.32) - 3.288) and abs(g) < 0.01
    with pytest.raises(ValueError):
        astm_grain_size_number(np.zeros((5, 5), bool), 1.0)
