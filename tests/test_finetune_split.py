"""Fine-tuning (--init-from) and scoring the val split (--split val), through the library and the CLI.

Tiny U-Nets (width 4) on the generated ``synthetic`` stack train for one
short epoch, so each run takes seconds on two CPU cores.
"""

import json

import pandas as pd
import pytest
import torch

from grainbench import data
from grainbench.cli import main
from grainbench.io import sha256_file
from grainbench.methods import create_model
from grainbench.records import read_record
from grainbench.runner import InitFrom, RunSpec, resolve_init_from
from grainbench.training.checkpoint import load_checkpoint

TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64",
        "--set", "val_patches=4", "--set", "epochs=1"]
TINY_FIT = {"patches_per_epoch": 8, "batch_size": 4, "patch_size": 64, "val_patches": 4, "epochs": 1}


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _records(root, dataset="synthetic"):
    return [read_record(p) | {"_path": p} for p in sorted((root / f"runs/records/{dataset}").glob("*.json"))]


def _weights(path):
    return load_checkpoint(path)["method_state"]["net"]


def _pretrain(work, *extra):
    assert main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--model-arg", "width=4",
                 "--no-leaderboard", *extra]) == 0
    [rec] = [r for r in _records(work) if not r["config"].get("init_from")]
    [model_pt] = (work / "runs/synthetic/unet").glob("*/model.pt")
    return rec, model_pt


def test_finetune_starts_from_the_parent_weights_and_records_the_parent(work, capsys):
    parent, model_pt = _pretrain(work)
    parent_sha = sha256_file(model_pt)
    assert parent["checkpoint"]["sha256"] == parent_sha and parent["config"]["init_from"] is None

    # Every way of naming the parent resolves to the same weights and run.
    by_id = resolve_init_from(parent["run_id"], records_dir=work / "runs/records", work_root=work / "runs")
    by_record = resolve_init_from(parent["_path"], records_dir=work / "runs/records", work_root=work / "runs")
    by_file = resolve_init_from(model_pt, records_dir=work / "runs/records", work_root=work / "runs")
    by_dir = resolve_init_from(model_pt.parent, records_dir=work / "runs/records", work_root=work / "runs")
    for init in (by_id, by_record, by_file, by_dir):
        assert (init.sha256, init.run_id, init.model, init.dataset) == (parent_sha, parent["run_id"], "unet",
                                                                        "synthetic")

    # Before step 0 the network holds exactly the parent's weights (and a scratch start does not).
    train = data.load("synthetic", "train")
    parent_net = _weights(model_pt)
    tuned = create_model("unet", width=4, device="cpu")
    tuned.fit(train, None, preset="quick", max_epochs=0, progress=False, init_from=model_pt, **TINY_FIT)
    state = tuned.net.state_dict()
    assert set(state) == set(parent_net)
    assert all(torch.equal(state[k].cpu(), parent_net[k]) for k in parent_net)
    scratch = create_model("unet", width=4, device="cpu")
    scratch.fit(train, None, preset="quick", max_epochs=0, progress=False, **TINY_FIT)
    assert not all(torch.equal(scratch.net.state_dict()[k].cpu(), parent_net[k]) for k in parent_net)

    # The fine-tune through the CLI: a new run beside the parent, whose record names it.
    assert main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--model-arg", "width=4",
                 "--no-leaderboard", "--init-from", parent["run_id"]]) == 0
    [child] = [r for r in _records(work) if r["config"].get("init_from")]
    init = child["config"]["init_from"]
    assert init["run_id"] == parent["run_id"] and init["sha256"] == parent_sha
    assert init["path"] == str(model_pt.resolve()) and init["dataset"] == "synthetic"
    work_dirs = sorted(p.parent for p in (work / "runs/synthetic/unet").glob("*/model.pt"))
    assert len(work_dirs) == 2 and model_pt.parent in work_dirs  # neither overwrote the other
    assert sha256_file(model_pt) == parent_sha
    assert child["checkpoint"]["sha256"] not in (None, parent_sha)  # it trained on from there
    # The same fine-tune again is skipped (same parent), the parent run is not touched.
    capsys.readouterr()
    assert main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--model-arg", "width=4",
                 "--no-leaderboard", "--init-from", str(model_pt)]) == 0
    assert "skipped" in capsys.readouterr().err
    assert len(_records(work)) == 2


