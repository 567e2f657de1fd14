"""Post-processors: what turns a boundary probability into a boundary map, chosen by the method.

The protocol fixes how a boundary map is scored (crop, 4-connected grains,
strict IoU, ...); what turns a network's probability into that boundary map
is a method's choice, recorded with its parameters. A small registry in the
style of timm's ``list_models`` / ``create_model``:

>>> list_postprocessors()
['protocol', 'watershed', 'watershed_agglo']
>>> post = get_postprocessor("watershed", h=0.1)
>>> boundary = post(prob, protocol)          # (Z, H, W) float in [0, 1] -> (Z, H, W) bool

``protocol``
    The protocol's own pipeline (threshold, 3 x 3 closing, skeletonisation;
    :func:`grainbench.postprocess.thin_boundary`), bit for bit the default
    of every scoring entry point. No parameters: its settings are the
    protocol's, which every record stores.
``watershed``
    A marker-controlled watershed of the Gaussian-smoothed probability
    (:func:`watershed_boundary`): closed grains, so a gap in a predicted line
    no longer merges two grains.
``watershed_agglo``
    The watershed followed by gala-style agglomeration: neighbouring regions
    whose mean probability along their shared boundary is below
    ``merge_below`` are merged, hierarchically (:func:`agglomerate`).

Every output is a valid boundary map under the protocol's conventions: each
grain (4-connected non-boundary component) is one watershed region, and the
lines are 1 pixel wide (thinned without changing any grain, :func:`thin_safely`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.morphology import h_maxima, h_minima
from skimage.segmentation import relabel_sequential, watershed

from .errors import ConfigError

#: The post-processor of every scoring entry point unless a method or the user chooses another.
DEFAULT_POST = "protocol"
MARKERS = ("distance", "minima")
_FOUR = ndi.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------- the functions

def _smooth(prob: np.ndarray, sigma: float) -> np.ndarray:
    p = np.asarray(prob, np.float64)
    return ndi.gaussian_filter(p, sigma) if sigma > 0 else p


def watershed_labels(prob: np.ndarray, *, sigma: float = 1.0, markers: str = "distance", h: float = 0.05,
                     h_distance: float = 2.0, threshold: float = 0.5, min_size: int = 10,
                     distance_weight: float = 1.0) -> np.ndarray:
    """Watershed regions (a full tiling, labels 1..N) of one (H, W) boundary probability.

    The landscape is the probability smoothed by a Gaussian of ``sigma`` px,
    minus ``distance_weight`` times the distance to the nearest boundary pixel
    (``prob > threshold``) over its maximum, so inside a grain, where the
    probability is flat, the flood meets at the narrowest neck (a gap) rather
    than wherever noise lets one marker run first. It is flooded
    (:func:`skimage.segmentation.watershed`, 4-connected) from one marker per grain:

    - ``markers="distance"``: the h-maxima (depth ``h_distance`` px) of the
      Euclidean distance transform of the grain mask ``prob <= threshold``
      (the unsmoothed probability: smoothing would sink 1-px lines below it).
      Two grains joined through a gap narrower than themselves keep two
      distance maxima, so the flood closes the gap where they meet.
    - ``markers="minima"``: the h-minima (depth ``h``) of the smoothed
      probability, as gala's superpixels; a gap survives unless the smoothing
      raises it by more than ``h`` above the grains.

    Markers are labelled as 4-connected components. Regions smaller than
    ``min_size`` px are dropped and the flood repeated, so their neighbours
    take them (a 1-3 px region would vanish under its own boundary). A slice
    without any marker (all boundary) is one region.
    """
    p = _smooth(prob, sigma)
    dist = ndi.distance_transform_edt(np.asarray(prob) <= threshold)
    if markers == "minima":
        seeds = h_minima(p, h).astype(bool) if np.ptp(p) > h else np.ones(p.shape, bool)
    else:
        seeds = h_maxima(dist, h_distance).astype(bool) & (dist > 0) if dist.max() > 0 else np.zeros(p.shape, bool)
    labels, n = ndi.label(seeds, structure=_FOUR)
    if n == 0:
        return np.ones(p.shape, np.int32)
    if distance_weight > 0 and dist.max() > 0:
        p = p - distance_weight * dist / dist.max()
    regions = watershed(p, labels, connectivity=1)
    sizes = np.bincount(regions.ravel())
    small = sizes[regions] < min_size
    if small.any() and not small.all():
        regions = watershed(p, np.where(small, 0, regions), connectivity=1)
    return relabel_sequential(regions)[0].astype(np.int32)


def labels_to_boundary(labels: np.ndarray, prob: np.ndarray | None = None, *, thin: bool = True) -> np.ndarray:
    """1-pixel boundaries that separate the regions of a full label tiling under 4-connectivity.

    Of every 4-adjacent pair of pixels with different labels, the one with
    the higher ``prob`` (ties: the upper / left one) becomes boundary, so no
    two regions stay 4-adjacent and the line follows the probability's ridge.
    Where that cut a region in pieces, every piece but the largest becomes
    boundary, so each region is exactly one 4-connected grain (a region too
    small to keep a pixel is lost). With ``thin`` the lines are then thinned
    without changing any grain (:func:`thin_safely`): no 2 x 2 block of
    boundary is left where a grain could take a pixel.
    """
    labels = np.asarray(labels)
    p = np.zeros(labels.shape) if prob is None else np.asarray(prob, np.float64)
    boundary = np.zeros(labels.shape, bool)
    _mark_pairs(labels, p, boundary, np.ones(labels.shape, bool))
    _fill_pockets(labels, boundary)
    if thin:
        thin_safely(boundary, labels)
    return boundary


def thin_safely(boundary: np.ndarray, labels: np.ndarray | None = None, max_iter: int = 100) -> np.ndarray:
    """Thin a boundary map in place without merging, splitting or opening any 4-connected grain.

    A boundary pixel whose non-boundary 4-neighbours all belong to one grain
    (and that has at least one) joins that grain: no other grain becomes
    4-adjacent to it, and no new grain appears. Given the region ``labels``
    the boundary came from, a pixel joins only a grain of its own region, so
    every grain stays inside its region pixel for pixel. Pixels are visited in the two
    colours of a checkerboard (never 4-adjacent to each other), with the
    grains relabelled in between, until nothing changes. Lines between two
    grains stay 1 pixel wide (8-connected where they run diagonally), spurs
    and blobs go.
    """
    h, w = boundary.shape
    parity = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    for _ in range(max_iter):
        changed = False
        for colour in (False, True):
            grains = ndi.label(~boundary, structure=_FOUR)[0]
            padded = np.pad(grains, 1)
            neighbours = np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
            big = np.iinfo(grains.dtype).max
            lo = np.where(neighbours > 0, neighbours, big).min(axis=0)
            hi = neighbours.max(axis=0)
            removable = boundary & (parity == colour) & (hi > 0) & (lo == hi)
            if labels is not None:  # the grain's region (any of its pixels) must be the pixel's own
                region = np.zeros(grains.max() + 1, labels.dtype)
                region[grains.ravel()] = labels.ravel()
                removable &= region[hi] == labels
            if removable.any():
                boundary[removable] = False
                changed = True
        if not changed:
            break
    return boundary


def _fill_pockets(labels: np.ndarray, boundary: np.ndarray) -> None:
    """Keep one grain per region: every 4-connected piece but a region's largest becomes boundary (in place)."""
    grains, n = ndi.label(~boundary, structure=_FOUR)
    if n == 0:
        return
    size = np.bincount(grains.ravel())
    region = np.zeros(n + 1, labels.dtype)
    region[grains.ravel()] = labels.ravel()  # each grain lies in one region
    order = np.lexsort((-size[1:], region[1:])) + 1  # by region, the largest piece first
    keep = np.zeros(n + 1, bool)
    first = np.ones(len(order), bool)
    first[1:] = region[order[1:]] != region[order[:-1]]
    keep[order[first]] = True
    boundary |= (grains > 0) & ~keep[grains]


