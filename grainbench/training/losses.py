"""Training losses on 2-class logits: CBW, ABW (seed 000 eq. 1-5), BCE, Dice, BCE + TopoLoss (seed 002)
and the top-hat and normalised-Gaussian tolerant losses (seed 003).

Every loss takes ``logits`` of shape (N, 2, H, W) (class 1 = boundary) and
the 1-pixel boundary ``target`` (N, H, W) bool, and dilates the target
itself (a ``dilate`` x ``dilate`` square, 5 in the authors' code), so the
sampler stays loss-agnostic. 3D patches, logits (N, 2, D, H, W) and target
(N, D, H, W), work too: sums run over every spatial axis, while dilation,
ABW weight maps, tolerance maps and topology are computed slice by slice
(the protocols score slices).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from torch import nn

_EPS = 1e-20
_FOUR = ndi.generate_binary_structure(2, 1)


def dilate_target(target: torch.Tensor, size: int) -> torch.Tensor:
    """Dilate a (N, H, W) or (N, D, H, W) bool boundary in-plane by a ``size`` x ``size`` square (odd; 1 = none)."""
    if size <= 1:
        return target.bool()
    if size % 2 == 0:
        raise ValueError(f"dilation size must be odd, got {size}")
    t = target.float().reshape(-1, 1, *target.shape[-2:])  # 3D patches: slice by slice
    return (F.max_pool2d(t, size, stride=1, padding=size // 2) > 0.5).reshape(target.shape)


def abw_weight_maps(boundary: np.ndarray, *, w0: float = 10.0, gamma: float = 2.58,
                    boundary_weight: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive boundary weights ``w_bck`` and ``w_obj`` of one slice (seed 000, eq. 3-5).

    For a pixel x of grain i at distance d(x) from the nearest boundary, with
    ``max_dis_i`` the largest such distance in grain i and
    ``sigma_i = max_dis_i / gamma``::

        w_bck(x) = wc_bck(x) + w0 * exp(-(max_dis_i - d(x))**2 / (2 sigma_i**2))
        w_obj(x) = wc_obj(x) + w0 * exp(-d(x)**2 / (2 sigma_i**2))

    The class weights are those of the authors' ``caculate_weight_map``:
    ``wc_bck = 1`` everywhere, ``wc_obj = boundary_weight`` on the 1-pixel
    boundary and 0 elsewhere. Grains are the 4-connected components of
    non-boundary pixels of the (cropped) slice.

    Parameters
    ----------
    boundary : (H, W) bool array
        1-pixel boundaries.

    Returns
    -------
    w_bck, w_obj : (H, W) float32 arrays
    """
    boundary = np.asarray(boundary, bool)
    if boundary.ndim != 2:
        raise ValueError(f"abw_weight_maps takes one (H, W) slice, got shape {boundary.shape}")
    w_bck = np.ones(boundary.shape, np.float32)
    w_obj = boundary.astype(np.float32) * boundary_weight
    labels, n = ndi.label(~boundary, structure=_FOUR)
    if n == 0:
        return w_bck, w_obj
    dist = ndi.distance_transform_edt(~boundary) if boundary.any() else np.zeros(boundary.shape)
    # Vectorised over grains: the per-grain maximum distance, looked up per pixel.
    max_dis = np.zeros(n + 1)
    max_dis[1:] = ndi.maximum(dist, labels, np.arange(1, n + 1))
    inside = labels > 0
    m = max_dis[labels[inside]]
    d = dist[inside]
    two_sigma2 = 2.0 * (m / gamma + _EPS) ** 2
    w_bck[inside] += w0 * np.exp(-((m - d) ** 2) / two_sigma2)
    w_obj[inside] += w0 * np.exp(-(d ** 2) / two_sigma2)
    return w_bck, w_obj


