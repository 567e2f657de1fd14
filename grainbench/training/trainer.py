"""The training loop shared by every network method.

One epoch draws ``patches_per_epoch`` augmented patches, steps the optimiser
per batch, then computes the loss on a fixed grid of validation crops. After
every epoch ``last.pt`` is written atomically (weights, optimiser, epoch,
step, sampler and torch CPU and CUDA RNG states, the training seconds so
far), and ``best.pt`` when the validation loss improves, so an interrupted
run resumes from the last finished epoch, ends with the same weights as an
uninterrupted one, and reports the training time of all its segments.
With ``preset.patience`` training stops early once the validation loss has
not improved for that many epochs; ``last.pt`` remembers it, so a resumed
run that had stopped stays stopped.
Training asks torch for deterministic kernels
(:func:`grainbench.training.determinism.use_deterministic`).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ..data.volume import Volume
from ..methods.api import FitResult
from ..progress import progress as progress_bar
from .checkpoint import load_checkpoint, save_checkpoint
from .determinism import use_deterministic
from .hooks import report_epoch
from .losses import get_loss
from .presets import Preset
from .sampling import Batch, PatchSampler, volume_arrays

if TYPE_CHECKING:
    from ..methods.torch_method import TorchMethod


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA); numpy randomness lives in explicit generators."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _val_batches(volume: Volume, preset: Preset, context: str, depth: int) -> list[Batch]:
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


def _make_optimizer(params, preset: Preset) -> torch.optim.Optimizer:
    if preset.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=preset.lr, alpha=preset.alpha, eps=preset.eps)
    return torch.optim.Adam(params, lr=preset.lr, eps=preset.eps)


def train(method: "TorchMethod", train_volume: Volume, val_volume: Volume | None, preset: Preset, *,
          seed: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = True,
          device: torch.device | None = None, progress: bool = True, max_epochs: int | None = None) -> FitResult:
    """Train ``method.net`` in place; returns the :class:`FitResult`.

    Parameters
    ----------
    method : TorchMethod
        A method whose network is already built (and initialised).
    train_volume, val_volume : Volume
        Training and validation splits; without a validation split the
        last weights are kept.
    preset : Preset
        The schedule.
    seed : int
        Seeds the patch sampler (the network was seeded when built).
    checkpoint_dir : path, optional
        Where ``last.pt`` and ``best.pt`` go. With ``resume`` and an
        existing ``last.pt`` training continues from it.
    max_epochs : int, optional
        Stop after this many epochs in total even if the preset has more
        (used to simulate an interruption; the next call resumes).
    """
    use_deterministic()
    device = device or next(method.net.parameters()).device
    cuda = device.type == "cuda"
    net = method.net
    # channels_last is a 4D layout; 3D networks get its 5D counterpart
    memory_format = torch.channels_last_3d if method.context == "3d" else torch.channels_last
    if cuda:
        net.to(memory_format=memory_format)
    loss_fn = get_loss(preset.loss, **preset.loss_kwargs)
    optimizer = _make_optimizer(net.parameters(), preset)
    sampler = PatchSampler(train_volume, preset.patch_size, context=method.context, depth=method.depth, seed=seed,
                           patch_depth=preset.patch_depth, augment=preset.augment != "none")
    per_epoch = preset.patches_per_epoch or sampler.n_slices
    val_batches = _val_batches(val_volume, preset, method.context, method.depth) if val_volume is not None else []
    select_val = preset.select == "val_loss" and bool(val_batches)

    start_epoch, step = 0, 0
    earlier_seconds = 0.0  # training time of the segments before a resume
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "lr": []}
    best_val, best_epoch, best_state = math.inf, -1, None
    stopped_early = False
    early = preset.patience is not None and select_val
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None
    config = {"method": method.config(), "preset": preset.to_dict(), "seed": seed}

    if resume and last_path is not None and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        if state["config"] != config:
            raise ValueError(f"{last_path}: checkpoint was written with another configuration; "
                             f"use a new checkpoint directory or resume=False")
        method.load_state_dict(state["method_state"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler_state"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])
        earlier_seconds = float(state.get("train_seconds", 0.0))
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history = {k: list(v) for k, v in state["history"].items()}
        best_val, best_epoch = float(state["best_val_loss"]), int(state["best_epoch"])
        stopped_early = bool(state.get("stopped_early", False))
        if select_val and best_path is not None and best_path.exists():
            best_state = load_checkpoint(best_path, map_location="cpu")["method_state"]

    end_epoch = preset.epochs if max_epochs is None else min(preset.epochs, max_epochs)
    if stopped_early:
        end_epoch = start_epoch
    t0 = time.perf_counter()
    seen = 0
    train_time = 0.0
    batches_per_epoch = math.ceil(per_epoch / preset.batch_size)
    with progress_bar(f"{method.name} [{preset.name}]", (end_epoch - start_epoch) * batches_per_epoch,
                      enabled=progress) as bar:
        for epoch in range(start_epoch, end_epoch):
            lr = preset.lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            net.train()
            losses = []
            te = time.perf_counter()
            for batch in sampler.epoch(per_epoch, preset.batch_size):
                x, target = method.batch_to_input(batch, device)
                if cuda:
                    x = x.contiguous(memory_format=memory_format)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    logits = net(x)
                loss = method.training_loss(logits, target, loss_fn)  # sums side outputs if deeply supervised
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{method.name}: loss became {loss.item()} at epoch {epoch}, "
                                             f"step {step}; lower the learning rate")
                loss.backward()
                if preset.grad_clip:
                    nn.utils.clip_grad_norm_(net.parameters(), preset.grad_clip)
                optimizer.step()
                step += 1
                seen += len(batch.image)
                losses.append(float(loss.item()))
                bar.advance()
            train_time += time.perf_counter() - te
            train_loss = float(np.mean(losses))
            val_loss = _validate(method, val_batches, loss_fn, device) if val_batches else float("nan")
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["lr"].append(lr)
            if select_val and val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(method.state_dict())
                if best_path is not None:
                    save_checkpoint(best_path, {"config": config, "method_state": best_state, "epoch": epoch + 1,
                                                "val_loss": val_loss})
            if last_path is not None:
                save_checkpoint(last_path, {
                    "config": config, "method_state": method.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1, "step": step, "sampler_state": sampler.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "train_seconds": earlier_seconds + time.perf_counter() - t0, "history": history,
                    "best_val_loss": best_val, "best_epoch": best_epoch,
                    "stopped_early": early and epoch - best_epoch >= preset.patience,
                })
            report_epoch(epoch + 1, {"train_loss": train_loss, "val_loss": val_loss})  # e.g. a tuner's scheduler
            pps = seen / train_time if train_time else 0.0
            bar.line(f"epoch {epoch + 1}/{preset.epochs} loss {train_loss:.4f} val {val_loss:.4f} {pps:.1f} patches/s")
            if early and epoch - best_epoch >= preset.patience:
                stopped_early, end_epoch = True, epoch + 1
                bar.line(f"stopped early after epoch {epoch + 1}: no lower validation loss for {preset.patience} "
                         f"epochs (best epoch {best_epoch + 1})")
                break

    finished = end_epoch >= preset.epochs or stopped_early
    if finished and select_val and best_state is not None:
        method.load_state_dict(best_state)
    return FitResult(
        preset=preset.name, config=config, steps=step, epochs=max(end_epoch, start_epoch),
        best_epoch=best_epoch, best_val_loss=best_val if best_epoch >= 0 else float("nan"),
        seconds=earlier_seconds + time.perf_counter() - t0, patches_per_s=seen / train_time if train_time else 0.0,
        history=history, checkpoint=str(best_path if select_val and best_path else last_path) if ckpt_dir else None,
        stopped_early=stopped_early, stop_epoch=max(end_epoch, start_epoch) if stopped_early else -1,
    )


@torch.no_grad()
def _validate(method: "TorchMethod", batches: list[Batch], loss_fn: nn.Module, device: torch.device) -> float:
    net = method.net
    net.eval()
    total, n = 0.0, 0
    cuda = device.type == "cuda"
    for batch in batches:
        x, target = method.batch_to_input(batch, device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = net(x)
        total += float(loss_fn(logits.float(), target)) * len(x)
        n += len(x)
    return total / max(n, 1)


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
