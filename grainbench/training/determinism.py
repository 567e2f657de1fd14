"""Torch's determinism switches, set once before training and scoring, and recorded with every run."""

from __future__ import annotations

import os
from typing import Any


def use_deterministic() -> None:
    """Ask torch for deterministic kernels where they exist (warn, not fail, where they do not).

    cuDNN autotuning is off (it picks kernels by timing, so two runs may
    differ), and cuBLAS gets the fixed workspace it needs to be reproducible.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def determinism_settings() -> dict[str, Any]:
    """The determinism switches in force now (what a record stores)."""
    import torch

    return {
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
