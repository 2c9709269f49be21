"""The session ids handed out to browsers, as rows of the update store (``sessions.py``
decides what they allow): a base class of :class:`~.store.SQLiteUpdateStore`, on its
connection and its write lock."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager


class StoredSessions:
    """The ``sessions`` table: session id, file id, the Y lineage it synced with, last use."""

    _db: sqlite3.Connection
    _session_count: int

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def add_session(self, session_id: str, file_id: str, *, limit: int) -> None:
        """Remember a session id handed out for ``file_id`` (the oldest beyond ``limit`` go)."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (session_id, file_id, lineage, used) "
                "VALUES (?, ?, NULL, ?)",
                (session_id, file_id, time.time()),
            )
        self._session_count += 1
        limit = max(limit, 1)
        if self._session_count > limit + max(limit // 10, 1):  # prune in batches
            with self._transaction():
                self._db.execute(
                    "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM sessions "
                    "ORDER BY used DESC LIMIT -1 OFFSET ?)",
                    (limit,),
                )
            self._session_count = int(
                self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
            )

    def session(self, session_id: str) -> tuple[str, str | None] | None:
        """``(file_id, lineage)`` of a stored session id, or None."""
        row = self._db.execute(
            "SELECT file_id, lineage FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def bind_session(self, session_id: str, lineage: str) -> None:
        """Record the Y lineage a session synced with."""
        with self._transaction():
            self._db.execute(
                "UPDATE sessions SET lineage = ?, used = ? WHERE session_id = ?",
                (lineage, time.time(), session_id),
            )
