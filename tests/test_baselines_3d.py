"""3D engines (sampler, losses, tiling, training, evaluation) and the 3D baselines: 3D U-Net and FC-DenseNet 3D."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from torch import nn

from grainbench.baselines.fc_densenet3d import JEGOU_PARAMETERS_M, FCDenseNet3DNet
from grainbench.baselines.unet3d import CICEK_PARAMETERS, UNet3DNet
from grainbench.data.synthetic import generate_synthetic
from grainbench.data.volume import Volume
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.inference import evaluate, predict_volume, tile_predict_3d
from grainbench.methods import create_model
from grainbench.training import PatchSampler, get_loss, get_preset
from grainbench.training.losses import LOSSES


def _stack(z=8, size=40, seed=0):
    labels = np.stack([voronoi_labels((size, size), 8, seed=seed + k // 3) for k in range(z)])
    boundary = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.clip(0.8 - 0.6 * boundary + rng.normal(0, 0.03, boundary.shape), 0, 1).astype(np.float32)
    return Volume(image, labels, boundary, serial=True, name="voronoi")


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- parameter counts at paper width ---------------------------------------------------------------
def test_unet3d_parameters_match_cicek_et_al():
    # Çiçek et al. 2016, Section 2: 19,069,955 parameters (3 channels in, 3 classes, no residual paths),
    # counting convolution weights and biases and the up-convolutions' weights (no batch-norm affines).
    net = UNet3DNet(3, 3, width=32, residual=False)
    counted = sum(p.numel() for m in net.modules() if isinstance(m, nn.Conv3d) for p in m.parameters())
    counted += sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.ConvTranspose3d))
    assert counted == CICEK_PARAMETERS == 19_069_955
    m = create_model("unet3d")
    assert m.context == "3d" and m.num_parameters() == 19_505_282
    assert create_model("unet3d", width=16).num_parameters() == 4_878_914


def test_fc_densenet_layout_matches_jegou_et_al():
    # The same code in 2D against Jégou et al. 2017, Table 2 (3 channels in, 11 classes), counting the
    # batch-norm running statistics like Lasagne: FC-DenseNet103 9.4M, FC-DenseNet67 3.5M.
    for variant in ("103", "67"):
        net = FCDenseNet3DNet(3, 11, variant, dims=2)
        bn = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
        assert round((_params(net) + 2 * bn) / 1e6, 1) == JEGOU_PARAMETERS_M[variant]
    m = create_model("fc_densenet3d")
    assert m.context == "3d" and m.num_parameters() == 26_166_626
    assert create_model("fc_densenet3d", width=16).num_parameters() == 2_592_329


# -- networks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("net", [
    lambda: UNet3DNet(1, 2, width=4), lambda: UNet3DNet(1, 2, width=4, z_pools=1, residual=False),
    lambda: FCDenseNet3DNet(1, 2, "56", width=8), lambda: FCDenseNet3DNet(1, 2, "103", width=6, z_pools=2),
])
def test_networks_map_any_volume_to_two_class_logits(net):
    n = net().eval()
    with torch.no_grad():
        for shape in ((2, 1, 8, 32, 32), (1, 1, 5, 20, 19), (1, 1, 4, 24, 40)):
            assert n(torch.randn(shape)).shape == (shape[0], 2, *shape[2:])


@pytest.mark.parametrize("name", ["unet3d", "fc_densenet3d"])
def test_a_3d_training_step_lowers_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    m = create_model(name, width=4, device="cpu")
    batch = PatchSampler(_stack(), 16, context="3d", patch_depth=4, seed=0).sample(2)
    x, y = m.batch_to_input(batch, torch.device("cpu"))
    assert x.shape == (2, 1, 4, 16, 16) and y.shape == (2, 4, 16, 16)
    net = m.net.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = get_loss("cbw")
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# -- sampler ---------------------------------------------------------------------------------------------
def test_3d_sampler_cuts_sub_volumes_and_augments_image_and_boundary_together():
    vol = _stack(z=8)
    s = PatchSampler(vol, 16, context="3d", patch_depth=4, seed=1, augment=False)
    assert s.n_slices == 2
    batch = s.sample(6)
    assert batch.image.shape == (6, 1, 4, 16, 16) and batch.boundary.shape == (6, 4, 16, 16)
    assert batch.prev is None and batch.boundary.dtype == bool
    for img, bnd in zip(batch.image[:3, 0], batch.boundary[:3]):
        hits = [(z, y, x) for z in range(5) for y in range(25) for x in range(25)
                if np.array_equal(vol.image[z:z + 4, y:y + 16, x:x + 16], img)]
        z, y, x = hits[0]
        assert np.array_equal(vol.boundary[z:z + 4, y:y + 16, x:x + 16], bnd)
    aug = PatchSampler(vol, 16, context="3d", patch_depth=4, seed=3).sample(16)
    dark = aug.image[:, 0] < 0.5
    assert np.array_equal(dark, aug.boundary)  # the image is dark exactly on boundaries: same transform
    a = PatchSampler(vol, 16, context="3d", patch_depth=4, seed=7).sample(3)
    b = PatchSampler(vol, 16, context="3d", patch_depth=4, seed=7).sample(3)
    assert np.array_equal(a.image, b.image)
    with pytest.raises(ValueError, match="patch depth"):
        PatchSampler(vol, 16, context="3d", patch_depth=9)
    assert get_preset("paper").patch_depth == 16


# -- losses on 3D targets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_on_3d_patches_equal_the_losses_of_their_slices(name):
    if name == "topo":
        pytest.importorskip("gudhi")
    torch.manual_seed(0)
    target = torch.from_numpy(_stack(z=6, size=24).boundary).reshape(2, 3, 24, 24)
    logits = torch.randn(2, 2, 3, 24, 24)
    loss = get_loss(name)
    flat_logits = logits.permute(0, 2, 1, 3, 4).reshape(6, 2, 24, 24)
    assert float(loss(logits, target)) == pytest.approx(float(loss(flat_logits, target.reshape(6, 24, 24))),
                                                        rel=1e-5)


# -- 3D tiling ---------------------------------------------------------------------------------------------
def test_tile_predict_3d_stitches_tile_centres_exactly():
    rng = np.random.default_rng(0)
    x = rng.random((1, 11, 37, 30)).astype(np.float32)
    ident = tile_predict_3d(lambda t: t[:, 0], x, tile=16, margin=2, tile_depth=6, margin_depth=1, batch_size=3)
    np.testing.assert_array_equal(ident, x[0])
    # A 3 x 3 x 3 mean needs 1 voxel of context: with margins >= 1 tiling changes nothing, and the
    # mirrored borders are numpy's "reflect" (scipy's "mirror").
    mean = tile_predict_3d(lambda t: torch.nn.functional.avg_pool3d(t, 3, 1, 1)[:, 0], x, tile=12, margin=1,
                           tile_depth=4, margin_depth=1)
    np.testing.assert_allclose(mean, ndi.uniform_filter(x[0], 3, mode="mirror"), atol=1e-6)
    one = tile_predict_3d(lambda t: t[:, 0], x[:, :1], tile=16, margin=2)  # a single slice
    np.testing.assert_array_equal(one, x[0, :1])
    with pytest.raises(ValueError):
        tile_predict_3d(lambda t: t[:, 0], x[0], tile=16, margin=2)
    with pytest.raises(ValueError):
        tile_predict_3d(lambda t: t[:, 0], x, tile=16, margin=2, tile_depth=4, margin_depth=2)


def test_3d_method_predicts_like_one_forward_pass_when_a_tile_holds_the_volume():
    torch.manual_seed(0)
    m = create_model("unet3d", width=4, device="cpu", tile=48, margin=8, tile_depth=16, margin_depth=4)
    vol = _stack(z=8, size=32)
    prob = predict_volume(m, vol).prob
    assert prob.shape == vol.image.shape and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
    x = torch.from_numpy((vol.image - m.norm[0]) / m.norm[1])[None, None]
    with torch.no_grad():
        whole = torch.softmax(m.net.eval()(x), 1)[0, 1].numpy()
    # one tile, mirrored margins: the interior far from the borders sees the same data
    np.testing.assert_allclose(prob[2:-2, 8:-8, 8:-8], whole[2:-2, 8:-8, 8:-8], atol=0.05)


# -- end to end ----------------------------------------------------------------------------------------------
TINY = dict(epochs=1, patches_per_epoch=4, patch_size=32, patch_depth=8, batch_size=2, val_patches=2)


@pytest.mark.parametrize("name", ["unet3d", "fc_densenet3d"])
def test_quick_fit_and_evaluate_on_a_generated_volume(name, tmp_path):
    data = generate_synthetic(seed=0, shape=(16, 64, 64))
    image = data["image"].astype(np.float32) / 255.0

    def split(a, b, tag):
        return Volume(image[a:b], data["labels"][a:b], data["boundary"][a:b], True, f"synthetic-small/{tag}")

    m = create_model(name, device="cpu", tile=32, margin=8, tile_depth=8, margin_depth=2)
    result = m.fit(split(0, 10, "train"), split(10, 13, "val"), preset="quick", seed=0, progress=False,
                   checkpoint_dir=tmp_path, **TINY)
    assert result.epochs == 1 and result.steps == 2 and np.isfinite(result.history["train_loss"][0])
    assert np.isfinite(result.best_val_loss) and result.config["preset"]["patch_depth"] == 8
    assert m._config["width"] == 16  # the quick preset's width
    records = evaluate(m, split(13, 16, "test"))
    assert len(records) == 1 and records[0]["mode"] is None and records[0]["method"] == name
    assert len(records[0]["per_slice"]) == 3 and np.isfinite(records[0]["aggregate"]["vi"])
    again = create_model(name, device="cpu", tile=32, margin=8, tile_depth=8, margin_depth=2).load(
        tmp_path / "best.pt")
    test = split(13, 16, "test")
    np.testing.assert_allclose(again.predict(test.image), m.predict(test.image), atol=1e-5)
