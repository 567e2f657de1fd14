"""The CNN tracker of seed 000: classify (grain of slice z, overlapping grain of slice z-1) pairs as same/different.

For each grain of slice z, every grain of slice z-1 that overlaps it forms a
candidate pair. Both masks are cropped to the pair's joint bounding box,
resized (nearest neighbour) to ``input_size`` x ``input_size`` and stacked as
a 2-channel image (channel 0: slice z-1, channel 1: slice z); an image
classifier (timm ``vgg13_bn`` or ``densenet161`` with ``in_chans=2``, no
pretrained weights) outputs the probability that both are the same grain.
The candidate with the highest probability above ``threshold`` (0.5) wins,
and a grain of slice z-1 continues into only the grain of slice z that it
scores highest with (the authors' one-to-one rule); a grain without a link
starts a new grain.

Training pairs come from ground-truth 3D label volumes: two 2D grains are
"same" when they carry the same 3D id. The schedule follows the authors'
training script: RMSprop at 1e-4 (their "momentum 0.9" is passed
positionally, i.e. as RMSprop's ``alpha``), learning rate x 0.8 per epoch
down to 1e-6, batch 40, 20 epochs, cross-entropy weighted against the class
imbalance (they hard-code 2.43 : 1 for the simulated data; here the weights
are the inverse class frequencies of the training pairs, the majority class
at 1), augmentation by swapping the two channels and a random flip/rotation
by multiples of 90 degrees, and the weights of the epoch with the best
validation accuracy are kept.

Training runs on grainbench's one training engine
(:func:`grainbench.training.train_network`): the pairs are a
``torch.utils.data.Dataset`` (:class:`PairDataset`: pair order and
augmentation drawn per ``(seed, epoch, index)``, so workers and resuming do
not change them) fed through a ``DataLoader``; checkpoints, resume, callbacks
and bf16/channels_last on CUDA are the engine's. Weights are saved in the
engine's checkpoint format; checkpoints written by the earlier separate
training loop are refused with a message saying to train again.

Speed at inference: all pairs of a batch are rendered at once on the device
by one gather from the (Z, H, W) 2D-label volume (nearest-neighbour
resampling is an index computation), then classified in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import ndimage as ndi
from torch import nn
from torch.utils.data import Dataset

from .._backend import resolve_device
from ..errors import TrackingError
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.trainer import Callback, LogLines, train_network
from .api import Tracker, TrackerFitResult
from .reconstruct import PairTable, SliceGrains, choose, choose_one_to_one, pair_table, slice_grains

# --------------------------------------------------------------------------- pairs

def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """(n + 1, 4) bounding box (y0, y1, x0, x1), end exclusive, of every grain of a 2D map (row 0 unused)."""
    out = np.zeros((n + 1, 4), dtype=np.int64)
    for i, sl in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if sl is not None:
            out[i] = (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
    return out


def _grain_ids3d(grains: np.ndarray, labels3d: np.ndarray, n: int) -> np.ndarray:
    """The 3D id of every 2D grain of a slice (grains cut from the 3D labels hold exactly one id)."""
    ids = np.zeros(n + 1, dtype=np.int64)
    inside = grains > 0
    ids[grains[inside]] = labels3d[inside]
    return ids


@dataclass
class PairSet:
    """Every candidate pair of a stack: (grain of slice z, overlapping grain of slice z-1).

    Attributes
    ----------
    grains : SliceGrains
        The 2D grains of the stack.
    tables : list of PairTable
        ``tables[z - 1]``: the pairs between slices z-1 and z.
    z, prev, this, overlap : (P,) int64 arrays
        All pairs, concatenated in slice order: the slice of the ``this``
        grain, both grain ids and their overlap.
    boxes : (P, 4) int64 array
        Joint bounding box (y0, y1, x0, x1), end exclusive, of the two masks.
    same : (P,) int64 array or None
        1 when both grains carry the same 3D id (training pairs only).
    """

    grains: SliceGrains
    tables: list[PairTable]
    z: np.ndarray
    prev: np.ndarray
    this: np.ndarray
    overlap: np.ndarray
    boxes: np.ndarray
    same: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.z)

    @classmethod
    def from_grains(cls, grains: SliceGrains, labels3d: np.ndarray | None = None) -> PairSet:
        """Candidate pairs of a stack's 2D grains; with ``labels3d`` also the same/different labels."""
        tables, zs, boxes, same = [], [], [], []
        prev_boxes = _boxes(grains.labels[0], int(grains.counts[0]))
        prev_ids = None if labels3d is None else _grain_ids3d(grains.labels[0], labels3d[0], int(grains.counts[0]))
        for z in range(1, len(grains)):
            n_prev, n_this = int(grains.counts[z - 1]), int(grains.counts[z])
            t = pair_table(grains.labels[z - 1], grains.labels[z], n_prev, n_this)
            tables.append(t)
            zs.append(np.full(len(t), z, dtype=np.int64))
            this_boxes = _boxes(grains.labels[z], n_this)
            a, b = prev_boxes[t.prev], this_boxes[t.this]
            boxes.append(np.stack([np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1]),
                                   np.minimum(a[:, 2], b[:, 2]), np.maximum(a[:, 3], b[:, 3])], axis=1))
            prev_boxes = this_boxes
            if labels3d is not None:
                this_ids = _grain_ids3d(grains.labels[z], labels3d[z], n_this)
                same.append((prev_ids[t.prev] == this_ids[t.this]).astype(np.int64))
                prev_ids = this_ids

        def cat(parts: list[np.ndarray], width: int | None = None) -> np.ndarray:
            if parts:
                return np.concatenate(parts)
            return np.zeros((0,) if width is None else (0, width), dtype=np.int64)

        return cls(grains, tables, cat(zs), cat([t.prev for t in tables]), cat([t.this for t in tables]),
                   cat([t.overlap for t in tables]), cat(boxes, 4), cat(same) if labels3d is not None else None)

    @classmethod
    def from_labels(cls, labels3d: np.ndarray) -> PairSet:
        """Labelled training pairs of a ground-truth 3D label volume (0 = boundary)."""
        lab = np.asarray(labels3d)
        if lab.ndim != 3 or lab.dtype.kind not in "iu":
            raise TrackingError(f"ground-truth labels must be a (Z, H, W) integer volume, got {lab.dtype} {lab.shape}")
        if lab.shape[0] < 2:
            raise TrackingError(f"ground-truth labels have {lab.shape[0]} slice(s); pairs need at least 2")
        return cls.from_grains(slice_grains(lab == 0, kind="boundary"), lab)


