"""An exclusive, non-blocking lock on a file beside the store, held while it is open.

The lock is the operating system's (``flock`` on POSIX, ``msvcrt.locking`` on
Windows) on a file of its own (``<store>-lock``), never on the database file:
SQLite's own POSIX locks are per process and closing any other descriptor of
the database file would drop them. The operating system releases the lock
when the descriptor is closed or the process dies, however it dies, so a
crashed bot never leaves its store locked.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["FileLock", "LockHeld", "lock_path"]


class LockHeld(Exception):
    """The lock is held by another descriptor (another process, or another store object)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"held by process {pid}" if pid else "held")


def lock_path(database: str) -> str:
    """The lock file of a database file: beside it, resolved through symbolic links."""
    return os.path.realpath(database) + "-lock"


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    # Lock a byte far past the pid written at the start, so the pid stays readable.
    _REGION = 1 << 30

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _REGION, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _REGION, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class FileLock:
    """An exclusive lock on ``path``, taken by `acquire` and given back by `release`.

    The file holds the holder's process id, for the message a second process
    shows. It is left in place on release: removing it would race with a
    process that has just opened it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now, or raise.

        Raises:
            LockHeld: Another descriptor holds it.
            OSError: The lock file cannot be created or opened.
        """
        if self._fd is not None:
            return
        # O_CLOEXEC is the default for os.open: a child process never inherits the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                raise LockHeld(_read_pid(fd))  # noqa: TRY301 - the descriptor is closed below
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (nothing happens if it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)
