"""Big squashed states of the update store, as files beside its database (schema 4).

Why files, not chunk rows: every room shares one SQLite database, and SQLite has one writer.
Writing a 65 MB state as a blob held that write lock (and the store's ``lock``) for the
whole write and for freeing the previous state's overflow pages, so every room's append on
the event loop waited for it (10-19 ms loop gaps at each compaction of a 65 MB notebook).
Chunk rows would shorten each wait but still push every byte through the WAL twice (WAL,
then checkpoint) and free the old chunks page by page; a file is written once, outside any
lock, and a replaced one is freed by one ``unlink``. The database keeps a tiny reference
(``states.file`` and ``states.file_bytes``), switched in one short transaction.

Crash ordering (``store_worker.py``; compactions and resets alike, both written by the
store's thread, never by the event loop): the new state is written to ``<name>.tmp``,
fsynced, renamed to ``<name>`` (a fresh random name, never reused) and the directory
fsynced, all before the transaction naming it; until that commits the rows still hold the
previous history (its state and the updates it covers), so a ``kill -9`` at any point loses
nothing. No update of the room is appended while a reset's file is being written: it would
belong on top of the new state, not the previous one (``store_worker.py``, *A pending
reset*). The previous file is unlinked only after that commit, and after the WAL holding it
is fsynced (the store's commits are ``synchronous=NORMAL``), so not even a power loss can
leave a row naming a deleted file. Files no row names (a crash between the rename and the
commit, or before an unlink) are removed when the store is opened. A file found missing or
short at load (a store written by an older server, whose event loop wrote a reset's file
without fsync, and a power loss) is treated as no stored history: the document is rebuilt
from its file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Collection
from typing import BinaryIO

#: a squashed state of at least this many bytes goes to a file; smaller ones stay inline
#: in ``states.state`` (writing or freeing 1 MiB in SQLite holds its lock about 1-2 ms)
STATE_FILE_BYTES = 1 << 20
#: bytes written per ``os.write`` call
PIECE_BYTES = 1 << 20
SUFFIX = ".ystate"


class StateFiles:
    """The directory of state files, ``<store>.states/`` (safe to use from two threads: a
    file is written once under a fresh name and never changed)."""

    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def beside(cls, store_path: str) -> StateFiles:
        return cls(os.path.abspath(store_path) + ".states")

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    # --- writing (a subclass may override _write_piece: tests crash between pieces) ----------
    def write(self, state: bytes | memoryview) -> str:
        """Write ``state`` to a new file, fsync it and the directory, and return its name
        (the store's thread)."""
        name = uuid.uuid4().hex + SUFFIX
        tmp = self.path(name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(state)
            for start in range(0, len(view), PIECE_BYTES):
                self._write_piece(fd, view[start : start + PIECE_BYTES])
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, self.path(name))
        self._sync_directory()
        return name

    def _write_piece(self, fd: int, piece: memoryview) -> None:
        while piece:
            written = os.write(fd, piece)
            piece = piece[written:]

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- reading and removing ----------------------------------------------------------------
    def open(self, name: str) -> BinaryIO | None:
        """The file, open for reading (it stays readable once open, even unlinked), or None
        if it is missing."""
        try:
            return open(self.path(name), "rb")
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))

    def sweep(self, keep: Collection[str]) -> int:
        """Remove the files no row names (left by a crash); returns how many."""
        removed = 0
        for entry in os.scandir(self.directory):
            if entry.name not in keep and (
                entry.name.endswith(SUFFIX) or entry.name.endswith(SUFFIX + ".tmp")
            ):
                self.remove(entry.name)
                removed += 1
        return removed

    def total_bytes(self) -> int:
        """Bytes of every file in the directory."""
        total = 0
        for entry in os.scandir(self.directory):
            with contextlib.suppress(OSError):
                total += entry.stat().st_size
        return total