def test_a_checkpoint_of_another_architecture_is_refused_in_one_line(work, capsys):
    _, model_pt = _pretrain(work)
    capsys.readouterr()
    code = main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--model-arg", "width=8",
                 "--no-leaderboard", "--init-from", str(model_pt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    [line] = [x for x in err if "error" in x]
    assert str(model_pt) in line.replace("\n", "") and "shape" in line and "width=4" in line
    assert not any(r["config"].get("init_from") for r in _records(work))  # nothing recorded

    # Another method's checkpoint: refused before any work, naming the method it is of.
    code = main(["run", "--model", "wpunet", "--dataset", "synthetic", *TINY, "--no-leaderboard",
                 "--init-from", str(model_pt)])
    assert code == 2 and "checkpoint of method 'unet'" in capsys.readouterr().err

    # Not a checkpoint at all (a pickle that would run code): refused, never unpickled.
    evil = work / "evil.pt"
    torch.save({"x": InitFrom("a", "b")}, evil)
    code = main(["run", "--model", "unet", "--dataset", "synthetic", *TINY, "--no-leaderboard", "--init-from",
                 str(evil)])
    assert code == 2 and "evil.pt" in capsys.readouterr().err
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--init-from", "no-such-run"]) == 2


def test_selection_holdout_takes_train_slices_only():
    import numpy as np
    from grainbench.data.volume import Volume
    from grainbench.runner import selection_holdout

    z = 10
    image = np.arange(z, dtype=np.float32)[:, None, None] * np.ones((z, 4, 4), np.float32)
    pairs = Volume(image=image, labels=None, boundary=np.zeros((z, 4, 4), bool), serial=False, name="d/train",
                   meta={"names": [f"p{i}" for i in range(z)]})
    fit, select = selection_holdout(pairs)
    assert select.meta["names"] == ["p3", "p7"] and select.image[:, 0, 0].tolist() == [3, 7]
    assert sorted(fit.image[:, 0, 0].tolist() + select.image[:, 0, 0].tolist()) == list(range(z))
    stack = Volume(image=image, labels=None, boundary=None, serial=True, name="s/train")
    fit, select = selection_holdout(stack)
    assert fit.image[:, 0, 0].tolist() == list(range(8)) and select.image[:, 0, 0].tolist() == [8, 9]
    assert fit.serial and select.serial  # each part keeps its neighbours


def test_scoring_val_selects_on_train_holdout_and_keeps_splits_apart(work):
    assert main(["run", "--model", "unet,classical", "--dataset", "synthetic", *TINY, "--model-arg", "width=4",
                 "--split", "val"]) == 0
    assert main(["run", "--model", "unet,classical", "--dataset", "synthetic", *TINY, "--model-arg", "width=4"]) == 0
    recs = _records(work)
    by = {(r["config"]["model"], r["config"]["split"]): r for r in recs}
    assert set(by) == {("unet", "val"), ("unet", "test"), ("classical", "val"), ("classical", "test")}
    val_unet, test_unet = by[("unet", "val")], by[("unet", "test")]
    # Scored on val: the per-slice rows are the val slices; the weights were chosen on a part of train.
    assert [r["slice"] for r in val_unet["metrics"]["per_slice"]] == list(range(32, 40))
    assert val_unet["config"]["selected_on"] == "train-holdout" and val_unet["extra"]["fit"]["best_epoch"] >= 0
    assert not any(pd.isna(v) for v in val_unet["extra"]["fit"]["history"]["val_loss"])
    assert test_unet["config"]["selected_on"] == "val" and test_unet["extra"]["fit"]["best_epoch"] == 0
    assert [r["slice"] for r in test_unet["metrics"]["per_slice"]] == list(range(40, 48))
    assert len(list((work / "runs/synthetic/unet").glob("*/model.pt"))) == 2
    assert RunSpec("unet", "synthetic", split="val").work_dir(work) != RunSpec("unet", "synthetic").work_dir(work)

    # The leaderboard: one table per scored split, never a val row ranked beside test rows.
    md = (work / "runs/leaderboards/synthetic.md").read_text()
    sections = [s for s in md.split("## Reproduced: ")[1:]]
    assert len(sections) == 2
    for section in sections:
        split = "val" if "split `val`" in section.splitlines()[0] else "test"
        rows = [line for line in section.splitlines() if line.startswith("| ") and ".json" in line]
        assert len(rows) == 2
        assert all(by[(m, split)]["_path"].name in section for m in ("unet", "classical"))
        other = "test" if split == "val" else "val"
        assert not any(by[(m, other)]["_path"].name in section for m in ("unet", "classical"))
    csv = pd.read_csv(work / "runs/leaderboards/synthetic.csv")
    rep = csv[(csv["source"] == "reproduced") & (csv["metric"] == "vi")]
    assert sorted(rep["split"]) == ["test", "test", "val", "val"]
    got = rep.set_index(["model", "split"])["value"]
    assert got[("unet (width=4)", "val")] == pytest.approx(val_unet["metrics"]["aggregate"]["vi"])
    json.dumps(val_unet["config"])  # plain JSON


def test_split_that_is_not_there_or_train_is_refused(work, capsys):
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--split", "holdout"]) == 2
    assert "no split 'holdout'" in capsys.readouterr().err
    assert main(["run", "--model", "unet", "--dataset", "synthetic", "--split", "train"]) == 2
    assert "train on it" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["unet", "wpunet", "unet_bdclstm"])
