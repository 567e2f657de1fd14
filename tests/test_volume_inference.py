"""Sliding-window 3D inference from disk to disk: same voxels as the in-memory tiler, bounded memory, atomic."""

import tracemalloc

import numpy as np
import pytest
import torch

from baselines.unet3d import UNet3D, UNet3DNet
from grainbench.inference import tile_predict_3d
from grainbench.volume_inference import (
    _reflect,
    open_prediction,
    predict_method_to_store,
    predict_to_store,
    read_window,
)


def test_reflect_matches_numpy_pad_reflect():
    for n in (1, 2, 5):
        a = np.arange(n)
        padded = np.pad(a, (13, 17), mode="reflect")
        assert np.array_equal(a[_reflect(np.arange(-13, n + 17), n)], padded)


def test_read_window_is_the_window_of_the_mirror_padded_volume(rng):
    vol = rng.integers(0, 255, (5, 9, 7), dtype=np.uint8)
    padded = np.pad(vol, ((3, 6), (4, 4), (2, 9)), mode="reflect")
    got = read_window(vol, (-3, 2, -2), (8, 9, 12))
    assert np.array_equal(got, padded[0:8, 6:15, 0:12])


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    net = UNet3DNet(1, 2, width=2, z_pools=1).eval()
    return lambda t: torch.softmax(net(t), 1)[:, 1]


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_disk_to_disk_equals_the_in_memory_tiler(tmp_path, tiny_net, suffix):
    vol = np.random.default_rng(0).integers(0, 256, (11, 37, 45), dtype=np.uint8)
    ref = tile_predict_3d(tiny_net, (vol / 255.0).astype(np.float32)[None], tile=24, margin=4, tile_depth=8,
                          margin_depth=2, batch_size=3)
    out = tmp_path / f"prob{suffix}"
    stats = predict_to_store(tiny_net, vol, out, tile=24, margin=4, tile_depth=8, margin_depth=2, batch_size=2)
    with open_prediction(out) as p:
        assert p.shape == vol.shape and p.chunks == (4, 16, 16)  # one chunk per tile centre
        np.testing.assert_allclose(p[:], ref, atol=1e-6)
    assert stats["voxels"] == vol.size and stats["tiles"] == 3 * 3 * 3
    assert [q.name for q in tmp_path.iterdir()] == [out.name]  # no temporary left behind


def test_a_fitted_method_predicts_to_a_store_as_it_predicts_in_memory(tmp_path):
    m = UNet3D(z_depth=4, width=2, tile=16, margin=2)
    vol = np.random.default_rng(3).integers(0, 256, (9, 21, 19), dtype=np.uint8)
    predict_method_to_store(m, vol, tmp_path / "p.zarr")
    with open_prediction(tmp_path / "p.zarr") as p:
        np.testing.assert_allclose(p[:], m.predict(vol / 255.0), atol=1e-6)
    with open_prediction(tmp_path / "p.zarr") as p:  # uint8 storage: the probability x 255, rounded
        predict_method_to_store(m, vol, tmp_path / "q.zarr", dtype="uint8")
        with open_prediction(tmp_path / "q.zarr") as q:
            assert q.dtype == np.uint8 and np.abs(q[:] / 255.0 - p[:]).max() <= 0.5 / 255 + 1e-6


def test_peak_memory_does_not_grow_with_the_volume(tmp_path):
    def fn(t):  # a voxelwise "network": what is measured is the engine's own buffers
        return torch.sigmoid(t[:, 0] * 4 - 2)

    def peak(depth, engine):
        vol = np.lib.format.open_memmap(tmp_path / f"v{depth}.npy", mode="w+", dtype=np.uint8,
                                        shape=(depth, 96, 96))
        vol[:] = 7
        tracemalloc.start()
        engine(vol, depth)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    def to_store(vol, depth):
        predict_to_store(fn, vol, tmp_path / f"o{depth}.zarr", tile=48, margin=8, tile_depth=8, margin_depth=2)

    def in_memory(vol, depth):
        tile_predict_3d(fn, (np.asarray(vol) / 255.0).astype(np.float32)[None], tile=48, margin=8, tile_depth=8,
                        margin_depth=2)

    small, big = peak(8, to_store), peak(64, to_store)
    assert big < 1.5 * small  # 8x the volume, about the same buffers
    assert big < 64 * 96 * 96 * 4 / 4  # well under the float32 volume
    assert peak(64, in_memory) > 3 * big  # the in-memory tiler's grow (the comparison this engine replaces)


def test_a_failed_prediction_leaves_the_previous_output_as_it_was(tmp_path, tiny_net):
    vol = np.random.default_rng(1).integers(0, 256, (8, 20, 20), dtype=np.uint8)
    out = tmp_path / "p.zarr"
    predict_to_store(tiny_net, vol, out, tile=16, margin=2, tile_depth=8, margin_depth=2)
    with open_prediction(out) as p:
        before = p[:]
    calls = []

    def explode(t):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("out of memory")
        return tiny_net(t)

    with pytest.raises(RuntimeError, match="out of memory"):
        predict_to_store(explode, np.zeros_like(vol), out, tile=16, margin=2, tile_depth=8, margin_depth=2)
    with open_prediction(out) as p:
        assert np.array_equal(p[:], before)
    assert [q.name for q in tmp_path.iterdir()] == ["p.zarr"]


def test_bad_settings_are_refused(tmp_path, tiny_net):
    vol = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="no centre"):
        predict_to_store(tiny_net, vol, tmp_path / "p.zarr", tile=8, margin=4)
    with pytest.raises(ValueError, match=".zarr folder or an .h5"):
        predict_to_store(tiny_net, vol, tmp_path / "p.npy", tile=8, margin=1, tile_depth=4, margin_depth=1)
    with pytest.raises(ValueError, match="not a 3D method"):
        from baselines.unet import UNet

        predict_method_to_store(UNet(width=2), vol, tmp_path / "p.zarr")
