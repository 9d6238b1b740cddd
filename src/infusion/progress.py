"""Progress reporting shared by the CLI, the API and the benchmark.

Methods report through a :class:`Progress` object: ``log`` for messages and
``bar`` for a counted stage (a progress bar with ETA in the terminal). The
base class is silent; :class:`TqdmProgress` draws bars on stderr;
:class:`CallbackProgress` forwards events to a user function.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


class Bar:
    """One counted stage. ``update(n, **info)`` advances it by ``n`` units."""

    def update(self, n: int = 1, **info) -> None:  # pragma: no cover - trivial
        pass


class Progress:
    """Silent progress reporter (the base class)."""

    def log(self, message: str) -> None:
        pass

    @contextmanager
    def bar(self, desc: str, total: int, unit: str = "it", initial: int = 0) -> Iterator[Bar]:
        yield Bar()


class _TqdmBar(Bar):
    def __init__(self, bar):
        self._bar = bar

    def update(self, n: int = 1, **info) -> None:
        if info:
            self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items()},
                                  refresh=False)
        self._bar.update(n)


class TqdmProgress(Progress):
    """Progress bars with ETA and messages on a stream (stderr by default)."""

    def __init__(self, stream=None, leave: bool = True):
        self.stream = stream or sys.stderr
        self.leave = leave

    def log(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=self.stream)

    @contextmanager
    def bar(self, desc: str, total: int, unit: str = "it", initial: int = 0) -> Iterator[Bar]:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit=unit, initial=initial, file=self.stream,
                  leave=self.leave, dynamic_ncols=True, smoothing=0.1) as b:
            yield _TqdmBar(b)


class _CallbackBar(Bar):
    def __init__(self, fn, desc, total, initial):
        self.fn, self.desc, self.total, self.done = fn, desc, total, initial

    def update(self, n: int = 1, **info) -> None:
        self.done += n
        self.fn({"event": "progress", "stage": self.desc, "done": self.done, "total": self.total, **info})


class CallbackProgress(Progress):
    """Forward events as dicts to ``fn``: ``{"event": "log", "message": ...}``
    and ``{"event": "progress", "stage", "done", "total", ...}``."""

    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def log(self, message: str) -> None:
        self.fn({"event": "log", "message": message})

    @contextmanager
    def bar(self, desc: str, total: int, unit: str = "it", initial: int = 0) -> Iterator[Bar]:
        self.fn({"event": "start", "stage": desc, "total": total, "done": initial})
        yield _CallbackBar(self.fn, desc, total, initial)


def as_progress(progress) -> Progress:
    """Normalise the API's ``progress`` argument: True, False/None, a callable or a Progress."""
    if isinstance(progress, Progress):
        return progress
    if progress is True:
        return TqdmProgress()
    if progress in (False, None):
        return Progress()
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"progress must be a bool, a callable or a Progress; got {type(progress).__name__}")
