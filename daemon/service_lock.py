"""One daemon per store: an exclusive lock on ``station.lock`` in the data folder.

The lock is an ``flock`` held for the daemon's life on an open file; the kernel releases it
when the process ends however it ends (``kill -9``, a crash), so a lock is never stale. The
file keeps the holder's process id for the message the second daemon prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cellrig.errors import CellrigError

LOCK_NAME = "station.lock"


class StoreLocked(CellrigError):
    """Another daemon has the store, or its folder cannot be used."""


class StoreLock:
    """The exclusive lock of a data folder, taken with :meth:`acquire`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLocked` naming the process that has it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise StoreLocked(f"cannot use the data folder {self.path.parent}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(f"another cellrig daemon (process {holder}) is using the store "
                              f"in {self.path.parent}; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays; it is only a place to lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
