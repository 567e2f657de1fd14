"""Metrics against independent references: scikit-image, scikit-learn, scipy and brute force."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from _helpers import (
    brute_force_bde,
    brute_force_bf1,
    brute_force_distances,
    brute_force_dsb_map,
    partition_boundary,
    random_partition,
)
from scipy.spatial.distance import jensenshannon
from skimage.measure import label, regionprops
from skimage.metrics import variation_of_information as skimage_vi
from sklearn.metrics import adjusted_rand_score, f1_score

from grainbench.metrics import (
    adjusted_rand_index,
    boundary_displacement_error,
    boundary_f1,
    dice,
    distribution_distance,
    grain_properties,
    mean_average_precision,
    variation_of_information,
)
from grainbench.metrics.distance import nearest_distances
from grainbench.metrics.rand import ari_from_counts


def _masked_skimage_vi(seg, gt):
    keep = (seg != 0) & (gt != 0)
    merge, split = skimage_vi(seg[keep], gt[keep])  # skimage: (H(gt|seg), H(seg|gt))
    return split, merge


@pytest.mark.parametrize("shape", [(64, 64), (5, 32, 40)])
def test_vi_matches_skimage_on_masked_pixels(rng, shape):
    for _ in range(5):
        seg = rng.integers(0, 8, size=shape)
        gt = rng.integers(0, 5, size=shape)
        split, merge = variation_of_information(seg, gt)
        ref_split, ref_merge = _masked_skimage_vi(seg, gt)
        assert split == pytest.approx(ref_split, abs=1e-10)
        assert merge == pytest.approx(ref_merge, abs=1e-10)


def test_vi_on_grain_maps_matches_skimage(rng):
    gt = label(~partition_boundary(random_partition(rng, (96, 96), 20)), connectivity=1)
    seg = label(~partition_boundary(random_partition(rng, (96, 96), 25)), connectivity=1)
    split, merge = variation_of_information(seg, gt)
    assert (split, merge) == pytest.approx(_masked_skimage_vi(seg, gt), abs=1e-10)
    assert split > 0 and merge > 0


def test_vi_large_sparse_labels_match_skimage(rng):
    # Label values far apart force the sort-based (non-dense) contingency path.
    seg = rng.integers(0, 50, size=(60, 60)) * 1_000_003
    gt = rng.integers(0, 40, size=(60, 60)) * 999_983
    # skimage builds a dense-shaped sparse matrix from the raw values: give it compact ids (VI is
    # invariant to relabelling; 0 stays 0).
    compact = [np.unique(x, return_inverse=True)[1].reshape(x.shape) for x in (seg, gt)]
    assert variation_of_information(seg, gt) == pytest.approx(_masked_skimage_vi(*compact), abs=1e-10)


@pytest.mark.parametrize("shape", [(50, 70), (4, 20, 30)])
def test_ari_matches_sklearn(rng, shape):
    for k in (2, 5, 30):
        seg = rng.integers(0, k, size=shape)
        gt = rng.integers(0, 4, size=shape)
        gt[seg == 1] = 7  # some structure, so the score is not ~0 every time
        assert adjusted_rand_index(seg, gt) == pytest.approx(adjusted_rand_score(gt.ravel(), seg.ravel()),
                                                             abs=1e-12)


def test_ari_counts_boundary_pixels_as_a_cluster(rng):
    gt = label(~partition_boundary(random_partition(rng, (64, 64), 12)), connectivity=1)
    seg = label(~partition_boundary(random_partition(rng, (64, 64), 14)), connectivity=1)
    assert adjusted_rand_index(seg, gt) == pytest.approx(adjusted_rand_score(gt.ravel(), seg.ravel()), abs=1e-12)


def test_ari_float64_has_no_overflow_on_billion_voxel_counts():
    # Two clusters of ~3e9 voxels each: n_ij*(n_ij-1)/2 overflows int64 sums; the exact value
    # from Python integers must match.
    cells = [3_000_000_000, 1_000_000_000, 500_000_000, 2_500_000_000]  # 2x2 table, row-major
    rows = [cells[0] + cells[1], cells[2] + cells[3]]
    cols = [cells[0] + cells[2], cells[1] + cells[3]]
    n = sum(cells)

    def c2(x):
        return Fraction(x * (x - 1), 2)

    s_ij, s_a, s_b = sum(map(c2, cells)), sum(map(c2, rows)), sum(map(c2, cols))
    expected = s_a * s_b / c2(n)
    exact = float((s_ij - expected) / ((s_a + s_b) / 2 - expected))
    got = ari_from_counts(torch.tensor(cells, dtype=torch.float64), torch.tensor(rows, dtype=torch.float64),
                          torch.tensor(cols, dtype=torch.float64))
    assert got == pytest.approx(exact, rel=1e-9)
    # An int64 accumulation would be wrong here: the sum of row pair counts overflows int64.
    assert sum(c * (c - 1) // 2 for c in rows) > np.iinfo(np.int64).max


@pytest.mark.parametrize("seed", range(4))
def test_map_matches_brute_force_loop(seed):
    rng = np.random.default_rng(seed)
    gt = partition_boundary(random_partition(rng, (80, 80), 15))
    pred = partition_boundary(random_partition(rng, (80, 80), 18)) if seed % 2 else gt.copy()
    pred[rng.integers(0, 80, 30), rng.integers(0, 80, 30)] = True  # spurious pixels
    pred[20:30, 20:30] = False  # a gap
    assert mean_average_precision(pred, gt) == pytest.approx(brute_force_dsb_map(pred, gt), abs=1e-12)


@pytest.mark.parametrize("tol", [0, 1, 2.5, 4])
def test_bf1_and_bde_match_brute_force(rng, tol):
    gt = partition_boundary(random_partition(rng, (40, 48), 6))
    pred = np.roll(gt, 2, axis=0)
    pred[rng.integers(0, 40, 20), rng.integers(0, 48, 20)] = True
    assert boundary_f1(pred, gt, tolerance=tol) == pytest.approx(brute_force_bf1(pred, gt, tol), abs=1e-12)
    assert boundary_displacement_error(pred, gt) == pytest.approx(brute_force_bde(pred, gt), abs=1e-9)


@pytest.mark.parametrize("backend", ["kdtree", "torch"])
@pytest.mark.parametrize("radius", [0, 2, 8])
def test_nearest_distances_match_brute_force(rng, backend, radius):
    target = rng.random((3, 30, 35)) < 0.03
    target[2] = False  # an empty slice: distances are inf there
    query = rng.random((3, 30, 35)) < 0.1
    got = nearest_distances(torch.from_numpy(target), torch.from_numpy(query), backend=backend,
                            radius=radius).numpy()
    ref = np.concatenate([brute_force_distances(t, q) for t, q in zip(target, query)])
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_dice_matches_sklearn_f1(rng):
    a = rng.random((50, 50)) < 0.2
    b = rng.random((50, 50)) < 0.3
    assert dice(a, b) == pytest.approx(f1_score(b.ravel(), a.ravel()), abs=1e-12)


def test_grain_properties_match_regionprops(rng):
    labels = label(~partition_boundary(random_partition(rng, (120, 100), 25)), connectivity=1)
    table = grain_properties(labels).set_index("label")
    props = regionprops(labels)
    assert len(table) == len(props)
    for p in props:
        row = table.loc[p.label]
        assert row["area"] == p.area
        assert row["equivalent_diameter"] == pytest.approx(p.equivalent_diameter_area, rel=1e-12)
        if p.axis_major_length > 0:
            assert row["aspect_ratio"] == pytest.approx(p.axis_minor_length / p.axis_major_length, abs=1e-9)
        assert (row["centroid_row"], row["centroid_col"]) == pytest.approx(p.centroid, abs=1e-9)


def test_distribution_distance_matches_definition(rng):
    a = rng.normal(10, 2, 300)
    b = rng.normal(12, 3, 200)
    edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 21)
    p, _ = np.histogram(a, edges)
    q, _ = np.histogram(b, edges)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x, y):
        nz = x > 0
        return np.sum(x[nz] * np.log2(x[nz] / y[nz]))

    ref = math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m))
    assert distribution_distance(a, b, bins=edges) == pytest.approx(ref, abs=1e-12)
    assert ref == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_volumetric_distances_match_brute_force(rng):
    target = rng.random((6, 12, 14)) < 0.05
    query = rng.random((6, 12, 14)) < 0.1
    got = nearest_distances(torch.from_numpy(target), torch.from_numpy(query), per_slice=False).numpy()
    np.testing.assert_allclose(got, brute_force_distances(target, query), atol=1e-9)
    assert boundary_displacement_error(query, target, per_slice=False) == pytest.approx(
        brute_force_bde(query, target), abs=1e-9)


def test_stack_map_is_mean_of_slices(rng):
    gts = np.stack([partition_boundary(random_partition(rng, (40, 40), 6)) for _ in range(3)])
    preds = np.stack([partition_boundary(random_partition(rng, (40, 40), 7)) for _ in range(3)])
    expected = np.mean([brute_force_dsb_map(p, g) for p, g in zip(preds, gts)])
    assert mean_average_precision(preds, gts) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_grain_labels_match_skimage(rng, connectivity):
    from grainbench.components import grains_from_boundary, label_components

    boundary = rng.random((3, 40, 50)) < 0.35
    ours = grains_from_boundary(boundary, connectivity=connectivity).numpy()
    for z in range(3):
        ref = label(~boundary[z], connectivity=connectivity)
        assert ours[z].max() == ref.max()
        # Same partition: every (ours, ref) label pair is one-to-one.
        pairs = np.unique(np.stack([ours[z].ravel(), ref.ravel()]), axis=1)
        assert pairs.shape[1] == ref.max() + 1
    volume = label_components(~boundary, connectivity=1, per_slice=False).numpy()
    assert volume.max() == label(~boundary, connectivity=1).max()
