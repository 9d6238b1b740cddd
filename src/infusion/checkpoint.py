"""Checkpoints of long runs: atomic saves, safe loads, graceful Ctrl-C.

A checkpoint is a plain dict of tensors, numbers, strings and lists, saved
with ``torch.save`` to a temporary file renamed into place (a crash or
``kill -9`` mid-save leaves the previous checkpoint intact) and loaded with
``weights_only=True`` (no code runs on load).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch

from .errors import ResumeError

CHECKPOINT_NAME = "checkpoint.pt"
# 2: UNet3D kernels indexed (t, y, x); format 1 (no "checkpoint_format" in the job file) had (y, x, t)
CHECKPOINT_FORMAT = 2


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Optional[dict]:
    """Load a checkpoint saved by :func:`save_checkpoint`, or None if there is none.

    Raises :class:`ResumeError` naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem to the user
        raise ResumeError(f"{path}: checkpoint cannot be read ({exc}); use --restart to start over") from None


class InterruptFlag:
    """Set by the first Ctrl-C inside :func:`deferred_interrupt`."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def deferred_interrupt() -> Iterator[InterruptFlag]:
    """Turn the first Ctrl-C into a flag that the loop checks between steps.

    The loop then saves a consistent checkpoint and raises
    KeyboardInterrupt itself; a second Ctrl-C interrupts at once. Outside
    the main thread this does nothing (signals only reach the main thread).
    """
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
