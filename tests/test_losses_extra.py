"""BCE + TopoLoss (seed 002) and the tolerant top-hat / normalised-Gaussian scores and losses (seed 003)."""

import importlib.util

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.metrics import boundary_distances, gaussian_score, tophat_score
from grainbench.metrics.tolerant import gaussian_reward_map, tophat_reward_map
from grainbench.training import GaussianLoss, TopHatLoss, TopoLoss, get_loss
from grainbench.training.topoloss import (
    betti_targets,
    persistence_pairs,
    topological_loss,
)

# The topological loss needs gudhi (in the "test" and "topo" extras); the tolerant scores do not.
needs_gudhi = pytest.mark.skipif(importlib.util.find_spec("gudhi") is None, reason="needs gudhi")


def _boundary(size=48, grains=8, seed=1):
    return torch.from_numpy(labels_to_boundary(voronoi_labels((size, size), grains, seed=seed)))[None]


# -- topological loss ------------------------------------------------------------------------------
@needs_gudhi
def test_topo_term_is_zero_when_the_topology_is_the_targets():
    b = _boundary()
    assert float(topological_loss(b.float(), b)) == 0.0
    # 3D targets are scored slice by slice
    vol = torch.stack([b[0], _boundary(seed=2)[0]])[None]
    assert float(topological_loss(vol.float(), vol)) == 0.0
    # A soft prediction with the target's diagram only pays for its distance to (1, 0).
    soft = b.float() * 0.9 + 0.05
    assert 0 < float(topological_loss(soft, b)) < 0.05 * float(b.sum())


@needs_gudhi
def test_betti_targets_match_gudhi_diagrams_of_binary_maps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((14, 17)) < 0.45
        m = np.pad(m, 1, constant_values=True)
        pairs = persistence_pairs(m.astype(float))
        f = m.astype(float).ravel()
        counts = {k: int((f[p[:, 0]] - f[p[:, 1]] > 0.5).sum()) for k, p in pairs.items()}
        assert counts == betti_targets(m)


@needs_gudhi
def test_a_gap_and_a_spurious_fragment_cost_and_get_a_gradient():
    b = _boundary()
    soft = b.float() * 0.9 + 0.05
    ys, xs = np.nonzero(b[0].numpy())
    # A gap: the boundary merges two grains -> one loop short.
    gap = soft.clone()
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    gap[0, y - 1:y + 2, x - 1:x + 2] = torch.minimum(gap[0, y - 1:y + 2, x - 1:x + 2], torch.tensor(0.3))
    gap.requires_grad_(True)
    loss = topological_loss(gap, b)
    loss.backward()
    assert loss.item() > topological_loss(soft, b).item() + 0.1
    # the weakest pixel of the gap is pushed up (negative gradient)
    assert float(gap.grad[0, y - 1:y + 2, x - 1:x + 2].min()) < 0
    # A spurious blob inside a grain (away from the frame too): an extra component pushed to the diagonal.
    framed = np.pad(b[0].numpy(), 1, constant_values=True)
    far = ndi.distance_transform_edt(~framed)[1:-1, 1:-1]
    cy, cx = np.unravel_index(np.argmax(far), far.shape)
    blob = soft.clone()
    blob[0, cy, cx] = 0.8
    blob.requires_grad_(True)
    loss = topological_loss(blob, b)
    loss.backward()
    assert loss.item() > topological_loss(soft, b).item() + 0.2  # 2 * (0.75 / 2)^2 = 0.28
    assert float(blob.grad[0, cy, cx]) > 0  # pushed down


@needs_gudhi
def test_topo_loss_is_bce_plus_lambda_topo():
    b = _boundary(32, 5)
    loss = get_loss("topo")
    assert isinstance(loss, TopoLoss) and loss.lam == 0.04 and loss.pos_weight == 9.0
    logits = torch.randn(1, 2, 32, 32)
    plain = TopoLoss(lam=0.0)(logits, b)
    z = logits[:, 1] - logits[:, 0]
    y = torch.nn.functional.max_pool2d(b.float()[:, None], 5, 1, 2)[:, 0]
    topo = topological_loss(torch.sigmoid(z), y > 0.5)
    assert float(loss(logits, b)) == pytest.approx(float(plain + 0.04 * topo), rel=1e-5)


@pytest.mark.parametrize("name,kw", [("topo", {}), ("tophat", {"radius": 1.5}), ("gaussian", {"sigma": 2.0})])
def test_losses_decrease_in_a_few_steps(name, kw):
    if name == "topo" and importlib.util.find_spec("gudhi") is None:
        pytest.skip("needs gudhi")
    torch.manual_seed(0)
    b = _boundary(32, 5)
    logits = torch.nn.Parameter(0.5 * torch.randn(1, 2, 32, 32))
    opt = torch.optim.Adam([logits], lr=0.1)
    loss_fn = get_loss(name, **kw)
    first = loss_fn(logits, b).item()
    for _ in range(8):
        opt.zero_grad()
        loss = loss_fn(logits, b)
        loss.backward()
        opt.step()
    assert loss_fn(logits, b).item() < first - 1e-3


