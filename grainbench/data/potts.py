"""Monte Carlo Potts grain growth in 3D, vectorised with numpy.

The model is the classic isotropic Q-state Potts model of grain growth
(Anderson, Srolovitz, Grest and Sahni 1984): every voxel of a simple cubic
lattice carries a grain id; the energy is the number of unlike pairs in the
26-voxel (Moore) neighbourhood, all boundaries have the same energy (isotropic)
and the same mobility.

One Monte Carlo step (MCS) visits every voxel once, in eight sub-lattices
(the eight parities of ``(z, y, x)``): two voxels of one sub-lattice are never
Moore neighbours, so all voxels of a sub-lattice can be updated at the same
time without changing the dynamics. A voxel proposes the id of a random
neighbour; the flip is accepted when the energy does not increase, and with
probability ``exp(-dE / temperature)`` otherwise (Metropolis; ``temperature``
in units of the pair energy). Only voxels with an unlike neighbour can change,
so each step works on the *active* voxels found at its start; a voxel that
becomes active during a step waits for the next one (a small kinetic
approximation that makes a step cost O(boundary voxels), not O(volume)).

The start is a Voronoi tessellation of ``n_grains`` random seeds (far faster
than coarsening from random spins). Boundaries are periodic (no surfaces, the
usual choice) or free (a voxel on a face simply has fewer neighbours; good for
a thin slab that should look like a cut through a thick sample).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.spatial import cKDTree

Boundaries = Literal["periodic", "free"]

# The 26 Moore offsets (dz, dy, dx), and the 13 "forward" ones that count each pair once.
_OFFSETS = np.array(
    [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)]
)
_FORWARD = _OFFSETS[13:]
_SENTINEL = -1  # halo value for free boundaries: equal to no grain id


def voronoi_labels(
    shape: tuple[int, int, int],
    n_grains: int,
    *,
    seed: int | np.random.Generator = 0,
    boundaries: Boundaries = "periodic",
    margin: float = 0.0,
) -> np.ndarray:
    """Voronoi tessellation of ``n_grains`` uniform random seeds.

    Parameters
    ----------
    shape : (Z, H, W)
        Lattice size.
    n_grains : int
        Number of seeds inside the lattice (with ``margin > 0`` more seeds, at
        the same density, lie outside it; their cells may cut into the faces).
    seed : int or numpy Generator
    boundaries : {"periodic", "free"}
        Periodic distances (a seamless tile) or plain ones.
    margin : float
        Free boundaries only: seeds are drawn in a box enlarged by ``margin``
        times the mean cell diameter on every side, so faces cut through cells
        like a section through bulk material instead of bounding them.

    Returns
    -------
    (Z, H, W) int32 array of ids >= 1.
    """
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float64)
    if boundaries == "periodic":
        lo, hi = np.zeros(3), size
    else:
        pad = margin * (np.prod(size) / max(n_grains, 1)) ** (1 / 3)
        lo, hi = -pad, size + pad
    n_points = round(n_grains * np.prod(hi - lo) / np.prod(size))
    points = lo + rng.random((n_points, 3)) * (hi - lo)
    if boundaries == "periodic":
        points = np.mod(points, size)  # cKDTree wants [0, boxsize)
        tree = cKDTree(points, boxsize=size)
    else:
        tree = cKDTree(points)
    out = np.empty(shape, dtype=np.int32)
    yy, xx = np.mgrid[: shape[1], : shape[2]].astype(np.float64) + 0.5
    plane = np.stack([np.zeros_like(yy).ravel(), yy.ravel(), xx.ravel()], axis=1)
    step = max(1, 2_000_000 // plane.shape[0])  # query in slabs to bound memory
    for z0 in range(0, shape[0], step):
        zs = np.arange(z0, min(z0 + step, shape[0]), dtype=np.float64) + 0.5
        q = np.tile(plane, (len(zs), 1))
        q[:, 0] = np.repeat(zs, plane.shape[0])
        _, idx = tree.query(q, workers=-1)
        out[z0 : z0 + len(zs)] = (idx + 1).reshape(len(zs), shape[1], shape[2])
    return out


def potts_energy(labels: np.ndarray, *, boundaries: Boundaries = "free") -> int:
    """Number of unlike neighbour pairs in the 26-neighbourhood (the Potts energy, J = 1)."""
    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    total = 0
    for dz, dy, dx in _FORWARD:
        if boundaries == "periodic":
            other = np.roll(lab, (-dz, -dy, -dx), axis=(0, 1, 2))
            total += int(np.count_nonzero(lab != other))
        else:
            a = lab[
                max(0, -dz) : lab.shape[0] - max(0, dz),
                max(0, -dy) : lab.shape[1] - max(0, dy),
                max(0, -dx) : lab.shape[2] - max(0, dx),
            ]
            b = lab[
                max(0, dz) : lab.shape[0] + min(0, dz),
                max(0, dy) : lab.shape[1] + min(0, dy),
                max(0, dx) : lab.shape[2] + min(0, dx),
            ]
            total += int(np.count_nonzero(a != b))
    return total


def _fill_halo(p: np.ndarray, boundaries: Boundaries) -> None:
    """Refresh the one-voxel halo of the padded lattice in place."""
    if boundaries == "free":
        return  # the sentinel halo never changes
    # Axis by axis, halo planes included, so edges and corners wrap correctly.
    p[0], p[-1] = p[-2], p[1]
    p[:, 0], p[:, -1] = p[:, -2], p[:, 1]
    p[:, :, 0], p[:, :, -1] = p[:, :, -2], p[:, :, 1]


def _active_flat(p: np.ndarray, boundaries: Boundaries) -> np.ndarray:
    """Sorted flat indices (in the padded lattice) of interior voxels whose 3 x 3 x 3 box holds two ids.

    A superset of the voxels with an unlike Moore neighbour (the only ones that
    can flip). The box holds two ids exactly when it holds an unlike face pair;
    a pair along axis ``a`` with lower voxel ``w`` lies in the box of ``v`` when
    ``v[a] - w[a]`` is 0 or 1 and the other coordinates differ by at most 1.
    So: mark the lower voxels of unlike pairs along each axis and dilate the
    marks by those offsets (separable boolean passes, far cheaper than max and
    min filters over the ids).
    """
    inner = (slice(1, -1),) * 3
    # Periodic: the halo holds the wrapped neighbours, so include it; free: pairs inside only.
    core = p if boundaries == "periodic" else p[inner]
    box = np.zeros(core.shape, dtype=bool)
    for axis in range(3):
        mark = np.zeros(core.shape, dtype=bool)
        mark[_cut(axis, None, -1)] = core[_cut(axis, None, -1)] != core[_cut(axis, 1, None)]
        for other in range(3):
            grown = mark.copy()
            grown[_cut(other, 1, None)] |= mark[_cut(other, None, -1)]  # v = w + 1
            if other != axis:
                grown[_cut(other, None, -1)] |= mark[_cut(other, 1, None)]  # v = w - 1
            mark = grown
        box |= mark
    act = np.zeros(p.shape, dtype=bool)
    act[inner] = box[inner] if boundaries == "periodic" else box
    return np.flatnonzero(act)


def _cut(axis: int, start: int | None, stop: int | None) -> tuple[slice, ...]:
    """Index of ``start:stop`` along ``axis`` of a 3D array."""
    idx = [slice(None)] * 3
    idx[axis] = slice(start, stop)
    return tuple(idx)


_CHUNK = 1 << 16


def _update(flat: np.ndarray, sites: np.ndarray, offs: np.ndarray, kt: float, rng: np.random.Generator,
            integer_draws: bool = False) -> None:
    """One Metropolis trial at each of ``sites`` (mutually non-adjacent), in place."""
    old = flat[sites]
    cand = flat[sites + offs[rng.integers(0, 26, sites.size)]]
    trial = (cand != old) & (cand != _SENTINEL)
    sites, old, cand = sites[trial], old[trial], cand[trial]
    # dE = sum over the 26 neighbours of [nb == old] - [nb == cand].
    de = np.zeros(sites.size, dtype=np.int16)
    for o in offs:
        nb = flat[sites + o]
        de += nb == old
        de -= nb == cand
    accept = de <= 0
    if kt > 0:
        hot = ~accept
        # Tables of exp(-dE / kt) made once with Python's scalar math.exp: numpy's vectorised exp may
        # differ in the last bit between CPUs (SIMD code paths), and a flipped comparison changes the volume.
        if integer_draws:  # 32-bit integers against integer thresholds: no float in the decision at all
            accept[hot] = rng.integers(0, 1 << 32, int(hot.sum()), dtype=np.uint64) < _thresholds(kt)[de[hot]]
        else:
            accept[hot] = rng.random(int(hot.sum())) < _acceptance(kt)[de[hot]]
    flat[sites[accept]] = cand[accept]


def _thresholds(kt: float) -> np.ndarray:
    """``floor(2**32 exp(-dE / kt))`` for dE = 0..52 (uint64): the acceptance in units of 2**-32."""
    import math

    key = float(kt)
    table = _THRESHOLDS.get(key)
    if table is None:
        table = _THRESHOLDS[key] = np.array(
            [min(1 << 32, math.floor(math.ldexp(math.exp(-d / key), 32))) for d in range(53)], dtype=np.uint64)
    return table


_THRESHOLDS: dict[float, np.ndarray] = {}


def _acceptance(kt: float) -> np.ndarray:
    """``exp(-dE / kt)`` for dE = 0..52: the Metropolis acceptance of a flip that raises the energy by dE."""
    import math

    key = float(kt)
    table = _ACCEPTANCE.get(key)
    if table is None:
        table = _ACCEPTANCE[key] = np.array([math.exp(-d / key) for d in range(53)])
    return table


_ACCEPTANCE: dict[float, np.ndarray] = {}


def potts_steps(
    labels: np.ndarray,
    mc_steps: int,
    *,
    seed: int | np.random.Generator = 0,
    temperature: float = 0.5,
    boundaries: Boundaries = "periodic",
    progress: bool = False,
    integer_draws: bool = False,
) -> np.ndarray:
    """Run ``mc_steps`` Monte Carlo steps of Potts grain growth on a label volume.

    Parameters
    ----------
    labels : (Z, H, W) integer array
        Starting grain ids (>= 0); not modified.
    mc_steps : int
        Monte Carlo steps (each visits every voxel once).
    seed : int or numpy Generator
    temperature : float
        Metropolis temperature in units of the boundary pair energy; 0 accepts
        only flips that do not raise the energy. A little noise (about 0.5)
        keeps boundaries from pinning on the lattice.
    boundaries : {"periodic", "free"}
        With periodic boundaries the sub-lattice update is exact for even
        sizes; along an odd axis the two faces share a parity and read each
        other's values from the start of the sub-sweep.
    progress : bool
        Show a rich progress bar.
    integer_draws : bool
        Decide thermal flips by 32-bit random integers against integer
        thresholds (no float comparison at all; potts_sim version 2) instead
        of uniform floats against ``exp(-dE / T)`` (kept because the pinned
        ``synthetic`` volume was drawn that way). Both tables are computed
        with scalar ``math.exp``, so both are the same on every machine.

    Returns
    -------
    (Z, H, W) int32 array, the coarsened ids (same id set, some ids vanish).
    """
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ValueError(f"labels must be (Z, H, W), got shape {lab.shape}")
    if boundaries not in ("periodic", "free"):
        raise ValueError(f"boundaries must be 'periodic' or 'free', got {boundaries!r}")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be >= 0")
    rng = np.random.default_rng(seed)
    p = np.pad(lab.astype(np.int32), 1, mode="constant", constant_values=_SENTINEL)
    _fill_halo(p, boundaries)
    sy, sx = p.shape[1] * p.shape[2], p.shape[2]
    offs = (_OFFSETS @ np.array([sy, sx, 1])).astype(np.int64)
    flat = p.reshape(-1)
    # Parity code of every padded voxel, for the eight sub-lattices.
    zz, yy, xx = np.ogrid[: p.shape[0], : p.shape[1], : p.shape[2]]
    parity = ((zz & 1) * 4 + (yy & 1) * 2 + (xx & 1)).astype(np.uint8).reshape(-1)
    kt = float(temperature)

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("Potts grain growth", total=mc_steps)
    try:
        for _ in range(mc_steps):
            active = _active_flat(p, boundaries)
            if active.size == 0:
                break
            code = parity[active]
            for sub in rng.permutation(8):
                sub_sites = active[code == sub]
                # Chunks of nearby sites keep the 26 gathers inside the cache.
                for c0 in range(0, sub_sites.size, _CHUNK):
                    _update(flat, sub_sites[c0 : c0 + _CHUNK], offs, kt, rng, integer_draws)
                _fill_halo(p, boundaries)
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return np.ascontiguousarray(p[1:-1, 1:-1, 1:-1])


def relabel_connected(labels: np.ndarray, *, connectivity: int = 3) -> np.ndarray:
    """Give every connected region of equal id its own id, numbered 1.. in scan order.

    A grain split by the volume's faces (periodic wrap) or by coarsening
    becomes several grains, as a 3D reconstruction would see it.
    ``connectivity`` 3 (26-neighbours, the Potts neighbourhood) keeps the
    lattice's diagonal-only contacts inside one grain; 1 (faces) splits them.
    """
    from skimage.measure import label

    # background=-1: id 0 is a grain like any other here.
    out = label(np.asarray(labels), background=-1, connectivity=connectivity)
    return out.astype(np.int32)


def simulate_potts(
    shape: tuple[int, int, int] = (400, 400, 400),
    *,
    n_grains: int,
    mc_steps: int,
    seed: int = 0,
    temperature: float = 0.5,
    quench_steps: int = 2,
    boundaries: Boundaries = "periodic",
    margin: float = 1.0,
    progress: bool = False,
    integer_draws: bool = False,
) -> np.ndarray:
    """Simulate an isotropic polycrystal: Voronoi start, then Potts grain growth.

    Parameters
    ----------
    shape : (Z, H, W)
    n_grains : int
        Voronoi seeds at the start; grain growth leaves fewer.
    mc_steps : int
        Monte Carlo steps at ``temperature``.
    seed : int
        Everything is drawn from ``numpy.random.default_rng(seed)``: the same
        seed gives the same volume (for one numpy version).
    temperature : float
        Metropolis temperature (units of the pair energy).
    quench_steps : int
        Final steps at temperature 0, which remove the isolated voxels that
        thermal flips leave on boundaries.
    boundaries : {"periodic", "free"}
    margin : float
        Free boundaries: Voronoi seeds also lie this many mean cell diameters
        outside the volume (see :func:`voronoi_labels`).
    progress : bool
        Show a rich progress bar.
    integer_draws : bool
        See :func:`potts_steps`.

    Returns
    -------
    (Z, H, W) int32 grain ids, >= 1, each a 26-connected region in 3D, numbered
    in scan order.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes, got {shape}")
    if n_grains < 1:
        raise ValueError(f"n_grains must be >= 1, got {n_grains}")
    rng = np.random.default_rng(seed)
    lab = voronoi_labels(tuple(shape), n_grains, seed=rng, boundaries=boundaries, margin=margin)
    lab = potts_steps(lab, mc_steps, seed=rng, temperature=temperature, boundaries=boundaries, progress=progress,
                      integer_draws=integer_draws)
    if quench_steps:
        lab = potts_steps(lab, quench_steps, seed=rng, temperature=0.0, boundaries=boundaries)
    return relabel_connected(lab, connectivity=3)


