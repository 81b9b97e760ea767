"""File locks (``fcntl.flock``) for state that two runs on one machine must not share.

The kernel drops a flock when its process dies, however it dies (``kill -9`` included), so a
lock is never left behind by a crash: "free" always means "nobody alive holds it". A lock
covers one machine; runs on other machines meet in the tracking server (see README, team mode).
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path


class Lock:
    """An exclusive lock on ``path`` (created if missing), held until ``release``."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _open(path: Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def try_lock(path: Path) -> Lock | None:
    """The lock if nobody holds it now, else None (never waits)."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Lock(Path(path), fd)


@contextmanager
def held(path: Path, timeout: float = 120.0, poll: float = 0.05):
    """Hold the lock for a block, waiting up to ``timeout`` seconds for it."""
    deadline = time.monotonic() + timeout
    while (lock := try_lock(path)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s: another zooflow process holds it")
        time.sleep(poll)
    try:
        yield lock
    finally:
        lock.release()