def test_tolerant_losses_forgive_small_shifts():
    b = torch.zeros(1, 32, 32, dtype=torch.bool)
    b[0, :, 16] = True
    exact = torch.full((1, 2, 32, 32), 0.0)
    exact[:, 0] = 4.0
    exact[0, :, :, 16] = torch.tensor([-4.0, 4.0])[:, None]
    shifted = torch.roll(exact, 1, dims=3)
    far = torch.roll(exact, 8, dims=3)
    for loss in (TopHatLoss(radius=1.0), GaussianLoss(sigma=3.0)):
        e, s, f = float(loss(exact, b)), float(loss(shifted, b)), float(loss(far, b))
        assert e < 0 and e <= s < f
    assert float(TopHatLoss(radius=1.0)(shifted, b)) == pytest.approx(float(TopHatLoss(radius=1.0)(exact, b)))
    assert isinstance(get_loss("tophat", radius=3), TopHatLoss) and get_loss("gaussian", sigma=1).sigma == 1


# -- tolerant metrics against a brute-force implementation of the definitions ---------------------
def _brute(p, gt, kernel, radius, sampling=None, per_slice=False):
    """All-pairs version: w(x) = max over gt y of k(|x-y|), near(x) = max over y of p(y) k(|x-y|)."""
    p = np.asarray(p, float)
    coords = np.argwhere(np.ones(p.shape, bool)).astype(float)
    if sampling is not None:
        coords = coords * np.asarray(sampling, float)
    d = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    if per_slice:
        z = np.argwhere(np.ones(p.shape, bool))[:, 0]
        d = np.where(z[:, None] == z[None], d, np.inf)
    k = np.where(d <= radius, kernel(np.where(np.isfinite(d), d, 0)), 0.0)
    g, pf = gt.ravel(), p.ravel()
    w = k[:, g].max(1) if g.any() else np.zeros(len(pf))
    near = (k * pf[None]).max(1)
    if pf.sum() == 0 and not g.any():
        return 1.0, 1.0, 1.0, float((pf * (2 * w - 1)).mean())
    precision = (pf * w).sum() / pf.sum() if pf.sum() else 0.0
    recall = near[g].mean() if g.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, float((pf * (2 * w - 1)).mean())


def _random_case(rng, shape, soft):
    gt = rng.random(shape) < 0.12
    pred = rng.random(shape) < 0.15
    if soft:
        return pred * rng.random(shape), gt
    return pred, gt


@pytest.mark.parametrize("shape,soft,sampling,per_slice", [
    ((13, 15), False, None, False), ((13, 15), True, None, False), ((4, 9, 10), True, None, False),
    ((4, 9, 10), False, (2.0, 1.0, 1.0), False), ((4, 9, 10), True, None, True),
])
def test_tolerant_scores_match_brute_force(shape, soft, sampling, per_slice):
    rng = np.random.default_rng(len(shape) * 10 + soft)
    for _ in range(3):
        pred, gt = _random_case(rng, shape, soft)
        got = tophat_score(pred, gt, radius=2.0, sampling=sampling, per_slice=per_slice)
        want = _brute(pred, gt, np.ones_like, 2.0, sampling, per_slice)
        np.testing.assert_allclose([got.precision, got.recall, got.f1, got.reward], want, rtol=1e-9, atol=1e-12)
        got = gaussian_score(pred, gt, sigma=1.5, truncate=3.0, sampling=sampling, per_slice=per_slice)
        want = _brute(pred, gt, lambda r: np.exp(-r ** 2 / (2 * 1.5 ** 2)), 3.0, sampling, per_slice)
        np.testing.assert_allclose([got.precision, got.recall, got.f1, got.reward], want, rtol=1e-9, atol=1e-12)


def test_tophat_on_binary_maps_is_the_boundary_f1():
    rng = np.random.default_rng(5)
    for _ in range(5):
        gt = labels_to_boundary(voronoi_labels((40, 40), 6, seed=int(rng.integers(100))))
        pred = np.roll(gt, int(rng.integers(-3, 4)), axis=int(rng.integers(2))) | (rng.random(gt.shape) < 0.01)
        s = tophat_score(pred, gt, radius=2)
        precision, recall, f1 = boundary_distances(pred, gt).f1(2)
        assert (s.precision, s.recall) == pytest.approx((precision, recall))
        assert s.f1 == pytest.approx(f1)


def test_reward_maps_and_edge_cases():
    gt = np.zeros((9, 9), bool)
    gt[:, 4] = True
    r = tophat_reward_map(gt, 1)
    assert set(np.unique(r)) == {-1.0, 1.0} and (r[:, 3:6] == 1).all() and (r[:, :3] == -1).all()
    g = gaussian_reward_map(gt, 3.0)
    assert g[0, 4] == 1.0 and g[0, 5] == pytest.approx(2 * np.exp(-1 / 18) - 1) and g.min() >= -1
    # seed 003's sign: a good prediction has a negative loss, i.e. a positive reward
    assert tophat_score(gt, gt).reward > 0 > tophat_score(np.roll(gt, 4, 1), gt, radius=1).reward
    empty = np.zeros_like(gt)
    assert tophat_score(empty, empty).f1 == 1.0 and gaussian_score(empty, gt).f1 == 0.0
    with pytest.raises(ValueError):
        tophat_score(gt[:5], gt)
    with pytest.raises(ValueError):
        gaussian_score(gt * 2.0, gt)


def test_score_adds_the_gaussian_tolerant_score_only_when_asked():
    from grainbench.scoring import score

    b = labels_to_boundary(voronoi_labels((64, 64), 8, seed=1))[None]
    shifted = np.roll(b, 1, 2)
    assert not any(k.startswith("gauss_") for k in score(shifted, b).aggregate)
    agg = score(shifted, b, tolerant=True).aggregate
    assert {"gauss_precision", "gauss_recall", "gauss_f1"} <= set(agg)
    assert 0.9 < agg["gauss_f1"] < 1.0 and score(b, b, tolerant=True).aggregate["gauss_f1"] == 1.0