def _mark_pairs(labels: np.ndarray, p: np.ndarray, boundary: np.ndarray, open_: np.ndarray) -> None:
    """Mark one pixel of each 4-adjacent pair of open pixels with different labels (in place)."""
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        differ = (labels[a] != labels[b]) & open_[a] & open_[b]
        first = differ & (p[a] >= p[b])  # the higher probability; ties the upper / left pixel
        boundary[a] |= first
        boundary[b] |= differ & ~first


def agglomerate(labels: np.ndarray, prob: np.ndarray, merge_below: float) -> np.ndarray:
    """Merge neighbouring regions whose mean boundary probability is below ``merge_below`` (as gala).

    The region adjacency graph weighs each edge by the mean, over the pixels
    along the shared boundary, of ``prob``'s 3 x 3 maximum (so both sides of
    a 1-px ridge see it; :func:`skimage.graph.rag_boundary`);
    the weakest edge is merged first and the merged edges' means are
    recomputed from their pixel counts (:func:`skimage.graph.merge_hierarchical`),
    until every remaining edge is at least ``merge_below``. Returns labels 1..N.
    """
    from skimage import graph

    if labels.max() <= 1:
        return labels
    edge_map = ndi.maximum_filter(np.asarray(prob, np.float64), size=3)
    rag = graph.rag_boundary(labels, edge_map, connectivity=1)
    merged = graph.merge_hierarchical(labels, rag, thresh=merge_below, rag_copy=False, in_place_merge=True,
                                      merge_func=_merge_boundary, weight_func=_weight_boundary)
    return relabel_sequential(merged + 1)[0].astype(np.int32)


