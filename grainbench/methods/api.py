"""The public protocol a segmentation method implements.

A method is a class with a few class attributes (its name, the context it
reads, a paper reference, the training presets it supports) and three
operations: ``fit`` on a training split, ``predict`` a boundary probability
for a chunk of slices, and ``num_parameters``. Baselines in ``baselines/`` and
third-party methods implement the same class and register through the
``grainbench.methods`` entry-point group (or are named as
``package.module:Class``), so a user's method needs no change to grainbench.

Contexts
--------
``"2d"``
    Each slice on its own.
``"2d+prev"``
    The slice plus the boundary mask of slice z-1 (propagation methods such
    as WPU-Net). The inference engine supplies that mask: the ground truth in
    ``oracle`` mode, the method's own post-processed prediction in ``chain``
    mode.
``"2.5d"``
    A stack of neighbouring slices around z.
``"3d"``
    The whole volume at once.

Channels
--------
A method is built for the image channels of its dataset: ``in_channels``
(1 = grey, 3 = RGB; ``Dataset.channels``), a constructor keyword of every
baseline, recorded in :meth:`Method.config`. ``predict`` then takes
(Z, H, W) slices when ``in_channels == 1`` and (Z, C, H, W) slices
otherwise (:mod:`grainbench.data.volume`), and refuses the other form.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..data.volume import Volume

CONTEXTS = ("2d", "2d+prev", "2.5d", "3d")


@dataclass
class FitResult:
    """What ``Method.fit`` returns; stored in run records.

    Attributes
    ----------
    preset : str
        Name of the training preset (``"paper"``, ``"quick"``, ``"none"`` for
        methods without training).
    config : dict
        The preset's full settings and the method's configuration.
    steps, epochs : int
        Optimiser steps and epochs done (including resumed ones).
    best_epoch : int
        Epoch of the kept weights (lowest validation loss), -1 if none.
    best_val_loss : float
        Validation loss of the kept weights (``nan`` without validation).
    seconds : float
        Wall time of this call.
    patches_per_s : float
        Training throughput of this call.
    history : dict of lists
        ``train_loss`` and ``val_loss`` per epoch.
    checkpoint : str or None
        Path of the best checkpoint, when a checkpoint directory was given.
    stopped_early : bool
        Training ended before the preset's ``epochs`` because the validation
        loss had not improved for ``patience`` epochs (early stopping).
    stop_epoch : int
        Number of epochs done when it stopped early (``epochs``), -1 otherwise.
    """

    preset: str
    config: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    epochs: int = 0
    best_epoch: int = -1
    best_val_loss: float = float("nan")
    seconds: float = 0.0
    patches_per_s: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    checkpoint: str | None = None
    stopped_early: bool = False
    stop_epoch: int = -1

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class Method(ABC):
    """Base class of every segmentation method.

    Subclasses set the class attributes and implement :meth:`predict`
    (and :meth:`fit` when they learn). Network methods usually derive from
    :class:`grainbench.methods.TorchMethod`, which implements both on top of
    the training and inference engines.

    Class attributes
    ----------------
    name : str
        Registry name (``"wpunet"``).
    context : str
        One of :data:`CONTEXTS`.
    reference : str
        Paper the method comes from (shown by ``grainbench models``).
    presets : tuple of str
        Training presets the method supports; empty for methods without training.
    description : str
        One line for listings.
    post, post_params : str, dict
        The post-processor that turns this method's probabilities into
        boundaries, and its parameters (:mod:`grainbench.postprocessors`;
        default ``"protocol"``, the protocol's own pipeline). ``grainbench
        run --post NAME --post-param KEY=VALUE`` overrides them; the record
        stores the name and every parameter.
    """

    name: ClassVar[str] = ""
    context: ClassVar[str] = "2d"
    reference: ClassVar[str] = ""
    presets: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    post: ClassVar[str] = "protocol"
    post_params: ClassVar[dict[str, Any]] = {}
    #: Image channels the method was built for (set from the ``in_channels`` keyword).
    in_channels: int = 1

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.context not in CONTEXTS:
            raise TypeError(f"{cls.__name__}.context must be one of {CONTEXTS}, got {cls.context!r}")

    # -- learning -----------------------------------------------------------------
    def fit(self, train: Volume, val: Volume | None = None, *, preset: str = "quick", seed: int = 0,
            **kw: Any) -> FitResult:
        """Train on ``train`` (selecting weights on ``val``); methods without training return at once.

        Parameters
        ----------
        train, val : Volume
            Training and validation splits (``image`` in [0, 1], ``boundary``).
        preset : str
            Name of a training preset (see :mod:`grainbench.training.presets`).
        seed : int
            Seed of every random choice; the same seed gives the same weights.
        """
        return FitResult(preset="none", config=self.config())

    # -- inference ----------------------------------------------------------------
    @abstractmethod
    def predict(self, image: np.ndarray, prev_boundary: np.ndarray | None = None) -> np.ndarray:
        """Boundary probability of a chunk of slices.

        Parameters
        ----------
        image : (Z, H, W) or (Z, C, H, W) float32 array in [0, 1]
            Consecutive slices (one slice in chain mode); (Z, C, H, W) with
            C = :attr:`in_channels` for a method built for colour.
        prev_boundary : (Z, H, W) bool array, optional
            For ``context == "2d+prev"``: ``prev_boundary[z]`` is the boundary
            mask of the slice before ``image[z]``. Ignored by other contexts.

        Returns
        -------
        (Z, H, W) float32 array in [0, 1]; ``> 0.5`` means boundary.
        """

    # -- description --------------------------------------------------------------
    def num_parameters(self) -> int:
        """Number of learnable parameters (0 for methods without any)."""
        return 0

    def config(self) -> dict[str, Any]:
        """The method's settings, JSON-serialisable; stored with every result."""
        return {"name": self.name, "context": self.context}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore a trained method (tensors and plain values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k not in ("name", "context"))
        return f"{type(self).__name__}({cfg})"


def check_in_channels(value: object, who: str = "method") -> int:
    """``in_channels`` as a whole number >= 1, or a :class:`~grainbench.errors.ConfigError` naming it."""
    from ..errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{who}: in_channels={value!r} must be a whole number >= 1 (1 = grey, 3 = RGB)")
    return value


def check_volume_input(image: np.ndarray, prev_boundary: np.ndarray | None, context: str,
                       channels: int = 1) -> np.ndarray:
    """Validate a ``predict`` input and return the image as float32 in [0, 1].

    ``channels = 1`` (grey): (H, W), (Z, H, W) or (Z, 1, H, W) in, (Z, H, W)
    out. ``channels = C > 1``: (Z, C, H, W) in and out. Any other channel
    count is refused with a message saying what the method was built for.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if channels == 1 and image.ndim == 4 and image.shape[1] == 1:
        image = image[:, 0]
    if channels == 1 and image.ndim == 4:
        raise ValueError(f"this method was built for grey images (in_channels=1) but got {image.shape[1]} "
                         f"channels, shape {image.shape}; build it with in_channels={image.shape[1]}")
    if channels > 1 and (image.ndim != 4 or image.shape[1] != channels):
        got = f"{image.shape[1]} channels" if image.ndim == 4 else "grey slices"
        raise ValueError(f"this method was built for {channels}-channel images (Z, {channels}, H, W) but got "
                         f"{got}, shape {image.shape}")
    if image.ndim != (3 if channels == 1 else 4) or image.size == 0:
        raise ValueError(f"image must be a (Z, H, W) stack or an (H, W) slice, got shape {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    elif image.dtype.kind == "f":
        image = image.astype(np.float32, copy=False)
        if not np.isfinite(image).all():
            raise ValueError("image contains NaN or infinite values")
    else:
        raise TypeError(f"image must be float in [0, 1] or uint8, got dtype {image.dtype}")
    if context == "2d+prev":
        if prev_boundary is None:
            raise ValueError("a '2d+prev' method needs prev_boundary (the mask of each slice's predecessor)")
        prev = np.asarray(prev_boundary)
        if prev.ndim == 2:
            prev = prev[None]
        spatial = (image.shape[0], *image.shape[-2:])
        if prev.shape != spatial:
            raise ValueError(f"prev_boundary shape {prev.shape} differs from image shape {spatial}")
    return image
