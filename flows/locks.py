"""Locks that keep two overlapping runs off the same paths.

A stage holds its lock while it checks whether it is up to date, runs and is versioned, so a second
run that overlaps waits and then finds the stage up to date instead of racing on its outputs. DVC
commands take the `dvc` lock (DVC refuses to run two commands at once in one repository).
The locks are `flock`s on files under `.tokenmill/locks/`: released by the kernel when a process
dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_DIR = Path(".tokenmill") / "locks"

logger = logging.getLogger(__name__)


@contextmanager
def path_lock(name: str, root: Path = Path(".")) -> Iterator[float]:
    """Hold the lock `name` (waiting for it); yields the seconds spent waiting."""
    directory = root / LOCK_DIR
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another run to release %s", name)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the descriptor releases the flock