class ABWLoss(nn.Module):
    """Adaptive boundary weighted cross entropy (seed 000, eq. 1-5).

    A pixel is scored as boundary when ``w_bck(x) < w_obj(x) * md(x)`` (md:
    the target dilated to ``dilate`` pixels), else as background, with that
    weight (eq. 2); the sum is normalised by the sum of the weights, as in
    the authors' ``WeightMapLoss``. Defaults are the authors': w0 = 10,
    gamma = 2.58, boundary weight 30, a 5-pixel dilated target.
    """

    needs_cpu_weights = True

    def __init__(self, w0: float = 10.0, gamma: float = 2.58, boundary_weight: float = 30.0, dilate: int = 5
                 ) -> None:
        super().__init__()
        self.w0, self.gamma, self.boundary_weight, self.dilate = w0, gamma, boundary_weight, dilate
        # Deeply supervised nets score several outputs against one target per step: the
        # CPU weight maps are computed once per (unchanged) target tensor.
        self._cached: tuple[torch.Tensor, int, tuple[torch.Tensor, torch.Tensor]] | None = None

    def pipeline_maps(self, boundary: np.ndarray) -> dict[str, np.ndarray]:
        """``w_bck`` and ``w_obj`` of one (H, W) or (D, H, W) crop, computed by the data pipeline once per crop."""
        b = np.asarray(boundary, bool)
        maps = [abw_weight_maps(t, w0=self.w0, gamma=self.gamma, boundary_weight=self.boundary_weight)
                for t in b.reshape(-1, *b.shape[-2:])]  # 3D crops: slice by slice
        return {"w_bck": np.stack([m[0] for m in maps]).reshape(b.shape),
                "w_obj": np.stack([m[1] for m in maps]).reshape(b.shape)}

    def weight_maps(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_bck, w_obj), each of the target's shape, float32 on the target's device."""
        c = self._cached
        if c is not None and c[0] is target and c[1] == target._version:
            return c[2]
        maps = self._weight_maps(target)
        self._cached = (target, target._version, maps)
        return maps

    def _weight_maps(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        arr = target.detach().bool().cpu().numpy()
        maps = [abw_weight_maps(t, w0=self.w0, gamma=self.gamma, boundary_weight=self.boundary_weight)
                for t in arr.reshape(-1, *arr.shape[-2:])]  # 3D patches: slice by slice
        w_bck = torch.from_numpy(np.stack([m[0] for m in maps]).reshape(arr.shape)).to(target.device)
        w_obj = torch.from_numpy(np.stack([m[1] for m in maps]).reshape(arr.shape)).to(target.device)
        return w_bck, w_obj

    def forward(self, logits: torch.Tensor, target: torch.Tensor, w_bck: torch.Tensor | None = None,
                w_obj: torch.Tensor | None = None) -> torch.Tensor:
        """The loss; ``w_bck`` and ``w_obj`` from the data pipeline (:meth:`pipeline_maps`), else computed here."""
        _check(logits, target)
        if w_bck is None or w_obj is None:
            w_bck, w_obj = self.weight_maps(target)
        md = dilate_target(target, self.dilate).float()
        is_obj = w_bck < w_obj * md
        weight = torch.where(is_obj, w_obj, w_bck)
        logp = F.log_softmax(logits.float(), dim=1)
        picked = torch.where(is_obj, logp[:, 1], logp[:, 0])
        return -(weight * picked).sum() / weight.sum().clamp_min(_EPS)


class CBWLoss(nn.Module):
    """Class-balanced weighted cross entropy on the dilated target.

    ``weights = (background, boundary)``; (1, 20) as in the authors' trainer
    (``CrossEntropyLoss(weight=[1, 20])``). ``weights="auto"`` uses inverse
    class frequencies of each batch instead.
    """

    needs_cpu_weights = False

    def __init__(self, weights: tuple[float, float] | str = (1.0, 20.0), dilate: int = 5) -> None:
        super().__init__()
        self.weights, self.dilate = weights, dilate

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        y = dilate_target(target, self.dilate).long()
        if self.weights == "auto":
            frac = y.float().mean().clamp(1e-3, 1 - 1e-3)
            w = torch.stack([0.5 / (1 - frac), 0.5 / frac])
        else:
            w = torch.tensor(self.weights, dtype=torch.float32, device=logits.device)
        return F.cross_entropy(logits.float(), y, weight=w)


class BCELoss(nn.Module):
    """Plain binary cross entropy of the boundary class (logit difference of the two channels)."""

    needs_cpu_weights = False

    def __init__(self, dilate: int = 5) -> None:
        super().__init__()
        self.dilate = dilate

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        y = dilate_target(target, self.dilate).float()
        z = (logits[:, 1] - logits[:, 0]).float()  # log-odds of the boundary class
        return F.binary_cross_entropy_with_logits(z, y)


class DiceLoss(nn.Module):
    """Soft Dice loss of the boundary class, ``1 - 2|P.Y| / (|P| + |Y|)`` over the batch."""

    needs_cpu_weights = False

    def __init__(self, dilate: int = 5, smooth: float = 1.0) -> None:
        super().__init__()
        self.dilate, self.smooth = dilate, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        y = dilate_target(target, self.dilate).float()
        p = torch.softmax(logits.float(), dim=1)[:, 1]
        inter = (p * y).sum()
        return 1 - (2 * inter + self.smooth) / (p.sum() + y.sum() + self.smooth)


class TopoLoss(nn.Module):
    """BCE + lambda TopoLoss (seed 002, eq. 1; the topological loss of Hu et al. 2019).

    ``loss = BCE(pos_weight) + lam * L_topo`` with ``L_topo`` from
    :func:`grainbench.training.topoloss.topological_loss` (persistence
    diagrams of dimensions 0 and 1 by gudhi, per 2D map). Seed 002 uses
    lambda = 0.04 and a class-weighted BCE with boundary : grain = 9 : 1.
    Both terms see the same ``dilate``-d target.
    """

    needs_cpu_weights = True

    def __init__(self, lam: float = 0.04, pos_weight: float = 9.0, dilate: int = 5, min_persistence: float = 0.03
                 ) -> None:
        super().__init__()
        if lam != 0:  # fail when the preset is built, not at the first batch
            from .topoloss import _gudhi

            _gudhi()
        self.lam, self.pos_weight, self.dilate, self.min_persistence = lam, pos_weight, dilate, min_persistence

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from .topoloss import topological_loss

        _check(logits, target)
        y = dilate_target(target, self.dilate)
        z = (logits[:, 1] - logits[:, 0]).float()
        pos_weight = torch.tensor(self.pos_weight, dtype=z.dtype, device=z.device)
        bce = F.binary_cross_entropy_with_logits(z, y.float(), pos_weight=pos_weight)
        if self.lam == 0:
            return bce
        return bce + self.lam * topological_loss(torch.sigmoid(z), y, min_persistence=self.min_persistence)


class _RewardLoss(nn.Module):
    """Seed 003's tolerant score as a loss: ``-mean(p * R)`` with R a reward map of the 1-pixel target."""

    needs_cpu_weights = True

    def reward_map(self, target: np.ndarray) -> np.ndarray:  # (M, H, W) bool -> (M, H, W) float
        raise NotImplementedError

    def pipeline_maps(self, boundary: np.ndarray) -> dict[str, np.ndarray]:
        """The ``reward`` map of one (H, W) or (D, H, W) crop, computed by the data pipeline once per crop."""
        b = np.asarray(boundary, bool)
        return {"reward": np.asarray(self.reward_map(b.reshape(-1, *b.shape[-2:]))).reshape(b.shape)}

    def forward(self, logits: torch.Tensor, target: torch.Tensor, reward: torch.Tensor | None = None
                ) -> torch.Tensor:
        _check(logits, target)
        if reward is None:
            arr = target.detach().bool().cpu().numpy()
            reward = torch.from_numpy(self.reward_map(arr.reshape(-1, *arr.shape[-2:])).reshape(arr.shape))
        p = torch.softmax(logits.float(), dim=1)[:, 1]
        return -(p * reward.to(p.device)).mean()


