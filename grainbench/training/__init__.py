"""Training engine: patch sampling, losses, presets, checkpoints and the training loop."""

from .checkpoint import file_sha256, load_checkpoint, save_checkpoint
from .losses import (
                     ABWLoss,
                     BCELoss,
                     CBWLoss,
                     DiceLoss,
                     GaussianLoss,
                     TopHatLoss,
                     TopoLoss,
                     abw_weight_maps,
                     dilate_target,
                     get_loss,
)
from .presets import PRESETS, Preset, get_preset
from .sampling import Batch, PatchSampler
from .trainer import seed_everything, train

__all__ = [
    "ABWLoss", "BCELoss", "Batch", "CBWLoss", "DiceLoss", "GaussianLoss", "TopHatLoss", "TopoLoss", "PRESETS", "PatchSampler", "Preset", "abw_weight_maps",
    "dilate_target", "file_sha256", "get_loss", "get_preset", "load_checkpoint", "save_checkpoint",
    "seed_everything", "train",
]
