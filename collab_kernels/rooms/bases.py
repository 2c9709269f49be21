"""The file text each document last saved, kept beside the update store.

A room restored after a restart whose file changed while the server was down (a
``git checkout``) must merge the two by cell id, like an out-of-band change of a live room
(``merge.py``): its stored Y history is one side, the file the other, and the base is what
the room last saved. The update store keeps Y histories, not file content, so the saved text
is kept here: written by the worker thread of each offloaded notebook save
(``offload.py``: the pieces it writes into the file are compressed as they are written, and
the row is stored once the file is in place, tagged with its hash), read when a room loads.

One row per document, in its own SQLite file (``<store>.saved.sqlite``) with its own
connection, so that a worker thread writing a big notebook's text never holds the update
store's write lock, which the event loop takes for every append. Rows go with their
document's history (deleted, evicted). Without the offloaded save (another contents manager)
no base is kept and such a restart rebuilds the document from the file, as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Collection


class SavedBases:
    """The last saved file text per room id (zlib-compressed), safe to use from threads."""

    def __init__(self, path: str, *, log: logging.Logger):
        self.path = path
        self.log = log
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS bases (room_id TEXT PRIMARY KEY, file_hash TEXT NOT "
            "NULL, text BLOB NOT NULL, updated REAL NOT NULL)"
        )
        self.closed = False

    @classmethod
    def beside(cls, store_path: str, log: logging.Logger) -> SavedBases:
        root, _ = os.path.splitext(store_path)
        return cls(root + ".saved.sqlite", log=log)

    def writer(self, room_id: str, read_at: float | None = None) -> BaseWriter:
        """A sink for the pieces of one save's file text (see :class:`BaseWriter`)."""
        return BaseWriter(self, room_id, read_at)

    def put(
        self, room_id: str, file_hash: str, compressed: bytes, *, read_at: float | None = None
    ) -> None:
        """Keep a saved text. ``read_at``: the text was read from the file at that time (a
        load), and a row written since (a save) is newer: it stays."""
        with self._lock:
            if self.closed:
                return
            self._db.execute(
                "INSERT INTO bases (room_id, file_hash, text, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room_id) DO UPDATE SET file_hash = excluded.file_hash, "
                "text = excluded.text, updated = excluded.updated WHERE bases.updated <= ?",
                (room_id, file_hash, compressed, read_at or time.time(), read_at or time.time()),
            )

    def hash_of(self, room_id: str) -> str | None:
        """The file hash of the room's kept text (None: none kept)."""
        with self._lock:
            if self.closed:
                return None
            row = self._db.execute(
                "SELECT file_hash FROM bases WHERE room_id = ?", (room_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def get(self, room_id: str) -> tuple[str, str] | None:
        """``(file_hash, text)`` of the room's last saved file, or None."""
        with self._lock:
            if self.closed:
                return None
            row = self._db.execute(
                "SELECT file_hash, text FROM bases WHERE room_id = ?", (room_id,)
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), zlib.decompress(bytes(row[1])).decode("utf-8")

    def delete(self, room_id: str) -> None:
        with self._lock:
            if not self.closed:
                self._db.execute("DELETE FROM bases WHERE room_id = ?", (room_id,))

    def keep_only(self, room_ids: Collection[str]) -> None:
        """Forget the rows of documents the update store no longer has."""
        keep = set(room_ids)
        with self._lock:
            if self.closed:
                return
            stale = [
                room_id
                for (room_id,) in self._db.execute("SELECT room_id FROM bases").fetchall()
                if room_id not in keep
            ]
            for room_id in stale:
                self._db.execute("DELETE FROM bases WHERE room_id = ?", (room_id,))

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._db.close()


class BaseWriter:
    """The text of one save, compressed piece by piece in the saving thread (zlib gives the
    GIL back while it compresses) and stored once the file is written (:meth:`close`)."""

    def __init__(self, bases: SavedBases, room_id: str, read_at: float | None = None):
        self.bases = bases
        self.room_id = room_id
        self.read_at = read_at
        self._compress = zlib.compressobj(1)
        self._parts: list[bytes] = []

    def write(self, piece: str) -> None:
        self._parts.append(self._compress.compress(piece.encode("utf-8")))

    def close(self, file_hash: str) -> None:
        self._parts.append(self._compress.flush())
        try:
            self.bases.put(self.room_id, file_hash, b"".join(self._parts), read_at=self.read_at)
        except Exception as e:  # the file is saved; only a restart merge would miss it
            self.bases.log.warning(
                "collab_kernels: could not keep the saved text of %s for a restart merge: %s",
                self.room_id,
                e,
            )


__all__ = ["BaseWriter", "SavedBases"]