def test_grey_weights_fine_tune_on_colour_as_their_channel_mean(name, tmp_path):
    # Pretrain on grey, fine-tune on RGB: the widened network answers a colour
    # input as the grey one answered the channel mean (the previous mask kept).
    import numpy as np
    import torch
    from grainbench.methods import create_model

    torch.manual_seed(0)
    grey = create_model(name, width=4, in_channels=1)
    path = tmp_path / "grey.pt"
    grey.save(path)
    colour = create_model(name, width=4, in_channels=3)
    colour.load_init_weights(path)
    rgb = torch.rand(1, colour.net_in_channels, 32, 32)
    k = (colour.net_in_channels - grey.net_in_channels) // 2  # grey image channels (slices of a 2.5D stack)
    # the grey input: each group of 3 colour channels averaged, extra channels (prev mask) as they are
    image = rgb[:, :3 * k].reshape(1, k, 3, 32, 32).mean(2)
    grey_in = torch.cat([image, rgb[:, 3 * k:]], dim=1)
    grey.net.eval(), colour.net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(colour.net(rgb).numpy(), grey.net(grey_in).numpy(), rtol=1e-4, atol=1e-5)


def test_grey_run_of_a_colour_set_is_its_own_recorded_row(tmp_path, monkeypatch):
    # --grey on colour data: the method is built grey, gets luma images, trains in its own folder and
    # its record and leaderboard row say so.
    import numpy as np
    from grainbench.data.volume import Volume
    from grainbench.runner import DataCache, RunSpec, channel_args
    from grainbench.data.registry import get_dataset
    from grainbench.methods.registry import get_model_class

    tbm = get_dataset("tbm")
    assert tbm.channels == 3
    assert channel_args(get_model_class("unet"), "unet", tbm) == {"in_channels": 3}
    assert channel_args(get_model_class("unet"), "unet", tbm, grey=True) == {"in_channels": 1}
    rgb = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    cache = DataCache()
    cache._volumes[("d", "test", False)] = Volume(image=rgb, labels=None, boundary=np.zeros((2, 8, 8), bool))
    grey = cache.get("d", "test", grey=True)
    assert grey.channels == 1 and np.allclose(grey.image, 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2],
                                              atol=1e-6)
    a, b = RunSpec("unet", "tbm"), RunSpec("unet", "tbm", grey=True)
    assert a.work_dir(tmp_path) != b.work_dir(tmp_path) and b.identity(None)["grey"] is True
