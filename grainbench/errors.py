"""Exceptions the CLI reports as one clear line instead of a traceback."""


class GrainbenchError(Exception):
    """Base class: a problem with the user's input, files or configuration."""


class InputFileError(GrainbenchError, ValueError):
    """A file could not be read or does not hold what it should; the message names the file."""


class DatasetError(GrainbenchError):
    """A dataset is missing, malformed or fails verification."""


class TrackingError(GrainbenchError, ValueError):
    """A grain tracker or 3D reconstruction cannot run: unknown tracker, bad stack, missing 3D labels or weights."""


class OutputError(GrainbenchError):
    """A result cannot be written: the path is a folder, the disk is full; the message names the path."""


class ConfigError(GrainbenchError, ValueError):
    """An option, preset field, device or method argument has an unknown name or a bad value."""


class UnknownNameError(GrainbenchError, KeyError):
    """A protocol (or other registered thing) of that name does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
