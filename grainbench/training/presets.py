"""Training presets: named, frozen schedules recorded with every result.

``paper`` is the published WPU-Net schedule (seed 000, Experiment Results,
and the authors' ``segmentation/trainer.py``); ``quick`` fits in a few
minutes on two CPU cores for the embedded ``synthetic`` default and exists
to smoke-test the pipeline, not to reproduce numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


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
}


def get_preset(preset: str | Preset, **overrides: Any) -> Preset:
    """Look a preset up by name (or pass one through), optionally overriding fields."""
    if isinstance(preset, Preset):
        p = preset
    elif preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    if p.optimizer not in ("rmsprop", "adam"):
        raise ValueError(f"preset {p.name!r}: unknown optimizer {p.optimizer!r}")
    return p.with_(**overrides) if overrides else p