def _weight_boundary(rag: Any, src: int, dst: int, n: int) -> dict[str, float]:
    """The mean probability of the edge to ``n`` of the merged ``src`` + ``dst`` (pixel-count weighted)."""
    default = {"weight": 0.0, "count": 0}
    a, b = rag[src].get(n, default), rag[dst].get(n, default)
    count = a["count"] + b["count"]
    return {"count": count, "weight": (a["count"] * a["weight"] + b["count"] * b["weight"]) / count}


def _merge_boundary(rag: Any, src: int, dst: int) -> None:
    """Nothing to update on the nodes: the edge weights carry the boundary means."""


def protocol_boundary(prob: np.ndarray | torch.Tensor, *, threshold: float, closing_size: int,
                      skeleton: bool) -> np.ndarray | torch.Tensor:
    """The protocol's pipeline: ``prob > threshold``, square closing, skeletonisation ((Z, H, W) bool).

    A numpy array gives a numpy array; a tensor gives a tensor on its device (the GPU path).
    """
    from .postprocess import thin_boundary

    if isinstance(prob, torch.Tensor):
        b = prob > threshold
        b = b[None] if b.ndim == 2 else b
        return thin_boundary(b, closing_size=closing_size, skeleton=skeleton) if closing_size > 1 or skeleton else b
    b = np.asarray(prob) > threshold
    if closing_size > 1 or skeleton:
        # as a tensor: a bool tensor passes the input contract without the copy a numpy bool array gets
        b = thin_boundary(torch.from_numpy(b), closing_size=closing_size, skeleton=skeleton).numpy()
    return b


def watershed_boundary(prob: np.ndarray, *, sigma: float = 1.0, markers: str = "distance", h: float = 0.05,
                       h_distance: float = 2.0, threshold: float = 0.5, min_size: int = 10,
                       distance_weight: float = 1.0, merge_below: float | None = None) -> np.ndarray:
    """Closed 1-pixel grain boundaries of a (Z, H, W) probability, slice by slice.

    Parameters
    ----------
    prob : (Z, H, W) or (H, W) float array in [0, 1]
        Boundary probability.
    sigma : float
        Gaussian smoothing (px) of the probability before the watershed (0 = none). Default 1.
    markers : {"distance", "minima"}
        Where the flood starts, see :func:`watershed_labels`. Default ``"distance"``.
    h : float
        Depth of the probability minima kept as markers (``markers="minima"``). Default 0.05.
    h_distance : float
        Depth (px) of the distance-transform maxima kept as markers (``markers="distance"``). Default 2
        (chosen on synthetic val and tbm val, issue 20).
    threshold : float
        The grain mask of the distance markers is ``prob <= threshold``. Default 0.5.
    min_size : int
        Regions smaller than this (px) are merged into their neighbours. Default 10.
    distance_weight : float
        Weight of the normalised distance to the boundary in the landscape (0 = the probability alone). Default 1.
    merge_below : float, optional
        Agglomerate regions whose mean boundary probability is below this (:func:`agglomerate`).

    Returns
    -------
    (Z, H, W) bool array: 1-pixel lines; every 4-connected grain is one (merged) watershed region.
    """
    p = np.asarray(prob, np.float64)
    stack = p[None] if p.ndim == 2 else p
    out = np.empty(stack.shape, bool)
    for z, sl in enumerate(stack):
        labels = watershed_labels(sl, sigma=sigma, markers=markers, h=h, h_distance=h_distance,
                                  threshold=threshold, min_size=min_size, distance_weight=distance_weight)
        if merge_below is not None:
            labels = agglomerate(labels, sl, merge_below)
        out[z] = labels_to_boundary(labels, sl)
    return out


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class _Param:
    default: Any
    check: Callable[[Any], bool]
    rule: str


def _number(lo: float, hi: float = np.inf, *, lo_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and v <= hi
    return check


_WATERSHED_PARAMS: dict[str, _Param] = {
    "sigma": _Param(1.0, _number(0.0, 20.0), "a number in [0, 20] (px)"),
    "markers": _Param("distance", lambda v: v in MARKERS, f"one of {', '.join(MARKERS)}"),
    "h": _Param(0.05, _number(0.0, 1.0, lo_open=True), "a number in (0, 1]"),
    "h_distance": _Param(2.0, _number(0.0, 1e4, lo_open=True), "a number > 0 (px)"),
    "threshold": _Param(0.5, _number(0.0, 1.0, lo_open=True), "a number in (0, 1]"),
    "distance_weight": _Param(1.0, _number(0.0, 100.0), "a number in [0, 100]"),
    "min_size": _Param(10, lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**6,
                       "a whole number >= 1 (px)"),
}


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., np.ndarray] | None  # None: the protocol's pipeline
    params: dict[str, _Param]
    description: str
    label: str


