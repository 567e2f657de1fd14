"""Evidence: briefly trained WPU-Net and U-Net beat the classical floor on VI (synthetic data).

Small widths and a short schedule keep this near 30 s on two CPU cores; the
default configurations keep the authors' parameter counts (test_methods_api).
"""

import numpy as np
import pytest

from grainbench.data.synthetic import generate_synthetic, synthetic_splits
from grainbench.data.volume import Volume
from grainbench.inference import evaluate
from grainbench.methods import create_model

SHORT = dict(width=8, patch_size=96, batch_size=8, epochs=12, patches_per_epoch=64, val_patches=8)


@pytest.fixture(scope="module")
def splits():
    d = generate_synthetic(seed=1, shape=(24, 160, 160))
    out = {}
    for name, (a, b) in synthetic_splits(24).items():
        meta = {"prev_boundary": d["boundary"][a - 1]} if a > 0 else {}
        out[name] = Volume(d["image"][a:b].astype(np.float32) / 255, d["labels"][a:b], d["boundary"][a:b],
                           serial=True, name=f"synthetic/{name}", meta=meta)
    return out


@pytest.mark.slow
def test_trained_baselines_beat_the_classical_floor(splits):
    (floor,) = evaluate(create_model("classical"), splits["test"])
    vi = {"classical": floor["aggregate"]["vi"]}
    for name in ("wpunet", "unet"):
        m = create_model(name)
        fit = m.fit(splits["train"], splits["val"], preset="quick", seed=0, progress=False, **SHORT)
        assert fit.history["val_loss"][-1] < fit.history["val_loss"][0]
        for rec in evaluate(m, splits["test"]):
            assert rec["preset"] == "quick"
            vi[f"{name}/{rec['mode']}" if rec["mode"] else name] = rec["aggregate"]["vi"]
    print(vi)
    assert set(vi) == {"classical", "wpunet/oracle", "wpunet/chain", "unet"}
    assert vi["wpunet/chain"] < vi["classical"]
    assert vi["unet"] < vi["classical"]
    assert vi["wpunet/oracle"] < vi["classical"]
