"""The training data pipeline (PatchDataset through a DataLoader), the engine's callbacks, the tracker on the
engine, the public GrainDataset, and the classical floor on several cores."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage import filters

from grainbench.data.volume import Volume
from grainbench.errors import TrackingError
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.methods import create_model
from grainbench.training import (
    ENGINE_VERSION,
    ABWLoss,
    Callback,
    PatchDataset,
    TopHatLoss,
    abw_weight_maps,
    make_loader,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]


def _stack(z=5, size=48, seed=0):
    labels = np.stack([voronoi_labels((size, size), 10, seed=seed + k) for k in range(z)])
    boundary = labels_to_boundary(labels)
    rng = np.random.default_rng(seed)
    image = np.clip(0.8 - 0.5 * boundary + rng.normal(0, 0.05, boundary.shape), 0, 1).astype(np.float32)
    return Volume(image, labels, boundary, serial=True, name="voronoi")


def _epoch(loader, batches, epoch):
    batches.set_epoch(epoch)
    return [b for b in loader]


@pytest.mark.parametrize("context", ["2d+prev", "3d"])
def test_patches_depend_on_seed_epoch_and_index_not_on_workers(context):
    vol = _stack()
    kw = dict(context=context, patch_depth=3, seed=7, maps=ABWLoss().pipeline_maps)
    ds = PatchDataset(vol, 32, 10, **kw)
    runs = []
    for workers in (0, 2):
        loader, batches = make_loader(ds, 4, 10, num_workers=workers)
        runs.append([_epoch(loader, batches, e) for e in (0, 1)])
        del loader
    for a, b in zip(runs[0], runs[1]):  # every epoch, every batch, every key: the same tensors
        for x, y in zip(a, b):
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    zero, one = runs[0]
    assert [len(b["image"]) for b in zero] == [4, 4, 2]
    assert not torch.equal(zero[0]["image"], one[0]["image"])  # another epoch draws other crops
    again = PatchDataset(vol, 32, 10, **kw)
    item = again[(1, 5)]
    assert torch.equal(item["image"], one[1]["image"][1])  # index 5 = batch 1, position 1
    ds.set_epoch(1)
    assert torch.equal(ds[5]["boundary"], item["boundary"])  # an int index reads the epoch set
    # the maps are the crop's own ABW weight maps (eq. 3-5), slice by slice for 3D crops
    b = item["boundary"].numpy().reshape(-1, 32, 32)
    ref = [abw_weight_maps(s) for s in b]
    np.testing.assert_array_equal(item["w_bck"].numpy().reshape(b.shape), np.stack([r[0] for r in ref]))
    np.testing.assert_array_equal(item["w_obj"].numpy().reshape(b.shape), np.stack([r[1] for r in ref]))
    if context == "2d+prev":  # the previous slice's mask is cut with the image: it is a boundary of slice z-1
        assert item["prev"].shape == (32, 32) and item["prev"].dtype == torch.bool
    else:
        assert item["image"].shape == (1, 3, 32, 32) and item["boundary"].shape == (3, 32, 32)
    with pytest.raises(IndexError):
        ds[(0, 10)]


def test_maps_from_the_pipeline_give_the_loss_it_computes_itself():
    b = torch.from_numpy(np.stack([labels_to_boundary(voronoi_labels((40, 40), 8, seed=s)) for s in (1, 2)]))
    logits = torch.randn(2, 2, 40, 40, generator=torch.Generator().manual_seed(0))
    for loss in (ABWLoss(), TopHatLoss()):
        per = [loss.pipeline_maps(t.numpy()) for t in b]
        maps = {k: torch.from_numpy(np.stack([m[k] for m in per])) for k in per[0]}
        assert torch.equal(loss(logits, b, **maps), type(loss)()(logits, b))


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, info):
        self.events.append(("begin", info["start_epoch"], info["end_epoch"], info["config"]["engine"]))

    def on_epoch_end(self, logs):
        self.events.append(("epoch", logs["epoch"], logs["step"], logs["train_loss"], logs["val"]))

    def on_train_end(self, result):
        self.events.append(("end", result.epochs))


def test_callbacks_receive_the_engines_events():
    vol = _stack(6, 48)
    train, val = Volume(vol.image[:4], None, vol.boundary[:4], True), Volume(vol.image[4:], None, vol.boundary[4:], True)
    rec = Recorder()
    fit = create_model("unet").fit(train, val, preset="quick", progress=False, callbacks=(rec,), width=4,
                                   patch_size=32, batch_size=4, patches_per_epoch=8, epochs=2, val_patches=4)
    assert rec.events[0] == ("begin", 0, 2, ENGINE_VERSION) and rec.events[-1] == ("end", 2)
    epochs = rec.events[1:-1]
    assert [e[:3] for e in epochs] == [("epoch", 1, 2), ("epoch", 2, 4)]
    assert [e[3] for e in epochs] == fit.history["train_loss"] and [e[4] for e in epochs] == fit.history["val_loss"]
    assert fit.config["engine"] == ENGINE_VERSION


def test_precision_is_a_recorded_preset_field():
    from grainbench.errors import ConfigError
    from grainbench.training import get_preset

    with pytest.raises(ConfigError, match="precision='fp16' is not one of auto, bf16, fp32"):
        get_preset("quick", precision="fp16")
    vol = _stack(4, 48)
    fit = create_model("unet").fit(vol, None, preset="quick", progress=False, precision="bf16", width=4,
                                   patch_size=32, batch_size=4, patches_per_epoch=4, epochs=1)
    assert fit.config["preset"]["precision"] == "bf16" and np.isfinite(fit.history["train_loss"]).all()


def test_the_training_package_does_not_import_the_method_classes():
    for path in (ROOT / "grainbench" / "training").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = ("." * node.level) + (node.module or "")
                assert "methods" not in name and "tracking" not in name, f"{path.name} imports {name}"
    code = ("import sys, grainbench.training.trainer; "
            "sys.exit(any(m.startswith(('grainbench.methods', 'grainbench.tracking')) for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_tracker_trains_on_the_engine_resumes_and_refuses_the_old_checkpoint_format(tmp_path):
    from grainbench.data.potts import simulate_potts
    from grainbench.tracking import create_tracker

    labels = simulate_potts((4, 48, 48), n_grains=30, mc_steps=3, seed=3, boundaries="free")
    labels = labels * ~labels_to_boundary(labels)  # 3D ids with 0 on the 2D boundaries
    args = dict(arch="test_resnet", input_size=16, batch_size=8, epochs=2, pairs_per_epoch=16, device="cpu")
    full = create_tracker("densenet161", **args)
    rec = Recorder()
    fit = full.fit(labels, labels, seed=3, checkpoint_dir=tmp_path / "a", callbacks=(rec,), num_workers=0)
    assert fit.train_pairs > 16 and fit.steps == 4 and len(fit.history["val_accuracy"]) == 2 and [e[0] for e in rec.events].count("epoch") == 2
    assert (tmp_path / "a" / "last.pt").exists()
    part = create_tracker("densenet161", **args)
    part.fit(labels, labels, seed=3, checkpoint_dir=tmp_path / "b", num_workers=0, max_epochs=1)  # interrupted
    resumed = create_tracker("densenet161", **args)
    r2 = resumed.fit(labels, labels, seed=3, checkpoint_dir=tmp_path / "b", num_workers=1)
    assert r2.history == fit.history
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k

    old = tmp_path / "old.pt"  # the retired loop's format: weights at the top, the tracker name in config
    save_checkpoint(old, {"config": {"tracker": "densenet161", **full.config()}, "net": full.state_dict()["net"]})
    with pytest.raises(TrackingError, match="retired training loop.*train the tracker again"):
        create_tracker("densenet161", device="cpu").load(old)


def test_readme_grain_dataset_example_runs(synthetic_cache, monkeypatch):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- grain-dataset-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its GrainDataset example"
    assert len(block.group(1).strip().splitlines()) <= 12
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    ds = namespace["ds"]
    batch = namespace["batch"]
    assert batch["image"].shape[1:] == (1, 64, 64) and batch["boundary"].dtype == torch.bool
    assert "w_bck" in batch and len(ds) == 16 and np.isfinite(namespace["loss"].item())
    from grainbench import GrainDataset

    assert GrainDataset is type(ds)


def _old_classical(image, smoothing=1.0, sigmas=(1.0, 2.0)):
    """The per-slice loop of the classical floor before it used several cores."""
    out = np.empty(image.shape, np.float32)
    for z, sl in enumerate(image):
        r = filters.sato(ndi.gaussian_filter(sl, smoothing), sigmas=sigmas, black_ridges=True)
        t = filters.threshold_otsu(r) if np.ptp(r) > 0 else np.inf
        out[z] = r / (r + t) if np.isfinite(t) and t > 0 else 0.0
    return np.clip(out, 0.0, 1.0)


def test_classical_on_several_cores_gives_the_numbers_of_the_per_slice_loop():
    image = _stack(3, 64).image
    image[1] = 0.5  # a flat slice: Otsu has no threshold, the probability is 0
    ref = _old_classical(image)
    assert np.array_equal(create_model("classical", workers=2).predict(image), ref)
    assert np.array_equal(create_model("classical", workers=1).predict(image), ref)
    assert not ref[1].any() and ref[0].any()
