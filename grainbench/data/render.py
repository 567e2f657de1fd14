"""Render grain label volumes into micrograph-like serial sections.

The picture is an etched optical micrograph of a single-phase metal such as
pure iron: light grains whose grey level depends on the grain (orientation
dependent etching), thin dark boundary grooves, optical blur. On top come the
three flaws of real serial sections (seed 000):

* blurred or missing boundary segments (incomplete etching), some at the same
  place in several adjacent slices;
* noise: Gaussian read noise, intensity-dependent shot noise and small dark
  pits from sample preparation;
* spurious scratches from polishing: thin dark straight or gently curved lines
  that cross grains and look like boundaries;

and optionally an illumination gradient. Every effect has a strength in
:class:`RenderConfig`; 0 switches it off. Each effect draws from its own random
stream (spawned from ``seed``), so switching one off leaves the others
unchanged, pixel for pixel. Flaws only change the image: ground truth
boundaries stay exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage as ndi

# Names of the independent random streams, in spawn order (append only: reordering changes every image).
_STREAMS = ("grains", "depth", "gaps", "scratches", "pits", "noise", "shot", "light")


@dataclass(frozen=True)
class RenderConfig:
    """Appearance and flaws of rendered micrographs (intensities in [0, 1]).

    Attributes
    ----------
    grain_mean : float
        Mean grey level of grains.
    grain_contrast : float
        Standard deviation of the per-grain grey level (0: all grains alike).
        A grain keeps its level through the stack.
    boundary_depth : float
        Fraction of the grain grey removed at the centre of a boundary groove.
    boundary_width : float
        Gaussian sigma (pixels) of the groove profile.
    boundary_variation : float
        Slow variation of groove darkness along a boundary, as a fraction of
        ``boundary_depth`` (0: uniform grooves).
    gap_rate : float
        New boundary gaps per 1000 boundary pixels per slice (0: no gaps).
    gap_strength : float
        How much of the groove a *missing* gap removes (1: all of it).
    gap_missing_fraction : float
        Share of gaps that are missing; the rest are *blurred* (a wide, faint groove).
    gap_radius : (float, float)
        Range of gap radii in pixels.
    gap_persistence : float
        Probability that a gap continues, at the same place, into the next slice.
    noise_sigma : float
        Standard deviation of additive Gaussian noise.
    shot_noise : float
        Standard deviation of shot noise at intensity 1 (scales with the square
        root of intensity; a Gaussian approximation of Poisson noise).
    pit_density : float
        Dark pits (etch pits, dirt) per 10^4 pixels per slice.
    pit_depth : float
        Darkness of the deepest pits.
    scratch_rate : float
        Mean number of scratches per slice (Poisson; 0: none).
    scratch_depth : float
        Darkness of the darkest scratches (a boundary has ``boundary_depth``).
    scratch_width : float
        Gaussian sigma (pixels) of the scratch profile.
    scratch_curvature : float
        Bend of a scratch: control-point offset as a fraction of its length.
    illumination : float
        Relative brightness change across the field (a linear gradient; 0: even).
    brightness_jitter : float
        Standard deviation of the relative brightness of each slice.
    blur_sigma : float
        Optical blur (Gaussian sigma, pixels) applied before noise.
    """

    grain_mean: float = 0.74
    grain_contrast: float = 0.045
    boundary_depth: float = 0.7
    boundary_width: float = 0.75
    boundary_variation: float = 0.35
    gap_rate: float = 0.5
    gap_strength: float = 1.0
    gap_missing_fraction: float = 0.6
    gap_radius: tuple[float, float] = (5.0, 14.0)
    gap_persistence: float = 0.6
    noise_sigma: float = 0.02
    shot_noise: float = 0.02
    pit_density: float = 1.0
    pit_depth: float = 0.5
    scratch_rate: float = 0.8
    scratch_depth: float = 0.4
    scratch_width: float = 0.7
    scratch_curvature: float = 0.08
    illumination: float = 0.1
    brightness_jitter: float = 0.015
    blur_sigma: float = 0.7

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(not np.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"RenderConfig.{f.name} must be finite and >= 0, got {value!r}")
        for name in ("gap_strength", "gap_missing_fraction", "gap_persistence"):
            if getattr(self, name) > 1:
                raise ValueError(f"RenderConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        lo, hi = self.gap_radius
        if lo > hi:
            raise ValueError(f"RenderConfig.gap_radius must be (low, high), got {self.gap_radius!r}")

    def without_flaws(self) -> "RenderConfig":
        """The same appearance with every flaw (gaps, noise, pits, scratches, illumination) off."""
        d = asdict(self)
        for name in ("gap_rate", "noise_sigma", "shot_noise", "pit_density", "scratch_rate", "illumination",
                     "brightness_jitter"):
            d[name] = 0.0
        return RenderConfig(**d)


def boundary_from_labels(labels: np.ndarray) -> np.ndarray:
    """One-pixel in-slice grain boundaries of a label image or volume.

    A pixel is marked when one of its 4-neighbours (in its slice) has a larger
    label, so every interface is drawn once, on the side of the smaller id.
    Every 4-connected step between two labels then touches a marked pixel:
    the 4-connected components of non-boundary pixels (what
    :func:`grainbench.components.grains_from_boundary` returns) never mix two
    grains. The marks are 8-connected lines one pixel wide at every
    orientation (the "differs from the right or lower neighbour" rule gives
    2-pixel staircases on one diagonal, and skeletonising those moves pixels
    across grains and merges small ones). A final pass unmarks pixels whose
    unmarked 4-neighbours all belong to their own grain (redundant corners).

    Parameters
    ----------
    labels : (H, W) or (Z, H, W) integer array

    Returns
    -------
    bool array of the same shape.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (Z, H, W), got shape {lab.shape}")
    b = np.zeros(lab.shape, dtype=bool)
    b[..., :, :-1] |= lab[..., :, 1:] > lab[..., :, :-1]
    b[..., :, 1:] |= lab[..., :, :-1] > lab[..., :, 1:]
    b[..., :-1, :] |= lab[..., 1:, :] > lab[..., :-1, :]
    b[..., 1:, :] |= lab[..., :-1, :] > lab[..., 1:, :]
    # Unmark redundant pixels in two checkerboard passes (pixels of one pass are
    # never 4-adjacent, so unmarking them together cannot join two grains).
    h, w = lab.shape[-2:]
    checker = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    for colour in (False, True):
        ok = b & (checker == colour)
        for axis, step in ((-1, 1), (-1, -1), (-2, 1), (-2, -1)):
            nb_lab = _shift(lab, axis, step, fill=None)
            nb_open = ~_shift(b, axis, step, fill=True)
            ok &= ~nb_open | (nb_lab == lab)
        b &= ~ok
    return b


