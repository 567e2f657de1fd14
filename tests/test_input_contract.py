"""The input contract (grainbench.contract): every row of the README table, through every entry point.

Entries: ``score()`` (arrays), ``grainbench score`` (files), ``grainbench submit``
(files, writes a record) and ``grainbench track --boundaries-file``. Every form
of the ground truth must score VI 0 / BF1 1 against itself, and a probability
map must get the same post-processing whichever entry it came through.
"""

import json

import h5py
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from grainbench import data
from grainbench.cli import main
from grainbench.contract import interpret, mask_from_colour, rgb_to_grey
from grainbench.errors import InputFileError
from grainbench.examples import example_pair
from grainbench.io import read_array
from grainbench.metrics.tolerant import tophat_score
from grainbench.postprocess import binarize
from grainbench.records import read_record
from grainbench.scoring import score


def _gt2d() -> np.ndarray:
    return example_pair((64, 64), 12, seed=3)[1]


# -- the table, row by row ------------------------------------------------------------------------------
MASK_FORMS = {
    "bool": lambda b: b,
    "uint8 0/1": lambda b: b.astype(np.uint8),
    "uint8 0/255": lambda b: b.astype(np.uint8) * 255,
    "uint16 0/1": lambda b: b.astype(np.uint16),
    "uint16 0/65535": lambda b: b.astype(np.uint16) * 65535,
    "int64 0/1": lambda b: b.astype(np.int64),
    "int32 0/255": lambda b: b.astype(np.int32) * 255,
    "float32 0/1": lambda b: b.astype(np.float32),
    "float64 0/1": lambda b: b.astype(np.float64),
    "torch bool": lambda b: torch.from_numpy(b),
    "torch uint8 0/1": lambda b: torch.from_numpy(b.astype(np.uint8)),
}


@pytest.mark.parametrize("form", MASK_FORMS)
def test_every_binary_form_is_a_mask_and_the_truth_scores_perfectly(form):
    gt = _gt2d()
    arr = MASK_FORMS[form](gt)
    read = interpret(arr)
    assert read.kind == "mask"
    assert np.array_equal(read.values.numpy(), gt)
    agg = score(arr, gt, "wpunet-2019").aggregate
    assert agg["vi"] == 0.0 and agg["bf1"] == 1.0 and agg["dice"] == 1.0
    # also as the ground truth
    agg = score(gt, arr, "wpunet-2019").aggregate
    assert agg["vi"] == 0.0 and agg["bf1"] == 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_unsigned_greys_are_probabilities_divided_by_the_dtype_maximum(dtype):
    p = np.array([[0.0, 0.25, 0.4, 0.75, 1.0]])
    top = np.iinfo(dtype).max
    greys = np.rint(p * top).astype(dtype)
    read = interpret(greys)
    assert read.kind == "probability"
    np.testing.assert_allclose(read.values.numpy(), greys / top, rtol=1e-6)
    assert binarize(greys).tolist() == [[False, False, False, True, True]]
    # the tolerant metrics read the same contract
    np.testing.assert_allclose(tophat_score(greys, greys == top).precision,
                               tophat_score(greys.astype(np.float64) / top, greys == top).precision)


