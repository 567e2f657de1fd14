"""The one rule for names that reach a file path or a table: datasets, protocols, models, presets, run ids.

A valid name is 1-128 characters of letters, digits and ``_ . - @ : +``,
starts with a letter or a digit and holds no ``..``. So a name can never
climb out of its folder (``../README``), be absolute (``/etc/x``), hide a
file (``.x``), or smuggle a newline, ``|`` or HTML into a Markdown table.
``package.module:Class`` model names and ``wpunet-2019@1`` protocol ids pass.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import GrainbenchError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}")


class NameError_(GrainbenchError, ValueError):
    """A name that would reach a path or a table is not a plain name."""


def is_valid_name(value: Any) -> bool:
    """Whether ``value`` is a string that :func:`validate_name` accepts."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None and ".." not in value


def validate_name(value: Any, what: str = "name") -> str:
    """Return ``value`` if it is a valid name, else raise :class:`NameError_` naming ``what``."""
    if not is_valid_name(value):
        raise NameError_(f"{what} {value!r} is not a valid name (1-128 letters, digits or _ . - @ : +, "
                         "starting with a letter or digit, no '..')")
    return value


def path_component(value: Any, what: str = "name") -> str:
    """A validated name as one file-name component (``:``, ``@`` and ``+`` become ``_``, as before)."""
    from .io import safe_name

    return safe_name(validate_name(value, what))
