"""The update store's tables, and the migrations of a store written by an older server.

Schema versions (``PRAGMA user_version``):

1. ``docs`` (the file hash a history was saved as, the squashed state) and ``updates``.
2. the Y lineage of each document, whether the file holds its state, and ``sessions``.
3. the squashed state in ``states``, a table of its own (``docs.state`` stays empty):
   SQLite rewrites a whole row on UPDATE, and re-tagging a saved document copied its state.
4. ``states.file`` and ``states.file_bytes``: a state of a megabyte or more is a file beside
   the database (``state_files.py``), the row only names it. A schema-3 row keeps its state
   inline and is used as it is; its next compaction moves it to a file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

SCHEMA_VERSION = 4


def migrate(
    db: sqlite3.Connection, path: str, transaction: Callable[[], AbstractContextManager[None]]
) -> None:
    """Create the tables of a new store or bring an older one to ``SCHEMA_VERSION``."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, 1, 2, 3, SCHEMA_VERSION):
        raise RuntimeError(
            f"update store {path} has schema version {version}, expected {SCHEMA_VERSION}"
        )
    if version == 0:
        # Free pages are given back to the file by incremental_vacuum after compaction.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("VACUUM")
        with transaction():
            db.execute(
                "CREATE TABLE IF NOT EXISTS docs (room_id TEXT PRIMARY KEY, "
                "file_hash TEXT, state BLOB NOT NULL, updated REAL NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "room_id TEXT NOT NULL, data BLOB NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS updates_room ON updates (room_id, seq)")
    if version < 2:
        with transaction():
            db.execute("ALTER TABLE docs ADD COLUMN lineage TEXT")
            db.execute("ALTER TABLE docs ADD COLUMN in_file INTEGER NOT NULL DEFAULT 0")
            db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, "
                "file_id TEXT NOT NULL, lineage TEXT, used REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS sessions_used ON sessions (used)")
    if version < 3:
        with transaction():
            db.execute(
                "CREATE TABLE IF NOT EXISTS states (room_id TEXT PRIMARY KEY, state BLOB NOT NULL)"
            )
            db.execute(
                "INSERT OR REPLACE INTO states (room_id, state) SELECT room_id, state FROM docs"
            )
            db.execute("UPDATE docs SET state = x''")
            db.execute("PRAGMA user_version=3")
    if version < 4:
        with transaction():
            # the name of the state's file (NULL: the state is inline) and its size
            db.execute("ALTER TABLE states ADD COLUMN file TEXT")
            db.execute("ALTER TABLE states ADD COLUMN file_bytes INTEGER NOT NULL DEFAULT 0")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
