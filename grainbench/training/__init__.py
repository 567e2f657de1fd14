"""Training engine: the patch dataset, losses, presets, checkpoints and the training loop."""

from .checkpoint import file_sha256, load_checkpoint, save_checkpoint
from .dataset import ENGINE_VERSION, EpochBatchSampler, GrainDataset, PatchDataset
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
from .trainer import Callback, LogLines, TrainResult, make_loader, seed_everything, train_network

__all__ = [
    "ABWLoss", "BCELoss", "Batch", "CBWLoss", "Callback", "DiceLoss", "ENGINE_VERSION", "EpochBatchSampler",
    "GaussianLoss", "GrainDataset", "LogLines", "PRESETS", "PatchDataset", "PatchSampler", "Preset", "TopHatLoss",
    "TopoLoss", "TrainResult", "abw_weight_maps", "dilate_target", "file_sha256", "get_loss", "get_preset",
    "load_checkpoint", "make_loader", "save_checkpoint", "seed_everything", "train_network",
]
