"""Scoring metrics over numpy arrays or torch tensors, 2D images and 3D stacks.

Arithmetic runs in torch on the input's device (or ``device=``); connected
components, skeletons and CPU distance transforms use scipy/scikit-image.
"""

from .boundary import (
                       BoundaryDistances,
                       boundary_displacement_error,
                       boundary_distances,
                       boundary_f1,
                       mask_boundary,
)
from .contingency import Contingency, contingency_table
from .grains import (
                       astm_grain_size_number,
                       distribution_distance,
                       grain_properties,
                       grain_statistics,
                       mean_lineal_intercept,
)
from .information import variation_of_information
from .instance import DSB2018_THRESHOLDS, iou_matrix, mean_average_precision
from .overlap import dice, foreground_iou, pixel_accuracy
from .rand import adjusted_rand_index
from .tolerant import (
                       TolerantScore,
                       gaussian_reward_map,
                       gaussian_score,
                       tophat_reward_map,
                       tophat_score,
)
from .topology import betti_error, betti_numbers, cldice

__all__ = [
    "BoundaryDistances", "Contingency", "DSB2018_THRESHOLDS",
    "adjusted_rand_index", "astm_grain_size_number", "betti_error", "betti_numbers",
    "boundary_displacement_error", "boundary_distances", "boundary_f1", "cldice", "contingency_table", "dice",
    "distribution_distance", "foreground_iou", "grain_properties", "grain_statistics", "iou_matrix",
    "mask_boundary", "mean_average_precision", "mean_lineal_intercept", "pixel_accuracy",
    "variation_of_information",
    "TolerantScore", "gaussian_reward_map", "gaussian_score", "tophat_reward_map", "tophat_score",
]
