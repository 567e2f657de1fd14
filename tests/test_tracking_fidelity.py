"""The authors' tracking rules (one-to-one links) and the stack statistics, against brute force from their loops."""

import numpy as np
import pytest

from grainbench.data.potts import simulate_potts
from grainbench.data.render import boundary_from_labels
from grainbench.errors import TrackingError
from grainbench.tracking import PairTable, choose_one_to_one, create_tracker, pair_table, slice_grains
from grainbench.tracking.statistics import stack_statistics


def authors_max_overlap(prev, this):
    """``GrainTrack._track_by_max_overlap_area`` of the authors' grain_track, as a dict {this: prev}."""
    prev_ids = [int(p) for p in np.unique(prev) if p]
    this_ids = [int(t) for t in np.unique(this) if t]
    match = {p: {} for p in prev_ids}
    prev_done, this_done, parent = set(), set(), {}
    n_done = 0
    while True:
        for t in this_ids:
            if t in this_done:
                continue
            under = prev[this == t]
            best, area = -1, 0
            for p in np.unique(under):
                if p == 0 or int(p) in prev_done:
                    continue
                a = np.count_nonzero(under == p)
                if a > area:
                    best, area = int(p), a
            if area > 0:
                match[best][t] = area
        for p in prev_ids:
            if match[p]:
                t = sorted(match[p].items(), key=lambda kv: kv[1], reverse=True)[0][0]
                parent[t] = p
                prev_done.add(p)
                this_done.add(t)
        if len(this_done) == n_done:
            break
        n_done = len(this_done)
    return parent


def authors_min_centroid(prev, this):
    """``GrainTrack._track_by_min_centroid_dis``: nearest centroid of all, overlap with IoU > 0.2, one round."""
    prev_ids = [int(p) for p in np.unique(prev) if p]
    cents = np.array([np.argwhere(prev == p).mean(0) for p in prev_ids])
    match = {p: {} for p in prev_ids}
    for t in (int(t) for t in np.unique(this) if t):
        d = ((cents - np.argwhere(this == t).mean(0)) ** 2).sum(1)  # squared: argmin and ties as sqrt
        p = prev_ids[int(np.argmin(d))]
        overlap = np.count_nonzero(prev[this == t] == p)
        if overlap and overlap / np.count_nonzero((this == t) | (prev == p)) > 0.2:
            match[p][t] = d.min()
    return {sorted(m.items(), key=lambda kv: kv[1])[0][0]: p for p, m in match.items() if m}


def parents_of(tracker, prev, this):
    t = pair_table(prev, this)
    par = tracker.link(prev, this, t)
    return {i: int(p) for i, p in enumerate(par) if i and p}


@pytest.fixture(scope="module")
def potts_grains():
    lab = simulate_potts((10, 60, 60), n_grains=90, mc_steps=6, seed=5, boundaries="free")
    return lab, slice_grains(boundary_from_labels(lab))


def test_one_to_one_links_match_the_authors_loops(potts_grains):
    _, g = potts_grains
    mo, mc = create_tracker("max_overlap"), create_tracker("min_centroid")
    for z in range(1, len(g)):
        prev, this = g.labels[z - 1], g.labels[z]
        assert parents_of(mo, prev, this) == authors_max_overlap(prev, this)
        assert parents_of(mc, prev, this) == authors_min_centroid(prev, this)


def test_choose_one_to_one_rounds_and_ties():
    # this 1 and 2 both want prev 1 (overlap 5 and 5: the smaller id wins); 2 then takes prev 2 only with repeat
    pairs = PairTable(this=np.array([1, 2, 2, 3]), prev=np.array([1, 1, 2, 3]), overlap=np.array([5, 5, 4, 1]),
                      this_area=np.zeros(4, int), prev_area=np.zeros(4, int))
    assert choose_one_to_one(pairs, pairs.overlap).tolist() == [0, 1, 0, 3]
    assert choose_one_to_one(pairs, pairs.overlap, repeat=True).tolist() == [0, 1, 2, 3]
    assert choose_one_to_one(pairs, pairs.overlap, accept=pairs.overlap > 1).tolist() == [0, 1, 0, 0]
    with pytest.raises(TrackingError, match="score"):
        choose_one_to_one(pairs, np.ones(3))


def brute_statistics(lab):
    from skimage.measure import label

    z = lab.shape[0]
    ids = [set(np.unique(s).tolist()) - {0} for s in lab]
    comps = [label(s, background=0, connectivity=1) for s in lab]
    counts = [int(c.max()) for c in comps]
    pairs = []
    for k in range(1, z):
        seen = set()
        for y in range(lab.shape[1]):
            for x in range(lab.shape[2]):
                a, b = comps[k][y, x], comps[k - 1][y, x]
                if a and b:
                    seen.add((a, b))
        pairs.append(len(seen))
    every = [i for s in ids for i in s]
    return {
        "grains_per_slice": np.mean(counts),
        "mean_grain_area": np.mean([(s > 0).sum() / c for s, c in zip(lab, counts)]),
        "appear_per_slice": np.mean([len(ids[k] - ids[k - 1]) for k in range(1, z)]),
        "vanish_per_slice": np.mean([len(ids[k - 1] - ids[k]) for k in range(1, z)]),
        "appear_rate": np.mean([len(ids[k] - ids[k - 1]) / counts[k] for k in range(1, z)]),
        "pairs_per_slice": np.mean(pairs),
        "extra_sections": 1 - sum(len(s) for s in ids) / sum(counts),
        "slices_per_grain": len(every) / len(set(every)),
        "grains_3d": len(set(every)),
    }


@pytest.mark.parametrize("with_boundary", [False, True])
def test_stack_statistics_match_brute_force(potts_grains, with_boundary):
    lab = potts_grains[0]
    if with_boundary:
        lab = np.where(boundary_from_labels(lab), 0, lab)
    got, want = stack_statistics(lab), brute_statistics(lab)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    assert got["appear_per_slice"] > 0 and got["vanish_per_slice"] > 0  # a Potts stack has both events
    with pytest.raises(TrackingError, match="label volume"):
        stack_statistics(lab[:1])


def test_metropolis_acceptance_table_is_exp():
    from grainbench.data.potts import _acceptance

    for kt in (0.3, 0.5, 2.0):
        t = _acceptance(kt)
        np.testing.assert_allclose(t, np.exp(-np.arange(53) / kt), rtol=1e-15)
        assert t[0] == 1.0 and np.all(np.diff(t) < 0)
