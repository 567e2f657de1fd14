"""Training engine: losses (ABW against a direct transcription of eq. 1-5), sampling, presets,
checkpoints and resuming."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from grainbench.data.volume import Volume
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.methods import create_model
from grainbench.training import (
    ABWLoss,
    BCELoss,
    CBWLoss,
    DiceLoss,
    PatchSampler,
    abw_weight_maps,
    get_loss,
    get_preset,
    load_checkpoint,
    save_checkpoint,
)


def _stack(z=6, size=64, seed=0):
    labels = np.stack([voronoi_labels((size, size), 12, seed=seed + k // 2) for k in range(z)])
    boundary = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.clip(0.8 - 0.5 * ndi.gaussian_filter(boundary.astype(np.float32), (0, 1, 1)) * 3
                    + rng.normal(0, 0.03, boundary.shape), 0, 1).astype(np.float32)
    return Volume(image, labels, boundary, serial=True, name="voronoi")


# -- losses ------------------------------------------------------------------------------
def _abw_reference(boundary, w0=10.0, gamma=2.58, bw=30.0):
    """Eq. 3-5 grain by grain, as the authors' caculate_weight_map loops over regionprops."""
    labels, n = ndi.label(~boundary, structure=ndi.generate_binary_structure(2, 1))
    dist = ndi.distance_transform_edt(~boundary)
    w_bck = np.ones(boundary.shape)
    w_obj = boundary * bw
    for i in range(1, n + 1):
        g = labels == i
        m = dist[g].max()
        s = m / gamma + 1e-20
        w_obj[g] += w0 * np.exp(-dist[g] ** 2 / (2 * s * s))
        w_bck[g] += w0 * np.exp(-(m - dist[g]) ** 2 / (2 * s * s))
    return w_bck, w_obj


def test_abw_weight_maps_match_the_equations():
    b = labels_to_boundary(voronoi_labels((64, 64), 10, seed=3))
    w_bck, w_obj = abw_weight_maps(b)
    ref_bck, ref_obj = _abw_reference(b)
    np.testing.assert_allclose(w_bck, ref_bck, rtol=1e-5)
    np.testing.assert_allclose(w_obj, ref_obj, rtol=1e-5)
    assert w_obj[b].min() == 30.0 and w_bck[b].max() == 1.0  # class weights on the boundary
    with pytest.raises(ValueError):
        abw_weight_maps(np.zeros((2, 4, 4), bool))


@pytest.mark.parametrize("name", ["abw", "cbw", "bce", "dice"])
def test_losses_reward_the_right_answer(name):
    b = torch.from_numpy(labels_to_boundary(voronoi_labels((48, 48), 8, seed=1)))[None]
    loss = get_loss(name)
    good_target = torch.nn.functional.max_pool2d(b.float()[:, None], 5, 1, 2)[:, 0]
    good = torch.stack([-6 * good_target + 3, 6 * good_target - 3], 1)
    assert float(loss(good, b)) < float(loss(-good, b))
    assert float(loss(good, b)) < float(loss(torch.zeros_like(good), b))
    with pytest.raises(ValueError):
        loss(good[:, :1], b)


def test_abw_scores_tolerantly_and_cbw_uses_authors_weights():
    b = torch.zeros(1, 32, 32, dtype=torch.bool)
    b[0, :, 16] = True
    shifted = torch.zeros(1, 2, 32, 32)
    shifted[:, 0] = 3.0
    shifted[0, :, :, 17] = torch.tensor([-3.0, 3.0])[:, None]  # boundary predicted 1 px off
    exact = torch.zeros(1, 2, 32, 32)
    exact[:, 0] = 3.0
    exact[0, :, :, 16] = torch.tensor([-3.0, 3.0])[:, None]
    abw = ABWLoss()
    # A 1-pixel shift inside the dilated band costs little under ABW.
    assert float(abw(shifted, b)) < 3 * float(abw(exact, b)) + 0.5
    assert CBWLoss().weights == (1.0, 20.0) and ABWLoss().dilate == 5
    assert isinstance(get_loss("bce"), BCELoss) and isinstance(get_loss("dice"), DiceLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("focal")


# -- presets -----------------------------------------------------------------------------
def test_paper_preset_is_the_published_schedule():
    p = get_preset("paper")
    assert (p.optimizer, p.lr, p.alpha, p.eps, p.batch_size, p.epochs) == ("rmsprop", 1e-4, 0.9, 1e-5, 24, 500)
    assert (p.loss, p.init, p.select, p.patch_size, p.width) == ("abw", "xavier", "val_loss", 256, None)
    assert p.lr_at(0) == p.lr_at(9) == 1e-4
    assert math.isclose(p.lr_at(10), 8e-5)
    lrs = [p.lr_at(e) for e in range(500)]
    assert min(lrs) >= 1e-6 and min(lrs) < 1.3e-6 and lrs == sorted(lrs, reverse=True)
    assert get_preset("quick", epochs=1).epochs == 1
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("slow")


# -- sampling ----------------------------------------------------------------------------
def test_sampler_carries_the_previous_mask_and_is_seeded():
    vol = _stack()
    s = PatchSampler(vol, 32, context="2d+prev", seed=1, augment=False)
    batch = s.sample(16)
    assert batch.image.shape == (16, 1, 32, 32) and batch.prev.shape == batch.boundary.shape == (16, 32, 32)
    # Without augmentation each patch is a literal crop: find it and check its predecessor.
    for img, bnd, prev in zip(batch.image[:4, 0], batch.boundary[:4], batch.prev[:4]):
        hits = [(z, y, x) for z in range(1, 6) for y in range(33) for x in range(33)
                if np.array_equal(vol.image[z, y:y + 32, x:x + 32], img)]
        z, y, x = hits[0]
        assert np.array_equal(vol.boundary[z - 1, y:y + 32, x:x + 32], prev)
        assert np.array_equal(vol.boundary[z, y:y + 32, x:x + 32], bnd)
    a = PatchSampler(vol, 32, context="2d+prev", seed=7).sample(4)
    b = PatchSampler(vol, 32, context="2d+prev", seed=7).sample(4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.prev, b.prev)
    # Augmentation transforms image, boundary and previous mask together.
    aug = PatchSampler(vol, 32, context="2d+prev", seed=3).sample(8)
    dark = aug.image[:, 0] < 0.6
    assert (dark & aug.boundary).sum() > 0.5 * aug.boundary.sum()
    assert PatchSampler(vol, 32, context="2.5d", depth=1).sample(2).image.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="exceeds"):
        PatchSampler(vol, 128)


