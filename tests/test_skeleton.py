"""grainbench's skeleton and device closing against scikit-image and OpenCV, pixel for pixel."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.morphology import skeletonize as skimage_skeletonize

from grainbench.examples import flawed_prediction, labels_to_boundary, voronoi_labels
from grainbench.postprocess import close_boundary, close_boundary_torch, thin_boundary
from grainbench.skeleton import skeletonize, skeletonize_torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def random_images(n, seed=0):
    """Small binary images of every density, some dilated into thick blobs, odd shapes included."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        img = rng.random((h, w)) < rng.random()
        if k % 3 == 0:
            img = ndi.binary_dilation(img, iterations=int(rng.integers(1, 5)))
        yield img


def test_the_skeleton_is_scikit_images_on_random_images():
    for img in random_images(400):
        want = skimage_skeletonize(img)
        assert np.array_equal(skeletonize(img), want)
        assert np.array_equal(skeletonize_torch(torch.from_numpy(img)).numpy(), want)


def test_the_skeleton_is_scikit_images_on_closed_predictions_and_true_boundaries():
    gt = labels_to_boundary(voronoi_labels((256, 256), 60, seed=3))
    prob = flawed_prediction(gt, seed=4)
    thick = close_boundary(prob > 0.5, 3)
    fat = ndi.binary_dilation(gt, iterations=3)  # many sub-iterations
    stack = np.stack([thick, gt, fat])
    for img in stack:
        assert np.array_equal(skeletonize(img), skimage_skeletonize(img))
    batched = skeletonize_torch(torch.from_numpy(stack)).numpy()  # slices that finish early stay put
    assert all(np.array_equal(batched[i], skimage_skeletonize(stack[i])) for i in range(3))


@pytest.mark.parametrize("img", [np.zeros((5, 7), bool), np.ones((6, 4), bool), np.ones((1, 9), bool),
                                 np.ones((9, 1), bool), np.eye(8, dtype=bool), np.ones((0, 3), bool)])
def test_edge_cases_agree(img):
    want = skimage_skeletonize(img) if img.size else img
    assert np.array_equal(skeletonize(img), want)
    assert np.array_equal(skeletonize_torch(torch.from_numpy(img)).numpy(), want)


def test_a_skeleton_is_a_fixed_point_and_nonzero_counts_as_foreground():
    img = ndi.binary_dilation(labels_to_boundary(voronoi_labels((64, 64), 12, seed=1)), iterations=2)
    once = skeletonize(img.astype(np.uint8) * 7)
    assert np.array_equal(once, skimage_skeletonize(img))
    assert np.array_equal(skeletonize(once), once)


def test_three_dimensional_input_is_refused():
    with pytest.raises(ValueError, match="2D"):
        skeletonize(np.zeros((2, 3, 3), bool))
    with pytest.raises(ValueError, match="shape"):
        skeletonize_torch(torch.zeros(1, 2, 3, 3, dtype=torch.bool))


@pytest.mark.parametrize("size", [3, 5])
def test_the_device_closing_is_opencvs(size):
    rng = np.random.default_rng(size)
    imgs = np.stack([rng.random((40, 53)) < p for p in (0.05, 0.3, 0.6)])
    got = close_boundary_torch(torch.from_numpy(imgs), size).numpy()
    for i, img in enumerate(imgs):
        assert np.array_equal(got[i], close_boundary(img, size))
    with pytest.raises(ValueError, match="odd"):
        close_boundary_torch(torch.from_numpy(imgs), 4)


def test_thin_boundary_on_the_cpu_equals_scipy_closing_then_scikit_image():
    prob = flawed_prediction(labels_to_boundary(voronoi_labels((128, 128), 30, seed=5)), seed=6)
    b = prob > 0.5
    closed = ndi.binary_closing(np.pad(b, 3, mode="edge"), np.ones((3, 3)))[3:-3, 3:-3]
    got = thin_boundary(torch.from_numpy(np.stack([b, b.T.copy()])), closing_size=3, workers=2).numpy()
    assert np.array_equal(got[0], skimage_skeletonize(closed))


@CUDA
def test_thin_boundary_stays_on_the_gpu_and_equals_the_cpu():
    prob = flawed_prediction(labels_to_boundary(voronoi_labels((256, 256), 60, seed=7)), seed=8)
    b = torch.from_numpy(np.stack([prob > 0.5, prob.T > 0.5]))
    got = thin_boundary(b.cuda(), closing_size=3)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), thin_boundary(b, closing_size=3))
