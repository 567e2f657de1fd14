"""Training presets: named, frozen schedules recorded with every result.

``paper`` is the published WPU-Net schedule (seed 000, Experiment Results,
and the authors' ``segmentation/trainer.py``): 500 epochs of 256 px crops at
the authors' width, a GPU schedule. ``quick`` fits in a few minutes on two
CPU cores for the embedded ``synthetic`` default and exists to smoke-test the
pipeline, not to reproduce numbers. ``standard`` sits between them: a U-Net
(width 16) trained on a small real set (tbm: 48 train crops of 256 x 256 RGB)
within 20 minutes on 2 CPU cores, up to 40 epochs of 96 random 128 px
crops, Adam 1e-3 halved every 15 epochs, plain BCE on the (dilated)
boundary, with validation-based early stopping (``patience`` 8 epochs
without a lower validation loss); the best weights are kept. On tbm val
BCE gave VI 2.00 where the ABW loss of ``paper``/``quick`` gave 2.21 (hand
traces several pixels wide need no boundary weighting; ABW over-segments).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A training schedule.

    Attributes
    ----------
    name : str
        Recorded with every result.
    optimizer : {"rmsprop", "adam"}
    lr, alpha, eps : float
        Learning rate and RMSprop smoothing constant / epsilon (Adam uses ``eps`` only).
    lr_decay, decay_every, min_lr : float, int, float
        Step schedule ``lr * lr_decay ** (epoch // decay_every)``; once it
        would fall below ``min_lr`` the learning rate stays where it is (the
        authors' ``adjust_learning_rate``).
    batch_size, epochs : int
    patches_per_epoch : int or None
        Random patches per epoch; None = one per training slice (the
        authors' data loader draws one crop per slice per epoch).
    patch_size : int
        Side of the training crops.
    patch_depth : int
        Slices per training crop of ``"3d"`` methods (ignored by the others).
    loss : str
        ``abw``, ``cbw``, ``bce``, ``dice``, ``topo``, ``tophat`` or
        ``gaussian``; ``loss_kwargs`` go to its constructor.
    init : {"xavier", "default"}
        Weight initialisation of convolutions.
    select : {"val_loss", "last"}
        Keep the weights of the lowest validation loss, or the last ones.
    grad_clip : float or None
        Gradient-norm clipping (5 in the authors' trainer).
    width : int or None
        Channel width the preset asks of methods that have one (None: the
        method's default, i.e. the authors' parameter count).
    val_patches : int
        Most validation crops (a fixed grid over the validation slices).
    augment : {"flips", "none"}
        Training-patch augmentation: ``flips`` draws random rotations by 90
        degrees and flips (in-plane, and along z for 3D patches: seed 004's
        reflections across the x, y and z planes); ``none`` crops only. A
        search-space dimension of ``grainbench tune`` (seed 004 tuned its
        augmentations).
    patience : int or None
        Early stopping: end training once the validation loss has not been
        lower than its best for ``patience`` epochs in a row (the kept weights
        are the best ones, as with ``select = "val_loss"``). None: train all
        ``epochs``. Needs ``select = "val_loss"``; without a validation split
        it has no effect. The :class:`~grainbench.methods.FitResult` says
        whether and after which epoch training stopped.
    precision : {"auto", "bf16", "fp32"}
        Arithmetic of the training steps: ``auto`` is bf16 autocast on CUDA
        and fp32 on the CPU; ``bf16`` is bf16 autocast on the CPU too (about
        2x the fp32 patches/s on CPUs with AVX512-BF16; other numbers, so it
        is recorded here); ``fp32`` never autocasts.
    """

    name: str
    optimizer: str = "rmsprop"
    lr: float = 1e-4
    alpha: float = 0.9
    eps: float = 1e-5
    lr_decay: float = 0.8
    decay_every: int = 10
    min_lr: float = 1e-6
    batch_size: int = 24
    epochs: int = 500
    patches_per_epoch: int | None = None
    patch_size: int = 256
    patch_depth: int = 16
    loss: str = "abw"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "xavier"
    select: str = "val_loss"
    grad_clip: float | None = 5.0
    width: int | None = None
    val_patches: int = 64
    patience: int | None = None
    augment: str = "flips"
    precision: str = "auto"

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        lr = self.lr
        for k in range(epoch // self.decay_every + 1):
            nxt = self.lr * self.lr_decay ** k
            if nxt < self.min_lr:
                break
            lr = nxt
        return lr

    def with_(self, **changes: Any) -> "Preset":
        """A copy with some fields changed (the name is kept: record it yourself if it matters)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "paper": Preset(name="paper"),
    "quick": Preset(
        name="quick", optimizer="adam", lr=2e-3, lr_decay=0.5, decay_every=6, min_lr=1e-5,
        batch_size=8, epochs=12, patches_per_epoch=96, patch_size=128, width=16, val_patches=16,
    ),
    "standard": Preset(
        name="standard", optimizer="adam", lr=1e-3, lr_decay=0.5, decay_every=15, min_lr=1e-5,
        batch_size=8, epochs=40, patches_per_epoch=96, patch_size=128, width=16, val_patches=32, patience=8,
        loss="bce",
    ),
}


#: Fields a task changes under every preset (the presets are WPU-Net's boundary schedules). ``phase``
#: (seed 004: solid vs liquid): plain BCE on the undilated phase mask. ABW and CBW weight the 1-pixel
#: class 30x and dilate it, made for thin boundaries; on a phase mask they weight the whole solid
#: phase and grow it, and every model over-segmented ``alzn_sim`` with them (U-Net quick: dendrite
#: IoU 0.431 with ABW, 0.511 with BCE on a 5 px dilated mask). The paper names boundary losses as
#: future work (Section 5), so its networks trained on a region loss.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "phase": {"loss": "bce", "loss_kwargs": {"dilate": 1}},
}


def task_defaults(task: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The fields ``task`` sets that ``overrides`` does not (a chosen ``loss`` drops the task's ``loss_kwargs``)."""
    out = {k: v for k, v in TASK_DEFAULTS.get(task or "", {}).items() if k not in overrides}
    if "loss" in overrides:
        out.pop("loss_kwargs", None)
    return out


def get_preset(preset: str | Preset, *, task: str | None = None, **overrides: Any) -> Preset:
    """Look a preset up by name (or pass one through), optionally overriding fields.

    ``task`` (a dataset's task, e.g. ``"phase"``) applies :data:`TASK_DEFAULTS`
    beneath the overrides. The result is validated after the overrides are
    merged (:func:`validate_preset`), so a run never trains with something
    other than what it records.

    Raises
    ------
    ConfigError
        Unknown preset, unknown field or a bad value; the message names it.
    """
    if isinstance(preset, Preset):
        p = preset
    elif preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    known = {f.name for f in fields(Preset)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"preset {p.name!r}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    changes = {**task_defaults(task, overrides), **overrides}
    p = p.with_(**changes) if changes else p
    validate_preset(p)
    return p


#: The values a field may take: a set of choices, or (type, lowest allowed, highest allowed, None allowed).
_CHOICES = {"optimizer": ("rmsprop", "adam"), "init": ("xavier", "default"), "select": ("val_loss", "last"),
            "augment": ("flips", "none"), "precision": ("auto", "bf16", "fp32")}
_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "lr": (float, 0.0, 10.0, False), "alpha": (float, 0.0, 1.0, False), "eps": (float, 0.0, 1.0, False),
    "lr_decay": (float, 0.0, 1.0, False), "decay_every": (int, 1, 10**6, False),
    "min_lr": (float, 0.0, 10.0, False), "batch_size": (int, 1, 4096, False), "epochs": (int, 1, 10**6, False),
    "patches_per_epoch": (int, 1, 10**8, True), "patch_size": (int, 8, 4096, False),
    "patch_depth": (int, 1, 1024, False), "grad_clip": (float, 0.0, 1e12, True), "width": (int, 1, 4096, True),
    "val_patches": (int, 0, 10**6, False), "patience": (int, 1, 10**6, True),
}


def validate_preset(p: Preset) -> None:
    """Refuse a preset with a value the trainer would not use as recorded.

    Choices (optimizer, init, select, loss, augment) must be known; numbers must be
    finite, of the field's type and in its range (e.g. ``epochs >= 1``,
    ``8 <= patch_size <= 4096``; ``lr`` > 0).

    Raises
    ------
    ConfigError
        Naming the preset, the field and the value.
    """
    from .losses import LOSSES

    def bad(fld: str, why: str) -> ConfigError:
        return ConfigError(f"preset {p.name!r}: {fld}={getattr(p, fld)!r} {why}")

    for fld, choices in {**_CHOICES, "loss": tuple(LOSSES)}.items():
        if getattr(p, fld) not in choices:
            raise bad(fld, f"is not one of {', '.join(choices)}")
    for fld, (kind, lo, hi, optional) in _RANGES.items():
        v = getattr(p, fld)
        if v is None and optional:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            raise bad(fld, f"must be {'an integer' if kind is int else 'a number'}")
        if not math.isfinite(v) or not lo <= v <= hi or (kind is float and v == lo and fld != "grad_clip"):
            low = f"> {lo}" if kind is float else f">= {lo}"
            raise bad(fld, f"is out of range (must be {low} and <= {hi:g})")
    if not isinstance(p.loss_kwargs, dict):
        raise bad("loss_kwargs", "must be a table of loss arguments")
    if p.patience is not None and p.select != "val_loss":
        raise bad("patience", "needs select='val_loss' (early stopping watches the validation loss)")
