"""Generators: Potts grain growth, the renderer, the synthetic dataset and digests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from grainbench.components import grains_from_boundary
from grainbench.data.hashing import array_digest
from grainbench.data.potts import (
    POTTS_SIM_SPLITS,
    generate_potts_sim,
    potts_energy,
    potts_steps,
    relabel_connected,
    simulate_potts,
    voronoi_labels,
)
from grainbench.data.render import (
    RenderConfig,
    boundary_from_labels,
    render_layers,
    render_micrographs,
)
from grainbench.data.synthetic import (
    SYNTHETIC_SPLITS,
    generate_synthetic,
    synthetic_splits,
)

SMALL = (6, 64, 64)


@pytest.fixture(scope="module")
def synthetic():
    return generate_synthetic(0)


@pytest.fixture(scope="module")
def volume():
    """A small 3D polycrystal for renderer tests."""
    return simulate_potts((4, 96, 96), n_grains=30, mc_steps=3, seed=5, boundaries="free")


# --- hashing ---------------------------------------------------------------------------------


def test_digest_is_order_and_layout_independent_but_content_sensitive():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    d = array_digest({"a": a, "b": a > 5})
    assert d == array_digest({"b": a > 5, "a": np.asfortranarray(a)})
    assert d == array_digest({"a": a.astype(">i4"), "b": a > 5})
    assert d != array_digest({"a": a.astype(np.int64), "b": a > 5})
    assert d != array_digest({"a": a.reshape(4, 3), "b": (a > 5).reshape(4, 3)})
    assert d != array_digest({"c": a, "b": a > 5})
    b = a.copy()
    b[2, 3] += 1
    assert d != array_digest({"a": b, "b": a > 5})
    assert len(d) == 64


# --- Potts -----------------------------------------------------------------------------------


def test_potts_reproduces_and_depends_on_seed():
    a = simulate_potts(SMALL, n_grains=20, mc_steps=3, seed=1)
    b = simulate_potts(SMALL, n_grains=20, mc_steps=3, seed=1)
    c = simulate_potts(SMALL, n_grains=20, mc_steps=3, seed=2)
    assert a.dtype == np.int32 and a.shape == SMALL
    assert array_digest({"l": a}) == array_digest({"l": b})
    assert array_digest({"l": a}) != array_digest({"l": c})


def test_potts_labels_are_connected_and_one_based():
    lab = simulate_potts(SMALL, n_grains=20, mc_steps=3, seed=3, boundaries="free")
    assert lab.min() == 1
    assert set(np.unique(lab)) == set(range(1, lab.max() + 1))
    # Relabelling again changes nothing: every id is one 26-connected region.
    assert np.array_equal(relabel_connected(lab), lab)


@pytest.mark.parametrize("boundaries", ["periodic", "free"])
def test_potts_energy_decreases_and_grains_grow(boundaries):
    start = voronoi_labels((16, 48, 48), 400, seed=0, boundaries=boundaries)
    energies, sizes = [], []
    lab = start
    for i in range(3):
        energies.append(potts_energy(lab, boundaries=boundaries))
        sizes.append(lab.size / relabel_connected(lab).max())
        lab = potts_steps(lab, 6, seed=i, temperature=0.3, boundaries=boundaries)
    energies.append(potts_energy(lab, boundaries=boundaries))
    sizes.append(lab.size / relabel_connected(lab).max())
    assert all(e1 < e0 for e0, e1 in zip(energies, energies[1:])), energies
    assert sizes[-1] > 1.2 * sizes[0], sizes


def test_potts_zero_temperature_never_raises_energy():
    lab = voronoi_labels((8, 32, 32), 60, seed=1, boundaries="free")
    e0 = potts_energy(lab)
    out = potts_steps(lab, 1, seed=0, temperature=0.0, boundaries="free")
    assert potts_energy(out) <= e0
    assert set(np.unique(out)) <= set(np.unique(lab))  # flips only copy neighbouring ids


@pytest.mark.parametrize("boundaries", ["periodic", "free"])
def test_potts_active_sites_are_boxes_holding_two_ids(boundaries):
    # The fast active-site search must equal its definition (it fixes the
    # random stream, hence the pinned digests).
    from grainbench.data.potts import _active_flat, _fill_halo

    rng = np.random.default_rng(0)
    for shape in ((5, 7, 9), (6, 8, 8)):
        for lab in (rng.integers(0, 3, shape), voronoi_labels(shape, 4, seed=1, boundaries=boundaries)):
            p = np.pad(lab.astype(np.int32), 1, constant_values=-1)
            _fill_halo(p, boundaries)
            src = p if boundaries == "periodic" else p[1:-1, 1:-1, 1:-1]
            two = ndi.maximum_filter(src, size=3, mode="nearest") != ndi.minimum_filter(src, size=3, mode="nearest")
            want = np.zeros(p.shape, bool)
            want[1:-1, 1:-1, 1:-1] = two[1:-1, 1:-1, 1:-1] if boundaries == "periodic" else two
            assert np.array_equal(_active_flat(p, boundaries), np.flatnonzero(want))


def test_potts_energy_counts_unlike_pairs():
    lab = np.zeros((1, 3, 3), dtype=np.int32)
    lab[0, :, 2] = 1  # a straight boundary between columns 1 and 2
    # Pairs across it: 3 horizontal + 2 * 2 diagonal.
    assert potts_energy(lab) == 7
    assert potts_energy(np.ones((2, 4, 4), np.int32), boundaries="periodic") == 0


def test_potts_rejects_bad_input():
    with pytest.raises(ValueError):
        potts_steps(np.zeros((4, 4), np.int32), 1)
    with pytest.raises(ValueError):
        potts_steps(np.zeros((2, 4, 4), np.int32), 1, boundaries="mirror")
    with pytest.raises(ValueError):
        simulate_potts((4, 4), n_grains=3, mc_steps=1)


def test_generate_potts_sim_small():
    d = generate_potts_sim(0, shape=(8, 40, 40), mc_steps=2)
    assert set(d) == {"labels", "boundary", "image"}
    assert d["labels"].dtype == np.int32 and d["labels"].min() >= 1
    assert d["boundary"].dtype == bool and d["image"].dtype == np.uint8
    assert d["image"].shape == d["boundary"].shape == d["labels"].shape == (8, 40, 40)
    assert np.array_equal(d["boundary"], boundary_from_labels(d["labels"]))
    again = generate_potts_sim(0, shape=(8, 40, 40), mc_steps=2)
    assert array_digest(d) == array_digest(again)
    assert POTTS_SIM_SPLITS == {"train": (0, 240), "val": (240, 320), "test": (320, 400)}


# --- boundaries from labels ------------------------------------------------------------------


def test_boundary_from_labels_separates_grains_with_thin_lines(volume):
    b = boundary_from_labels(volume)
    for z in range(volume.shape[0]):
        comps, n = ndi.label(~b[z])
        inside = comps > 0
        pairs = np.unique(np.stack([comps[inside], volume[z][inside]]), axis=1)
        assert pairs.shape[1] == n  # each component lies in one grain
        # and nearly every grain section survives (only 1-2 pixel slivers can vanish)
        sections = sum(ndi.label(volume[z] == g)[1] for g in np.unique(volume[z]))
        assert n >= sections - 2
    # one pixel wide: 2 x 2 all-boundary blocks are rare
    blocks = b[:, :-1, :-1] & b[:, 1:, :-1] & b[:, :-1, 1:] & b[:, 1:, 1:]
    assert blocks.sum() <= 0.01 * b.sum()


def test_boundary_of_straight_interfaces_is_one_pixel():
    lab = np.ones((20, 20), np.int32)
    lab[:, 10:] = 2
    b = boundary_from_labels(lab)
    assert b.sum(axis=1).tolist() == [1] * 20
    diag = (np.add.outer(np.arange(20), -np.arange(20)) > 0).astype(np.int32) + 1
    for lab in (diag, diag.T, diag[::-1], diag[:, ::-1]):
        b = boundary_from_labels(lab)
        assert (b.sum(axis=1) <= 1).all()  # an 8-connected diagonal, not a staircase
        assert ndi.label(~b)[1] == 2


# --- renderer --------------------------------------------------------------------------------


def test_render_dtype_shape_range_and_determinism(volume):
    img = render_micrographs(volume, seed=0)
    assert img.dtype == np.uint8 and img.shape == volume.shape
    assert 0 < img.min() < img.max() <= 255
    assert np.array_equal(img, render_micrographs(volume, seed=0))
    assert not np.array_equal(img, render_micrographs(volume, seed=1))
    assert render_micrographs(volume[0], seed=0).shape == volume.shape[1:]


def test_render_boundaries_are_dark_and_grains_light(volume):
    clean = RenderConfig().without_flaws()
    img = render_micrographs(volume, seed=0, config=clean).astype(float)
    b = boundary_from_labels(volume)
    far = ndi.distance_transform_edt(~b) > 4
    assert img[b].mean() < img[far].mean() - 60


def test_render_grain_contrast_switch(volume):
    flat = replace(RenderConfig().without_flaws(), grain_contrast=0.0, boundary_depth=0.0, blur_sigma=0.0)
    img = render_micrographs(volume, seed=0, config=flat)
    assert np.unique(img).size == 1
    varied = render_micrographs(volume, seed=0, config=replace(flat, grain_contrast=0.05))
    means = ndi.mean(varied, volume, np.unique(volume))
    assert np.std(means) > 3


def test_render_scratches_change_only_their_neighbourhood(volume):
    base = RenderConfig(scratch_rate=3.0)
    with_s = render_layers(volume, seed=2, config=base)
    without = render_micrographs(volume, seed=2, config=replace(base, scratch_rate=0.0))
    scratch = with_s["scratches"] > 1e-3
    assert scratch.any()
    near = np.stack([ndi.binary_dilation(s, iterations=4) for s in scratch])
    diff = with_s["image"] != without
    assert diff.any()
    assert not (diff & ~near).any()  # identical away from the scratches
    # scratches darken the image
    strong = with_s["scratches"] > 0.2
    assert with_s["image"][strong].astype(float).mean() < without[strong].astype(float).mean() - 20


def test_render_gaps_reduce_boundary_contrast_and_persist(volume):
    cfg = replace(RenderConfig().without_flaws(), gap_rate=6.0, gap_missing_fraction=1.0, gap_persistence=1.0)
    layers = render_layers(volume, seed=3, config=cfg)
    plain = render_micrographs(volume, seed=3, config=replace(cfg, gap_rate=0.0))
    b = boundary_from_labels(volume)
    gap = layers["gap_missing"] > 0.9
    assert (b & gap).sum() > 20
    # at the gaps the boundary is about as bright as a grain
    assert layers["image"][b & gap].astype(float).mean() > plain[b & gap].astype(float).mean() + 40
    touched = np.stack([ndi.binary_dilation(m > 1e-3, iterations=3) for m in layers["gap_missing"]])
    assert np.array_equal(layers["image"][~touched], plain[~touched])  # unchanged away from the gaps
    # with persistence 1 a gap stays at the same place in every later slice
    assert (gap[0] & ~gap[1]).sum() == 0


def test_render_blurred_gaps_are_faint_but_not_gone(volume):
    cfg = replace(RenderConfig().without_flaws(), gap_rate=6.0, gap_missing_fraction=0.0, gap_persistence=0.0)
    layers = render_layers(volume, seed=4, config=cfg)
    plain = render_micrographs(volume, seed=4, config=replace(cfg, gap_rate=0.0)).astype(float)
    b = boundary_from_labels(volume)
    blur = (layers["gap_blurred"] > 0.9) & b
    assert blur.sum() > 20 and (layers["gap_missing"] == 0).all()
    img = layers["image"].astype(float)
    far = ndi.distance_transform_edt(~b) > 6
    assert plain[blur].mean() + 20 < img[blur].mean() < img[far].mean() - 5


def test_render_noise_and_illumination_switches(volume):
    clean = RenderConfig().without_flaws()
    ref = render_micrographs(volume, seed=0, config=clean).astype(float)
    noisy = render_micrographs(volume, seed=0, config=replace(clean, noise_sigma=0.05)).astype(float)
    assert 8 < np.std(noisy - ref) < 18  # 0.05 * 255 = 12.75
    shot = render_micrographs(volume, seed=0, config=replace(clean, shot_noise=0.05)).astype(float)
    assert np.std(shot - ref) > 5
    lit = render_micrographs(volume, seed=0, config=replace(clean, illumination=0.3)).astype(float)
    ratio = lit / np.maximum(ref, 1)
    assert ratio.max() - ratio.min() > 0.15
    pits = render_layers(volume, seed=0, config=replace(clean, pit_density=20.0))
    assert (pits["pits"] > 0.1).any()
    assert (pits["image"].astype(float) <= ref + 1).all()


def test_render_config_validates():
    with pytest.raises(ValueError):
        RenderConfig(noise_sigma=-1)
    with pytest.raises(ValueError):
        RenderConfig(gap_persistence=1.5)
    with pytest.raises(ValueError):
        RenderConfig(gap_radius=(9.0, 3.0))
    with pytest.raises(TypeError):
        render_micrographs(np.zeros((4, 4)), seed=0)


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_shapes_dtypes_and_splits(synthetic):
    shape = (48, 256, 256)
    assert set(synthetic) == {"image", "boundary", "labels", "labels3d"}
    assert synthetic["image"].dtype == np.uint8 and synthetic["image"].shape == shape
    assert synthetic["boundary"].dtype == bool and synthetic["boundary"].shape == shape
    assert synthetic["labels"].dtype == np.int32 and synthetic["labels3d"].dtype == np.int32
    sizes = {k: b - a for k, (a, b) in SYNTHETIC_SPLITS.items()}
    assert sizes == {"train": 32, "val": 8, "test": 8}
    assert SYNTHETIC_SPLITS["train"][0] == 0 and SYNTHETIC_SPLITS["test"][1] == shape[0]
    assert synthetic_splits(48) == SYNTHETIC_SPLITS
    s = synthetic_splits(10)
    assert s["train"][0] == 0 and s["test"][1] == 10 and s["train"][1] == s["val"][0] and s["val"][1] == s["test"][0]


def test_synthetic_labels_are_grains_from_boundary(synthetic):
    b, labels, labels3d = synthetic["boundary"], synthetic["labels"], synthetic["labels3d"]
    assert np.array_equal(grains_from_boundary(b).numpy(), labels)
    assert ((labels == 0) == b).all() and ((labels3d == 0) == b).all()
    counts = [int(labels[z].max()) for z in range(labels.shape[0])]
    assert 30 <= np.mean(counts) <= 90, counts
    for z in (0, 24, 47):
        inside = labels[z] > 0
        pairs = np.unique(np.stack([labels[z][inside], labels3d[z][inside]]), axis=1)
        assert pairs.shape[1] == labels[z].max()  # every 2D grain lies in one 3D grain
    # 3D ids carry over between slices: most pixels keep their grain from z to z + 1
    same = (labels3d[:-1] == labels3d[1:]) & ~b[:-1] & ~b[1:]
    assert same.sum() > 0.8 * (~b[:-1] & ~b[1:]).sum()


def test_synthetic_boundary_is_thin(synthetic):
    b = synthetic["boundary"]
    blocks = b[:, :-1, :-1] & b[:, 1:, :-1] & b[:, :-1, 1:] & b[:, 1:, 1:]
    assert blocks.sum() <= 0.002 * b.sum()


def test_synthetic_image_shows_boundaries(synthetic):
    img, b = synthetic["image"].astype(float), synthetic["boundary"]
    far = ndi.distance_transform_edt(~b[40:]) > 4
    assert img[40:][b[40:]].mean() < img[40:][far].mean() - 40


def test_synthetic_digest_reproduces_and_differs_by_seed(synthetic):
    small = (6, 64, 64)
    a, b = generate_synthetic(3, shape=small), generate_synthetic(3, shape=small)
    assert array_digest(a) == array_digest(b)
    assert array_digest(a) != array_digest(generate_synthetic(4, shape=small))
    with pytest.raises(TypeError):
        generate_synthetic(0, shape=small, n_grains=3)
