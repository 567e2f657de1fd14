"""Attention U-Net, RDN, UNet+BDCLSTM, FC-DenseNet and SegNet baselines: counts, shapes, learning, registry."""

import numpy as np
import pytest
import torch

from grainbench.cli import main
from grainbench.data.volume import Volume
from grainbench.methods import create_model, list_models, model_info
from grainbench.training.losses import get_loss

NAMES = ("attention_unet", "rdn", "unet_bdclstm", "fc_densenet", "segnet")

# Exact parameter counts of our networks at their default width (1 grey channel in, 2 classes out).
PARAMS = {
    "attention_unet": 2_379_056,   # width 16 (the paper's feature_scale 4), 2D
    "rdn": 28_640_258,             # width 64
    "unet_bdclstm": 32_681_474,    # width 64: U-Net features + 2 ConvLSTM cells + 1x1 classifier
    "fc_densenet": 9_318_914,      # FC-DenseNet103
    "segnet": 29_443_010,          # VGG16 encoder + mirrored decoder
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_baselines_are_registered_and_listed(capsys):
    assert set(NAMES) <= set(list_models())
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_at_default_width(name):
    info = model_info(name)
    assert info.available and info.params == PARAMS[name]
    assert info.context == ("2.5d" if name == "unet_bdclstm" else "2d")
    assert info.presets == ("paper", "standard", "quick")


def test_segnet_matches_the_paper_count():
    from grainbench.baselines.segnet import SegNetNet

    # Paper: 29.5M (3 input channels, CamVid's 11 classes). Tolerance 0.5%.
    n = count(SegNetNet(3, 11))
    assert n == 29_449_355
    assert abs(n - 29.5e6) / 29.5e6 < 0.005


@pytest.mark.parametrize("variant,paper_m", [("103", 9.4), ("67", 3.5)])
def test_fc_densenet_matches_the_paper_count(variant, paper_m):
    from grainbench.baselines.fc_densenet import FCDenseNetNet

    # Paper Table 2 (3 inputs, 11 classes). The paper's figures match our trainable parameters plus
    # the BN running mean/variance (Lasagne's count_params counts those too) to the 0.1M shown;
    # the trainable count alone is within 1.5%.
    net = FCDenseNetNet(3, 11, variant)
    trainable = count(net)
    with_stats = trainable + sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert round(with_stats / 1e6, 1) == paper_m
    assert abs(trainable - paper_m * 1e6) / (paper_m * 1e6) < 0.015


def test_attention_unet_port_matches_the_paper_count_in_3d():
    from grainbench.baselines.attention_unet import AttentionUNetNet

    # The paper's 3D Attention U-Net (feature_scale 4 -> width 16): 6.40M; its plain U-Net: 5.88M.
    net = AttentionUNetNet(1, 2, width=16, spatial_dims=3)
    total, gating, gates = count(net), count(net.gating), count(net.attention)
    assert total == 6_472_784
    assert abs(total - 6.40e6) / 6.40e6 < 0.015          # the released code, gating convolution included
    assert abs(total - gating - 6.40e6) / 6.40e6 < 0.002  # the paper's figure leaves that convolution out
    assert abs(total - gating - gates - 5.88e6) / 5.88e6 < 0.002
    assert net(torch.randn(1, 1, 16, 32, 32)).shape == (1, 2, 16, 32, 32)


def test_unet_bdclstm_count_decomposes():
    from grainbench.baselines.unet_bdclstm import UNetBDCLSTMNet

    net = UNetBDCLSTMNet(width=64)
    unet_without_classifier = 31_042_434 - (64 * 2 + 2)  # the `unet` baseline minus its 1x1 classifier
    cell = (2 * 64) * (4 * 64) * 5 * 5 + 4 * 64
    assert count(net.unet) == unet_without_classifier
    assert count(net) == unet_without_classifier + 2 * cell + (2 * 64 * 2 + 2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hw", [(48, 80), (32, 32)])
def test_output_shape(name, hw):
    m = create_model(name, width=4)
    x = torch.randn(2, m.net_in_channels, *hw)
    m.net.eval()
    with torch.no_grad():
        assert m.net(x).shape == (2, 2, *hw)


def test_unet_bdclstm_reads_both_neighbours_and_checks_channels():
    m = create_model("unet_bdclstm", width=4)
    assert m.net_in_channels == 3 and m.depth == 1
    m.net.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = m.net(x)
        for k in (0, 2):  # slice z-1 (forward LSTM) and slice z+1 (backward LSTM)
            y = x.clone()
            y[:, k] += 1.0
            assert not torch.allclose(m.net(y), base)
    with pytest.raises(ValueError, match="3 input channels"):
        m.net(torch.randn(1, 1, 32, 32))


def _tiny_batch(channels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32 x 32 patches with a dark grid of boundaries and their 1-pixel targets."""
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(2, 32, 32, dtype=torch.bool)
    target[:, 10] = target[:, :, 21] = True
    target[1, 25] = True
    image = 1.0 - 0.8 * target.float() + 0.05 * torch.randn(2, 32, 32, generator=g)
    x = (image[:, None] - 0.5) / 0.25
    return x.expand(-1, channels, -1, -1).contiguous(), target


@pytest.mark.parametrize("name", NAMES)
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(name):
    torch.manual_seed(0)
    m = create_model(name, width=4)
    x, target = _tiny_batch(m.net_in_channels)
    loss_fn = get_loss("bce")
    opt = torch.optim.Adam(m.net.parameters(), lr=1e-2)
    m.net.train()
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = loss_fn(m.net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


def _tiny_volume() -> Volume:
    rng = np.random.default_rng(0)
    boundary = np.zeros((4, 40, 40), bool)
    boundary[:, 12] = boundary[:, :, 25] = True
    image = (0.8 - 0.6 * boundary + 0.05 * rng.standard_normal(boundary.shape)).clip(0, 1).astype(np.float32)
    return Volume(image, None, boundary, serial=True, name="tiny")


@pytest.mark.parametrize("name", NAMES)
def test_fit_with_the_quick_preset_and_predict(name):
    vol = _tiny_volume()
    m = create_model(name, tile=32, margin=8)
    result = m.fit(vol, None, preset="quick", seed=1, progress=False, width=4, patch_size=32, batch_size=4,
                   patches_per_epoch=4, epochs=1)
    assert result.preset == "quick" and result.steps == 1
    assert m.config()["width"] == 4  # the preset's width replaced the default
    prob = m.predict(vol.image[:2])
    assert prob.shape == (2, 40, 40) and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0


def test_unknown_fc_densenet_variant_fails():
    with pytest.raises(ValueError, match="variant"):
        create_model("fc_densenet", variant="42")


@pytest.mark.parametrize("name", NAMES)
def test_zero_width_is_rejected_not_replaced_by_the_default(name):
    with pytest.raises(ValueError, match="width"):
        create_model(name, width=0).build_network()
