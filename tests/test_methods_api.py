"""Methods API: registry, entry points, module:Class paths, parameter counts and output shapes."""

import json

import numpy as np
import pytest
import torch

from grainbench.cli import main
from grainbench.methods import (
    Method,
    MethodError,
    TorchMethod,
    create_model,
    get_model_class,
    list_models,
    model_info,
    register_model,
)

# Parameter counts of the authors' code (seed 000 / clovermini/WPU-Net segmentation/model.py).
PAPER_PARAMS_M = {"wpunet": "31.05M", "unet": "31.04M"}


def test_baselines_are_listed_through_entry_points():
    names = list_models()
    for name in ("wpunet", "wpunet_layer1", "unet", "classical", "unet_resnet34"):
        assert name in names
    assert list_models("wpunet*") == ["wpunet", "wpunet_layer1"]


@pytest.mark.parametrize("name,params", [("wpunet", 31_051_074), ("wpunet_layer1", 31_043_010),
                                         ("unet", 31_042_434)])
def test_parameter_counts_match_the_authors_code(name, params):
    info = model_info(name)
    print(f"{name}: {info.params} parameters = {info.params_m}")
    assert info.params == params
    if name in PAPER_PARAMS_M:
        assert info.params_m == PAPER_PARAMS_M[name]


@pytest.mark.parametrize("name,channels", [("wpunet", 2), ("wpunet_layer1", 2), ("unet", 1)])
def test_network_output_shape(name, channels):
    m = create_model(name, width=4)
    x = torch.randn(2, channels, 48, 64)
    assert m.net(x).shape == (2, 2, 48, 64)
    assert m.net_in_channels == channels


def test_wpunet_rejects_a_single_channel():
    with pytest.raises(ValueError, match="2 input channels"):
        create_model("wpunet", width=4).net(torch.randn(1, 1, 32, 32))


def test_width_scales_the_network_and_bad_fusion_fails():
    assert create_model("wpunet", width=8).num_parameters() < create_model("wpunet", width=16).num_parameters()
    with pytest.raises(ValueError, match="fusion"):
        create_model("wpunet", fusion="layer7")


def test_predict_shapes_and_range():
    img = np.random.default_rng(0).random((2, 40, 70)).astype(np.float32)
    prev = np.zeros(img.shape, bool)
    prob = create_model("wpunet", width=4, tile=32, margin=8).predict(img, prev)
    assert prob.shape == img.shape and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1
    assert create_model("unet", width=4).predict(img[0]).shape == (1, 40, 70)


def test_predict_rejects_bad_input():
    m = create_model("wpunet", width=4)
    img = np.zeros((1, 32, 32), np.float32)
    with pytest.raises(ValueError, match="prev_boundary"):
        m.predict(img)
    with pytest.raises(ValueError, match="differs"):
        m.predict(img, np.zeros((1, 16, 16), bool))
    with pytest.raises(ValueError, match="shape"):
        create_model("unet", width=4).predict(np.zeros((1, 2, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        create_model("classical").predict(np.full((8, 8), np.nan, np.float32))


def test_module_class_paths_resolve():
    assert type(create_model("grainbench.baselines.unet:UNet", width=4)).__name__ == "UNet"
    assert get_model_class("grainbench.baselines.classical.Classical").name == "classical"


@pytest.mark.parametrize("bad", ["nosuchmethod", "nosuchpkg.mod:Cls", "grainbench.baselines.unet:Nope", "numpy:ndarray"])
def test_unknown_methods_raise(bad):
    with pytest.raises(MethodError):
        create_model(bad)


def test_a_user_method_needs_no_change_to_grainbench():
    @register_model
    class Darkness(Method):
        name = "test_darkness"
        context = "2d"

        def predict(self, image, prev_boundary=None):
            return 1.0 - np.asarray(image, np.float32)

    assert "test_darkness" in list_models()
    m = create_model("test_darkness")
    assert m.predict(np.zeros((1, 4, 4), np.float32)).max() == 1.0
    assert m.fit(None).preset == "none"  # no training needed
    with pytest.raises(TypeError):
        class Bad(Method):
            context = "4d"


def test_torch_method_subclass_gets_training_and_tiling():
    class Tiny(TorchMethod):
        name = "tiny"

        def build_network(self):
            return torch.nn.Conv2d(1, 2, 3, padding=1)

    m = Tiny()
    assert m.num_parameters() == 2 * 9 + 2
    assert m.predict(np.zeros((1, 300, 20), np.float32)).shape == (1, 300, 20)


def test_classical_floor_has_no_parameters_and_finds_dark_lines():
    img = np.ones((1, 64, 64), np.float32) * 0.8
    img[0, 30:32, :] = 0.2
    prob = create_model("classical").predict(img)
    assert model_info("classical").params == 0
    assert prob[0, 31, 10:54].min() > 0.5 and prob[0, 5:20].max() < 0.5


def test_smp_unet_parameter_count_and_shape():
    pytest.importorskip("segmentation_models_pytorch")
    m = create_model("unet_resnet34")
    assert model_info("unet_resnet34").params_m == "24.43M"
    assert m.net(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_cli_models_lists_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["wpunet"]["params_m"] == "31.05M" and rows["wpunet"]["context"] == "2d+prev"
    assert rows["unet"]["params_m"] == "31.04M"
    assert rows["classical"]["presets"] == []
    assert main(["models", "wpunet"]) == 0
    assert "31.05M" in capsys.readouterr().out
