"""Per-task training defaults: the phase task trains on plain BCE of the undilated mask under every preset."""

import json

import pytest
import torch
import torch.nn.functional as F

from grainbench.cli import main
from grainbench.training import get_loss, get_preset
from grainbench.training.presets import PRESETS


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_phase_task_trains_on_undilated_bce_under_every_preset(preset):
    p = get_preset(preset, task="phase")
    assert (p.loss, p.loss_kwargs) == ("bce", {"dilate": 1})
    assert get_preset(preset, task="boundary") == get_preset(preset)  # boundary presets untouched


def test_a_chosen_loss_wins_and_drops_the_task_loss_arguments():
    p = get_preset("quick", task="phase", loss="abw")
    assert (p.loss, p.loss_kwargs) == ("abw", {})
    p = get_preset("quick", task="phase", loss_kwargs={"dilate": 3})
    assert (p.loss, p.loss_kwargs) == ("bce", {"dilate": 3})


def test_undilated_bce_is_the_cross_entropy_of_the_phase_mask():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 3, 17, 19, generator=g)
    mask = torch.rand(2, 3, 17, 19, generator=g) > 0.6
    got = get_loss("bce", dilate=1)(logits, mask)
    want = F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], mask.float())
    assert torch.allclose(got, want, atol=1e-6)


def test_a_phase_run_records_the_task_loss(isolated_cache, tmp_path):
    assert main(["run", "--model", "unet", "--dataset", "alzn_sim", "--preset", "quick", "--model-arg", "width=2",
                 "--set", "epochs=1", "--set", "patches_per_epoch=4", "--set", "batch_size=2",
                 "--set", "patch_size=32", "--set", "val_patches=2", "--no-leaderboard"]) == 0
    (record,) = (tmp_path / "runs" / "records" / "alzn_sim").glob("*.json")
    cfg = json.loads(record.read_text())["config"]
    assert cfg["preset_config"]["loss"] == "bce" and cfg["preset_config"]["loss_kwargs"] == {"dilate": 1}