def _shift(a: np.ndarray, axis: int, step: int, fill: object) -> np.ndarray:
    """``out[i] = a[i + step]`` along ``axis``; outside the image: ``fill`` (None: repeat the edge)."""
    out = np.roll(a, -step, axis=axis)
    edge = [slice(None)] * a.ndim
    edge[axis] = -1 if step > 0 else 0
    if fill is None:
        src = [slice(None)] * a.ndim
        src[axis] = -1 if step > 0 else 0
        out[tuple(edge)] = a[tuple(src)]
    else:
        out[tuple(edge)] = fill
    return out


def _gap_maps(
    boundary: np.ndarray, cfg: RenderConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice soft masks of missing and blurred gaps, with gaps that persist along z."""
    z_n, h, w = boundary.shape
    missing = np.zeros(boundary.shape, dtype=np.float32)
    blurred = np.zeros(boundary.shape, dtype=np.float32)
    if cfg.gap_rate <= 0:
        return missing, blurred
    yy, xx = np.mgrid[:h, :w]
    gaps: list[tuple[float, float, float, bool]] = []  # (y, x, radius, is_missing)
    for z in range(z_n):
        gaps = [g for g in gaps if rng.random() < cfg.gap_persistence]  # survivors keep their place
        pix = np.flatnonzero(boundary[z])
        n_new = rng.poisson(cfg.gap_rate * pix.size / 1000.0) if pix.size else 0
        for k in rng.choice(pix, size=n_new) if n_new else ():
            r = rng.uniform(*cfg.gap_radius)
            gaps.append((float(k // w), float(k % w), r, bool(rng.random() < cfg.gap_missing_fraction)))
        for y, x, r, is_missing in gaps:
            y0, y1 = max(0, int(y - r - 6)), min(h, int(y + r + 7))
            x0, x1 = max(0, int(x - r - 6)), min(w, int(x + r + 7))
            d = np.hypot(yy[y0:y1, x0:x1] - y, xx[y0:y1, x0:x1] - x)
            m = 1.0 / (1.0 + np.exp((d - r) / 1.5))  # soft disk: gaps fade in, they do not stop dead
            target = missing if is_missing else blurred
            np.maximum(target[z, y0:y1, x0:x1], m, out=target[z, y0:y1, x0:x1])
    return missing, blurred


def _line_map(shape: tuple[int, int], pts: np.ndarray, sigma: float, weight: float) -> np.ndarray:
    """Anti-aliased line through dense points (0.5 px apart): peak ``weight``, Gaussian profile."""
    h, w = shape
    canvas = np.zeros(shape, dtype=np.float64)
    y, x = pts[:, 0], pts[:, 1]
    inside = (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
    y, x = y[inside], x[inside]
    if y.size == 0:
        return canvas.astype(np.float32)
    y0, x0 = np.minimum(np.floor(y).astype(int), h - 2), np.minimum(np.floor(x).astype(int), w - 2)
    fy, fx = y - y0, x - x0
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        np.add.at(canvas, (y0 + dy, x0 + dx), wt)
    canvas = ndi.gaussian_filter(canvas, sigma)
    # A line of density 2 / px blurred by sigma peaks at 2 / (sqrt(2 pi) sigma).
    return (canvas * weight * 0.5 * np.sqrt(2 * np.pi) * sigma).astype(np.float32)


def _scratch_map(shape: tuple[int, int], cfg: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """Scratches of one slice: gently curved thin lines (quadratic Bezier), darkness in [0, 1]."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    n = rng.poisson(cfg.scratch_rate)
    diag = float(np.hypot(h, w))
    for _ in range(n):
        c = rng.uniform((0, 0), (h, w))
        theta = rng.uniform(0, np.pi)
        u = np.array([np.sin(theta), np.cos(theta)])
        length = rng.uniform(0.25, 1.2) * diag
        p0, p2 = c - 0.5 * length * u, c + 0.5 * length * u
        p1 = c + np.array([-u[1], u[0]]) * cfg.scratch_curvature * length * rng.standard_normal()
        depth = cfg.scratch_depth * rng.uniform(0.5, 1.0)
        sigma = max(cfg.scratch_width * rng.uniform(0.8, 1.25), 0.3)
        t = np.linspace(0.0, 1.0, int(2 * length) + 2)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        np.maximum(out, _line_map(shape, pts, sigma, depth), out=out)
    return np.clip(out, 0.0, 1.0)


def _pit_map(shape: tuple[int, int], cfg: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """Small dark round pits of one slice, darkness in [0, 1]."""
    h, w = shape
    n = rng.poisson(cfg.pit_density * h * w / 1e4)
    out = np.zeros(shape, dtype=np.float64)
    if n == 0:
        return out.astype(np.float32)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    depth = cfg.pit_depth * rng.uniform(0.3, 1.0, n)
    sigma = 0.9
    np.add.at(out, (ys, xs), depth * 2 * np.pi * sigma**2)  # blurred delta of peak = depth
    return np.clip(ndi.gaussian_filter(out, sigma), 0.0, 1.0).astype(np.float32)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Smooth random field in [0, 1] (blurred white noise, rank-free min-max scaled)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    f /= max(float(np.abs(f).max()), 1e-12)
    return (0.5 + 0.5 * f).astype(np.float32)


def render_layers(
    labels: np.ndarray,
    *,
    seed: int,
    config: RenderConfig | None = None,
    boundary: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Render micrographs and return them with the flaw maps that made them.

    Parameters
    ----------
    labels : (H, W) or (Z, H, W) integer array
        Grain ids (3D ids for a volume: a grain keeps its grey through the stack).
    seed : int
    config : RenderConfig, optional
    boundary : bool array like ``labels``, optional
        Where to draw boundary grooves; default :func:`boundary_from_labels`.

    Returns
    -------
    dict of arrays shaped like ``labels``: ``"image"`` uint8; float32 maps in
    [0, 1] ``"gap_missing"``, ``"gap_blurred"`` (where boundaries were removed
    or blurred), ``"scratches"`` and ``"pits"`` (darkness added).
    """
    cfg = config if config is not None else RenderConfig()
    lab = np.asarray(labels)
    squeeze = lab.ndim == 2
    if squeeze:
        lab = lab[None]
    if lab.ndim != 3:
        raise ValueError(f"labels must be (H, W) or (Z, H, W), got shape {np.shape(labels)}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"labels must be integers, got {lab.dtype}")
    if boundary is None:
        bnd = boundary_from_labels(lab)
    else:
        bnd = np.asarray(boundary, dtype=bool).reshape(lab.shape)
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    z_n, h, w = lab.shape

    lo = int(lab.min()) if lab.size else 0
    ids = lab - lo  # grey levels are looked up by id
    levels = cfg.grain_mean + cfg.grain_contrast * rngs["grains"].standard_normal(int(ids.max()) + 1 if lab.size else 1)
    levels = np.clip(levels, 0.05, 1.0).astype(np.float32)

    missing, blurred = _gap_maps(bnd, cfg, rngs["gaps"])
    scratches = np.zeros(lab.shape, dtype=np.float32)
    pits = np.zeros(lab.shape, dtype=np.float32)

    light = rngs["light"]
    theta = light.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    ramp = ((yy / max(h - 1, 1) - 0.5) * np.sin(theta) + (xx / max(w - 1, 1) - 0.5) * np.cos(theta)).astype(np.float32)
    illum = 1.0 + cfg.illumination * ramp

    image = np.empty(lab.shape, dtype=np.uint8)
    wide = 3.0 * cfg.boundary_width
    for z in range(z_n):
        if bnd[z].any():
            d2 = ndi.distance_transform_edt(~bnd[z]).astype(np.float32) ** 2
        else:
            d2 = np.full((h, w), np.inf, dtype=np.float32)
        sharp = np.exp(-d2 / (2 * max(cfg.boundary_width, 1e-3) ** 2))
        soft = 0.35 * np.exp(-d2 / (2 * max(wide, 1e-3) ** 2))  # a blurred boundary: wide and faint
        keep = np.clip(1.0 - cfg.gap_strength * missing[z] - blurred[z], 0.0, 1.0)
        groove = sharp * keep + soft * blurred[z]
        if cfg.boundary_variation > 0:
            groove *= 1.0 - cfg.boundary_variation * _smooth_field((h, w), rngs["depth"], 10.0)
        img = levels[ids[z]] * (1.0 - cfg.boundary_depth * groove)
        if cfg.scratch_rate > 0:
            scratches[z] = _scratch_map((h, w), cfg, rngs["scratches"])
            img *= 1.0 - scratches[z]
        if cfg.pit_density > 0:
            pits[z] = _pit_map((h, w), cfg, rngs["pits"])
            img *= 1.0 - pits[z]
        if cfg.illumination > 0:
            img *= illum
        if cfg.brightness_jitter > 0:
            img *= 1.0 + cfg.brightness_jitter * light.standard_normal()
        if cfg.blur_sigma > 0:
            img = ndi.gaussian_filter(img, cfg.blur_sigma)
        if cfg.shot_noise > 0:
            img += cfg.shot_noise * np.sqrt(np.clip(img, 0.0, None)) * rngs["shot"].standard_normal((h, w))
        if cfg.noise_sigma > 0:
            img += cfg.noise_sigma * rngs["noise"].standard_normal((h, w))
        image[z] = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    out = {"image": image, "gap_missing": missing, "gap_blurred": blurred, "scratches": scratches, "pits": pits}
    if squeeze:
        out = {k: v[0] for k, v in out.items()}
    return out


def render_micrographs(
    labels: np.ndarray,
    *,
    seed: int,
    config: RenderConfig | None = None,
    boundary: np.ndarray | None = None,
) -> np.ndarray:
    """Render grain labels as etched-metal optical micrographs with flaws.

    Parameters
    ----------
    labels : (H, W) or (Z, H, W) integer array
        Grain ids; for a volume, 3D ids (a grain keeps its grey level through
        the stack).
    seed : int
        Same labels, seed and config give the same image.
    config : RenderConfig, optional
        Appearance and flaw strengths; default :class:`RenderConfig()`.
    boundary : bool array like ``labels``, optional
        Where to draw the boundary grooves; default
        :func:`boundary_from_labels` of ``labels``.

    Returns
    -------
    uint8 array shaped like ``labels``.

    See Also
    --------
    render_layers : the same image with the maps of gaps, scratches and pits.
    """
    return render_layers(labels, seed=seed, config=config, boundary=boundary)["image"]
