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
from .delineation import completeness_correctness_quality, pratt_figure_of_merit
from .grains import (
                       astm_grain_size_number,
                       distribution_distance,
                       grain_count,
                       grain_properties,
                       grain_size_agreement,
                       grain_statistics,
                       mean_lineal_intercept,
)
from .intercept import grain_size_number, intercept_lengths
from .information import variation_of_information
from .instance import DSB2018_THRESHOLDS, iou_matrix, mean_average_precision
from .overlap import dice, foreground_iou, frequency_weighted_iou, mean_iou, pixel_accuracy
from .rand import adjusted_rand_index, rand_index
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
    "completeness_correctness_quality", "frequency_weighted_iou", "grain_count", "grain_size_agreement",
    "grain_size_number", "intercept_lengths", "mean_iou", "pratt_figure_of_merit", "rand_index",
    "TolerantScore", "gaussian_reward_map", "gaussian_score", "tophat_reward_map", "tophat_score",
]
