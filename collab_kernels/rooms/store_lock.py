"""One server process per update store: an exclusive lock on ``<store>.lock``.

The store is not a database that several servers can share. Each process keeps state the
others cannot see: which rooms are live (a bound on the store's size must never forget
them), the state files it is writing but has not yet named (``state_files.py``: the sweep at
open removes files no row names, which would include another process's file between its
rename and its commit), and the histories of the rooms it has open (two processes appending
to one room's history would interleave two Y documents). Two servers started with the same
data directory (two ``jupyter lab`` in two projects, or a server and a short-lived one of
``collab-kernels run``) would also contend for SQLite's single writer across processes, where
the store's own lock cannot order them.

So the first server to open a store holds an advisory lock on a file beside it for as long as
the store is open; a second one is told who holds it and runs without a store (documents are
then only as safe as their last save, as with ``update_store = "none"``), with a warning that
says how to give it its own (``RoomManager.update_store_path``). The lock is the kernel's
(``flock``; ``msvcrt.locking`` on Windows): it goes with the process, so a server killed with
``kill -9`` leaves nothing to clean up. The file itself is never removed (removing a lock file
races with the next opener) and holds the pid of its holder, for the warning.
"""

from __future__ import annotations

import contextlib
import os
import sys


class StoreInUse(Exception):
    """Another process holds the store's lock."""

    def __init__(self, store_path: str, holder: str):
        self.store_path = store_path
        self.holder = holder
        super().__init__(f"{store_path} is in use by another process ({holder})")


class StoreLock:
    """The lock on ``<store_path>.lock``, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, store_path: str):
        self.store_path = os.path.abspath(store_path)
        self.path = self.store_path + ".lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StoreInUse` at once (never waits)."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreInUse(self.store_path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        if text:
            return text
    return "pid unknown"
