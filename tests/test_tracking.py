"""Grain tracking and 3D reconstruction: pairs, links, events (appear/vanish/split/merge), scoring, CNN tracker."""

import numpy as np
import pytest
import torch

from grainbench.data.potts import simulate_potts
from grainbench.data.render import boundary_from_labels
from grainbench.errors import GrainbenchError, TrackingError
from grainbench.metrics.information import variation_of_information
from grainbench.metrics.rand import adjusted_rand_index
from grainbench.tracking import (
    PairTable,
    Tracker,
    choose,
    create_tracker,
    get_tracker_class,
    list_trackers,
    pair_table,
    register_tracker,
    score_volume,
    slice_grains,
)
from grainbench.tracking.cnn import (
    DenseNet161Tracker,
    PairSet,
    VGG13BNTracker,
    render_pairs,
)

# --------------------------------------------------------------------------- helpers

def same_partition(a, b):
    """True when two label volumes are equal up to a one-to-one relabelling (0 included)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def with_boundaries(labels):
    b = boundary_from_labels(labels)
    return b, np.where(b, 0, labels).astype(np.int32)


def columnar(shape=(6, 64, 64), n=10, drift=(0.5, 1.0), seed=0):
    """2D Voronoi cells extruded along z, seeds drifting a little per slice: no grain appears or vanishes."""
    z, h, w = shape
    rng = np.random.default_rng(seed)
    pts = rng.uniform((8, 8), (h - 8, w - 8), (n, 2))
    yy, xx = np.mgrid[:h, :w]
    slices = []
    for k in range(z):
        p = pts + k * np.asarray(drift)
        d = (yy[..., None] - p[:, 0]) ** 2 + (xx[..., None] - p[:, 1]) ** 2
        slices.append(d.argmin(-1) + 1)
    return with_boundaries(np.stack(slices).astype(np.int32))


@pytest.fixture(scope="module")
def potts():
    """A small generated Potts polycrystal: grains appear, vanish and change shape along z."""
    return with_boundaries(simulate_potts((12, 64, 64), n_grains=60, mc_steps=5, seed=3, boundaries="free"))


def potts_stack(seed):
    return with_boundaries(simulate_potts((16, 80, 80), n_grains=110, mc_steps=8, seed=seed, boundaries="free"))


# --------------------------------------------------------------------------- pairs and links

def test_pair_table_matches_brute_force(rng):
    prev = rng.integers(0, 7, (20, 30))
    this = rng.integers(0, 5, (20, 30))
    t = pair_table(prev, this)
    got = {(int(a), int(b)): int(c) for a, b, c in zip(t.this, t.prev, t.overlap)}
    want = {}
    for a, b in zip(this.ravel(), prev.ravel()):
        if a and b:
            want[(int(a), int(b))] = want.get((int(a), int(b)), 0) + 1
    assert got == want
    assert list(zip(t.this, t.prev)) == sorted(zip(t.this, t.prev))
    assert np.array_equal(t.this_area, np.bincount(this.ravel(), minlength=5))
    assert np.array_equal(t.prev_area, np.bincount(prev.ravel(), minlength=7))


def test_pair_table_sparse_path_agrees_with_dense(rng):
    # every pixel its own grain: the overlap matrix is far larger than the image, so np.unique is used
    this = rng.permutation(64 * 64).reshape(64, 64) + 1
    prev = np.roll(this, 1, axis=1)
    t = pair_table(prev, this)
    assert len(t) == 64 * 64 and (t.overlap == 1).all()
    assert np.array_equal(t.prev, prev.ravel()[np.argsort(this.ravel())])


def test_choose_picks_best_accepted_and_breaks_ties_by_smaller_id():
    pairs = PairTable(this=np.array([1, 1, 2, 2, 3]), prev=np.array([4, 2, 1, 3, 1]),
                      overlap=np.array([5, 5, 2, 9, 1]), this_area=np.zeros(5, int), prev_area=np.zeros(5, int))
    assert choose(pairs, pairs.overlap).tolist() == [0, 2, 3, 1, 0]
    assert choose(pairs, pairs.overlap, accept=pairs.overlap > 1).tolist() == [0, 2, 3, 0, 0]
    assert choose(pairs, -pairs.overlap).tolist() == [0, 2, 1, 1, 0]


def test_slice_grains_reads_boundaries_and_labels_alike():
    b, lab3d = columnar()
    from_b = slice_grains(b)
    from_l = slice_grains(lab3d * 3 + 7 * (lab3d > 0))  # any ids, 0 kept as boundary
    assert np.array_equal(from_b.counts, from_l.counts)
    assert all(same_partition(x, y) for x, y in zip(from_b.labels, from_l.labels))
    assert (from_b.labels[b] == 0).all()
    with pytest.raises(TrackingError, match="probability"):
        slice_grains(b.astype(np.float32))
    with pytest.raises(TrackingError, match="negative"):
        slice_grains(-np.ones((2, 4, 4), int))
    with pytest.raises(TrackingError, match="shape"):
        slice_grains(np.zeros((2, 2, 4, 4), bool))


# --------------------------------------------------------------------------- reconstruction

@pytest.mark.parametrize("name", ["max_overlap", "min_centroid"])
def test_easy_stack_is_reconstructed_exactly(name):
    b, truth = columnar()
    assert all(len(np.unique(s)) == 11 for s in truth)  # 10 grains + boundary in every slice: an easy case
    out = create_tracker(name).track(b)
    assert out.dtype == np.int32 and out.shape == truth.shape
    assert same_partition(out, truth)
    assert score_volume(out, truth)["vi"] == 0.0 and score_volume(out, truth)["ari"] == 1.0


def test_generated_potts_stack_with_true_boundaries(potts):
    b, truth = potts
    many = create_tracker("max_overlap", one_to_one=False).track(b)
    s = score_volume(many, truth)
    # many-to-one never over-splits true boundaries; its errors are grains that appear inside older ones
    assert s["vi_split"] < 0.05 and s["ari"] > 0.8
    assert s["grains_pred"] <= s["grains_gt"]
    gated = score_volume(create_tracker("max_overlap", min_iou=0.3, one_to_one=False).track(b), truth)
    assert gated["vi"] < s["vi"]
    # the authors' one-to-one rule (the default) recognises the appearances
    one = score_volume(create_tracker("max_overlap").track(b), truth)
    assert one["vi_merge"] < s["vi_merge"] and one["vi"] < s["vi"] and one["ari"] > s["ari"]
    for rule in (True, False):
        centroid = score_volume(create_tracker("min_centroid", one_to_one=rule).track(b), truth)
        assert centroid["vi_split"] < 0.1 and centroid["ari"] > 0.8


def test_appear_and_vanish():
    lab = np.zeros((5, 20, 30), np.int32)
    lab[:, :, :15], lab[:, :, 15:] = 1, 2          # A left, B right through the stack
    lab[1:3, 5:15, 20:28] = 3                       # C inside B in slices 1-2: appears, then vanishes
    lab[3:, 2:8, 2:8] = 4                           # D appears inside A at slice 3
    b, truth = with_boundaries(lab)

    for out in (create_tracker("max_overlap").track(b), create_tracker("min_centroid").track(b),
                create_tracker("max_overlap", min_iou=0.3, one_to_one=False).track(b)):
        assert same_partition(out, truth)
        ids = [set(np.unique(s)) - {0} for s in out]
        c, d = out[1, 10, 24], out[3, 5, 5]
        assert c not in ids[0] and c not in ids[3]      # C appears at 1 and is gone after 2
        assert d not in set().union(*ids[:3])           # D is new: ids are never reused
        assert out[4, 10, 25] == out[0, 10, 25]         # B goes on around C and after it

    # many-to-one (any overlap links) takes C and D for the grains they appear inside
    plain = create_tracker("max_overlap", one_to_one=False).track(b)
    assert plain[1, 10, 24] == plain[0, 10, 25] and plain[3, 5, 5] == plain[0, 5, 5]
    assert score_volume(plain, truth)["vi_merge"] > 0 and score_volume(plain, truth)["vi_split"] == 0


def test_split_of_a_cross_section():
    lab = np.full((4, 20, 30), 1, np.int32)         # grain 1 around a notch of grain 2 at the top edge
    lab[:2, :14, 12:18] = 2
    lab[2:, :, 12:18] = 2                            # from slice 2 grain 2 cuts grain 1's section in two
    b, truth = with_boundaries(lab)
    assert slice_grains(b).counts.tolist() == [2, 2, 3, 3]
    # many-to-one keeps the split halves together
    out = create_tracker("max_overlap", one_to_one=False).track(b)
    assert same_partition(out, truth) and score_volume(out, truth)["vi"] == 0.0
    assert out[3, 10, 5] == out[3, 10, 25] == out[0, 10, 5]
    out = create_tracker("min_centroid", one_to_one=False).track(b)
    assert out[3, 10, 5] == out[3, 10, 25] == out[0, 10, 5]
    # one-to-one (the authors'): one half keeps the id (equal halves: the smaller 2D id, the left), one is new
    out = create_tracker("max_overlap").track(b)
    assert out[3, 10, 5] == out[0, 10, 5] != out[3, 10, 25]
    assert score_volume(out, truth)["vi_split"] > 0 and score_volume(out, truth)["vi_merge"] == 0


def test_merge_best_match_keeps_its_id():
    # A (small) ends where B (large) spreads over it: B's id continues, A's ends
    lab = np.full((3, 20, 30), 2, np.int32)
    lab[0, :, :10] = 1
    b, truth = with_boundaries(lab)
    out = create_tracker("max_overlap").track(b)
    assert same_partition(out, truth)
    assert out[1, 10, 5] == out[0, 10, 20] != out[0, 10, 5]

    # two legs of one grain meeting at slice 1: slice-by-slice tracking keeps two ids, the larger leg wins
    lab = np.full((2, 20, 30), 1, np.int32)
    lab[0, :, 8:12] = 2
    b, truth = with_boundaries(lab)
    out = create_tracker("max_overlap").track(b)
    assert out[0, 10, 2] != out[0, 10, 20] and out[1, 10, 20] == out[0, 10, 20]
    assert score_volume(out, truth)["vi_split"] > 0


def test_empty_slice_restarts_ids():
    lab = np.ones((3, 10, 10), np.int32)
    b, _ = with_boundaries(lab)
    b[1] = True
    out = create_tracker("max_overlap").track(b)
    assert (out[1] == 0).all() and out[2, 5, 5] != out[0, 5, 5]


# --------------------------------------------------------------------------- scoring

def test_score_volume_perfect_relabelled_and_consistent(potts, rng):
    _, truth = potts
    perm = np.concatenate([[0], rng.permutation(np.arange(1, truth.max() + 1)) + 100])
    s = score_volume(perm[truth], truth)
    assert s["vi"] == 0.0 and s["vi_split"] == 0.0 and s["vi_merge"] == 0.0 and s["ari"] == 1.0
    merged = np.where(truth == truth[0, 0, 0], truth.max() + 1, truth)
    merged = np.where(merged == truth[0, -1, -1], truth.max() + 1, merged)
    s = score_volume(merged, truth)
    split, merge = variation_of_information(merged, truth)
    assert s["vi_merge"] == pytest.approx(merge) and s["vi_split"] == pytest.approx(split)
    assert s["vi_merge"] > 0 and s["vi_split"] == 0.0
    assert s["ari"] == pytest.approx(adjusted_rand_index(merged, truth))
    with pytest.raises(TrackingError, match="Z, H, W"):
        score_volume(truth[0], truth[0])


def test_ground_truth_labels_needs_3d_ids():
    from grainbench.data.volume import Volume
    from grainbench.tracking import ground_truth_labels

    b, truth = columnar((3, 32, 32), n=4)
    per_slice = slice_grains(b).labels
    vol = Volume(image=np.zeros(b.shape, np.float32), labels=per_slice, boundary=b, name="x/test")
    with pytest.raises(TrackingError, match="no 3D ground-truth labels"):
        ground_truth_labels(vol, dataset_task="boundary")
    assert np.array_equal(ground_truth_labels(vol, dataset_task="tracking"), per_slice)  # potts_sim: labels are 3D
    vol.meta["labels3d"] = np.where(b, 5, truth)                                           # synthetic: meta wins
    assert np.array_equal(ground_truth_labels(vol), truth)                                 # 0 on boundaries


# --------------------------------------------------------------------------- registry

def test_registry_lists_builtins_and_accepts_submissions():
    assert {"max_overlap", "min_centroid", "vgg13_bn", "densenet161"} <= set(list_trackers())
    assert get_tracker_class("vgg13_bn") is VGG13BNTracker and VGG13BNTracker.arch == "vgg13_bn"
    assert get_tracker_class("densenet161") is DenseNet161Tracker and DenseNet161Tracker.arch == "densenet161"
    with pytest.raises(TrackingError, match="unknown tracker"):
        create_tracker("nope")
    with pytest.raises(TrackingError, match="does not take"):
        create_tracker("max_overlap", nonsense=1)
    assert isinstance(create_tracker("grainbench.tracking.classical:MinCentroidTracker"), Tracker)
    assert issubclass(TrackingError, GrainbenchError)

    @register_tracker
    class LargestIoU(Tracker):
        name = "test_largest_iou"

        def link(self, prev, this, pairs):
            iou = pairs.overlap / (pairs.this_area[pairs.this] + pairs.prev_area[pairs.prev] - pairs.overlap)
            return choose(pairs, iou)

    assert "test_largest_iou" in list_trackers("test_*")
    b, truth = columnar()
    assert same_partition(create_tracker("test_largest_iou").track(b), truth)


# --------------------------------------------------------------------------- CNN tracker

def test_render_pairs_crops_joint_box_and_resizes_by_nearest():
    vol = np.zeros((2, 16, 16), np.int32)
    vol[0, 4:12, 2:10] = 1
    vol[1, 6:12, 2:10] = 5
    vol[1, 4:6, 2:10] = 2
    z, prev, this = (torch.tensor([v]) for v in (1, 1, 5))
    box = torch.tensor([[4, 12, 2, 10]])
    x = render_pairs(torch.from_numpy(vol), z, prev, this, box, 8)
    assert np.array_equal(x[0, 0].numpy(), (vol[0, 4:12, 2:10] == 1))
    assert np.array_equal(x[0, 1].numpy(), (vol[1, 4:12, 2:10] == 5))
    x = render_pairs(torch.from_numpy(vol), z, prev, this, box, 16)
    assert np.array_equal(x[0, 1].numpy(), np.kron(vol[1, 4:12, 2:10] == 5, np.ones((2, 2))))


def test_pairs_of_ground_truth_are_labelled_by_3d_id(potts):
    _, truth = potts
    ps = PairSet.from_labels(truth)
    assert len(ps) > 100 and 0 < ps.same.mean() < 1
    for k in np.linspace(0, len(ps) - 1, 25).astype(int):
        z, p, t = ps.z[k], ps.prev[k], ps.this[k]
        id_prev = np.unique(truth[z - 1][ps.grains.labels[z - 1] == p])
        id_this = np.unique(truth[z][ps.grains.labels[z] == t])
        assert len(id_prev) == len(id_this) == 1
        assert ps.same[k] == int(id_prev[0] == id_this[0])
        y0, y1, x0, x1 = ps.boxes[k]
        both = (ps.grains.labels[z - 1] == p) | (ps.grains.labels[z] == t)
        ys, xs = np.nonzero(both)
        assert (y0, y1, x0, x1) == (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)


def test_cnn_tracker_learns_on_cpu_and_beats_chance(tmp_path):
    torch.set_num_threads(1)
    _, train = potts_stack(1)
    b_test, test = potts_stack(2)
    # a tiny timm model and input size stand in for densenet161 at 224 px (same code path)
    tracker = create_tracker("densenet161", arch="test_resnet", input_size=32, batch_size=32, epochs=2,
                             pairs_per_epoch=320, lr=1e-3, device="cpu")
    with pytest.raises(TrackingError, match="no weights"):
        tracker.track(b_test)
    fit = tracker.fit(train, test, seed=0)
    assert fit.trained and fit.steps == 20 and fit.best_epoch >= 1
    held_out = tracker.evaluate_pairs(PairSet.from_labels(test))
    assert held_out["accuracy"] > held_out["majority_rate"] and held_out["balanced_accuracy"] > 0.6

    out = tracker.track(b_test)
    assert out.shape == test.shape and (out[b_test] == 0).all() and (out[~b_test] > 0).all()
    assert score_volume(out, test)["ari"] > 0.5

    path = tmp_path / "cnn.pt"
    sha = tracker.save(path)
    again = create_tracker("densenet161", device="cpu").load(path)
    assert again.arch_name == "test_resnet" and again.input_size == 32 and len(sha) == 64
    pairs = PairSet.from_grains(slice_grains(b_test))
    assert np.allclose(again.predict_pairs(pairs), tracker.predict_pairs(pairs), atol=1e-6)
    with pytest.raises(TrackingError, match="not a checkpoint of tracker"):
        create_tracker("vgg13_bn", device="cpu").load(path)


@pytest.mark.gpu
def test_cnn_tracker_trains_and_tracks_on_cuda():
    _, train = potts_stack(1)
    b_test, test = potts_stack(2)
    tracker = create_tracker("densenet161", arch="test_resnet", input_size=32, batch_size=32, epochs=2,
                             pairs_per_epoch=320, lr=1e-3, device="cuda")
    tracker.fit(train, test, seed=0)
    out = tracker.track(b_test)
    assert out.shape == test.shape and score_volume(out, test, device="cuda")["ari"] > 0.5
