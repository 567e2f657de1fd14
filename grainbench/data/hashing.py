"""Content digests of generated arrays, to pin generated datasets in the registry."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np


def array_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays: keys (sorted), dtypes, shapes and C-order bytes.

    Parameters
    ----------
    arrays : mapping of str to array
        E.g. the dict a generator returns.

    Returns
    -------
    str
        64 hex digits. Equal for equal contents whatever the memory layout or
        the mapping's order; a change of key, dtype (byte order included),
        shape or any value changes it.
    """
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dtype, copy=False)  # one byte order, so equal values give equal bytes
        header = f"{key}\0{a.dtype.str}\0{a.shape}\0{a.nbytes}\0".encode()
        h.update(len(header).to_bytes(8, "little"))
        h.update(header)
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()