class TopHatLoss(_RewardLoss):
    """Top-hat tolerant loss (seed 003, section 3): predictions within ``radius`` of the trace are
    rewarded (-1 per unit of probability), predictions farther away penalised (+1).

    The report dilates the trace by a 3 x 3 or 5 x 5 square; ``radius`` is a
    Euclidean tolerance in pixels (2 ~ 5 x 5). No dilation of the target:
    the radius is the tolerance.
    """

    def __init__(self, radius: float = 2.0) -> None:
        super().__init__()
        self.radius = radius

    def reward_map(self, target: np.ndarray) -> np.ndarray:
        from ..metrics.tolerant import tophat_reward_map

        return tophat_reward_map(target, self.radius, per_slice=True)


class GaussianLoss(_RewardLoss):
    """Normalised-Gaussian tolerant loss (seed 003, section 4): reward ``2 exp(-d^2 / 2 sigma^2) - 1``
    at distance d from the trace (-1 beyond ``truncate``); sigma = 3 and a 15 x 15 window in the report.
    """

    def __init__(self, sigma: float = 3.0, truncate: float = 7.0) -> None:
        super().__init__()
        self.sigma, self.truncate = sigma, truncate

    def reward_map(self, target: np.ndarray) -> np.ndarray:
        from ..metrics.tolerant import gaussian_reward_map

        return gaussian_reward_map(target, self.sigma, truncate=self.truncate, per_slice=True)


LOSSES = {"abw": ABWLoss, "cbw": CBWLoss, "bce": BCELoss, "dice": DiceLoss, "topo": TopoLoss,
          "tophat": TopHatLoss, "gaussian": GaussianLoss}


def get_loss(name: str, **kwargs) -> nn.Module:
    """A loss by name: ``abw``, ``cbw``, ``bce``, ``dice``, ``topo``, ``tophat`` or ``gaussian``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim not in (4, 5) or logits.shape[1] != 2:
        raise ValueError(f"logits must be (N, 2, H, W) or (N, 2, D, H, W), got shape {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
