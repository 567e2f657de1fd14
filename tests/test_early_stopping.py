"""Early stopping (``Preset.patience``) with the real trainer, and the ``standard`` preset."""

import numpy as np
import pytest
from torch import nn

from grainbench.data.volume import Volume
from grainbench.errors import ConfigError
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.methods import TorchMethod
from grainbench.training import get_preset
from grainbench.training.checkpoint import load_checkpoint


class TinyConv(TorchMethod):
    """One convolution, no batch norm: with a vanishing learning rate nothing moves, so the val loss plateaus."""

    name = "tinyconv_test"
    context = "2d"

    def build_network(self) -> nn.Module:
        return nn.Conv2d(self.net_in_channels, 2, 3, padding=1)


def _split(seed=0, z=4, size=32, channels=3):
    labels = np.stack([voronoi_labels((size, size), 6, seed=seed + k) for k in range(z)])
    boundary = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.stack([0.8 - 0.5 * boundary + 0.05 * rng.standard_normal(boundary.shape)] * channels, 1)
    return Volume(np.clip(image, 0, 1).astype(np.float32), None, boundary)


TINY = dict(epochs=12, patches_per_epoch=4, batch_size=2, patch_size=16, val_patches=4, loss="bce")


def _expected_stop(val_loss, patience):
    """From the definition: the first epoch (1-based count) after which `patience` epochs had no new minimum."""
    best, best_epoch = np.inf, -1
    for epoch, v in enumerate(val_loss):
        if v < best:
            best, best_epoch = v, epoch
        if epoch - best_epoch >= patience:
            return epoch + 1
    return None


def test_early_stopping_stops_on_a_plateau(tmp_path):
    train, val = _split(0), _split(10)
    m = TinyConv(in_channels=3)
    fit = m.fit(train, val, preset="standard", seed=0, progress=False, checkpoint_dir=tmp_path, lr=1e-12,
                patience=3, **TINY)
    assert len(set(fit.history["val_loss"])) == 1  # a true plateau: the weights did not move
    assert fit.stopped_early and fit.best_epoch == 0
    assert fit.epochs == fit.stop_epoch == 4 == len(fit.history["val_loss"])  # epoch 1 best, then 3 without
    assert fit.steps == 4 * 2
    assert fit.config["preset"]["patience"] == 3 and "stopped_early" in fit.to_dict()
    # a resumed run that had stopped stays stopped
    again = TinyConv(in_channels=3).fit(train, val, preset="standard", seed=0, progress=False,
                                        checkpoint_dir=tmp_path, lr=1e-12, patience=3, **TINY)
    assert again.stopped_early and again.epochs == 4 and again.steps == fit.steps
    assert load_checkpoint(tmp_path / "last.pt")["stopped_early"] is True


def test_early_stopping_follows_its_definition_while_learning():
    train, val = _split(1), _split(11)
    fit = TinyConv(in_channels=3).fit(train, val, preset="standard", seed=0, progress=False, lr=5e-2, patience=2,
                                      **TINY)
    stop = _expected_stop(fit.history["val_loss"], 2)
    assert fit.stopped_early == (stop is not None)
    assert fit.epochs == (stop or TINY["epochs"]) == len(fit.history["val_loss"])
    assert fit.best_epoch == int(np.argmin(fit.history["val_loss"]))
    # without patience every epoch runs
    full = TinyConv(in_channels=3).fit(train, val, preset="standard", seed=0, progress=False, lr=5e-2,
                                       patience=None, **TINY)
    assert not full.stopped_early and full.stop_epoch == -1 and full.epochs == TINY["epochs"]
    np.testing.assert_allclose(full.history["val_loss"][:fit.epochs], fit.history["val_loss"], rtol=1e-6)


def test_no_validation_split_means_no_early_stopping():
    fit = TinyConv(in_channels=3).fit(_split(2), None, preset="standard", seed=0, progress=False, lr=1e-12,
                                      patience=1, **{**TINY, "epochs": 3})
    assert not fit.stopped_early and fit.epochs == 3


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_preset_refuses_bad_patience(bad):
    with pytest.raises(ConfigError, match="patience"):
        get_preset("standard", patience=bad)


def test_patience_needs_validation_selection():
    with pytest.raises(ConfigError, match="patience.*select='val_loss'"):
        get_preset("quick", patience=3, select="last")


def test_standard_preset_sits_between_quick_and_paper():
    quick, standard, paper = get_preset("quick"), get_preset("standard"), get_preset("paper")
    assert standard.patience is not None and quick.patience is None and paper.patience is None

    def patches(p):
        return p.epochs * p.patches_per_epoch * p.patch_size ** 2

    assert patches(quick) < patches(standard)
    assert standard.epochs < paper.epochs and standard.select == "val_loss"
    assert "standard" in TinyConv.presets
