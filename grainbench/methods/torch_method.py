"""A :class:`Method` backed by a PyTorch network, trained and run by grainbench's engines.

A subclass only builds its network: ``build_network()`` returns a module
mapping (N, K, H, W) inputs to (N, 2, H, W) logits (class 1 = boundary),
with K = :attr:`TorchMethod.net_in_channels`: for image channels C
(``in_channels``, 1 = grey, 3 = RGB) K = C for ``"2d"``, C + 1 for
``"2d+prev"`` (image, previous mask encoded boundary = -6, grain = 1 as in
the authors' trainer) and ``(2 * depth + 1) * C`` for ``"2.5d"`` (slice-major:
the C channels of slice z-k, then of z-k+1, ...). A ``"3d"`` network maps
(N, C, D, H, W) sub-volumes to (N, 2, D, H, W) logits. Training (:meth:`TorchMethod.fit`: the
engine :func:`grainbench.training.train_network` on a :class:`~grainbench.training.PatchDataset`) and
overlap-tile inference (:func:`grainbench.inference.tile_predict`, or
:func:`~grainbench.inference.tile_predict_3d` for ``"3d"``) come for free.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .._backend import resolve_device
from ..data.volume import Volume, as_channels
from ..errors import ConfigError, InputFileError
from ..training import checkpoint as _ckpt
from ..training.dataset import PatchDataset
from ..training.losses import get_loss
from ..training.presets import get_preset
from ..training.sampling import volume_arrays
from ..training.trainer import Callback, make_optimizer, seed_everything, train_network, val_batches
from .api import FitResult, Method, check_in_channels, check_volume_input

#: Encoding of the previous slice's mask fed to propagation networks (authors' trainer).
PREV_BOUNDARY_VALUE = -6.0
PREV_GRAIN_VALUE = 1.0


class TorchMethod(Method):
    """Base class of network methods.

    Parameters
    ----------
    in_channels : int
        Image channels of the data (1 = grey, 3 = RGB; the dataset's
        ``channels``). Recorded in :meth:`config` and in checkpoints; weights
        trained for another channel count are refused by :meth:`load`.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``None``/``"auto"`` (CUDA when present).
    tile, margin, batch_size : int
        Overlap-tile inference: tile side, margin discarded on every side of
        a tile, tiles per forward pass.
    **config
        The network's settings, stored in :meth:`config` (e.g. ``width=16``).
    """

    presets: ClassVar[tuple[str, ...]] = ("paper", "standard", "quick")
    #: Preset fields a method changes for itself, by preset name (e.g. smaller 3D
    #: patches under ``quick``); the caller's overrides still win. Recorded like any field.
    preset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Channel width of the paper's network, used while the config's ``width`` is None.
    default_width: ClassVar[int | None] = None
    #: Neighbours on each side for context "2.5d".
    depth: int = 0
    #: Context "3d": tile depth and the margin discarded at each end along z (inference).
    tile_depth: int = 16
    margin_depth: int = 4

    def __init__(self, *, in_channels: int = 1, device: str | None = None, tile: int = 256, margin: int = 32,
                 batch_size: int = 8, **config: Any) -> None:
        width = config.get("width")
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise ConfigError(f"{type(self).__name__}: width={width!r} must be a whole number >= 1")
        check_in_channels(in_channels, type(self).__name__)
        self._config: dict[str, Any] = {**config, "in_channels": in_channels}
        # Settings the user chose; a preset's width does not override these.
        self._explicit = {k for k, v in config.items() if v is not None}
        self.device = resolve_device(device)
        self.tile, self.margin, self.batch_size = tile, margin, batch_size
        self.norm = (0.5, 0.25)  # image mean/std; replaced by the training split's at fit time
        self.preset: str | None = None  # preset of the current weights
        self._net: nn.Module | None = None

    # -- network --------------------------------------------------------------------
    @abstractmethod
    def build_network(self) -> nn.Module:
        """A fresh network for the current :meth:`config`."""

    @property
    def net(self) -> nn.Module:
        """The network, built on first use."""
        if self._net is None:
            self._net = self.build_network().to(self.device)
        return self._net

    def _width(self) -> int:
        """The configured width, or :attr:`default_width` (an explicit 0 is kept, for the network to reject)."""
        width = self._config.get("width")
        if width is None and self.default_width is None:
            raise ValueError(f"{type(self).__name__} has no width setting")
        return self.default_width if width is None else int(width)

    @property
    def in_channels(self) -> int:  # type: ignore[override]
        """Image channels the network was built for (1 = grey, 3 = RGB)."""
        return int(self._config.get("in_channels", 1))

    @property
    def net_in_channels(self) -> int:
        """Channels of the network's input: image channels times slices (+ 1 for the previous mask)."""
        c = self.in_channels
        return {"2d": c, "2d+prev": c + 1, "2.5d": (2 * self.depth + 1) * c}.get(self.context, c)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "context": self.context, **self._config}

    def state_dict(self) -> dict[str, Any]:
        return {"net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "norm": [float(self.norm[0]), float(self.norm[1])], "preset": self.preset or ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.norm = (float(state["norm"][0]), float(state["norm"][1]))
        self.preset = state.get("preset") or None

    def save(self, path: str | Path) -> str:
        """Write the trained method (config and weights) atomically; returns the file's sha256."""
        return _ckpt.save_checkpoint(path, {"config": {"method": self.config()}, "method_state": self.state_dict()})

    def load(self, path: str | Path) -> "TorchMethod":
        """Load weights from :meth:`save` or a trainer checkpoint (``best.pt``/``last.pt``)."""
        state = _ckpt.load_checkpoint(path)
        try:
            cfg = state["config"]["method"]
            method_state = state["method_state"]
        except (KeyError, TypeError):
            raise InputFileError(f"{path}: not a checkpoint of a grainbench method (no method config/state)") from None
        if cfg.get("name") != self.name:
            raise InputFileError(f"{path}: checkpoint of method {cfg.get('name')!r}, not {self.name!r}")
        have = int(cfg.get("in_channels", 1))  # checkpoints from before channels were recorded are grey
        if have != self.in_channels:
            kind = {1: "grey", 3: "RGB"}
            raise InputFileError(f"{path}: weights were trained on {kind.get(have, f'{have}-channel')} images "
                                 f"(in_channels={have}) but the data has {self.in_channels} channel(s); "
                                 "train on this dataset or use a checkpoint of the same channels")
        old_config, old_net = self._config, self._net
        self._config = {**{k: v for k, v in cfg.items() if k not in ("name", "context")}, "in_channels": have}
        self._net = None
        try:
            self.load_state_dict(method_state)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            self._config, self._net = old_config, old_net
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(f"{path}: weights do not fit method {self.name!r} ({first})") from None
        return self

    def load_init_weights(self, path: str | Path) -> None:
        """Put the network weights of checkpoint ``path`` into this method's (fresh) network: a fine-tune's start.

        Only the weights are taken (not the optimizer, the normalisation or the
        preset). The checkpoint (from :meth:`save`, or a trainer's ``last.pt`` /
        ``best.pt``; read with ``weights_only=True``) must be of this method and
        its state dict must have exactly this network's keys and shapes; else an
        :class:`~grainbench.errors.InputFileError` names the file and the first mismatch.

        One mismatch is bridged on purpose: grey weights (``in_channels`` 1)
        fine-tuned on colour data (pretraining on grey generated stacks, then
        fine-tuning on a colour set). The layers that read the image get each grey
        input channel repeated over the C colour channels and divided by C
        (:func:`widen_grey_weights`), so the widened network answers a colour
        image as the grey one answered its channel mean.
        """
        state = _ckpt.load_checkpoint(path)
        try:
            cfg, weights = state["config"]["method"], state["method_state"]["net"]
        except (KeyError, TypeError):
            raise InputFileError(f"{path}: not a checkpoint of a grainbench method (no method config/state)") from None
        if cfg.get("name") != self.name:
            raise InputFileError(f"{path}: checkpoint of method {cfg.get('name')!r}, not {self.name!r}")
        own = self.net.state_dict()
        if int(cfg.get("in_channels", 1)) == 1 and self.in_channels > 1:
            weights = widen_grey_weights(weights, own, self.in_channels)
            cfg = {**cfg, "in_channels": self.in_channels}
        differs = {k: (v, self._config.get(k)) for k, v in cfg.items()
                   if k not in ("name", "context") and self._config.get(k) != v}
        hint = "; checkpoint " + ", ".join(f"{k}={a!r} vs this run's {b!r}" for k, (a, b) in differs.items()) \
            if differs else ""
        missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        if missing or extra:
            what = f"lacks {missing[0]}" if missing else f"has an extra {extra[0]}"
            raise InputFileError(f"{path}: weights do not fit {self.name}: the checkpoint {what} "
                                 f"({len(missing)} missing, {len(extra)} extra keys){hint}")
        for k, v in own.items():
            if tuple(weights[k].shape) != tuple(v.shape):
                raise InputFileError(f"{path}: weights do not fit {self.name}: {k} has shape "
                                     f"{tuple(weights[k].shape)} in the checkpoint, {tuple(v.shape)} here{hint}")
        self.net.load_state_dict(weights)

    # -- inputs -----------------------------------------------------------------------
    def make_input(self, image: np.ndarray, prev_boundary: np.ndarray | None = None) -> np.ndarray:
        """Network input (Z, K, H, W) float32 (K = :attr:`net_in_channels`) for (Z, H, W) or (Z, C, H, W)
        slices: normalised image (+ encoded prev mask)."""
        x = as_channels((np.asarray(image, np.float32) - self.norm[0]) / self.norm[1])
        if self.context == "2d+prev":
            prev = np.where(np.asarray(prev_boundary, bool), PREV_BOUNDARY_VALUE, PREV_GRAIN_VALUE)
            return np.concatenate([x, prev.astype(np.float32)[:, None]], axis=1)
        if self.context == "2.5d":
            z = x.shape[0]
            idx = np.clip(np.arange(z)[:, None] + np.arange(-self.depth, self.depth + 1)[None], 0, z - 1)
            return x[idx].reshape(z, -1, *x.shape[-2:])
        return x

    def encode(self, image: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Network input of a batch of training patches: normalised image (+ the encoded previous mask)."""
        x = (image - self.norm[0]) / self.norm[1]
        if self.context == "2d+prev":
            enc = torch.where(prev, PREV_BOUNDARY_VALUE, PREV_GRAIN_VALUE).to(x.dtype)
            x = torch.cat([x, enc[:, None]], 1)
        return x

    def batch_to_input(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, 1-pixel target) tensors of a training :class:`~grainbench.training.sampling.Batch`."""
        prev = torch.from_numpy(batch.prev) if self.context == "2d+prev" else None
        x = self.encode(torch.from_numpy(batch.image), prev)
        return x.to(device, non_blocking=True), torch.from_numpy(batch.boundary).to(device)

    # -- Method protocol ----------------------------------------------------------------
    def fit(self, train: Volume, val: Volume | None = None, *, preset: Any = "quick", seed: int = 0,
            checkpoint_dir: str | Path | None = None, resume: bool = True, progress: bool = True,
            max_epochs: int | None = None, init_from: str | Path | None = None,
            callbacks: tuple[Callback, ...] = (), num_workers: int | None = None, **overrides: Any) -> FitResult:
        """Train from scratch, or from the weights of ``init_from`` (a fine-tune), or resume from ``checkpoint_dir``.

        Keyword ``overrides`` change preset fields (e.g. ``epochs=2``); the
        preset's ``width`` replaces the method's default width unless the
        method was created with an explicit one. ``init_from`` is a checkpoint
        file (:meth:`load_init_weights`); the optimizer starts fresh and the
        image normalisation is the training split's, as from scratch.
        ``callbacks`` (:class:`~grainbench.training.Callback`) receive the
        engine's events; ``num_workers`` sets the data-loading workers (the
        crops drawn do not depend on it).
        """
        name = preset if isinstance(preset, str) else preset.name
        task = (getattr(train, "meta", None) or {}).get("task")
        p = get_preset(preset, task=task, **{**self.preset_defaults.get(name, {}), **overrides})
        if p.width is not None and "width" in self._config and "width" not in self._explicit:
            self._config["width"] = p.width
        seed_everything(seed)
        self._net = None
        net = self.net
        if p.init == "xavier":
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)):
                    nn.init.xavier_uniform_(m.weight)
        if init_from is not None:
            self.load_init_weights(init_from)
        image, _ = volume_arrays(train)
        self.norm = (float(image.mean()), float(image.std()) or 1.0)
        self.preset = p.name

        loss_fn = get_loss(p.loss, **p.loss_kwargs)
        maps = getattr(loss_fn, "pipeline_maps", None)  # per-crop maps, cut by the data pipeline
        data = PatchDataset(train, p.patch_size, p.patches_per_epoch, context=self.context, depth=self.depth,
                            patch_depth=p.patch_depth, seed=seed, augment=p.augment != "none", maps=maps)
        val_sets = [_val_items(b, maps) for b in val_batches(val, p, self.context, self.depth)] \
            if val is not None else []

        def inputs(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
            extra = {k: v for k, v in batch.items() if k not in ("image", "boundary", "prev")}
            return self.encode(batch["image"], batch.get("prev")), (batch["boundary"], extra)

        def loss(outputs: Any, target: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> torch.Tensor:
            boundary, extra = target
            # deeply supervised nets score several outputs against one target: the maps are shared
            return self.training_loss(outputs, boundary, _with_maps(loss_fn, extra))

        def validate() -> float:
            total, n = 0.0, 0
            for batch in val_sets:
                x, (boundary, extra) = inputs(batch)
                x = x.to(self.device)
                extra = {k: v.to(self.device) for k, v in extra.items()}
                logits = self.net(x)
                total += float(loss_fn(logits.float(), boundary.to(self.device), **extra)) * len(x)
                n += len(x)
            return total / max(n, 1)

        result = train_network(
            self, data, inputs=inputs, loss=loss, optimizer=make_optimizer(net.parameters(), p), lr_at=p.lr_at,
            epochs=p.epochs, batch_size=p.batch_size, length=len(data),
            validate=validate if val_sets else None, select="min" if p.select == "val_loss" else "last",
            patience=p.patience, grad_clip=p.grad_clip,
            config={"method": self.config(), "preset": p.to_dict(), "seed": seed},
            checkpoint_dir=checkpoint_dir, resume=resume, device=self.device, progress=progress,
            max_epochs=max_epochs, label=f"{self.name} [{p.name}]", callbacks=callbacks, num_workers=num_workers,
            precision=p.precision, seed=seed)
        history = {"train_loss": result.history["train_loss"], "val_loss": result.history["val"],
                   "lr": result.history["lr"]}
        return FitResult(
            preset=p.name, config=result.config, steps=result.steps, epochs=result.epochs,
            best_epoch=result.best_epoch, best_val_loss=result.best_score, seconds=result.seconds,
            patches_per_s=result.samples_per_s, history=history, checkpoint=result.checkpoint,
            stopped_early=result.stopped_early, stop_epoch=result.stop_epoch)

    @torch.no_grad()
    def predict(self, image: np.ndarray, prev_boundary: np.ndarray | None = None) -> np.ndarray:
        from ..inference import tile_predict

        image = check_volume_input(image, prev_boundary, self.context, self.in_channels)
        x = self.make_input(image, prev_boundary)
        self.net.eval()
        if self.context == "3d":
            from ..inference import tile_predict_3d

            return tile_predict_3d(self.forward_prob, x.transpose(1, 0, 2, 3), tile=self.tile, margin=self.margin,
                                   tile_depth=self.tile_depth, margin_depth=self.margin_depth,
                                   batch_size=self.batch_size, device=self.device)
        return tile_predict(self.forward_prob, x, tile=self.tile, margin=self.margin,
                            batch_size=self.batch_size, device=self.device)

    def forward_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Boundary probability (N, [d,] h, w) of a batch of input tiles (N, C, [d,] h, w)."""
        return torch.softmax(self.net(x).float(), dim=1)[:, 1]

    def training_loss(self, outputs: Any, target: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor:
        """Training loss of what the network returns in train mode; the trainer calls this.

        The default scores the (N, 2, H, W) logits with the preset's
        ``loss_fn``. A network with several outputs in train mode (deep
        supervision: ``[fused, side_1, ...]``) overrides this to combine
        them; in eval mode it must return the (N, 2, H, W) logits only,
        which validation and prediction use.
        """
        return loss_fn(outputs.float(), target)


def _with_maps(loss_fn: nn.Module, maps: dict[str, torch.Tensor]):
    """``loss_fn`` with the data pipeline's per-crop maps bound (the training loss calls ``fn(logits, target)``)."""
    if not maps:
        return loss_fn
    return lambda logits, target: loss_fn(logits, target, **maps)


def _val_items(batch: Any, maps: Any) -> dict[str, torch.Tensor]:
    """A validation :class:`~grainbench.training.sampling.Batch` as the engine's batch dict, maps computed once."""
    out = {"image": torch.from_numpy(batch.image), "boundary": torch.from_numpy(batch.boundary)}
    if batch.prev is not None:
        out["prev"] = torch.from_numpy(batch.prev)
    if maps is not None:
        per = [maps(b) for b in batch.boundary]
        out.update({k: torch.from_numpy(np.stack([m[k] for m in per])) for k in per[0]})
    return out


def widen_grey_weights(weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                       channels: int) -> dict[str, torch.Tensor]:
    """Grey-trained weights for a network whose image input has ``channels`` channels.

    A tensor that differs from this network's only along axis 1 reads the
    network input: its ``k`` grey image channels (one per slice of a 2.5D stack)
    become ``k * channels`` (each repeated ``channels`` times, divided by
    ``channels``: the order :meth:`TorchMethod.make_input` builds) and the
    channels after them (e.g. WPU-Net's previous mask) are kept. Other tensors
    are returned as they are; any other mismatch is left for the caller to report.
    """
    out = dict(weights)
    for key, mine in own.items():
        w = weights.get(key)
        if w is None or w.ndim < 2 or w.shape == mine.shape:
            continue
        if w.shape[:1] != mine.shape[:1] or w.shape[2:] != mine.shape[2:]:
            continue
        grown = mine.shape[1] - w.shape[1]
        k, rest = divmod(grown, channels - 1)
        if rest or k < 1 or k > w.shape[1]:
            continue
        image = torch.repeat_interleave(w[:, :k], channels, dim=1) / channels
        out[key] = torch.cat([image, w[:, k:]], dim=1).to(mine.dtype)
    return out
