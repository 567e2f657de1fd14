"""Per-epoch reports from the training loop to whoever listens (e.g. a tuner's early-stopping scheduler).

The trainer calls :func:`report_epoch` once after every finished epoch with
its losses; code that wants them wraps the training in :func:`on_epoch`.
Listeners live in a context variable, so nothing has to be passed through
the runner, the method's ``fit`` or a third-party method's signature, and
training without a listener is unchanged. A listener may raise to stop the
training (the exception propagates out of ``fit``); ``grainbench tune`` uses
this to hand each epoch's validation loss to Ray Tune's ASHA scheduler.

This is the one seam between the trainer and the tuner: a training engine
with its own callback system only has to call :func:`report_epoch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``fn(epoch, metrics)``: ``epoch`` counts from 1, ``metrics`` holds ``train_loss`` and ``val_loss`` (NaN without
#: validation crops).
EpochListener = Callable[[int, dict[str, float]], None]

_LISTENERS: ContextVar[tuple[EpochListener, ...]] = ContextVar("grainbench_epoch_listeners", default=())


@contextmanager
def on_epoch(listener: EpochListener) -> Iterator[None]:
    """Call ``listener(epoch, metrics)`` after every training epoch inside this ``with`` block."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def report_epoch(epoch: int, metrics: dict[str, float]) -> None:
    """Hand one finished epoch's ``metrics`` to every listener (the trainer calls this)."""
    for listener in _LISTENERS.get():
        listener(epoch, dict(metrics))
