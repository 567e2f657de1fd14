"""The training engine: one loop for every network grainbench trains (segmentation methods, the CNN tracker).

The engine knows a network (inside a ``model``: anything with ``net``,
``state_dict()`` and ``load_state_dict()``), a data pipeline (a
``torch.utils.data.Dataset`` indexed by ``(epoch, index)`` keys, fed through a
``DataLoader`` with worker processes) and a loss; nothing about method
classes. One epoch steps the optimiser once per batch, then calls
``validate`` (a score; lower or higher is better, as ``select`` says).
After every epoch ``last.pt`` is written atomically (weights, optimiser,
epoch, step, the data pipeline's position, torch CPU and CUDA RNG states,
the training seconds so far), and ``best.pt`` when the score improves, so an
interrupted run resumes from the last finished epoch and ends with the same
weights as an uninterrupted one, bit for bit. With ``patience`` training
stops early once the score has not improved for that many epochs; ``last.pt``
remembers it, so a resumed run that had stopped stays stopped.

Callbacks (:class:`Callback`) receive ``on_train_begin``, ``on_epoch_end`` and
``on_train_end`` events (e.g. a TensorBoard writer) without editing the engine.
Training asks torch for deterministic kernels
(:func:`grainbench.training.determinism.use_deterministic`); networks run in
channels_last layout, with bf16 autocast on CUDA (``precision="auto"``) or
also on the CPU when asked (``precision="bf16"``).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.volume import Volume
from ..progress import progress as progress_bar
from .checkpoint import load_checkpoint, save_checkpoint
from .dataset import ENGINE_VERSION, EpochBatchSampler
from .determinism import use_deterministic
from .hooks import report_epoch
from .presets import Preset
from .sampling import Batch, volume_arrays


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA); numpy randomness lives in explicit generators."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def val_batches(volume: Volume, preset: Preset, context: str, depth: int) -> list[Batch]:
    """A fixed grid of non-overlapping validation crops, at most ``preset.val_patches``."""
    image, boundary = volume_arrays(volume)  # (Z, C, H, W)
    z, _, h, w = image.shape
    p = min(preset.patch_size, h, w)
    p -= p % 16  # networks halve the size four times
    if context == "3d":
        d = min(preset.patch_depth, z)  # short validation splits give shallower crops
        cells = [(k, y, x) for k in range(0, z - d + 1, d) for y in range(0, h - p + 1, p)
                 for x in range(0, w - p + 1, p)]

        def crop(chunk: list[tuple[int, int, int]]) -> Batch:
            return Batch(np.stack([image[k:k + d, :, y:y + p, x:x + p].transpose(1, 0, 2, 3) for k, y, x in chunk]),
                         np.stack([boundary[k:k + d, y:y + p, x:x + p] for k, y, x in chunk]), None)

        return _grid_batches(cells, preset, crop)

    first = 1 if context == "2d+prev" else 0
    cells = [(k, y, x) for k in range(first, z) for y in range(0, h - p + 1, p) for x in range(0, w - p + 1, p)]

    def crop(chunk: list[tuple[int, int, int]]) -> Batch:
        if context == "2.5d":
            img = np.stack([image[np.clip(np.arange(k - depth, k + depth + 1), 0, z - 1), :, y:y + p, x:x + p]
                            .reshape(-1, p, p) for k, y, x in chunk])
        else:
            img = np.stack([image[k, :, y:y + p, x:x + p] for k, y, x in chunk])
        bnd = np.stack([boundary[k, y:y + p, x:x + p] for k, y, x in chunk])
        prev = (np.stack([boundary[k - 1, y:y + p, x:x + p] for k, y, x in chunk])
                if context == "2d+prev" else None)
        return Batch(img, bnd, prev)

    return _grid_batches(cells, preset, crop)


def _grid_batches(cells: list[tuple[int, int, int]], preset: Preset,
                  crop: Callable[[list[tuple[int, int, int]]], Batch]) -> list[Batch]:
    """At most ``preset.val_patches`` cells spread evenly over ``cells``, cropped in batches."""
    if not cells:
        return []
    take = np.linspace(0, len(cells) - 1, min(preset.val_patches, len(cells))).round().astype(int)
    cells = [cells[i] for i in sorted(set(take))]
    return [crop(cells[i:i + preset.batch_size]) for i in range(0, len(cells), preset.batch_size)]



class Trainable(Protocol):
    """What the engine trains: a network and how its state is saved (e.g. a ``TorchMethod``)."""

    net: nn.Module

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Callback:
    """Hooks the engine calls; subclass and override what you need (all do nothing by default).

    ``on_epoch_end`` gets ``logs`` with ``epoch`` (1-based), ``step``,
    ``train_loss``, ``val`` (the validation score, nan without one), ``lr``,
    ``patches_per_s`` and ``seconds``. A TensorBoard writer, for example::

        class TB(Callback):
            def __init__(self, writer): self.w = writer
            def on_epoch_end(self, logs): self.w.add_scalar("loss/train", logs["train_loss"], logs["epoch"])
    """

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """``info``: ``label``, ``config``, ``start_epoch``, ``end_epoch``, ``batches_per_epoch``."""

    def on_epoch_end(self, logs: dict[str, Any]) -> None:
        """After every finished epoch (after its checkpoint was written)."""

    def on_train_end(self, result: "TrainResult") -> None:
        """Once, with the result."""


class LogLines(Callback):
    """Sends one line per epoch to ``log`` (a ``print``-like function)."""

    def __init__(self, log: Callable[[str], None], label: str = "") -> None:
        self.log, self.label = log, label

    def on_epoch_end(self, logs: dict[str, Any]) -> None:
        val = "" if math.isnan(logs["val"]) else f", val {logs['val']:.4f}"
        self.log(f"{self.label}: epoch {logs['epoch']}/{logs['epochs']}, loss {logs['train_loss']:.4f}{val}")


@dataclass
class TrainResult:
    """What :func:`train_network` returns.

    ``best_score`` is the validation score of the kept weights (nan without
    validation); ``epochs`` and ``steps`` include resumed ones; ``seconds``
    adds up the training time of every segment of a resumed run.
    """

    steps: int = 0
    epochs: int = 0
    best_epoch: int = -1
    best_score: float = float("nan")
    seconds: float = 0.0
    samples_per_s: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    checkpoint: str | None = None
    stopped_early: bool = False
    stop_epoch: int = -1
    config: dict[str, Any] = field(default_factory=dict)


def default_workers() -> int:
    """Data-loading worker processes: one per spare core, at most 2 (0 on a single core, or inside a daemonic
    process, which may not start children: load in-process)."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return 0
    from ..threads import available_cores

    return max(0, min(2, available_cores() - 1))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # a worker cuts crops; the cores belong to the training step


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def make_loader(dataset: Dataset, batch_size: int, length: int, *, num_workers: int | None = None,
                seed: int = 0, pin_memory: bool = False) -> tuple[DataLoader, EpochBatchSampler]:
    """A ``DataLoader`` over ``(epoch, index)`` keys of ``dataset`` (workers persist across epochs).

    The loader has its own torch generator, so creating it never draws from
    torch's global RNG (which resuming restores).
    """
    workers = default_workers() if num_workers is None else int(num_workers)
    batches = EpochBatchSampler(length, batch_size)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0, worker_init_fn=_worker_init if workers else None,
                        generator=torch.Generator().manual_seed(int(seed)),
                        multiprocessing_context="fork" if workers and os.name == "posix" else None)
    return loader, batches


