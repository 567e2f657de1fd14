"""Inference engine: overlap-tile stitching, oracle and chain propagation, records."""

import numpy as np
import pytest
import torch

from grainbench.data.volume import Volume
from grainbench.examples import labels_to_boundary, voronoi_labels
from grainbench.inference import evaluate, predict_volume, tile_predict
from grainbench.methods import Method, create_model
from grainbench.protocol import get_protocol
from grainbench.scoring import prepare_prediction


@pytest.mark.parametrize("shape", [(1, 1, 256, 256), (2, 2, 300, 517), (1, 1, 40, 70)])
def test_tiles_stitch_back_exactly(shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    calls = []

    def fn(t):
        calls.append(t.shape)
        return t[:, 0]

    out = tile_predict(fn, x, tile=256, margin=32, batch_size=3)
    np.testing.assert_array_equal(out, x[:, 0])
    assert all(c[-2:] == (256, 256) and c[0] <= 3 for c in calls)


def test_tile_centres_only_are_kept():
    # A function that marks tile borders: no marked pixel may reach the output.
    def fn(t):
        out = torch.zeros(t.shape[0], *t.shape[-2:])
        out[:, :8] = out[:, -8:] = 1
        out[:, :, :8] = out[:, :, -8:] = 1
        return out

    out = tile_predict(fn, np.zeros((1, 1, 600, 450), np.float32), tile=128, margin=16)
    assert out.max() == 0
    with pytest.raises(ValueError, match="no centre"):
        tile_predict(fn, np.zeros((1, 1, 8, 8), np.float32), tile=64, margin=32)
    with pytest.raises(ValueError, match="N, C, H, W"):
        tile_predict(fn, np.zeros((8, 8), np.float32))


class CopyPrev(Method):
    """Returns the previous mask as its prediction: exposes what the engine feeds it."""

    name = "copy_prev"
    context = "2d+prev"

    def predict(self, image, prev_boundary=None):
        return np.asarray(prev_boundary, np.float32) * 0.9 + 0.05


def _volume(z=4, size=64):
    labels = np.stack([voronoi_labels((size, size), 10, seed=k) for k in range(z)])
    b = labels_to_boundary(labels)
    return Volume(1 - 0.6 * b.astype(np.float32), labels, b, serial=True, name="toy")


def test_oracle_feeds_ground_truth_and_chain_feeds_own_prediction():
    vol = _volume()
    m = CopyPrev()
    oracle = predict_volume(m, vol, mode="oracle", first_prev=vol.boundary[0])
    np.testing.assert_array_equal(oracle.prob[1:] > 0.5, vol.boundary[:-1])
    chain = predict_volume(m, vol, mode="chain", first_prev=vol.boundary[0])
    # Chain: slice z reads the post-processed (closed, skeletonised) prediction of slice z-1.
    np.testing.assert_array_equal(chain.prob[0] > 0.5, vol.boundary[0])
    for z in range(1, 4):
        fed = prepare_prediction(chain.prob[z - 1], get_protocol("wpunet-2019")).numpy()[0]
        np.testing.assert_array_equal(chain.prob[z] > 0.5, fed)
    assert (chain.prob[3] > 0.5).sum() > 0.8 * vol.boundary[0].sum()
    assert (oracle.mode, chain.mode, chain.first_prev) == ("oracle", "chain", "given")
    boot = predict_volume(m, vol, mode="chain")
    assert boot.first_prev == "bootstrap" and not (boot.prob > 0.5).any()
    with pytest.raises(ValueError, match="unknown mode"):
        predict_volume(m, vol, mode="psychic")
    with pytest.raises(ValueError, match="oracle mode needs"):
        predict_volume(m, vol.image, mode="oracle")


def test_evaluate_records_both_modes_for_propagation_methods():
    vol = _volume()
    vol.meta["prev_boundary"] = vol.boundary[0]
    recs = evaluate(create_model("wpunet", width=4, tile=64, margin=8), vol)
    assert [r["mode"] for r in recs] == ["oracle", "chain"]
    for r in recs:
        assert r["method"] == "wpunet" and r["preset"] == "none" and r["protocol"] == "wpunet-2019@1"
        assert {"vi", "ari", "map"} <= set(r["aggregate"]) and len(r["per_slice"]) == 4
        assert r["first_prev"] == "given" and r["config"]["width"] == 4
    (single,) = evaluate(create_model("classical"), vol)
    assert single["mode"] is None and single["aggregate"]["vi"] < 0.5


def test_a_method_returning_garbage_is_caught():
    class Bad(Method):
        name = "bad"

        def predict(self, image, prev_boundary=None):
            return np.full(image.shape, 2.0)

    with pytest.raises(ValueError, match="outside"):
        predict_volume(Bad(), _volume().image)