_REGISTRY: dict[str, _Entry] = {
    "protocol": _Entry(None, {}, "the protocol's threshold, closing and skeletonisation", ""),
    "watershed": _Entry(watershed_boundary, _WATERSHED_PARAMS,
                        "marker-controlled watershed of the smoothed probability: closed 1-px grains", "ws"),
    "watershed_agglo": _Entry(watershed_boundary, {**_WATERSHED_PARAMS, "merge_below": _Param(
        0.5, _number(0.0, 1.0), "a number in [0, 1]")},
        "watershed, then merge regions whose mean boundary probability is below merge_below (gala)", "ws-agglo"),
}


@dataclass(frozen=True)
class PostProcessor:
    """A named post-processor with all its parameters (defaults filled in and checked).

    Attributes
    ----------
    name : str
        Registry name (:func:`list_postprocessors`).
    params : dict
        Every parameter, as used; what records store (``config.post_params``).
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        """Whether this is the protocol's own pipeline (unlabelled in tables)."""
        return self.name == DEFAULT_POST

    @property
    def label(self) -> str:
        """How tables mark a row that uses it: ``""`` for the default, ``+ws``, ``+ws(h=0.1)`` otherwise.

        Only parameters that differ from the defaults are shown.
        """
        if self.is_default:
            return ""
        entry = _REGISTRY[self.name]
        changed = {k: v for k, v in self.params.items() if v != entry.params[k].default}
        return f"+{entry.label}" + (f"({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))})"
                                    if changed else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    def __call__(self, prob: Any, protocol: Any) -> np.ndarray | torch.Tensor:
        """(Z, H, W) bool boundary map of a (Z, H, W) or (H, W) probability under ``protocol``.

        The protocol's own pipeline keeps a CUDA tensor on its device (returns a tensor there);
        every other path returns a numpy array.
        """
        if self.is_default and isinstance(prob, torch.Tensor) and prob.device.type != "cpu":
            return protocol_boundary(prob, threshold=protocol.threshold, closing_size=protocol.closing_size,
                                     skeleton=protocol.skeletonize)
        p = np.asarray(prob.cpu().numpy() if hasattr(prob, "cpu") else prob)
        if p.ndim == 2:
            p = p[None]
        if self.is_default:
            return protocol_boundary(p, threshold=protocol.threshold, closing_size=protocol.closing_size,
                                     skeleton=protocol.skeletonize)
        if protocol.task != "boundary":
            raise ConfigError(f"post-processor {self.name!r} makes grain boundaries; protocol {protocol.id} "
                              f"scores {protocol.task} masks (use post-processor {DEFAULT_POST!r})")
        return _REGISTRY[self.name].fn(p, **self.params)


def list_postprocessors() -> list[str]:
    """Names of the registered post-processors."""
    return sorted(_REGISTRY)


def describe_postprocessor(name: str) -> dict[str, Any]:
    """``{"description": ..., "params": {name: (default, rule)}}`` of a post-processor (for listings)."""
    entry = _entry(name)
    return {"description": entry.description, "params": {k: (p.default, p.rule) for k, p in entry.params.items()}}


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(f"unknown post-processor {name!r}; known: {', '.join(list_postprocessors())}")
    return _REGISTRY[name]


def get_postprocessor(name: str | PostProcessor | None = None, **params: Any) -> PostProcessor:
    """The post-processor ``name`` (default :data:`DEFAULT_POST`) with ``params`` over its defaults.

    Given a :class:`PostProcessor`, ``params`` update its parameters.

    Raises
    ------
    ConfigError
        One line: an unknown name, an unknown parameter or a value outside its rule.
    """
    if isinstance(name, PostProcessor):
        name, params = name.name, {**name.params, **params}
    name = DEFAULT_POST if name is None else name
    entry = _entry(name)
    unknown = sorted(set(params) - set(entry.params))
    if unknown:
        known = ", ".join(sorted(entry.params)) or "none"
        raise ConfigError(f"post-processor {name!r}: unknown parameter(s) {', '.join(unknown)}; known: {known}")
    full = {k: params.get(k, p.default) for k, p in entry.params.items()}
    for k, v in full.items():
        if not entry.params[k].check(v):
            raise ConfigError(f"post-processor {name!r}: {k}={v!r} must be {entry.params[k].rule}")
        if isinstance(entry.params[k].default, float) and isinstance(v, int):
            full[k] = float(v)  # h=1 and h=1.0 are one run
    return PostProcessor(name, full)
