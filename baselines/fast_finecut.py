"""Fast-FineCut: graph-cut propagation of the previous slice's grains (no training).

Propagation segmentation (Waggoner et al. 2013, "3D materials image
segmentation by 2D propagation: a graph-cut approach considering
homomorphism", IEEE TIP) segments slice z with the grains of slice z-1 as
the labels and as a shape prior; Fast-FineCut (Ma et al. 2019, the
"Fast-FineCut" row of seed 000's Table 2) makes it local and fast and
changes the pairwise term so that a boundary that is blurred or missing in
slice z is filled in where slice z-1 had one.

Our practical version, per slice and per grain ``G`` of slice z-1:

1. grains of z-1 are the 4-connected components of its non-boundary
   pixels, the boundary pixels given to the nearest grain;
2. a binary s-t graph cut ("G" vs "not G", Boykov-Kolmogorov max-flow from
   PyMaxflow) on a window around ``G``: pixels deeper inside ``G`` than
   ``band`` (or than half its depth, so small grains keep a seed) must stay
   ``G``; pixels farther than ``band`` from ``G`` must not. Between, the
   new boundary is free to move;
3. n-link cost (cutting between neighbours p, q):
   ``exp(-beta * (e_p + e_q) / 2) * (1 - prev_weight * [p or q on the z-1 boundary])``
   with ``e`` the boundary evidence of slice z in [0, 1) (a Sato dark-ridge
   response mapped as ``r / (r + otsu)``), so the cut follows dark
   grooves and, where the groove is missing, the old boundary;
4. t-links: a small ``prior`` per pixel for leaving its z-1 label (the
   shape prior); hard constraints as in 2;
5. the grains' cuts are merged: pixels claimed by no grain or by several,
   and pixels whose 4-neighbour belongs to another grain, are boundary; the
   result is skeletonised to 1-pixel lines.

The windows make every cut small, so a 256 x 256 slice takes tens of
milliseconds. Grains that appear for the first time in slice z cannot be
found (as in every propagation method); grains that end only shrink to their seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters
from skimage.morphology import skeletonize

from grainbench.extras import require
from grainbench.methods import Method, check_in_channels, check_volume_input

_FOUR = ndi.generate_binary_structure(2, 1)
_RIGHT = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
_DOWN = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]])
_HARD = 1e9  # capacity of a hard constraint


def previous_grains(prev_boundary: np.ndarray) -> tuple[np.ndarray, int]:
    """Grain labels 1..n of a boundary mask, the boundary pixels given to the nearest grain."""
    labels, n = ndi.label(~prev_boundary, structure=_FOUR)
    if n == 0 or not prev_boundary.any():
        return labels, n
    _, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return labels[iy, ix], n


class FastFineCut(Method):
    """Per-grain graph-cut propagation of the previous slice's segmentation (Fast-FineCut).

    Parameters
    ----------
    band : int
        How far (pixels) a boundary may move between slices.
    smoothing : float
        Gaussian sigma (pixels) before the ridge filter.
    sigmas : tuple of float
        Scales of the Sato dark-ridge filter (the boundary evidence).
    beta : float
        Contrast of the n-link cost: cutting on a groove is ``exp(-beta * e)`` times cheaper.
    prev_weight : float in [0, 1)
        Discount of the cut where slice z-1 had a boundary (fills gaps).
    prior : float
        Cost per pixel of changing its grain from slice z-1.
    dark_boundaries : bool
        Boundaries are darker than grains (etched optical micrographs).
    """

    name = "fast_finecut"
    context = "2d+prev"
    reference = ("Ma et al. 2019, Fast-FineCut (seed 000, Table 2), after Waggoner et al. 2013, 3D materials "
                 "image segmentation by 2D propagation: a graph-cut approach considering homomorphism")
    description = "graph-cut propagation of slice z-1's grains into slice z (needs PyMaxflow)"
    presets = ()

    def __init__(self, band: int = 6, smoothing: float = 1.0, sigmas: tuple[float, ...] = (1.0, 2.0),
                 beta: float = 6.0, prev_weight: float = 0.5, prior: float = 0.005, dark_boundaries: bool = True,
                 in_channels: int = 1) -> None:
        require("maxflow", "finecut", "method 'fast_finecut'")  # fail at creation, naming the extra

        if band < 1:
            raise ValueError(f"band must be >= 1 pixel, got {band}")
        if not 0 <= prev_weight < 1:
            raise ValueError(f"prev_weight must lie in [0, 1), got {prev_weight}")
        self.band, self.smoothing, self.sigmas = int(band), float(smoothing), tuple(float(s) for s in sigmas)
        self.beta, self.prev_weight, self.prior = float(beta), float(prev_weight), float(prior)
        self.dark_boundaries = bool(dark_boundaries)
        self.in_channels = check_in_channels(in_channels, "fast_finecut")

    def config(self) -> dict:
        return {**super().config(), "band": self.band, "smoothing": self.smoothing, "sigmas": list(self.sigmas),
                "beta": self.beta, "prev_weight": self.prev_weight, "prior": self.prior,
                "dark_boundaries": self.dark_boundaries, "in_channels": self.in_channels}

    # -- the energy ---------------------------------------------------------------------
    def evidence(self, image: np.ndarray) -> np.ndarray:
        """Boundary evidence of one (H, W) slice in [0, 1): ridge response ``r / (r + otsu(r))``.

        A (C, H, W) colour slice uses the colour gradient of the classical floor instead of the ridge filter.
        """
        if image.ndim == 3:
            from .classical import colour_gradient

            r = colour_gradient(image, self.smoothing)
        else:
            smooth = ndi.gaussian_filter(image, self.smoothing) if self.smoothing > 0 else image
            r = filters.sato(smooth, sigmas=self.sigmas, black_ridges=self.dark_boundaries)
        t = filters.threshold_otsu(r) if np.ptp(r) > 0 else 0.0
        return r / (r + t) if t > 0 else np.zeros_like(r)

    def edge_costs(self, evidence: np.ndarray, prev_boundary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """n-link capacities to the right and lower neighbour, (H, W) each (last column/row unused)."""
        cost = np.exp(-self.beta * evidence)
        right = np.sqrt(cost[:, :-1] * cost[:, 1:])  # exp(-beta * mean of the two evidences)
        down = np.sqrt(cost[:-1] * cost[1:])
        prev = prev_boundary.astype(np.float64)
        right *= 1 - self.prev_weight * np.maximum(prev[:, :-1], prev[:, 1:])
        down *= 1 - self.prev_weight * np.maximum(prev[:-1], prev[1:])
        w_right, w_down = np.zeros(cost.shape), np.zeros(cost.shape)
        w_right[:, :-1], w_down[:-1] = right, down
        return w_right, w_down

    # -- propagation --------------------------------------------------------------------
    def propagate(self, image: np.ndarray, prev_boundary: np.ndarray) -> np.ndarray:
        """Boundary (H, W) bool of slice ``image`` from the boundary mask of the slice before it."""
        maxflow = require("maxflow", "finecut", "method 'fast_finecut'")

        prev_boundary = np.asarray(prev_boundary, bool)
        grains, n = previous_grains(prev_boundary)
        h, w = image.shape[-2:]
        if n <= 1:  # nothing to propagate: one grain (or none) stays one grain
            return np.zeros((h, w), bool)
        w_right, w_down = self.edge_costs(self.evidence(image), prev_boundary)
        claims = np.zeros((h, w), np.int32)
        owner = np.zeros((h, w), np.int32)
        pad = self.band + 2
        for i, sl in enumerate(ndi.find_objects(grains), start=1):
            if sl is None:
                continue
            y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)
            x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)
            g = grains[y0:y1, x0:x1] == i
            depth = ndi.distance_transform_edt(g)
            reach = ndi.distance_transform_edt(~g)
            seed = depth > min(self.band, 0.5 * depth.max())
            outside = reach > self.band
            # t-links: capacity from the source is paid by pixels that leave G, to the sink by pixels in G.
            to_src = np.where(seed, _HARD, np.where(g, self.prior, 0.0))
            to_sink = np.where(outside, _HARD, np.where(g, 0.0, self.prior))
            graph = maxflow.Graph[float]()
            nodes = graph.add_grid_nodes(g.shape)
            graph.add_grid_edges(nodes, weights=w_right[y0:y1, x0:x1], structure=_RIGHT, symmetric=True)
            graph.add_grid_edges(nodes, weights=w_down[y0:y1, x0:x1], structure=_DOWN, symmetric=True)
            graph.add_grid_tedges(nodes, to_src, to_sink)
            graph.maxflow()
            mine = ~graph.get_grid_segments(nodes)  # source side = grain i
            claims[y0:y1, x0:x1] += mine
            owner[y0:y1, x0:x1][mine] = i
        boundary = claims != 1
        boundary[:, :-1] |= owner[:, :-1] != owner[:, 1:]
        boundary[:-1] |= owner[:-1] != owner[1:]
        return skeletonize(boundary)

    def predict(self, image: np.ndarray, prev_boundary: np.ndarray | None = None) -> np.ndarray:
        image = check_volume_input(image, prev_boundary, self.context, self.in_channels)
        prev = np.asarray(prev_boundary, bool)
        if prev.ndim == 2:
            prev = prev[None]
        return np.stack([self.propagate(sl, pb) for sl, pb in zip(image, prev)]).astype(np.float32)
