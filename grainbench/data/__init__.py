"""Datasets: registry, download/import/verify, loaders and generators.

Typical use::

    from grainbench import data
    data.list_datasets()                 # registry entries (datasets.toml + your local ones)
    vol = data.load("tbm", "test")       # a Volume; downloads/generates on first use
    data.import_dataset("pure_iron", "~/Downloads/pure_iron_grain_data_sets.hdf5")

``load`` returns one :class:`Volume` per split. Stacks keep their slices in
order; pair datasets (tbm, user folders) put one pair per Z slice with
``serial = False`` and the file stems in ``meta["names"]``;
:func:`load_pairs` returns one Volume per pair when image sizes differ.
"""

from .fetch import cache_dir, dataset_dir, fetch, verify
from .generate import DatasetWarning, generate
from .loaders import load, load_pairs
from .manual import import_dataset
from .registry import Dataset, dataset_hashes, get_dataset, list_datasets
from .volume import Volume

__all__ = [
    "Dataset", "DatasetWarning", "Volume", "cache_dir", "dataset_dir", "dataset_hashes", "fetch", "generate",
    "get_dataset", "import_dataset", "list_datasets", "load", "load_pairs", "verify",
]
