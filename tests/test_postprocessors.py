"""Post-processors: the protocol's pipeline bit for bit, watershed grains closed and valid, parameters checked,
and the choice carried through score(), the runner's records (own record, no retraining) and the leaderboard."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label
from skimage.morphology import skeletonize
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from grainbench.errors import ConfigError
from grainbench.postprocessors import (agglomerate, get_postprocessor, labels_to_boundary, list_postprocessors,
                                       watershed_labels)
from grainbench.protocol import get_protocol
from grainbench.scoring import prepare_prediction, score

from _helpers import partition_boundary, random_partition

WPUNET = get_protocol("wpunet-2019")


def _gapped_probability(seed, size=128, grains=25, holes=12, hole=5):
    """Voronoi grains, their 1-px boundary at p=0.9 (noise 0.03) with ``holes`` gaps of ``hole`` x ``hole`` px."""
    rng = np.random.default_rng(seed)
    labels = random_partition(rng, (size, size), grains)
    gt = partition_boundary(labels)  # 1 px, every grain closed under 4-connectivity
    prob = np.where(gt, 0.9, 0.05) + rng.normal(0, 0.03, gt.shape)
    ys, xs = np.nonzero(gt)
    r = hole // 2
    for i in rng.choice(len(ys), holes, replace=False):
        sl = (slice(max(ys[i] - r, 0), ys[i] + r + 1), slice(max(xs[i] - r, 0), xs[i] + r + 1))
        prob[sl] = np.where(gt[sl], 0.05, prob[sl])
    return np.clip(prob, 0, 1).astype(np.float32), gt


def _blocks(b):
    """How many 2 x 2 blocks of boundary pixels (a line thicker than 1 px) a boundary map has."""
    return int((b[:-1, :-1] & b[1:, :-1] & b[:-1, 1:] & b[1:, 1:]).sum())


def _reference_protocol(prob, threshold=0.5, closing=3, thin=True):
    """The WPU-Net pipeline written from scipy/scikit-image directly: threshold, padded closing, skeleton."""
    out = []
    for sl in prob if prob.ndim == 3 else prob[None]:
        b = sl > threshold
        if closing > 1:
            b = ndi.binary_closing(np.pad(b, closing, mode="edge"), np.ones((closing, closing), bool))
            b = b[closing:-closing, closing:-closing]
        out.append(skeletonize(b) if thin else b)
    return np.stack(out)


def test_registry_lists_the_protocol_default_and_the_watersheds():
    assert list_postprocessors() == ["protocol", "watershed", "watershed_agglo"]
    assert get_postprocessor().name == "protocol" and get_postprocessor().params == {}


@pytest.mark.parametrize("protocol", ["wpunet-2019", "traced-2023", "phase-2022"])
def test_protocol_postprocessor_is_the_protocols_pipeline_bit_for_bit(protocol, rng):
    p = get_protocol(protocol)
    prob = ndi.gaussian_filter(rng.random((3, 64, 80)), 1.5).astype(np.float32)
    prob = (prob - prob.min()) / np.ptp(prob)
    expected = _reference_protocol(prob, p.threshold, p.closing_size, p.skeletonize)
    assert np.array_equal(get_postprocessor("protocol")(prob, p), expected)
    assert np.array_equal(prepare_prediction(prob, p).numpy(), expected)  # the default of every entry point
    assert np.array_equal(prepare_prediction(prob, p, post="protocol").numpy(), expected)


def _grid_with_gaps(gap, seed=0, size=128, step=32):
    """4 x 4 square grains, 1-px lines at p=0.9 (noise 0.03), a ``gap``-px hole in the middle of every edge."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size), bool)
    lines = np.arange(step - 1, size - 1, step)
    gt[lines, :] = gt[:, lines] = True
    prob = np.where(gt, 0.9, 0.05) + rng.normal(0, 0.03, gt.shape)
    mids = np.arange(step // 2, size, step)
    lo, hi = -(gap // 2), gap - gap // 2
    for line in lines:
        for mid in mids:
            prob[line, mid + lo:mid + hi] = 0.05  # a gap in a horizontal line
            prob[mid + lo:mid + hi, line] = 0.05  # and in a vertical one
    return np.clip(prob, 0, 1).astype(np.float32), gt


@pytest.mark.parametrize("gap", [1, 3, 5, 9])
def test_watershed_closes_gaps_of_known_size_that_the_protocol_leaves_open(gap):
    prob, gt = _grid_with_gaps(gap)
    true_grains, n_true = sk_label(~gt, connectivity=1, return_num=True)
    _, n_protocol = sk_label(~prepare_prediction(prob, WPUNET).numpy()[0], connectivity=1, return_num=True)
    ws = prepare_prediction(prob, WPUNET, post="watershed").numpy()[0]
    ws_grains, n_ws = sk_label(~ws, connectivity=1, return_num=True)
    assert n_true == 16
    if gap >= 3:  # wider than the 3 x 3 closing closes: grains merge
        assert n_protocol < n_true
    assert n_ws == n_true  # every gap closed, no grain split
    both = ~ws & ~gt
    assert adjusted_rand_score(true_grains[both], ws_grains[both]) > 0.99  # a wide gap's line may bend a pixel
    assert _blocks(ws) == 0


def test_watershed_recovers_most_grains_merged_through_gaps():
    prob, gt = _gapped_probability(0)
    n_true = sk_label(~gt, connectivity=1).max()
    n_protocol = sk_label(~prepare_prediction(prob, WPUNET).numpy()[0], connectivity=1).max()
    n_ws = sk_label(~prepare_prediction(prob, WPUNET, post="watershed").numpy()[0], connectivity=1).max()
    assert n_protocol < n_ws and abs(n_true - n_ws) < (n_true - n_protocol) / 2
    assert score(prob, gt, WPUNET, post="watershed").aggregate["vi_merge"] < \
        score(prob, gt, WPUNET).aggregate["vi_merge"] / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["watershed", "watershed_agglo"])
def test_watershed_output_is_a_valid_boundary_map(seed, name):
    """Labelling the output with 4-connectivity gives back the watershed regions, one grain each; 1-px lines."""
    prob, _ = _gapped_probability(seed, holes=20)
    prob = np.clip(prob + np.random.default_rng(seed).normal(0, 0.08, prob.shape), 0, 1)  # noisy: many seeds
    post = get_postprocessor(name)
    b = post(prob, WPUNET)[0]
    regions = watershed_labels(prob, **{k: v for k, v in post.params.items() if k != "merge_below"})
    if name == "watershed_agglo":
        regions = agglomerate(regions, prob, post.params["merge_below"])
    grains = sk_label(~b, connectivity=1)
    m = contingency_matrix(grains[~b], regions[~b]) > 0
    assert (m.sum(axis=1) == 1).all() and (m.sum(axis=0) == 1).all()  # one-to-one: no leak, no split
    assert grains.max() == len(np.unique(regions))  # every region kept a grain
    assert _blocks(b) == 0  # 1-pixel lines


def test_labels_to_boundary_separates_any_partition_under_4_connectivity(rng):
    for n in (2, 10, 60):
        labels = random_partition(rng, (70, 90), n)
        b = labels_to_boundary(labels, rng.random(labels.shape))
        grains = sk_label(~b, connectivity=1)
        m = contingency_matrix(grains[~b], labels[~b]) > 0
        assert (m.sum(axis=1) == 1).all()  # no grain spans two regions


def test_agglomeration_merges_weak_edges_and_keeps_strong_ones():
    """Two grains split by a strong line, each over-segmented by a faint one: merged back to two."""
    prob = np.full((60, 80), 0.05)
    prob[:, 40] = 0.95  # a real boundary
    prob[30, :40] = 0.2  # faint lines inside the grains
    prob[:, 20] = np.maximum(prob[:, 20], 0.2)
    ws = get_postprocessor("watershed", markers="minima", sigma=0.0, h=0.1)(prob, WPUNET)[0]
    agg = get_postprocessor("watershed_agglo", markers="minima", sigma=0.0, h=0.1, merge_below=0.5)(prob, WPUNET)[0]
    assert sk_label(~ws, connectivity=1).max() == 5  # the left grain in four quarters
    grains = sk_label(~agg, connectivity=1)
    assert grains.max() == 2
    assert len(np.unique(grains[:, :35])) == 1 and len(np.unique(grains[:, 45:])) == 1


def test_parameters_are_validated_in_one_line():
    cases = [(("nope",), {}, "unknown post-processor 'nope'"),
             (("watershed",), {"hh": 1}, "unknown parameter(s) hh"),
             (("watershed",), {"h": 0}, "h=0"),
             (("watershed",), {"sigma": "wide"}, "sigma='wide'"),
             (("watershed",), {"markers": "peaks"}, "markers='peaks'"),
             (("watershed",), {"min_size": 2.5}, "min_size=2.5"),
             (("watershed",), {"threshold": float("nan")}, "threshold=nan"),
             (("protocol",), {"threshold": 0.4}, "unknown parameter(s) threshold")]
    for args, kw, text in cases:
        with pytest.raises(ConfigError) as err:
            get_postprocessor(*args, **kw)
        assert text in str(err.value) and "\n" not in str(err.value)
    assert get_postprocessor("watershed", sigma=2).params["sigma"] == 2.0  # ints of float parameters: one run
    with pytest.raises(ConfigError, match="phase"):
        score(np.full((40, 40), 0.3), np.zeros((40, 40), bool), "phase-2022", post="watershed")


def test_binary_predictions_are_not_post_processed_and_results_name_the_post():
    prob, gt = _gapped_probability(3)
    binary = prob > 0.5
    a = score(binary, gt, WPUNET, post="watershed")
    b = score(binary, gt, WPUNET)
    assert a.aggregate == b.aggregate
    assert a.to_dict()["post"]["name"] == "watershed" and b.to_dict()["post"] == {"name": "protocol", "params": {}}
    assert score(prob, gt, WPUNET, post="watershed", post_params={"h_distance": 2}).post.params["h_distance"] == 2.0


# ---------------------------------------------------------------------------- runner, records, leaderboard

TINY = ["--set", "patches_per_epoch=8", "--set", "batch_size=4", "--set", "patch_size=64", "--set", "val_patches=4",
        "--set", "epochs=1", "--model-arg", "width=4"]


@pytest.fixture
def work(synthetic_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAINBENCH_DATA", str(synthetic_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_another_post_processor_gets_its_own_record_without_retraining(work, capsys):
    from grainbench.cli import main
    from grainbench.leaderboard import collect
    from grainbench.records import load_records

    args = ["run", "--model", "unet", "--dataset", "synthetic", "--device", "cpu", "--no-leaderboard", *TINY]
    assert main(args) == 0
    assert "training with preset" in capsys.readouterr().err
    assert main([*args, "--post", "watershed", "--post-param", "h_distance=3"]) == 0
    err = capsys.readouterr().err
    assert "loading trained weights" in err and "training with" not in err and "skipped" not in err
    assert main([*args, "--post", "watershed", "--post-param", "h_distance=3"]) == 0
    assert "skipped: a record of this run exists" in " ".join(capsys.readouterr().err.split())
    records, bad = load_records(work / "runs/records/synthetic")
    assert not bad and len(records) == 2
    cfgs = sorted((rec["config"]["post"], rec["config"]["post_params"].get("h_distance")) for _, rec in records)
    assert cfgs == [("protocol", None), ("watershed", 3.0)]
    ws = next(rec for _, rec in records if rec["config"]["post"] == "watershed")
    assert ws["config"]["post_params"] == get_postprocessor("watershed", h_distance=3).params
    same_weights = {rec["checkpoint"]["sha256"] for _, rec in records}
    assert len(same_weights) == 1
    labels = sorted(collect(records)["model"])
    assert labels == ["unet (width=4)", "unet (width=4) +ws(h_distance=3.0)"]


def test_a_methods_post_attribute_is_used_and_the_cli_overrides_it(work, monkeypatch):
    from grainbench import runner
    from grainbench.methods.registry import get_model_class

    cls = get_model_class("classical")
    monkeypatch.setattr(cls, "post", "watershed")
    monkeypatch.setattr(cls, "post_params", {"sigma": 0.5})
    assert runner.post_for(cls).to_dict() == get_postprocessor("watershed", sigma=0.5).to_dict()
    assert runner.post_for(cls, "protocol").name == "protocol"
    assert runner.post_for(cls, None, {"h": 0.2}).params["sigma"] == 0.5
    with pytest.raises(ConfigError):
        runner.validate_run(["classical"], "synthetic", preset="quick", modes=None, model_args={}, overrides={},
                            device="cpu", post="watershed", post_params={"sigma": -1})


def test_chain_mode_feeds_the_runs_post_processor_forward():
    """A propagation method in chain mode gets, as the mask of slice z-1, its prediction post-processed by
    the same post-processor that scores it."""
    from grainbench.inference import predict_volume
    from grainbench.methods import Method

    prob, _ = _grid_with_gaps(5)

    class Echo(Method):
        name = "echo"
        context = "2d+prev"

        def __init__(self):
            self.seen = []

        def predict(self, image, prev_boundary=None):
            self.seen.append(np.asarray(prev_boundary, bool).copy())
            return np.repeat(prob[None], len(image), axis=0)

    for post in ("protocol", "watershed"):
        method = Echo()
        predict_volume(method, np.zeros((3, *prob.shape), np.float32), mode="chain", protocol=WPUNET, post=post)
        expected = get_postprocessor(post)(prob, WPUNET)[0]
        assert len(method.seen) == 4  # the bootstrap of slice 0, then one call per slice
        for prev in method.seen[1:]:
            assert np.array_equal(prev[0], expected)


def test_score_cli_takes_post_and_its_parameters(tmp_path, capsys):
    import json

    from grainbench.cli import main

    prob, gt = _grid_with_gaps(5)
    np.save(tmp_path / "p.npy", prob)
    np.save(tmp_path / "g.npy", gt)
    out = tmp_path / "r.json"
    assert main(["score", str(tmp_path / "p.npy"), str(tmp_path / "g.npy"), "--post", "watershed",
                 "--post-param", "h_distance=2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["post"] == get_postprocessor("watershed", h_distance=2).to_dict()
    expected = score(prob, gt, WPUNET, post="watershed", post_params={"h_distance": 2}).aggregate
    assert result["aggregate"]["vi"] == pytest.approx(expected["vi"])
    capsys.readouterr()
    assert main(["score", str(tmp_path / "p.npy"), str(tmp_path / "g.npy"), "--post", "watershed",
                 "--post-param", "h_distance=-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "h_distance=-2" in err and len(err.splitlines()) == 1


def test_overlays_and_leaderboard_rows_of_each_post_processor(work):
    from grainbench.cli import main
    from grainbench.records import load_records

    base = ["run", "--model", "classical", "--dataset", "synthetic", "--device", "cpu"]
    assert main(base) == 0
    assert main([*base, "--post", "watershed_agglo"]) == 0
    records, _ = load_records(work / "runs/records/synthetic")
    overlays = {rec["config"]["post"]: rec["figures"]["overlay"] for _, rec in records}
    assert set(overlays) == {"protocol", "watershed_agglo"} and len(set(overlays.values())) == 2
    from PIL import Image

    pictures = [np.asarray(Image.open(p)) for p in overlays.values()]
    assert not np.array_equal(*pictures)  # drawn from each post-processor's boundaries
    table = (work / "runs/leaderboards/synthetic.md").read_text()
    section = table.split("## Reproduced")[1].split("##")[0]  # one ranked table holds both rows
    assert "| classical |" in section and "| classical +ws-agglo |" in section