def render_pairs(volume: torch.Tensor, z: torch.Tensor, prev: torch.Tensor, this: torch.Tensor,
                 boxes: torch.Tensor, size: int) -> torch.Tensor:
    """The 2-channel classifier inputs of a batch of pairs, rendered in one gather.

    Parameters
    ----------
    volume : (Z, H, W) integer tensor
        2D grain ids of the stack, on the compute device.
    z, prev, this : (B,) int64 tensors
        Slice of the ``this`` grain and both grain ids.
    boxes : (B, 4) int64 tensor
        Joint bounding boxes (y0, y1, x0, x1), end exclusive.
    size : int
        Output side in pixels.

    Returns
    -------
    (B, 2, size, size) float32 tensor of 0/1 masks: channel 0 the grain of
    slice z-1, channel 1 the grain of slice z, each cropped to the joint box
    and resized by nearest neighbour (output pixel centres mapped into the box).
    """
    dev = volume.device
    frac = (torch.arange(size, device=dev, dtype=torch.float64) + 0.5) / size
    y0, y1, x0, x1 = boxes.to(dev, torch.float64).unbind(1)
    rows = (y0[:, None] + frac[None] * (y1 - y0)[:, None]).floor().long()  # (B, S), inside [y0, y1)
    cols = (x0[:, None] + frac[None] * (x1 - x0)[:, None]).floor().long()
    slices = torch.stack([z - 1, z], dim=1).to(dev)  # (B, 2)
    values = volume[slices[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]  # (B, 2, S, S)
    ids = torch.stack([prev, this], dim=1).to(dev, values.dtype)[:, :, None, None]
    return (values == ids).float()


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random channel swap, flip and rotation by a multiple of 90 degrees of one (2, S, S) pair image."""
    swap, flip = rng.random(2) < 0.5
    k = int(rng.integers(0, 4))
    if swap:  # which slice is "this" must not matter
        x = x.flip(0)
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


class PairDataset(Dataset):
    """Training pairs of a :class:`PairSet` as a ``Dataset`` of ``(epoch, index)`` keys.

    Epoch ``e`` visits ``length`` pairs in the order of a permutation drawn
    from ``(seed, e)``; pair ``i`` of it is augmented (:func:`augment`) by
    draws from ``(seed, e, i)``. Items: ``x`` (2, size, size) float32, ``y``
    the same-grain label.
    """

    def __init__(self, pairs: PairSet, size: int, length: int, *, seed: int = 0, augment: bool = True) -> None:
        if pairs.same is None:
            raise TrackingError("training pairs need same/different labels")
        self.pairs, self.size, self.length, self.seed, self.augment = pairs, int(size), int(length), int(seed), augment
        self.volume = torch.from_numpy(pairs.grains.labels)
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def order(self, epoch: int) -> np.ndarray:
        """The pairs epoch ``epoch`` visits, in order."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng((self.seed, epoch)).permutation(len(self.pairs))[:self.length])
        return self._order[1]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        k = self.order(epoch)[i:i + 1]
        p = self.pairs
        x = render_pairs(self.volume, *(torch.from_numpy(np.ascontiguousarray(a[k])) for a in (p.z, p.prev, p.this)),
                         torch.from_numpy(np.ascontiguousarray(p.boxes[k])), self.size)[0]
        if self.augment:
            x = augment(x, np.random.default_rng((self.seed, epoch, i)))
        return {"x": x.contiguous(), "y": torch.tensor(int(p.same[k[0]]))}


# --------------------------------------------------------------------------- the tracker

class CNNTracker(Tracker):
    """Pair classifier tracker (seed 000); use :class:`VGG13BNTracker` or :class:`DenseNet161Tracker`.

    Parameters
    ----------
    arch : str, optional
        timm model name (default: the class's ``arch``). A small model
        (``"resnet10t"``, ``"test_resnet"``) makes a quick CPU run possible.
    input_size : int
        Side of the resized pair image (224 in the authors' code).
    threshold : float
        Smallest same-grain probability that links two grains.
    one_to_one : bool
        The authors' links (default): a grain of slice z-1 continues into the
        one grain of slice z that scores best with it, the others are new
        (:func:`~grainbench.tracking.reconstruct.choose_one_to_one`, one
        round). False: every grain takes its best candidate, shared or not.
    epochs, batch_size, lr, lr_decay, min_lr
        Training schedule (defaults: the authors').
    pairs_per_epoch : int, optional
        Training pairs drawn per epoch (default: all of them).
    val_pairs : int, optional
        Cap on the validation pairs scored per epoch (an evenly spaced subset;
        default all).
    infer_batch_size : int
        Pairs per forward pass when tracking.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (default: CUDA when present).
    """

    name: ClassVar[str] = ""
    arch: ClassVar[str] = ""
    trainable = True

    def __init__(self, arch: str | None = None, *, input_size: int = 224, threshold: float = 0.5,
                 one_to_one: bool = True, epochs: int = 20, batch_size: int = 40, lr: float = 1e-4,
                 lr_decay: float = 0.8, min_lr: float = 1e-6, pairs_per_epoch: int | None = None,
                 val_pairs: int | None = None, infer_batch_size: int = 128, device: str | None = None) -> None:
        arch = arch or type(self).arch
        if not arch:
            raise TrackingError(f"{type(self).__name__} needs a timm architecture name (arch=...)")
        if input_size < 8:
            raise TrackingError(f"input_size must be at least 8, got {input_size}")
        if not 0.0 <= threshold <= 1.0:
            raise TrackingError(f"threshold must lie in [0, 1], got {threshold}")
        super().__init__(arch=arch, input_size=input_size, threshold=threshold, one_to_one=bool(one_to_one),
                         epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay, min_lr=min_lr,
                         pairs_per_epoch=pairs_per_epoch, val_pairs=val_pairs, infer_batch_size=infer_batch_size)
        self.arch_name = arch
        self.input_size = int(input_size)
        self.threshold = float(threshold)
        self.one_to_one = bool(one_to_one)
        self.device = resolve_device(device)
        self.net: nn.Module | None = None
        self._fitted = False

    # -- network -------------------------------------------------------------------
    def build(self, seed: int | None = None) -> nn.Module:
        """A fresh classifier (2 input channels, 2 classes, random initialisation)."""
        from ..extras import require

        timm = require("timm", "track", f"the CNN tracker {self.arch_name!r}")
        if seed is not None:
            torch.manual_seed(seed)
        try:
            net = timm.create_model(self.arch_name, pretrained=False, in_chans=2, num_classes=2)
        except RuntimeError as exc:  # timm's "Unknown model"
            raise TrackingError(f"timm cannot build {self.arch_name!r}: {exc}") from None
        net = net.to(self.device)
        if self.device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        return net

    def num_parameters(self) -> int:
        net = self.net if self.net is not None else self.build()
        return sum(p.numel() for p in net.parameters())

    @property
    def is_fitted(self) -> bool:
        return self.net is not None and self._fitted

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.net(x).float()
        return self.net(x)

    def _render(self, volume: torch.Tensor, pairs: PairSet, idx: np.ndarray) -> torch.Tensor:
        def take(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[idx]))

        return render_pairs(volume, take(pairs.z), take(pairs.prev), take(pairs.this), take(pairs.boxes),
                            self.input_size)

    # -- training ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The network's weights (on the CPU): what checkpoints hold."""
        assert self.net is not None
        return {"net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.net is not None
        self.net.load_state_dict(state["net"])

    def fit(self, train: np.ndarray, val: np.ndarray | None = None, *, seed: int = 0,
            max_steps: int | None = None, log: Callable[[str], None] | None = None,
            checkpoint_dir: str | Path | None = None, resume: bool = True, callbacks: tuple[Callback, ...] = (),
            num_workers: int | None = None, progress: bool = False, max_epochs: int | None = None,
            **kw: Any) -> TrackerFitResult:
        """Train the pair classifier on the pairs of ground-truth 3D label volumes (the training engine).

        Parameters
        ----------
        train, val : (Z, H, W) integer arrays
            3D grain ids, 0 on boundaries. Without ``val`` the last weights are kept.
        seed : int
            Seeds the initialisation, the pair order and the augmentation.
        max_steps : int, optional
            Stop after this many optimiser steps in total (a quick run).
        log : callable, optional
            Receives one line per epoch.
        checkpoint_dir, resume
            The engine's ``last.pt`` / ``best.pt``; an interrupted run resumes from ``last.pt``.
        max_epochs : int, optional
            Stop after this many epochs in total (an interruption; the next call resumes).
        callbacks : tuple of Callback
            The engine's events (:class:`grainbench.training.Callback`).
        num_workers : int, optional
            Data-loading workers (the pairs drawn do not depend on it).
        """
        if kw:
            raise TrackingError(f"unknown fit options {sorted(kw)}")
        cfg = self._config
        train_pairs = PairSet.from_labels(train)
        val_pairs = PairSet.from_labels(val) if val is not None else None
        assert train_pairs.same is not None
        counts = np.bincount(train_pairs.same, minlength=2)
        if counts.min() == 0:
            raise TrackingError(f"the training stack gives {counts[1]} same-grain and {counts[0]} different-grain "
                                "pairs; both classes are needed (use more slices)")
        weight = torch.tensor(counts.max() / counts, dtype=torch.float32, device=self.device)
        net = self.build(seed)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        optimizer = torch.optim.RMSprop(net.parameters(), lr=cfg["lr"], alpha=0.9)
        val_idx = None
        if val_pairs is not None and len(val_pairs):
            n_val = len(val_pairs) if cfg["val_pairs"] is None else min(cfg["val_pairs"], len(val_pairs))
            val_idx = np.unique(np.linspace(0, len(val_pairs) - 1, n_val).round().astype(np.int64))
        per_epoch = len(train_pairs) if cfg["pairs_per_epoch"] is None else min(cfg["pairs_per_epoch"],
                                                                                 len(train_pairs))
        data = PairDataset(train_pairs, self.input_size, per_epoch, seed=seed)
        self._fitted = True  # validation predicts with the weights in training

        def validate() -> float:
            assert val_pairs is not None
            return self.evaluate_pairs(val_pairs, val_idx)["accuracy"]

        result = train_network(
            self, data, inputs=lambda b: (b["x"], b["y"]), loss=lambda out, y: loss_fn(out.float(), y),
            optimizer=optimizer, lr_at=lambda e: max(cfg["lr"] * cfg["lr_decay"] ** e, cfg["min_lr"]),
            epochs=cfg["epochs"], batch_size=cfg["batch_size"], length=per_epoch,
            validate=validate if val_idx is not None else None, select="max" if val_idx is not None else "last",
            config={"tracker": self.config(), "seed": seed}, checkpoint_dir=checkpoint_dir, resume=resume,
            device=self.device, progress=progress, max_epochs=max_epochs, max_steps=max_steps, label=self.name,
            callbacks=(*((LogLines(log, self.name),) if log is not None else ()), *callbacks),
            num_workers=num_workers, seed=seed)
        validated = val_idx is not None and result.best_epoch >= 0
        history = {"train_loss": result.history["train_loss"], "lr": result.history["lr"],
                   "val_accuracy": result.history["val"] if val_idx is not None else []}
        return TrackerFitResult(
            trained=True, epochs=result.epochs, steps=result.steps,
            best_epoch=result.best_epoch + 1 if validated else result.epochs,
            best_val_accuracy=result.best_score if validated else float("nan"),
            train_pairs=len(train_pairs), val_pairs=0 if val_pairs is None else len(val_pairs),
            seconds=result.seconds, history=history, config=self.config())

    # -- inference -----------------------------------------------------------------
    @torch.no_grad()
    def predict_pairs(self, pairs: PairSet, idx: np.ndarray | None = None) -> np.ndarray:
        """Same-grain probability of the pairs ``idx`` (default all), in batches."""
        if not self.is_fitted:
            raise TrackingError(f"tracker {self.name!r} has no weights: fit it on ground-truth stacks "
                                "(grainbench track trains it on the dataset's train split) or load a checkpoint")
        assert self.net is not None
        idx = np.arange(len(pairs)) if idx is None else np.asarray(idx)
        out = np.empty(len(idx), dtype=np.float32)
        if len(idx) == 0:
            return out
        was_training = self.net.training
        self.net.eval()
        volume = torch.from_numpy(pairs.grains.labels).to(self.device)
        bs = int(self._config["infer_batch_size"])
        for start in range(0, len(idx), bs):
            chunk = idx[start:start + bs]
            logits = self._forward(self._render(volume, pairs, chunk))
            out[start:start + len(chunk)] = torch.softmax(logits, dim=1)[:, 1].float().cpu().numpy()
        self.net.train(was_training)
        return out

    def evaluate_pairs(self, pairs: PairSet, idx: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy and balanced accuracy of the same/different decision on labelled pairs."""
        if pairs.same is None:
            raise TrackingError("these pairs carry no same/different labels")
        idx = np.arange(len(pairs)) if idx is None else np.asarray(idx)
        pred = (self.predict_pairs(pairs, idx) > self.threshold).astype(np.int64)
        truth = pairs.same[idx]
        recalls = [float((pred[truth == c] == c).mean()) for c in (0, 1) if (truth == c).any()]
        return {"accuracy": float((pred == truth).mean()) if len(idx) else float("nan"),
                "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
                "majority_rate": float(max(truth.mean(), 1 - truth.mean())) if len(idx) else float("nan"),
                "pairs": float(len(idx))}

    def link(self, prev: np.ndarray, this: np.ndarray, pairs: PairTable) -> np.ndarray:
        grains = SliceGrains(np.stack([prev, this]).astype(np.int32, copy=False),
                             np.array([pairs.n_prev, pairs.n_this], dtype=np.int64))
        return self.link_stack(grains)[1]

    def link_stack(self, grains: SliceGrains) -> list[np.ndarray]:
        """All pairs of all slice pairs are classified in shared batches, then each slice picks its parents."""
        pairs = PairSet.from_grains(grains)
        probs = self.predict_pairs(pairs)
        parents = [np.zeros(int(grains.counts[0]) + 1, dtype=np.int64)]
        start = 0
        for table in pairs.tables:
            p = probs[start:start + len(table)]
            pick = choose_one_to_one if self.one_to_one else choose
            parents.append(pick(table, p, accept=p > self.threshold))
            start += len(table)
        return parents

    # -- state -----------------------------------------------------------------------
    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> str:
        """Write the configuration and weights atomically in the engine's checkpoint format; returns sha256."""
        if self.net is None:
            raise TrackingError(f"tracker {self.name!r} has no weights to save")
        state: dict[str, Any] = {"config": {"tracker": self.config()}, "method_state": self.state_dict()}
        if extra:
            state["extra"] = extra
        return save_checkpoint(path, state)

    def load(self, path: str | Path) -> CNNTracker:
        """Load weights from :meth:`save` or the engine's ``best.pt`` / ``last.pt``; their architecture and input
        size win."""
        state = load_checkpoint(path, map_location="cpu")
        cfg = state.get("config", {}).get("tracker") if isinstance(state.get("config"), dict) else None
        if isinstance(cfg, str) and "net" in state:
            raise TrackingError(f"{path}: tracker checkpoint from the retired training loop (before the training "
                                "engine); train the tracker again (grainbench track --retrain)")
        if not isinstance(cfg, dict) or cfg.get("name") != self.name or "method_state" not in state:
            held = cfg.get("name") if isinstance(cfg, dict) else "something else"
            raise TrackingError(f"{path}: not a checkpoint of tracker {self.name!r} (holds {held!r})")
        self.arch_name = cfg["arch"]
        self.input_size = int(cfg["input_size"])
        self._config.update(arch=self.arch_name, input_size=self.input_size)
        self.build()
        try:
            self.load_state_dict(state["method_state"])
        except (RuntimeError, KeyError) as exc:
            raise TrackingError(f"{path}: weights do not fit {self.arch_name!r}: {exc}") from None
        self._fitted = True
        return self


class VGG13BNTracker(CNNTracker):
    """The CNN tracker with a VGG-13 (batch norm) classifier (seed 000, Tables 3-4)."""

    name = "vgg13_bn"
    arch = "vgg13_bn"
    reference = "Ma et al. 2019 (WPU-Net, seed 000), grain tracking by pair classification, Tables 3-4"
    description = "CNN pair classifier (timm vgg13_bn, 2 input channels) links grains of adjacent slices"


class DenseNet161Tracker(CNNTracker):
    """The CNN tracker with a DenseNet-161 classifier (seed 000, Tables 3-5; the paper's best)."""

    name = "densenet161"
    arch = "densenet161"
    reference = "Ma et al. 2019 (WPU-Net, seed 000), grain tracking by pair classification, Tables 3-5"
    description = "CNN pair classifier (timm densenet161, 2 input channels) links grains of adjacent slices"