def train_network(model: Trainable, dataset: Dataset, *, inputs: Callable[[dict], tuple[torch.Tensor, Any]],
                  loss: Callable[[Any, Any], torch.Tensor], optimizer: torch.optim.Optimizer,
                  lr_at: Callable[[int], float], epochs: int, batch_size: int, length: int,
                  validate: Callable[[], float] | None = None, select: str = "min", patience: int | None = None,
                  grad_clip: float | None = None, config: dict[str, Any] | None = None,
                  checkpoint_dir: str | Path | None = None, resume: bool = True, device: torch.device | None = None,
                  progress: bool = True, max_epochs: int | None = None, max_steps: int | None = None,
                  label: str = "training", callbacks: Sequence[Callback] = (), num_workers: int | None = None,
                  precision: str = "auto", seed: int = 0) -> TrainResult:
    """Train ``model.net`` in place on ``dataset``; returns a :class:`TrainResult`.

    Parameters
    ----------
    model : Trainable
        Holds the network (``net``) and its saveable state.
    dataset : Dataset
        Indexed by ``(epoch, index)`` keys, ``index < length``; items are
        dicts of tensors, collated by torch's default collate.
    inputs : callable
        ``inputs(batch) -> (x, target)`` on the CPU: the network's input and
        whatever ``loss`` needs (tensors, dicts or tuples of tensors; moved
        to the device by the engine).
    loss : callable
        ``loss(outputs, target) -> scalar`` (outputs: what the network returns).
    optimizer : torch.optim.Optimizer
        Over ``model.net``'s parameters; its state is checkpointed.
    lr_at : callable
        Learning rate of a 0-based epoch.
    epochs, batch_size, length : int
        Schedule: epochs, batch size, samples per epoch.
    validate : callable, optional
        Score of the current weights, called after every epoch (the network in eval mode).
    select : {"min", "max", "last"}
        Keep the weights of the lowest or highest score, or the last ones.
    patience : int, optional
        Early stopping after this many epochs without a better score (needs a score to select on).
    grad_clip : float, optional
        Gradient-norm clipping.
    config : dict
        Stored in checkpoints; resuming from a checkpoint of another config is refused.
    checkpoint_dir, resume
        Where ``last.pt`` / ``best.pt`` go; with ``resume``, continue from ``last.pt``.
    max_epochs, max_steps : int, optional
        Stop after this many epochs (an interruption; the next call resumes) or optimiser steps in total.
    callbacks : sequence of Callback
        Receive the engine's events.
    num_workers : int, optional
        DataLoader workers (default :func:`default_workers`); the draws do not depend on it.
    precision : {"auto", "bf16", "fp32"}
        ``auto``: bf16 autocast on CUDA, fp32 on the CPU; ``bf16``: bf16
        autocast on either (fast on CPUs with AVX512-BF16; other numbers);
        ``fp32``: no autocast.
    seed : int
        Seeds the loader's own generator.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if select not in ("min", "max", "last"):
        raise ValueError(f"select must be min, max or last, got {select!r}")
    use_deterministic()
    net = model.net
    device = device or next(net.parameters()).device
    cuda = device.type == "cuda"
    autocast = cuda if precision == "auto" else precision == "bf16"
    config = {**(config or {}), "engine": ENGINE_VERSION}
    better = (lambda a, b: a < b) if select == "min" else (lambda a, b: a > b)
    select_val = select != "last" and validate is not None
    early = patience is not None and select_val

    start_epoch, step = 0, 0
    earlier_seconds = 0.0  # training time of the segments before a resume
    history: dict[str, list[float]] = {"train_loss": [], "val": [], "lr": []}
    worst = math.inf if select == "min" else -math.inf
    best_val, best_epoch, best_state = worst, -1, None
    stopped_early = False
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None

    if resume and last_path is not None and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        if state.get("config") != config:
            raise ValueError(f"{last_path}: checkpoint was written with another configuration; "
                             f"use a new checkpoint directory or resume=False")
        model.load_state_dict(state["method_state"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])
        earlier_seconds = float(state.get("train_seconds", 0.0))
        start_epoch, step = int(state["data_position"]["epoch"]), int(state["step"])
        history = {k: list(v) for k, v in state["history"].items()}
        best_val, best_epoch = float(state["best_val"]), int(state["best_epoch"])
        stopped_early = bool(state.get("stopped_early", False))
        if select_val and best_path is not None and best_path.exists():
            best_state = load_checkpoint(best_path, map_location="cpu")["method_state"]

    end_epoch = epochs if max_epochs is None else min(epochs, max_epochs)
    if stopped_early or (max_steps is not None and step >= max_steps):
        end_epoch = start_epoch
    # channels_last: faster convolutions on CPUs (about 1.2x here) and GPUs; its 5D counterpart on CUDA only
    three_d = _is_3d(net)
    memory_format = (torch.channels_last_3d if cuda else None) if three_d else torch.channels_last
    if memory_format is not None:
        net.to(memory_format=memory_format)
    loader, batches = make_loader(dataset, batch_size, length, num_workers=num_workers, seed=seed,
                                  pin_memory=cuda)
    batches_per_epoch = len(batches)
    for cb in callbacks:
        cb.on_train_begin({"label": label, "config": config, "start_epoch": start_epoch, "end_epoch": end_epoch,
                           "batches_per_epoch": batches_per_epoch})
    t0 = time.perf_counter()
    seen, train_time = 0, 0.0
    with progress_bar(label, (end_epoch - start_epoch) * batches_per_epoch, enabled=progress) as bar:
        for epoch in range(start_epoch, end_epoch):
            lr = lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            net.train()
            losses = []
            te = time.perf_counter()
            batches.set_epoch(epoch)
            for batch in loader:
                x, target = inputs(batch)
                x = _to_device(x, device)
                if memory_format is not None and x.ndim == (5 if three_d else 4):
                    x = x.contiguous(memory_format=memory_format)
                target = _to_device(target, device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    outputs = net(x)
                value = loss(outputs, target)
                if not torch.isfinite(value):
                    raise FloatingPointError(f"{label}: loss became {value.item()} at epoch {epoch}, "
                                             f"step {step}; lower the learning rate")
                value.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
                optimizer.step()
                step += 1
                seen += len(x)
                losses.append(float(value.item()))
                bar.advance()
                if max_steps is not None and step >= max_steps:
                    break
            train_time += time.perf_counter() - te
            train_loss = float(np.mean(losses)) if losses else float("nan")
            if validate is not None:
                net.eval()
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    val = float(validate())
            else:
                val = float("nan")
            history["train_loss"].append(train_loss)
            history["val"].append(val)
            history["lr"].append(lr)
            if select_val and better(val, best_val):
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
                if best_path is not None:
                    save_checkpoint(best_path, {"config": config, "method_state": best_state, "epoch": epoch + 1,
                                                "val": val})
            stop_now = early and epoch - best_epoch >= patience
            if last_path is not None:
                save_checkpoint(last_path, {
                    "config": config, "method_state": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "data_position": {"epoch": epoch + 1, "index": 0},
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "train_seconds": earlier_seconds + time.perf_counter() - t0, "history": history,
                    "best_val": best_val, "best_epoch": best_epoch, "stopped_early": bool(stop_now),
                })
            report_epoch(epoch + 1, {"train_loss": train_loss, "val_loss": val})  # e.g. a tuner's scheduler
            pps = seen / train_time if train_time else 0.0
            logs = {"epoch": epoch + 1, "epochs": epochs, "step": step, "train_loss": train_loss, "val": val,
                    "lr": lr, "patches_per_s": pps, "seconds": earlier_seconds + time.perf_counter() - t0}
            bar.line(f"epoch {epoch + 1}/{epochs} loss {train_loss:.4f} val {val:.4f} {pps:.1f} patches/s")
            for cb in callbacks:
                cb.on_epoch_end(logs)
            if stop_now:
                stopped_early, end_epoch = True, epoch + 1
                bar.line(f"stopped early after epoch {epoch + 1}: no better validation score for {patience} "
                         f"epochs (best epoch {best_epoch + 1})")
                break
            if max_steps is not None and step >= max_steps:
                end_epoch = epoch + 1
                break
    del loader  # ends the workers

    finished = end_epoch >= epochs or stopped_early or (max_steps is not None and step >= max_steps)
    if finished and select_val and best_state is not None:
        model.load_state_dict(best_state)
    done = max(end_epoch, start_epoch)
    result = TrainResult(
        steps=step, epochs=done, best_epoch=best_epoch, best_score=best_val if best_epoch >= 0 else float("nan"),
        seconds=earlier_seconds + time.perf_counter() - t0, samples_per_s=seen / train_time if train_time else 0.0,
        history=history, checkpoint=str(best_path if select_val and best_path else last_path) if ckpt_dir else None,
        stopped_early=stopped_early, stop_epoch=done if stopped_early else -1, config=config)
    for cb in callbacks:
        cb.on_train_end(result)
    return result


def _is_3d(net: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) for m in net.modules())


def make_optimizer(params, preset: Preset) -> torch.optim.Optimizer:
    """The preset's optimiser over ``params``."""
    if preset.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=preset.lr, alpha=preset.alpha, eps=preset.eps)
    return torch.optim.Adam(params, lr=preset.lr, eps=preset.eps)


def state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    """Move every tensor of a (nested) state dict to the CPU."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu()
        elif isinstance(v, dict):
            out[k] = state_to_cpu(v)
        else:
            out[k] = v
    return out
