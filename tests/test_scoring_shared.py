"""The shared-work scoring path: labels once per map, slices on threads, the torch labeller; against references."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import brute_force_dsb_map
from scipy import ndimage as ndi
from scipy.spatial.distance import jensenshannon
from skimage.measure import label, regionprops
from skimage.metrics import variation_of_information as skimage_vi
from skimage.morphology import skeletonize
from sklearn.metrics import adjusted_rand_score, rand_score

from grainbench.components import grains_from_boundary, label_components, label_components_torch
from grainbench.examples import example_pair, labels_to_boundary, voronoi_labels
from grainbench.metrics.distance import nearest_distances, slice_distances
from grainbench.metrics.grains import grain_moments, label_moments
from grainbench.metrics.intercept import intercept_lengths, pixel_chords, rows_columns_lengths
from grainbench.metrics.pixels import mask_pixels, transposed
from grainbench.metrics.topology import betti_from_grains
from grainbench.postprocess import close_boundary
from grainbench.protocol import get_protocol
from grainbench.scoring import score
from grainbench.threads import map_threads, scoring_workers, torch_threads, use_workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs():
    preds, gts = [], []
    for seed in range(3):
        pred, gt = example_pair((160, 160), 30, seed=seed)
        preds.append(pred)
        gts.append(gt)
    return np.stack(preds), np.stack(gts)


def _reference_row(prob, gt, protocol):
    """Every standard and extra column of one slice from libraries and definitions (no grainbench metric code)."""
    c = protocol.crop
    b = prob > 0.5
    b = ndi.binary_closing(np.pad(b, 3, mode="edge"), np.ones((3, 3)))[3:-3, 3:-3]
    p = skeletonize(b)[c:-c, c:-c]
    g = gt[c:-c, c:-c]
    lp, lg = label(~p, connectivity=1), label(~g, connectivity=1)
    keep = (lp > 0) & (lg > 0)
    merge, split = skimage_vi(lp[keep], lg[keep])
    d_p = ndi.distance_transform_edt(~g)[p]
    d_g = ndi.distance_transform_edt(~p)[g]
    prec, rec = (d_p <= 4).mean(), (d_g <= 4).mean()

    def betti(x):
        holes, n = ndi.label(~x)
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        return ndi.label(x, structure=np.ones((3, 3)))[1], n - np.count_nonzero(border)

    (p0, p1), (g0, g1) = betti(p), betti(g)
    sp, sg = skeletonize(p), skeletonize(g)
    tprec, tsens = (sp & g).sum() / sp.sum(), (sg & p).sum() / sg.sum()

    def diameters(lab):
        return np.array([np.sqrt(4 * r.area / np.pi) for r in regionprops(lab)])

    def js(a, b_, value_range=None):
        both = np.concatenate([a, b_])
        rng = value_range or (both.min(), both.max())
        hp, edges = np.histogram(a, bins=32, range=rng)
        return jensenshannon(hp, np.histogram(b_, bins=edges)[0], base=2)

    def aspect(lab):
        out = []
        for r in regionprops(lab):
            ev = np.linalg.eigvalsh(np.cov(r.coords.T.astype(float), bias=True)) if r.area > 1 else np.array([1, 1])
            ev = np.maximum(ev, 0)
            out.append(np.sqrt(ev[0] / ev[1]) if ev[1] > 0 else 1.0)
        return np.array(out)

    chords_p, chords_g = intercept_lengths(p, "rows-columns"), intercept_lengths(g, "rows-columns")
    return {
        "vi": split + merge, "vi_split": split, "vi_merge": merge,
        "ari": adjusted_rand_score(lg.ravel(), lp.ravel()), "rand_index": rand_score(lg.ravel(), lp.ravel()),
        "map": brute_force_dsb_map(p, g), "bf1": 2 * prec * rec / (prec + rec), "bde": (d_p.mean() + d_g.mean()) / 2,
        "dice": 2 * (p & g).sum() / (p.sum() + g.sum()), "dice_grain": 2 * (~p & ~g).sum() / ((~p).sum() + (~g).sum()),
        "betti0_error": abs(p0 - g0), "betti1_error": abs(p1 - g1), "cldice": 2 * tprec * tsens / (tprec + tsens),
        "grain_count_pred": lp.max(), "grain_count_gt": lg.max(), "grain_count_ratio": lp.max() / lg.max(),
        "mean_diameter_pred": diameters(lp).mean(), "mean_diameter_gt": diameters(lg).mean(),
        "size_js": js(diameters(lp), diameters(lg)), "shape_js": js(aspect(lp), aspect(lg), (0.0, 1.0)),
        "intercept_js": js(chords_p, chords_g),
        "astm_g_error": abs(6.643856 * np.log10(chords_p.mean() / chords_g.mean())),
    }


def test_every_column_matches_independent_references(pairs):
    preds, gts = pairs
    protocol = get_protocol("wpunet-2019")
    result = score(preds, gts, protocol, metrics="extended")
    for z in range(len(preds)):
        row = result.per_slice.iloc[z]
        for k, v in _reference_row(preds[z], gts[z], protocol).items():
            assert row[k] == pytest.approx(v, abs=1e-9), (z, k)


def test_workers_do_not_change_a_bit(pairs, monkeypatch):
    preds, gts = pairs
    one = score(preds, gts, metrics="extended", tolerant=True, workers=1).per_slice
    three = score(preds, gts, metrics="extended", tolerant=True, workers=3).per_slice
    pd.testing.assert_frame_equal(one, three, check_exact=True)
    monkeypatch.setenv("GRAINBENCH_SCORE_WORKERS", "2")
    pd.testing.assert_frame_equal(one, score(preds, gts, metrics="extended", tolerant=True).per_slice,
                                  check_exact=True)


def test_score_runs_torch_at_one_thread_and_restores_it(pairs, monkeypatch):
    import grainbench.scoring as scoring

    seen = []
    inner = scoring._score_boundary_slice

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(scoring, "_score_boundary_slice", recording)
    before = torch.get_num_threads()
    with torch_threads(2):
        score(pairs[0], pairs[1], workers=2)
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    assert seen == [1, 1, 1]


def test_scoring_workers_precedence(monkeypatch):
    env = {"GRAINBENCH_SCORE_WORKERS": "3", "GRAINBENCH_THREADS": "5"}
    assert scoring_workers(4, env) == 4
    assert scoring_workers(None, env) == 3
    assert scoring_workers(None, {"GRAINBENCH_THREADS": "5"}) == 5
    assert scoring_workers(None, {}) == len(os.sched_getaffinity(0))
    with use_workers(7):
        assert scoring_workers(None, env) == 7
        assert scoring_workers(2, env) == 2
    from grainbench.errors import GrainbenchError

    with pytest.raises(GrainbenchError, match="GRAINBENCH_SCORE_WORKERS"):
        scoring_workers(None, {"GRAINBENCH_SCORE_WORKERS": "0"})
    assert map_threads(lambda x: x * x, range(7), 3) == [x * x for x in range(7)]


@pytest.mark.parametrize("shape", [(40, 50), (1, 30), (6, 7, 8)])
@pytest.mark.parametrize("fill", [0.0, 0.35, 0.55, 1.0])
def test_torch_labeller_equals_scipy(shape, fill):
    rng = np.random.default_rng(len(shape) * 10 + int(fill * 100))
    mask = rng.random(shape) < fill
    for connectivity in range(1, len(shape) + 1):
        ref = ndi.label(mask, structure=ndi.generate_binary_structure(len(shape), connectivity))[0]
        got = label_components_torch(torch.from_numpy(mask), connectivity=connectivity)
        assert got.dtype == torch.int64
        np.testing.assert_array_equal(got.numpy(), ref)


def test_torch_labeller_equals_opencv_on_grain_maps():
    boundary = labels_to_boundary(voronoi_labels((200, 230), 60, seed=3))
    boundary[::37] = False  # gaps that merge grains
    grains = ~boundary
    ours4 = grains_from_boundary(torch.from_numpy(boundary), connectivity=1, backend="torch").numpy()
    cv4 = cv2.connectedComponents(grains.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)[1]
    np.testing.assert_array_equal(ours4, cv4)  # both number components in raster order
    # 8-connected: OpenCV's block-based labeller may number differently; equal up to relabelling
    ours8 = label_components(torch.from_numpy(grains), connectivity=2, backend="torch").numpy()
    cv8 = cv2.connectedComponents(grains.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)[1]
    pairs = np.unique(np.stack([ours8.ravel(), cv8.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    with pytest.raises(ValueError, match="backend"):
        label_components(grains, backend="cucim")


def test_spiral_needs_no_diameter_of_rounds():
    s = np.zeros((101, 101), bool)
    for k in range(0, 50, 2):  # nested squares joined at one corner: one long winding component
        s[k, k:101 - k] = s[100 - k, k:101 - k] = s[k:101 - k, k] = s[k:101 - k, 100 - k] = True
        s[k + 1, k + 1] = k + 2 < 50
    np.testing.assert_array_equal(label_components_torch(torch.from_numpy(s)).numpy(), ndi.label(s)[0])


def test_label_moments_match_per_pixel_sums():
    rng = np.random.default_rng(5)
    lab = rng.integers(0, 6, (37, 41)).astype(np.int32)
    rr, cc = np.mgrid[:37, :41]
    weights = [None, rr, cc, rr * rr, cc * cc, rr * cc]
    for got, w in zip(label_moments(lab), weights):
        ref = np.bincount(lab.ravel(), weights=None if w is None else w.ravel().astype(float))
        np.testing.assert_array_equal(got, ref)


def test_betti_from_grains_matches_scipy():
    rng = np.random.default_rng(2)
    for _ in range(5):
        b = rng.random((30, 40)) < 0.45
        grains = label(~b, connectivity=1)
        holes, n = ndi.label(~b)
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        assert betti_from_grains(b, grains) == (ndi.label(b, structure=np.ones((3, 3)))[1],
                                                n - np.count_nonzero(border))


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_closing_matches_scipy(size):
    rng = np.random.default_rng(size)
    for fill in (0.1, 0.5, 0.8):
        b = rng.random((33, 47)) < fill
        ref = ndi.binary_closing(np.pad(b, size, mode="edge"), np.ones((size, size), bool))[size:-size, size:-size]
        np.testing.assert_array_equal(close_boundary(b, size), ref)


@pytest.mark.slow
def test_benchmark_quick_mode_runs():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "metrics.py"), "--quick"], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    for text in ("VI + ARI, one pair (quiet)", "full protocol, 2 slices (one core busy)", "3-slice stack",
                 "peak memory", "agreement"):
        assert text in out.stdout


@pytest.mark.gpu
def test_cuda_labels_equal_cpu_labels():
    boundary = labels_to_boundary(voronoi_labels((300, 280), 80, seed=1))
    cpu = grains_from_boundary(boundary).numpy()
    cuda = grains_from_boundary(torch.from_numpy(boundary).cuda()).cpu().numpy()
    np.testing.assert_array_equal(cuda, cpu)


def test_mask_pixels_and_transposed_equal_numpy():
    rng = np.random.default_rng(11)
    for shape in [(0, 5), (1, 1), (17, 23), (40, 9)]:
        for fill in (0.0, 0.07, 0.6, 1.0):
            b = rng.random(shape) < fill
            for view in (b, b[::2], b[:, ::3], b.T):
                rows, cols = mask_pixels(view)
                ref = np.nonzero(view)
                assert rows.dtype == ref[0].dtype == cols.dtype
                np.testing.assert_array_equal(rows, ref[0])
                np.testing.assert_array_equal(cols, ref[1])
                t = transposed(view)
                assert t.dtype == bool and t.flags.c_contiguous
                np.testing.assert_array_equal(t, view.T)


def test_grain_moments_equal_label_moments():
    rng = np.random.default_rng(12)
    for _ in range(60):
        h, w = rng.integers(1, 40, 2)
        b = rng.random((h, w)) < rng.choice([0.0, 0.05, 0.3, 0.7, 1.0])
        for connectivity in (1, 2):
            lab = label_components(~b, connectivity=connectivity).numpy().astype(np.int32)
            got, ref = grain_moments(lab, mask_pixels(b)), label_moments(lab)
            for x, y in zip(got, ref):
                assert x.dtype == np.float64 and x[0] == 0
                np.testing.assert_array_equal(x[1:], y[1:])


def test_pixel_chords_and_rows_columns_lengths_equal_a_scan():
    rng = np.random.default_rng(13)
    for _ in range(40):
        b = rng.random(tuple(rng.integers(1, 30, 2))) < rng.choice([0.05, 0.3, 0.8])
        for view, rows_first in ((b, True), (b.T, False)):
            ref = []  # chords by a scan of every row: runs of grain between two boundary pixels, > 2 px
            for i, line in enumerate(view):
                on = np.flatnonzero(line)
                ref += [(i, a + 1, z) for a, z in zip(on[:-1], on[1:]) if z - a - 1 > 2]
            got = pixel_chords(*mask_pixels(view))
            assert [tuple(map(int, t)) for t in zip(*got)] == ref
        rows, cols = rows_columns_lengths(mask_pixels(b), mask_pixels(transposed(b)))
        np.testing.assert_array_equal(np.concatenate([rows, cols]), intercept_lengths(b, "rows-columns"))


def test_slice_distances_equal_distance_transforms():
    rng = np.random.default_rng(14)
    for fill_t, fill_q in ((0.002, 0.05), (0.05, 0.05), (0.0, 0.1), (0.3, 0.0)):
        t = rng.random((70, 90)) < fill_t
        q = rng.random((70, 90)) < fill_q
        got = slice_distances(torch.from_numpy(t), mask_pixels(t), mask_pixels(q), radius=4)
        if t.any():  # the nearest pixel from scipy's feature transform, its distance correctly rounded
            rows, cols = ndi.distance_transform_edt(~t, return_distances=False, return_indices=True)
            rr, cc = np.nonzero(q)
            ref = np.sqrt((rows[q] - rr) ** 2 + (cols[q] - cc) ** 2.0)
        else:
            ref = np.full(q.sum(), np.inf)
        # (the ring table's torch square roots can be one ulp from numpy's: equal to 1e-15 here, exactly below)
        np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(got.numpy(), nearest_distances(torch.from_numpy(t), torch.from_numpy(q),
                                                                     radius=4).numpy())
