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


# -- a check that survives library versions -----------------------------------------------------------
#: Arrays computed through floating point (rendered images): compared by a fingerprint within a
#: tolerance, since a numpy/scipy release may move a float by an ulp and flip a rounded grey level.
FLOAT_DERIVED = ("image",)
#: Largest difference allowed per fingerprint number, in the array's units (grey levels for uint8).
FINGERPRINT_TOLERANCE = 0.005
_PROJECTIONS = 4


def array_fingerprint(a: np.ndarray) -> list[float]:
    """Mean, standard deviation and 4 seeded random +-1 projections (means) of ``a``, slice by slice.

    A change of a few rounded values by one step moves each number by far
    less than :data:`FINGERPRINT_TOLERANCE`; an edit of the array moves them
    by much more.
    """
    a = np.asarray(a)
    stack = a.reshape(-1, a.shape[-1]) if a.ndim < 3 else a.reshape(-1, *a.shape[-2:])
    n = a.size
    total = sq = 0.0
    proj = np.zeros(_PROJECTIONS)
    rng = np.random.default_rng(20261201)
    signs = rng.integers(0, 2, size=(_PROJECTIONS, *stack.shape[1:]), dtype=np.int8) * 2 - 1
    for sl in stack:
        v = sl.astype(np.float64)
        total += float(v.sum())
        sq += float((v * v).sum())
        proj += np.tensordot(signs, v, axes=v.ndim)
    mean = total / n
    std = max(sq / n - mean * mean, 0.0) ** 0.5
    return [round(mean, 6), round(std, 6), *(round(float(p) / n, 6) for p in proj)]


def stable_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """:func:`array_digest` of the arrays that are not float-derived (labels, boundaries: exact integers)."""
    return array_digest({k: v for k, v in arrays.items() if k not in FLOAT_DERIVED})


def stable_pin(arrays: Mapping[str, np.ndarray]) -> dict:
    """What the registry pins beside the exact digest: ``{"digest": stable_digest, key: fingerprint}``."""
    pin: dict = {"digest": stable_digest(arrays)}
    pin.update({k: array_fingerprint(arrays[k]) for k in FLOAT_DERIVED if k in arrays})
    return pin


def matches_stable_pin(arrays: Mapping[str, np.ndarray], pin: Mapping) -> str | None:
    """None when ``arrays`` agree with ``pin`` (integers exactly, float-derived arrays within the
    tolerance); else what differs."""
    if stable_digest(arrays) != pin.get("digest"):
        return "the label/boundary arrays differ"
    for k in FLOAT_DERIVED:
        if k not in arrays or k not in pin:
            continue
        got, want = array_fingerprint(arrays[k]), list(pin[k])
        worst = max(abs(g - w) for g, w in zip(got, want)) if len(got) == len(want) else float("inf")
        if worst > FINGERPRINT_TOLERANCE:
            return f"array '{k}' differs from its fingerprint by {worst:.4g} (tolerance {FINGERPRINT_TOLERANCE})"
    return None
