"""Datasets: registry, download/import/verify, loaders and generators."""

from .volume import Volume

__all__ = ["Volume"]