#: Defaults of the ``potts_sim`` dataset, version 2 (400 slices of 400 x 400; see benchmarks/data.py for
#: its time). Seed 000 and the authors' dataset README give the size, isotropic growth, "5000 monte
#: carlo step" and one count: about half a million overlapping grain pairs of adjacent slices in the
#: 240 training slices (about 2,100 per slice pair). 5,000 steps from random spins on 400^3 are hours
#: on a CPU, and the grain size they reach depends on kinetics the papers do not give (temperature,
#: number of spins), so the state is matched instead: a Voronoi start whose density gives that pair
#: count after 200 steps (measured on 80 x 200 x 200 stacks, scaled to 400 x 400: 1,200 seeds give 663
#: pairs per slice pair, 4,800 give 1,502, 9,600 give 2,202).
POTTS_SIM_DEFAULTS: dict[str, Any] = {
    "n_grains": 9600,
    "mc_steps": 200,
    "temperature": 0.5,
    "boundaries": "periodic",
    "integer_draws": True,
}

#: Half-open slice ranges of the ``potts_sim`` splits (design.md, registry).
POTTS_SIM_SPLITS = {"train": (0, 240), "val": (240, 320), "test": (320, 400)}


def generate_potts_sim(
    seed: int = 0,
    shape: tuple[int, int, int] = (400, 400, 400),
    *,
    render: bool = True,
    render_config: Any = None,
    progress: bool = False,
    **kw: Any,
) -> dict[str, np.ndarray]:
    """The ``potts_sim`` dataset: a simulated polycrystal sliced along z.

    Parameters
    ----------
    seed : int
    shape : (Z, H, W)
        The registry's size is (400, 400, 400). For a smaller shape the number
        of seeds scales with the volume, so grains keep their size.
    render : bool
        Also render micrographs (key ``"image"``).
    render_config : RenderConfig, optional
    progress : bool
    **kw
        Overrides of :data:`POTTS_SIM_DEFAULTS` passed to :func:`simulate_potts`.

    Returns
    -------
    dict with ``"labels"`` (Z, H, W) int32 3D grain ids >= 1 everywhere,
    ``"boundary"`` (Z, H, W) bool 1-pixel in-slice boundaries (see
    :func:`grainbench.data.render.boundary_from_labels`) and ``"image"``
    (Z, H, W) uint8 rendered micrographs.
    """
    from .render import boundary_from_labels, render_micrographs

    params = dict(POTTS_SIM_DEFAULTS)
    if "n_grains" not in kw:
        params["n_grains"] = max(1, round(params["n_grains"] * np.prod(shape) / 400**3))
    params.update(kw)
    labels = simulate_potts(tuple(shape), seed=seed, progress=progress, **params)
    boundary = boundary_from_labels(labels)
    out = {"labels": labels, "boundary": boundary}
    if render:
        out["image"] = render_micrographs(labels, seed=seed, config=render_config, boundary=boundary)
    return out
