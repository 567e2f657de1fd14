"""How many CPU threads torch uses: chosen once at command-line start, so a shared machine is not oversubscribed.

torch starts one intra-op thread per core. On a machine where other
processes already keep the cores busy, those threads spin against each other
and against the other work: the main job took 4.5 times as long on a 2-core
machine at load 3 as on a quiet one, with more CPU time, not less. grainbench
therefore takes the cores this process may run on (``os.sched_getaffinity``,
so a CPU set or container limit counts) less the work already running
(the 1-minute load average, capped by the tasks runnable right now, see
:func:`load_average`), and at least one:

``threads = clamp(round(cores - load1), 1, cores)``

In order of precedence (first wins):

1. ``--threads N`` on the command line;
2. ``GRAINBENCH_THREADS=N``;
3. an explicit ``OMP_NUM_THREADS`` (torch already honours it; grainbench leaves it alone);
4. the rule above.

Scoring (:func:`grainbench.scoring.score`) works differently: it scores
slices in parallel on :func:`scoring_workers` threads (every core this
process may use, by default) and runs torch and OpenCV at one thread each
for its duration (:func:`torch_threads`, :func:`opencv_threads`: the
parallelism is across slices, so a library's own pool would only
oversubscribe the cores). Its work (OpenCV, scikit-image's
skeleton, torch and large numpy operations) releases the GIL, and none of
it spin-waits the way torch's OpenMP threads do, so a busy neighbour costs
scoring its share of the cores and no more: with one of two cores taken,
two scoring threads get about 1.3 cores, never the 5-40x slow-down of
oversubscribed OpenMP. In order of precedence:

1. ``score(..., workers=N)``;
2. ``GRAINBENCH_SCORE_WORKERS=N``;
3. ``--threads N`` or ``GRAINBENCH_THREADS=N`` (one setting for "how many cores grainbench may use");
4. the cores this process may run on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import GrainbenchError

T = TypeVar("T")
#: The thread count ``--threads`` chose at command-line start (None: not set on the command line).
_CHOSEN: dict[str, int | None] = {"threads": None}
#: ``score(..., workers=N)`` for the work it calls (post-processing), see :func:`use_workers`.
_WORKERS: ContextVar[int | None] = ContextVar("grainbench_workers", default=None)


@dataclass(frozen=True)
class ThreadChoice:
    """The number of intra-op threads and why."""

    threads: int | None  # None: left to torch (OMP_NUM_THREADS is set)
    reason: str


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def load_average() -> float:
    """Other work running now: the 1-minute load average, capped by a sample of the runnable count.

    The 1-minute average lags: right after another job ends it still reads
    about 1 per finished process, which would starve this run for its whole
    length (threads are chosen once). Where ``/proc/loadavg`` exists, the
    number of runnable tasks (less this process), averaged over a few samples
    in 0.1 s, caps it. 0 where the platform reports neither.
    """
    try:
        load1 = float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0
    now = running_now()
    return load1 if now is None else min(load1, now)


def running_now(samples: int = 5, interval: float = 0.02) -> float | None:
    """Mean runnable tasks other than this one (``/proc/loadavg`` field 4), or None off Linux."""
    import time

    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].partition("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - 1))  # the reader itself is running
        time.sleep(interval)
    return sum(counts) / len(counts)


def threads_for(cores: int, load: float) -> int:
    """Threads that fit beside ``load`` runnable processes on ``cores`` cores: ``round(cores - load)`` in [1, cores]."""
    return int(min(cores, max(1, round(cores - load))))


def _parse(value: str, where: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise GrainbenchError(f"{where}: expected a whole number of threads >= 1, got {value!r}")
    return n


def choose_threads(requested: int | str | None = None, environ: os._Environ | dict | None = None) -> ThreadChoice:
    """The thread count for this process (see the module docstring for the rule and its overrides).

    Parameters
    ----------
    requested : int or str, optional
        ``--threads`` from the command line.
    environ : mapping, optional
        Environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if requested is not None:
        return ThreadChoice(_parse(str(requested), "--threads"), "--threads")
    if env.get("GRAINBENCH_THREADS"):
        return ThreadChoice(_parse(env["GRAINBENCH_THREADS"], "GRAINBENCH_THREADS"), "GRAINBENCH_THREADS")
    if env.get("OMP_NUM_THREADS"):
        return ThreadChoice(None, f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}")
    cores, load = available_cores(), load_average()
    return ThreadChoice(threads_for(cores, load), f"{cores} cores, other work {load:.1f} (1-minute load average, "
                                                  "capped by the tasks runnable now)")


def configure_threads(requested: int | str | None = None) -> ThreadChoice:
    """Choose the thread count and apply it to torch (``torch.set_num_threads``); returns the choice."""
    choice = choose_threads(requested)
    _CHOSEN["threads"] = choice.threads if choice.reason in ("--threads", "GRAINBENCH_THREADS") else None
    if choice.threads is not None:
        import torch

        torch.set_num_threads(choice.threads)
    return choice


def scoring_workers(requested: int | None = None, environ: os._Environ | dict | None = None) -> int:
    """Threads that score slices in parallel (see the module docstring for the precedence).

    Raises
    ------
    GrainbenchError
        For a value that is not a whole number >= 1.
    """
    env = os.environ if environ is None else environ
    if requested is not None:
        return _parse(str(requested), "workers")
    if _WORKERS.get() is not None:
        return _WORKERS.get()
    if env.get("GRAINBENCH_SCORE_WORKERS"):
        return _parse(env["GRAINBENCH_SCORE_WORKERS"], "GRAINBENCH_SCORE_WORKERS")
    if _CHOSEN["threads"] is not None:
        return _CHOSEN["threads"]
    if env.get("GRAINBENCH_THREADS"):
        return _parse(env["GRAINBENCH_THREADS"], "GRAINBENCH_THREADS")
    return available_cores()


@contextmanager
def use_workers(n: int) -> Iterator[None]:
    """Make ``n`` the default of :func:`scoring_workers` inside the block (this thread's context)."""
    token = _WORKERS.set(n)
    try:
        yield
    finally:
        _WORKERS.reset(token)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch at ``n`` intra-op threads inside the block, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def opencv_threads(n: int | None) -> Iterator[None]:
    """Run OpenCV's parallel loops on ``n`` threads inside the block (None: as they are), then restore."""
    import cv2

    before = cv2.getNumThreads()
    if n is not None:
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def map_threads(fn: Callable[[Any], T], items: Iterable[Any], workers: int) -> list[T]:
    """``[fn(x) for x in items]`` on ``workers`` threads, results in order; plain loop for one worker."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="grainbench") as pool:
        return list(pool.map(fn, items))