def test_floats_in_unit_interval_are_probabilities_and_the_rest_is_refused():
    assert interpret(np.array([[0.2, 0.9]])).kind == "probability"
    with pytest.raises(ValueError, match="NaN"):
        interpret(np.array([[0.2, np.nan]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpret(np.array([[0.2, 1.5]]))
    with pytest.raises(ValueError, match="binary"):
        interpret(np.array([[0, 3]], np.int64))
    with pytest.raises(TypeError, match="dtype"):
        interpret(np.array([["a"]]))


def test_probability_map_gets_the_same_post_processing_through_api_and_cli(tmp_path, capsys):
    prob, gt = example_pair((64, 64), 12, seed=5)
    grey8 = np.rint(prob * 255).astype(np.uint8)
    api_u8 = score(grey8, gt).aggregate
    api_float = score(grey8.astype(np.float32) / 255, gt).aggregate
    assert api_u8 == pytest.approx(api_float)
    Image.fromarray(grey8).save(tmp_path / "pred.png")
    Image.fromarray(gt.astype(np.uint8)).save(tmp_path / "gt.png")  # 0/1 ground truth
    assert main(["score", str(tmp_path / "pred.png"), str(tmp_path / "gt.png"), "--json",
                 str(tmp_path / "r.json")]) == 0
    cli = json.loads((tmp_path / "r.json").read_text())["aggregate"]
    assert cli == pytest.approx(api_u8)
    assert score(torch.from_numpy(grey8), gt).aggregate == pytest.approx(api_u8)


def test_uint8_grey_probability_is_closed_and_thinned_by_score():
    # The case: a thick uint8 grey boundary; the API used to threshold it without closing/thinning.
    gt = _gt2d()
    from scipy import ndimage as ndi

    thick = ndi.binary_dilation(gt)
    grey = np.where(thick, 200, 30).astype(np.uint8)
    agg = score(grey, gt).aggregate
    assert agg == pytest.approx(score(grey.astype(np.float32) / 255, gt).aggregate)
    assert agg["vi"] < 0.1  # thinned back to (about) the 1-pixel truth, not a 3-pixel band
    # the truth scores perfectly against itself whatever it was saved as; a thick band does not
    assert score(thick, gt).aggregate["dice"] < 0.9


# -- files: colour, palette, alpha ------------------------------------------------------------------------
def _save_png_forms(gt: np.ndarray, folder) -> dict[str, object]:
    """The ground truth saved each way a mask PNG is saved in practice; returns form -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    u8 = gt.astype(np.uint8)
    paths = {}

    def save(name, im):
        paths[name] = folder / f"{name}.png"
        im.save(paths[name])

    save("8-bit 0-1", Image.fromarray(u8))
    save("8-bit 0-255", Image.fromarray(u8 * 255))
    save("1-bit", Image.fromarray(gt))
    save("16-bit", Image.fromarray(u8.astype(np.uint16) * 65535))
    pal = Image.fromarray(u8, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    save("palette", pal)
    rgba = np.zeros((*gt.shape, 4), np.uint8)
    rgba[..., 3] = u8 * 255
    save("alpha-only", Image.fromarray(rgba, "RGBA"))
    save("grey-as-rgb", Image.fromarray(np.repeat((u8 * 255)[..., None], 3, -1), "RGB"))
    save("la", Image.fromarray(np.stack([u8 * 255, np.full_like(u8, 255)], -1), "LA"))
    return paths


def test_every_png_form_of_the_truth_reads_back_as_the_truth(tmp_path):
    gt = _gt2d()
    for form, path in _save_png_forms(gt, tmp_path).items():
        arr = read_array(path, mask=True)
        assert np.array_equal(interpret(arr).values.numpy(), gt), form
        assert interpret(arr).kind == "mask", form


def test_every_png_form_of_the_truth_scores_perfectly_with_grainbench_score(tmp_path, capsys):
    gt = _gt2d()
    ref = tmp_path / "gt.png"
    Image.fromarray(gt.astype(np.uint8) * 255).save(ref)
    for form, path in _save_png_forms(gt, tmp_path / "forms").items():
        out = tmp_path / f"{form}.json"
        assert main(["score", str(path), str(ref), "--json", str(out)]) == 0, form
        agg = json.loads(out.read_text())["aggregate"]
        assert agg["vi"] == 0.0 and agg["bf1"] == 1.0, form
        assert main(["score", str(ref), str(path), "--json", str(out)]) == 0, form  # as the ground truth
        assert json.loads(out.read_text())["aggregate"]["vi"] == 0.0, form


def test_colour_masks_are_refused_naming_the_file(tmp_path, capsys):
    gt = _gt2d()
    red = np.zeros((*gt.shape, 3), np.uint8)
    red[..., 0] = gt * 255
    Image.fromarray(red, "RGB").save(tmp_path / "red.png")
    assert main(["score", str(tmp_path / "red.png"), str(tmp_path / "red.png")]) == 2
    err = capsys.readouterr().err
    assert "red.png" in err and "colour" in err
    pal = Image.fromarray(gt.astype(np.uint8), mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # boundary drawn in red
    pal.save(tmp_path / "pal.png")
    with pytest.raises(InputFileError, match="pal.png.*colour"):
        read_array(tmp_path / "pal.png", mask=True)
    both = np.zeros((*gt.shape, 4), np.uint8)
    both[..., 0] = gt * 255
    both[..., 3] = 255 - gt * 100
    with pytest.raises(InputFileError, match="x.png: colour mask with transparency"):
        mask_from_colour(both, "x.png")


def test_input_images_turn_grey_the_same_way_from_png_and_tiff(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    png, tif = read_array(tmp_path / "c.png"), read_array(tmp_path / "c.tif")
    assert np.array_equal(png, tif)
    assert np.array_equal(png, np.asarray(Image.fromarray(rgb).convert("L")))  # PIL's own weights
    assert np.array_equal(rgb_to_grey(rgb), png)


# -- submit and track ----------------------------------------------------------------------------------
@pytest.fixture
def env(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    return data.load("synthetic", "test"), tmp_path


def _submit(tmp_path, preds, name):
    return main(["submit", "--dataset", "synthetic", "--predictions", str(preds), "--name", name,
                 "--records", str(tmp_path / "records"), "--leaderboards", str(tmp_path / "lb")])


def _stack_forms(truth: np.ndarray, tmp_path) -> dict[str, object]:
    forms = {}
    for name, make in {"u8-01": lambda b: b.astype(np.uint8), "u16-max": lambda b: b.astype(np.uint16) * 65535,
                       "int64-01": lambda b: b.astype(np.int64)}.items():
        forms[f"{name}.npy"] = tmp_path / f"{name}.npy"
        np.save(forms[f"{name}.npy"], make(truth))
    tifffile.imwrite(tmp_path / "u8-01.tif", truth.astype(np.uint8))
    forms["u8-01.tif"] = tmp_path / "u8-01.tif"
    for kind, save in {"png-01": lambda sl, p: Image.fromarray(sl.astype(np.uint8)).save(p),
                       "png-1bit": lambda sl, p: Image.fromarray(sl).save(p)}.items():
        folder = tmp_path / kind
        folder.mkdir()
        for i, sl in enumerate(truth):
            save(sl, folder / f"{i:03d}.png")
        forms[kind] = folder
    return forms


def test_every_form_of_the_truth_scores_perfectly_through_submit(env):
    volume, tmp_path = env
    for name, path in _stack_forms(volume.boundary, tmp_path).items():
        assert _submit(tmp_path, path, name.replace(".", "-")) == 0, name
    for rec in map(read_record, (tmp_path / "records" / "synthetic").glob("*.json")):
        agg = rec["metrics"]["aggregate"]
        assert agg["vi"] == 0.0 and agg["bf1"] == 1.0, rec["config"]["model"]


def test_every_form_of_the_truth_tracks_like_the_truth_with_boundaries_file(env):
    volume, tmp_path = env
    common = ["track", "--dataset", "synthetic", "--records", str(tmp_path / "records"),
              "--leaderboards", str(tmp_path / "lb"), "--workdir", str(tmp_path / "runs"), "--device", "cpu",
              "--tracker", "max_overlap", "--no-figure"]
    assert main(common) == 0
    forms = _stack_forms(volume.boundary, tmp_path)
    for name in ("u8-01.npy", "png-1bit"):
        assert main([*common, "--boundaries", name.replace(".", "-"), "--boundaries-file", str(forms[name])]) == 0
    recs = {read_record(p)["config"]["boundaries"]: read_record(p)["metrics"]["aggregate"]
            for p in (tmp_path / "records" / "synthetic" / "tracking").glob("*.json")}
    assert set(recs) == {"ground-truth", "u8-01-npy", "png-1bit"}
    assert recs["u8-01-npy"] == pytest.approx(recs["ground-truth"])
    assert recs["png-1bit"] == pytest.approx(recs["ground-truth"])


# -- untrusted HDF5 ------------------------------------------------------------------------------------
def test_hdf5_external_links_and_virtual_datasets_are_refused(tmp_path, capsys):
    gt = _gt2d()
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f["boundary"] = gt.astype(np.uint8)
    with h5py.File(tmp_path / "sneaky.h5", "w") as f:
        f["pred"] = h5py.ExternalLink(str(tmp_path / "truth.h5"), "/boundary")
    assert main(["score", str(tmp_path / "sneaky.h5"), str(tmp_path / "truth.h5")]) == 2
    err = capsys.readouterr().err
    assert "sneaky.h5" in err and "external link" in err
    with h5py.File(tmp_path / "virtual.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=gt.shape, dtype=np.uint8)
        layout[:] = h5py.VirtualSource(str(tmp_path / "truth.h5"), "boundary", shape=gt.shape)
        f.create_virtual_dataset("pred", layout)
    with pytest.raises(InputFileError, match="virtual.h5.*other files"):
        read_array(tmp_path / "virtual.h5")
    with h5py.File(tmp_path / "soft.h5", "w") as f:  # a soft link inside the file is fine
        f["data/boundary"] = gt.astype(np.uint8)
        f["pred"] = h5py.SoftLink("/data/boundary")
    assert np.array_equal(read_array(tmp_path / "soft.h5", key="pred"), gt)
