"""Generation and load times of the generated datasets.

Times the embedded ``synthetic`` stack at its default size, ``potts_sim`` at a
reduced size with a linear extrapolation to the registry's 400 x 400 x 400
(the costs scale with the voxel count at a fixed grain size, since the number
of seeds scales with the volume), and reading a stack back from disk with
:func:`grainbench.io.read_array`. Prints the array digests so the registry
can pin them.

    python benchmarks/data.py [--potts-shape 100 200 200] [--potts-steps N] [--repeat 3] [--full]

Targets (issue 3): synthetic under 30 s on 2 CPU cores; potts_sim at full
size under 20 minutes.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from grainbench.data.hashing import array_digest
from grainbench.data.potts import (
    POTTS_SIM_DEFAULTS,
    potts_steps,
    relabel_connected,
    voronoi_labels,
)
from grainbench.data.render import boundary_from_labels, render_micrographs
from grainbench.data.synthetic import generate_synthetic
from grainbench.io import atomic_write, read_array

FULL = (400, 400, 400)


def _timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--potts-shape", type=int, nargs=3, default=(100, 200, 200))
    ap.add_argument("--potts-steps", type=int, default=20, help="MC steps timed at the reduced size")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the load timing (best is shown)")
    ap.add_argument("--full", action="store_true", help="also generate potts_sim at full size (minutes)")
    args = ap.parse_args()

    print("synthetic (48 x 256 x 256, default)")
    syn, t_syn = _timed(generate_synthetic, 0)
    print(f"  generate            {t_syn:8.2f} s")
    print(f"  digest              {array_digest(syn)}")
    print(f"  grains per slice    {np.mean([syn['labels'][z].max() for z in range(len(syn['labels']))]):.0f}")

    shape = tuple(args.potts_shape)
    frac = float(np.prod(shape)) / float(np.prod(FULL))
    n = max(1, round(POTTS_SIM_DEFAULTS["n_grains"] * frac))
    steps_full = POTTS_SIM_DEFAULTS["mc_steps"] + 2  # + quench steps
    print(f"potts_sim at {shape[0]} x {shape[1]} x {shape[2]} ({n} seeds, 1/{1 / frac:.0f} of 400^3)")
    rng = np.random.default_rng(0)
    lab, t_vor = _timed(voronoi_labels, shape, n, seed=rng)
    lab, t_mc = _timed(potts_steps, lab, args.potts_steps, seed=rng, temperature=POTTS_SIM_DEFAULTS["temperature"])
    lab, t_rel = _timed(relabel_connected, lab)
    bnd, t_bnd = _timed(boundary_from_labels, lab)
    _, t_ren = _timed(render_micrographs, lab, seed=0, boundary=bnd)
    per_step = t_mc / args.potts_steps
    rows = [
        ("voronoi", t_vor, t_vor / frac),
        (f"MC step (x{steps_full} at full)", per_step, per_step / frac * steps_full),
        ("relabel", t_rel, t_rel / frac),
        ("boundary", t_bnd, t_bnd / frac),
        ("render", t_ren, t_ren / frac),
    ]
    print(f"  {'stage':28s} {'measured':>10s} {'full (extrapolated)':>22s}")
    for name, t, full in rows:
        print(f"  {name:28s} {t:9.2f}s {full:20.0f} s")
    total = sum(r[2] for r in rows)
    print(f"  {'total at 400^3':28s} {'':10s} {total:20.0f} s  ({total / 60:.1f} min, linear; the full volume"
          " no longer fits the caches, so expect it somewhat slower: use --full to measure)")
    if args.full:
        from grainbench.data.potts import generate_potts_sim

        full, t_full = _timed(generate_potts_sim, 0)
        print(f"  measured at 400^3 (generate_potts_sim(0))     {t_full:8.0f} s  ({t_full / 60:.1f} min)")
        print(f"  digest              {array_digest(full)}")
        del full

    print("load a stack (synthetic image, 48 x 256 x 256 uint8)")
    with tempfile.TemporaryDirectory() as tmp:
        import tifffile

        for suffix in (".npy", ".tif"):
            path = Path(tmp) / f"stack{suffix}"
            with atomic_write(path) as fh:
                if suffix == ".npy":
                    np.save(fh, syn["image"])
                else:
                    buf = io.BytesIO()  # tifffile wants a named file or a buffer
                    tifffile.imwrite(buf, syn["image"])
                    fh.write(buf.getvalue())
            best = min(_timed(read_array, path)[1] for _ in range(args.repeat))
            back = read_array(path)
            assert np.array_equal(back, syn["image"]), f"{suffix}: read back differs"
            print(f"  read_array {suffix:5s}      {best * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