# -- checkpoints and resuming ----------------------------------------------------------------
TINY = dict(width=4, patch_size=32, batch_size=4, patches_per_epoch=8, epochs=3, val_patches=4)


def test_checkpoint_roundtrip_uses_weights_only(tmp_path):
    path = tmp_path / "ck.pt"
    digest = save_checkpoint(path, {"x": torch.arange(3), "meta": {"a": 1.5, "b": "s"}})
    assert len(digest) == 64 and [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    state = load_checkpoint(path)
    assert state["x"].tolist() == [0, 1, 2] and state["meta"] == {"a": 1.5, "b": "s"}
    torch.save({"evil": Path("x")}, tmp_path / "pickle.pt")  # arbitrary objects are refused
    with pytest.raises(Exception):
        load_checkpoint(tmp_path / "pickle.pt")
    with pytest.raises(Exception, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_training_lowers_the_loss_and_resume_continues_from_the_same_step(tmp_path):
    vol = _stack()
    train, val = Volume(vol.image[:4], None, vol.boundary[:4], True), Volume(vol.image[4:], None, vol.boundary[4:], True)
    full = create_model("wpunet")
    r_full = full.fit(train, val, preset="quick", seed=5, progress=False, checkpoint_dir=tmp_path / "a", **TINY)
    assert r_full.history["train_loss"][-1] < r_full.history["train_loss"][0]
    assert r_full.preset == "quick" and r_full.config["preset"]["name"] == "quick"
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "last.pt").exists()

    part = create_model("wpunet")
    r1 = part.fit(train, val, preset="quick", seed=5, progress=False, checkpoint_dir=tmp_path / "b",
                  max_epochs=1, num_workers=0, **TINY)  # "interrupted" after one epoch, crops cut in-process
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert r1.epochs == 1 and state["step"] == r1.steps == 2 and state["data_position"] == {"epoch": 1, "index": 0}
    resumed = create_model("wpunet")
    r2 = resumed.fit(train, val, preset="quick", seed=5, progress=False, checkpoint_dir=tmp_path / "b",
                     num_workers=1, **TINY)  # resumed with a worker process: the same crops
    assert r2.steps == r_full.steps == 6 and r2.history["train_loss"][0] == r1.history["train_loss"][0]
    assert r2.history == r_full.history  # bit for bit
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k

    # A trained method saves and loads back; another configuration refuses to resume.
    full.save(tmp_path / "m.pt")
    again = create_model("wpunet").load(tmp_path / "m.pt")
    img = vol.image[4:5]
    np.testing.assert_allclose(again.predict(img, vol.boundary[3:4]), full.predict(img, vol.boundary[3:4]), atol=1e-6)
    assert again.preset == "quick" and again.config()["width"] == 4
    with pytest.raises(ValueError, match="another configuration"):
        create_model("wpunet").fit(train, val, preset="quick", seed=6, progress=False,
                                   checkpoint_dir=tmp_path / "b", **TINY)
    with pytest.raises(ValueError, match="checkpoint of method"):
        create_model("unet").load(tmp_path / "m.pt")


def test_abw_weight_maps_are_computed_once_per_target(monkeypatch):
    import grainbench.training.losses as losses_mod

    calls = []
    real = losses_mod.abw_weight_maps
    monkeypatch.setattr(losses_mod, "abw_weight_maps", lambda b, **kw: calls.append(1) or real(b, **kw))
    target = torch.zeros(2, 16, 16, dtype=torch.bool)
    target[:, 8, :] = True
    logits = torch.randn(2, 2, 16, 16)
    loss = ABWLoss()
    first = loss(logits, target)
    assert len(calls) == 2  # one per slice of the batch
    assert torch.equal(loss(logits * 0.5, target), ABWLoss()(logits * 0.5, target))
    assert len(calls) == 2 + 2  # the cached maps served the second output; the fresh loss computed its own
    target[:, 4, :] = True  # changed in place: the maps must follow
    assert not torch.equal(loss(logits, target), first)
    assert len(calls) == 6
