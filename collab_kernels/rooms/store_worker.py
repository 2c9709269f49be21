"""The update store's work that need not hold the event loop, in one thread of its own.

Its jobs, run one at a time on the thread's own SQLite connection (Python's ``sqlite3``
releases the GIL while SQLite works, so the event loop runs on meanwhile):

- **WAL checkpoints** (``PRAGMA wal_checkpoint(PASSIVE)``) once an append left the WAL over
  ``WAL_CHECKPOINT_BYTES``: SQLite's automatic one, run by whichever write crossed the bound,
  copied and synced the WAL on the event loop (100-250 ms while a cell flooded).
- **Compactions**: a room's history replaced by the state the event loop encoded (a few
  milliseconds). Writing that state and deleting the rows it covers took 30-60 ms on the loop
  for a flooding room, about once per 16 MB of output. A state of ``STATE_FILE_BYTES`` or
  more is written to a new file first (fsynced, renamed; no lock held, ``state_files.py``),
  then one short transaction makes the room's row name it (a smaller state is written inline
  by that transaction); the replaced file is removed once the WAL holding that commit is
  fsynced. Then the covered rows are deleted in small transactions: a kill between them
  leaves rows the state already holds, and Y updates apply idempotently, so nothing is lost
  and a concurrent append waits a few milliseconds at most for the write lock.
- **Resets** of a big state (``SQLiteUpdateStore.reset``: a room built from its file, 25-200
  ms of writing for a 65 MB notebook): written here like a compaction's (fsynced, renamed, no
  lock held), then one short transaction does what the loop's reset did: the room's old
  updates go, its ``docs`` and ``states`` rows are replaced. Until that commits the store
  holds the room as it was before ``reset`` was called (a state the store could already be
  found in, since rooms defer their reset); see *A pending reset* below.
- **Removing state files** the event loop replaced (``discard``), after the WAL sync.
- **Reclaiming** freed pages and truncating the WAL once a room is quiet.

Every write transaction, the loop's and this thread's, holds ``lock``: a loop write waits
for at most one of the thread's short transactions (SQLite's busy handler sleeps 10-100 ms
between tries and kept missing the gaps between them). The event loop's writes that replace
a room's history (``SQLiteUpdateStore.reset``, ``delete``, eviction) bump the room's
*generation*; a compaction written in this thread first checks, under the lock, that the
generation is still the one it was encoded at, so an older state never overwrites a newer
one.

A pending reset (``resets``): an update appended after a reset is relative to the reset's
state, which only this thread's job puts on disk; landing in the store before the job
committed, it would sit on top of the *previous* history (a ``kill -9`` then restores a wrong
document), and it must not be deleted by the job either. So every write or read of that
room's history on the loop (append, tags, compaction, delete, load) first waits for the
job (``SQLiteUpdateStore._settle``): the loop stalls only when the room is touched while its
state is being written (a first edit within a few hundred milliseconds of a big room's first
sync), never to write the state itself. Closing the store waits for pending resets too (a
graceful restart keeps the new lineage). A failed job (disk full) leaves the previous
history, which is not the document's: the loop then deletes the room's rows (its next load
builds it from the file, as with no store) and reports the error to the room.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .state_files import STATE_FILE_BYTES, StateFiles

T = TypeVar("T")

#: rows (at most) and bytes (about) deleted per transaction after a compaction: freeing a
#: row's pages costs about 1 ms per MiB with 16 KiB pages, 3 ms with 4 KiB ones on an idle
#: machine, but a flood's 1 MiB transactions held the lock (and so the loop's next append)
#: 15-76 ms on a busy one (03 Dec)
DELETE_ROWS = 16
DELETE_BYTES = 1 << 18
#: free pages given back to the file per step of ``incremental_vacuum`` (one step freeing
#: all of them after a flood held the lock 93 ms)
VACUUM_PAGES = 64


class StoreWorker:
    """One thread with its own connection to the update store's database."""

    def __init__(self, path: str, log: logging.Logger, files: StateFiles):
        self.path = path
        self.log = log
        #: where states of ``STATE_FILE_BYTES`` or more go (``state_files.py``)
        self.files = files
        #: held around every write transaction, the event loop's (``SQLiteUpdateStore``) and
        #: this thread's; ``generations`` is changed only under it
        self.lock = threading.Lock()
        self.generations: dict[str, int] = {}
        #: resets being written, per room (used by the loop only)
        self.resets: dict[str, Future[bool]] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="collab-kernels-store")
        self._db: sqlite3.Connection | None = None
        self._checkpoint_queued = False
        self._stopping = False

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            # no checkpoint at a commit, with the lock held: ``kick_checkpoint``'s job
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        return self._db

    def bump(self, room_id: str) -> None:
        """The loop replaced or deleted the room's history (call with ``lock`` held)."""
        self.generations[room_id] = self.generations.get(room_id, 0) + 1

    # --- jobs --------------------------------------------------------------------------------
    def kick_checkpoint(self) -> None:
        """Copy the WAL into the database soon (one queued checkpoint at a time)."""
        if self._checkpoint_queued or self._stopping:
            return
        self._checkpoint_queued = True
        self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        self._checkpoint_queued = False
        try:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:
            self.log.debug("collab_kernels: update store checkpoint skipped: %s", e)

    def compact(
        self, room_id: str, state: bytes, *, upto: int, in_file: bool, generation: int
    ) -> Future[bool]:
        """Replace the room's state by ``state``, which holds every update with ``seq <=
        upto``, and delete those rows. True once done; False if the loop replaced the
        history since (``generation`` changed) or the room has no row any more."""
        return self._submit(lambda db: self._compact(db, room_id, state, upto, in_file, generation))

    def _compact(
        self,
        db: sqlite3.Connection,
        room_id: str,
        state: bytes,
        upto: int,
        in_file: bool,
        generation: int,
    ) -> bool:
        if self.generations.get(room_id, 0) != generation:
            return False
        # A big state is written, fsynced and renamed before any lock is taken: the loop's
        # appends go on meanwhile; the transaction below only switches the row to it.
        name = self.files.write(state) if len(state) >= STATE_FILE_BYTES else None
        old: str | None = None
        try:
            with self.lock:
                if self.generations.get(room_id, 0) != generation:
                    written = False
                else:
                    written, old = self._switch(db, room_id, state, name, in_file)
        except BaseException:
            if name is not None:
                self.files.remove(name)
            raise
        if not written:
            if name is not None:
                self.files.remove(name)
            return False
        if old is not None:
            self._sync_wal()  # the row naming the new state is on disk before the old goes
            self.files.remove(old)
        while not self._stopping:  # left-over rows are harmless: the state holds them
            time.sleep(0.001)  # the loop's writes waiting for the lock get it first
            rows = db.execute(
                "SELECT seq, LENGTH(data) FROM updates WHERE room_id = ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (room_id, upto, DELETE_ROWS),
            ).fetchall()
            if not rows:
                break
            last, size = rows[-1][0], 0
            for seq, length in rows:  # about DELETE_BYTES a transaction, one row at least
                last, size = seq, size + length
                if size >= DELETE_BYTES:
                    break
            with self.lock:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        "DELETE FROM updates WHERE room_id = ? AND seq <= ?", (room_id, last)
                    )
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        return True

    def _switch(
        self, db: sqlite3.Connection, room_id: str, state: bytes, name: str | None, in_file: bool
    ) -> tuple[bool, str | None]:
        """One short transaction (``lock`` held): the room's row names the new state (its
        file, or the small state inline). Returns whether the room has a row, and the file
        of the state it replaced."""
        db.execute("BEGIN IMMEDIATE")
        try:
            # in_file only ever goes down here: a save on the loop since the encoding
            # may have set it, and it must not be cleared by an older view
            cursor = db.execute(
                "UPDATE docs SET in_file = in_file AND ?, updated = ? WHERE room_id = ?",
                (int(in_file), time.time(), room_id),
            )
            old = None
            if cursor.rowcount:
                row = db.execute("SELECT file FROM states WHERE room_id = ?", (room_id,))
                old = (row.fetchone() or (None,))[0]
                db.execute(
                    "UPDATE states SET state = ?, file = ?, file_bytes = ? WHERE room_id = ?",
                    (b"" if name else state, name, len(state) if name else 0, room_id),
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return cursor.rowcount > 0, old

    def reset(
        self,
        room_id: str,
        state: bytes | memoryview,
        *,
        tags: tuple[str | None, str | None, bool],
        upto: int,
        generation: int,
        reclaim: bool,
    ) -> Future[bool]:
        """Replace the room's whole history by ``state`` (of ``STATE_FILE_BYTES`` or more):
        its updates with ``seq <= upto`` go, its rows get ``tags`` (file hash, lineage,
        in_file). True once done; False if the loop replaced the history since."""
        future = self._submit(
            lambda db: self._reset(db, room_id, state, tags, upto, generation, reclaim)
        )
        self.resets[room_id] = future
        return future

    def _reset(
        self,
        db: sqlite3.Connection,
        room_id: str,
        state: bytes | memoryview,
        tags: tuple[str | None, str | None, bool],
        upto: int,
        generation: int,
        reclaim: bool,
    ) -> bool:
        name = self.files.write(state)
        old: str | None = None
        try:
            with self.lock:
                written = self.generations.get(room_id, 0) == generation
                if written:
                    old = self._replace(db, room_id, name, len(state), tags, upto)
        except BaseException:
            self.files.remove(name)
            raise
        if not written:
            self.files.remove(name)
            return False
        if old is not None:
            self._sync_wal()  # the row naming the new state is on disk before the old goes
            self.files.remove(old)
        if reclaim:
            self._reclaim(db)
        return True

    def _replace(
        self,
        db: sqlite3.Connection,
        room_id: str,
        name: str,
        size: int,
        tags: tuple[str | None, str | None, bool],
        upto: int,
    ) -> str | None:
        """The reset's one transaction (``lock`` held); returns the replaced state's file."""
        file_hash, lineage, in_file = tags
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT file FROM states WHERE room_id = ?", (room_id,)).fetchone()
            db.execute("DELETE FROM updates WHERE room_id = ? AND seq <= ?", (room_id, upto))
            db.execute(
                "INSERT OR REPLACE INTO docs (room_id, file_hash, state, updated, lineage, "
                "in_file) VALUES (?, ?, x'', ?, ?, ?)",
                (room_id, file_hash, time.time(), lineage, int(in_file)),
            )
            db.execute(
                "INSERT OR REPLACE INTO states (room_id, state, file, file_bytes) "
                "VALUES (?, x'', ?, ?)",
                (room_id, name, size),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return None if row is None else row[0]

    def discard(self, old: str) -> None:
        """After the loop replaced a room's big state by a small one (``reset``): remove the
        previous state's file once the WAL is synced. Dropped when the store closes: the next
        opening removes files no row names."""
        if not self._stopping:
            self._executor.submit(self._discard, old)

    def _discard(self, old: str) -> None:
        try:
            self._sync_wal()
            self.files.remove(old)
        except OSError as e:
            self.log.warning("collab_kernels: could not remove a state file: %s", e)

    def _sync_wal(self) -> None:
        """fsync the WAL: its commits (``synchronous=NORMAL``) are then on disk too."""
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: the database file has them
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def reclaim(self) -> Future[None]:
        """Give freed pages back to the file and truncate the WAL."""
        return self._submit(self._reclaim)

    def _reclaim(self, db: sqlite3.Connection) -> None:
        try:
            before: int | None = None
            while not self._stopping:
                with self.lock:
                    # executescript steps the pragma to its end: execute() frees one page
                    db.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
                    left = int(db.execute("PRAGMA freelist_count").fetchone()[0])
                time.sleep(0.001)  # the loop's writes waiting for the lock get it first
                if not left or (before is not None and left >= before):
                    break  # all given back, or none (a store without auto_vacuum)
                before = left
            with self.lock:  # a TRUNCATE checkpoint waits for writers and blocks them
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:  # another process holds the database: try next time
            self.log.debug("collab_kernels: update store vacuum skipped: %s", e)

    def _submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        return self._executor.submit(lambda: job(self._connection()))

    def close(self) -> None:
        """Finish the running job (queued ones are dropped: the rows they would compact stay
        and are compacted by the next load) and close the connection."""
        self._stopping = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._db is not None:
            self._db.close()
            self._db = None
