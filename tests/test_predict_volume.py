"""``grainbench predict``: exported weights over a stack on disk, disk to disk, equal to in-memory prediction."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from grainbench.cli import main
from grainbench.data import load
from grainbench.records import load_records
from grainbench.volume_inference import open_prediction, predict_volume
from grainbench.weights import method_from_weights, resolve_weights

TINY = ["--set", "patches_per_epoch=4", "--set", "batch_size=2", "--set", "val_patches=2", "--set", "epochs=1",
        "--model-arg", "width=2", "--no-leaderboard"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{model: weights file} of a tiny unet3d and unet trained on alzn_sim, and the root folder."""
    root = tmp_path_factory.mktemp("predict")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINBENCH_DATA", str(root / "data"))
    mp.setenv("GRAINBENCH_RUNS", str(root / "runs"))
    mp.delenv("GRAINBENCH_REGISTRY", raising=False)
    out = {}
    for model, patch in (("unet3d", "32"), ("unet", "32")):
        assert main(["run", "--model", model, "--dataset", "alzn_sim", "--set", f"patch_size={patch}", *TINY]) == 0
    for _, rec in load_records(root / "runs/records/alzn_sim")[0]:
        assert main(["export", rec["run_id"], "--out", str(root / "w")]) == 0
        out[rec["config"]["model"]] = root / "w" / f"{rec['run_id']}.safetensors"
    volume = load("alzn_sim", "test").image[:12, :80, :72]  # an odd shape: tiles are cut at the faces
    mp.undo()
    tifffile.imwrite(root / "vol.tif", (np.clip(volume, 0, 1) * 255).round().astype(np.uint8))
    return root, out


@pytest.mark.parametrize("model, suffix", [("unet3d", ".zarr"), ("unet", ".h5")])
def test_predict_writes_what_the_method_predicts_in_memory(exported, model, suffix, capsys):
    root, weights = exported
    out = root / f"{model}{suffix}"
    assert main(["predict", "--weights", str(weights[model]), str(root / "vol.tif"), str(out)]) == 0
    method = method_from_weights(resolve_weights(str(weights[model])))
    image = tifffile.imread(root / "vol.tif").astype(np.float32) / 255
    want = method.predict(image)
    with open_prediction(out) as got:
        assert got.shape == image.shape
        np.testing.assert_allclose(got[:], want, atol=1e-5)
    assert "Mvoxels/s" in capsys.readouterr().err


def test_an_existing_output_is_kept_without_force_and_replaced_with_it(exported, capsys):
    root, weights = exported
    out = root / "keep.zarr"
    args = ["predict", "--weights", str(weights["unet"]), str(root / "vol.tif"), str(out), "--dtype", "uint8"]
    assert main(args) == 0
    before = sorted(p.name for p in out.rglob("*"))
    assert main(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before
    assert main([*args, "--force"]) == 0
    with open_prediction(out) as p:
        assert p.dtype == np.uint8


def test_a_bad_volume_is_one_line_naming_it_and_writes_nothing(exported, capsys):
    root, weights = exported
    broken = root / "broken.tif"
    broken.write_bytes(b"not a TIFF file")
    out = root / "never.zarr"
    assert main(["predict", "--weights", str(weights["unet"]), str(broken), str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.tif" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(root.glob(".never.zarr*"))


def test_methods_that_need_more_than_one_slice_are_refused():
    class Chain:
        name, context = "wpunet", "2d+prev"

    with pytest.raises(ValueError, match="2d and 3d methods"):
        predict_volume(Chain(), np.zeros((2, 8, 8)), "x.zarr")
