"""The update store: every Y update a room applies, on disk before anyone sees it.

On by default (``RoomManager.update_store = "sqlite"``; ``"none"`` turns it off). Without it, a
server killed with ``kill -9`` loses what happened since the last debounced save
(``RoomManager.save_delay`` / ``save_max_delay``) and every browser must reload after a
restart. With it each room appends its updates to one SQLite database before they are
broadcast or sent in a sync answer, so nothing a collaborator has received is lost; on the
next load the room restores its Y document from the store and saves what the file missed.

Why not ``pycrdt.store.SQLiteYStore``: it does not fit three requirements here.

- Its ``write`` is a coroutine run through anyio worker threads inside the store's own task
  group, one store object (and one connection) per document. A room's updates arrive in a
  synchronous Y observer and must be on disk *before* the room broadcasts them; awaiting an
  async write per update would reorder the broadcast against later updates, and per-document
  connections with their own lifecycle do not fit rooms that are created and freed all day.
- It records no metadata per document that says which *file content* the stored history
  belongs to. We must know whether the stored Y history is the lineage of the file on disk
  (same file hash as at the last save); if someone changed the file since, replaying the old
  history on top of a document rebuilt from the file would duplicate every cell.
- Its compaction is time based (``squash_after_inactivity_of``, ``squash_history_older_than``)
  and its checkpoints are kept *beside* the full update log, so a cell streaming output for an
  hour grows the database with the history, not the document (jupyter-collaboration users
  report 580 MB for a 1.5 MB notebook). We replace the whole history by one squashed update
  after every save and every ``compact_every`` updates.

So this is the smallest replacement on the standard library's ``sqlite3``: one database file,
WAL journal with ``synchronous=NORMAL`` (a commit is in the OS's hands when ``execute``
returns, so it survives the process being killed; only a power loss can drop the last
commits), one row per document (``docs``: the hash of the file it was saved as and other
tags; ``states``: its squashed state) and the updates appended since (``updates``). Each
append is one small synchronous transaction (tens of microseconds); rooms batch the updates
of one coalesce window into one.

A squashed state of a megabyte or more is a file beside the database (``<store>.states/``,
``state_files.py``, schema 4) that the ``states`` row names: SQLite has one writer for every
room, and a 65 MB state written as a blob held it (and the store's lock) long enough that
every room's append on the event loop waited 10-19 ms at each compaction. The store's thread
writes the file outside any lock, for compactions and for resets (a room built from its
file), and one short transaction switches the row to it; see ``state_files.py`` for why
files rather than chunk rows, and for the crash ordering, and ``store_worker.py`` for how a
room's later updates wait for a reset still being written.

Beside the histories: the Y lineage of each document and the session ids handed out to
browsers with the lineage each synced with (``sessions.py``), so a browser reconnecting after
a restart continues its session; and a bound on the database's size (``max_bytes``) that
forgets the least recently written histories whose file holds all of them (``store_bound.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future

from .bases import SavedBases
from .state_files import STATE_FILE_BYTES, StateFiles
from .store_bound import keep_under_max_bytes
from .store_lock import StoreLock
from .store_schema import migrate
from .store_sessions import StoredSessions
from .store_worker import StoreWorker

#: a WAL larger than this is copied into the database (in the store worker's thread)
WAL_CHECKPOINT_BYTES = 4 << 20


class SQLiteUpdateStore(StoredSessions):
    """One SQLite database holding the Y history of every room, keyed by room id."""

    #: the state files' directory (a subclass may crash between the pieces of a write)
    state_files_class: type[StateFiles] = StateFiles

    def __init__(self, path: str, *, log: logging.Logger | None = None, max_bytes: int = 0):
        self.path = path
        self.log = log or logging.getLogger(__name__)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        #: largest size in bytes of the database files (0: no bound), see :meth:`bound`
        self.max_bytes = max_bytes
        self.lock = StoreLock(path)  # one server process per store (store_lock.py)
        self.lock.acquire()  # or StoreInUse
        try:
            self._open(path)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Effective for a new database only (an existing one keeps its pages): the histories
        # are big blobs whose overflow pages SQLite walks one by one when it frees them, a
        # third as many with 16 KiB pages (compaction of a flooding room: 15 ms instead of
        # 45 ms per 4 MiB).
        self._db.execute("PRAGMA page_size=16384")
        #: compactions, WAL checkpoints and reclaiming, off the event loop
        self.worker = StoreWorker(path, self.log, self.state_files_class.beside(path))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # SQLite's own checkpoint at a commit copied up to 16 MB of WAL and synced the file
        # with the store's lock held, on the loop or in the worker (15-80 ms waits during a
        # flood): the worker's PASSIVE checkpoint at WAL_CHECKPOINT_BYTES does it instead
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        # After a checkpoint the WAL file is truncated back to this size.
        self._db.execute("PRAGMA journal_size_limit=4194304")
        # The WAL is copied into the database by a thread of its own (StoreWorker): an
        # append that crossed SQLite's automatic checkpoint (1000 pages) copied and synced
        # the WAL on the event loop, 100-250 ms while a cell flooded. The automatic one stays
        # as a bound (64 MiB) should that thread fall behind.
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA wal_autocheckpoint={(64 << 20) // page_size}")
        migrate(self._db, path, self._transaction)
        #: big squashed states, as files beside the database (``state_files.py``)
        self.files = self.worker.files
        named = self._db.execute("SELECT file FROM states WHERE file IS NOT NULL").fetchall()
        swept = self.files.sweep({name for (name,) in named})
        if swept:
            self.log.info(
                "collab_kernels: removed %d unfinished state files in %s",
                swept,
                self.files.directory,
            )
        #: room ids whose rows are never evicted (the live rooms), set by the room manager
        self.live_rooms: Callable[[], Collection[str]] = frozenset
        self._session_count = int(self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
        self._pending_counts: dict[str, int] = {}
        #: bytes appended since the last compaction, and of the squashed state, per room
        self._pending_bytes: dict[str, int] = {}
        self._state_bytes: dict[str, int] = {}
        #: the file text each document last saved (bases.py), for a merge after a restart
        self.bases: SavedBases | None = None
        try:
            self.bases = SavedBases.beside(path, self.log)
            rows = self._db.execute("SELECT room_id FROM docs").fetchall()
            self.bases.keep_only([room_id for (room_id,) in rows])
        except (sqlite3.Error, OSError) as e:
            self.log.warning(
                "collab_kernels: cannot keep saved texts beside %s (%s); a file changed while "
                "the server was down replaces its document's unsaved edits",
                path,
                e,
            )
        self.closed = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # The worker's lock, not SQLite's busy handler, makes a write wait for the worker's
        # (the handler sleeps 10-100 ms between tries and missed the gaps between the
        # worker's short transactions: 90 ms waits during a flood)
        with self.worker.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- reading -----------------------------------------------------------------------------
    def load(self, room_id: str) -> tuple[str | None, list[bytes]] | None:
        """``(file_hash, [state, *updates])`` of a room, or None if the store has none."""
        self._settle(room_id)
        with self.worker.lock:  # a state file is opened before a compaction can replace it
            row = self._db.execute(
                "SELECT file_hash, states.state, states.file, states.file_bytes FROM docs "
                "JOIN states USING (room_id) WHERE room_id = ?",
                (room_id,),
            ).fetchone()
            if row is None:
                return None
            file_hash, state, name, size = row
            handle = None if name is None else self.files.open(name)
        if name is not None:
            state = b"" if handle is None else handle.read()
            if handle is not None:
                handle.close()
            if len(state) != size:  # lost in a power cut after the event loop wrote it
                self.log.warning(
                    "collab_kernels: the stored state of %s is missing or short (%s); the "
                    "document is rebuilt from its file",
                    room_id,
                    self.files.path(name),
                )
                return None
        updates = [
            bytes(data)
            for (data,) in self._db.execute(
                "SELECT data FROM updates WHERE room_id = ? ORDER BY seq", (room_id,)
            )
        ]
        self._pending_counts[room_id] = len(updates)
        self._pending_bytes[room_id] = sum(len(update) for update in updates)
        self._state_bytes[room_id] = len(state)
        return file_hash, [bytes(state), *updates]

    def lineage(self, room_id: str) -> str | None:
        """The Y lineage id of a room's stored history (None: no row, or a version 1 row)."""
        self._settle(room_id)
        row = self._db.execute("SELECT lineage FROM docs WHERE room_id = ?", (room_id,)).fetchone()
        return None if row is None else row[0]

    def pending_count(self, room_id: str) -> int:
        """Updates appended since the last compaction, as this process knows them (no query)."""
        return self._pending_counts.get(room_id, 0)

    def pending_bytes(self, room_id: str) -> int:
        """Bytes appended since the last compaction (as this process knows them)."""
        return self._pending_bytes.get(room_id, 0)

    def state_bytes(self, room_id: str) -> int:
        """Bytes of the squashed state written by the last compaction (or read by load)."""
        return self._state_bytes.get(room_id, 0)

    def update_count(self, room_id: str) -> int:
        """Updates appended since the last compaction."""
        self._settle(room_id)
        row = self._db.execute("SELECT COUNT(*) FROM updates WHERE room_id = ?", (room_id,))
        return int(row.fetchone()[0])

    def stored_bytes(self, room_id: str | None = None) -> int:
        """Bytes of Y data held (one room, or all)."""
        where, args = ("WHERE room_id = ?", (room_id,)) if room_id else ("", ())
        state = self._db.execute(
            f"SELECT COALESCE(SUM(LENGTH(state) + file_bytes), 0) FROM states {where}", args
        )
        updates = self._db.execute(
            f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM updates {where}", args
        )
        return int(state.fetchone()[0]) + int(updates.fetchone()[0])

    def file_size(self) -> int:
        """Size of the store on disk (main file, WAL and state files)."""
        total = self.files.total_bytes()
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    # --- writing -----------------------------------------------------------------------------
    def append(self, room_id: str, updates: Iterable[bytes]) -> int:
        """Append updates (one transaction); returns how many the room has since compaction."""
        rows = [(room_id, update) for update in updates]
        if not rows:
            return self._pending_counts.get(room_id, 0)
        self._settle(room_id)
        with self._transaction():
            self._db.executemany("INSERT INTO updates (room_id, data) VALUES (?, ?)", rows)
        count = self._pending_counts.get(room_id, 0) + len(rows)
        self._pending_counts[room_id] = count
        self._checkpoint_if_large()
        added = sum(len(update) for _, update in rows)
        self._pending_bytes[room_id] = self._pending_bytes.get(room_id, 0) + added
        return count

    def mark_saved(self, room_id: str, file_hash: str | None, *, in_file: bool) -> bool:
        """The room's history (squashed state and the updates since) now belongs to the file
        with ``file_hash`` (it was saved): one small UPDATE of its tags (the state is in
        ``states``: the row rewritten is a few bytes, whatever the document's size).
        False if the store has no row for the room."""
        self._settle(room_id)
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE docs SET file_hash = ?, in_file = ?, updated = ? WHERE room_id = ?",
                (file_hash, int(in_file), time.time(), room_id),
            )
        return cursor.rowcount > 0

    def reset(
        self,
        room_id: str,
        file_hash: str | None,
        state: bytes | memoryview,
        *,
        lineage: str | None = None,
        in_file: bool = False,
        reclaim: bool = True,
    ) -> Future[bool]:
        """Replace a room's whole history by ``state`` (one squashed update).

        ``file_hash`` is the hash of the file whose content ``state`` was saved as (or loaded
        from); a later load only trusts the history if the file still has that hash.
        ``lineage`` names the Y history (sessions bound to it may merge into it); ``in_file``
        says that the file holds everything in ``state``: only such rows are evicted when the
        store is over ``max_bytes``. ``reclaim=False`` leaves the freed pages to later
        writes (:meth:`reclaim` gives them back; it costs a WAL checkpoint).

        A state of ``STATE_FILE_BYTES`` or more is written to a file by the store's thread
        (``StoreWorker.reset``): the returned future is done once the rows hold it, and until
        then the room's other uses of the store wait for it (``_settle``). A smaller one is
        written here, in one transaction (the future is done already).
        """
        try:
            self._settle(room_id)
        except Exception as e:  # the previous reset failed: this one replaces what it left
            self.log.warning(
                "collab_kernels: the stored state of %s was not written: %s", room_id, e
            )
        self._pending_counts[room_id] = 0
        self._pending_bytes[room_id] = 0
        self._state_bytes[room_id] = len(state)
        if len(state) >= STATE_FILE_BYTES:
            with self.worker.lock:
                self.worker.bump(room_id)
                generation = self.worker.generations[room_id]
            future = self.worker.reset(
                room_id,
                state,
                tags=(file_hash, lineage, in_file),
                upto=self._last_seq(room_id),
                generation=generation,
                reclaim=reclaim,
            )
            return future  # ``settled`` applies max_bytes once the file is written
        with self._transaction():
            self.worker.bump(room_id)
            old = self._state_file(room_id)
            self._db.execute("DELETE FROM updates WHERE room_id = ?", (room_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO docs (room_id, file_hash, state, updated, lineage, "
                "in_file) VALUES (?, ?, x'', ?, ?, ?)",
                (room_id, file_hash, time.time(), lineage, int(in_file)),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO states (room_id, state, file, file_bytes) "
                "VALUES (?, ?, NULL, 0)",
                (room_id, state),
            )
        if old is not None:
            self.worker.discard(old)
        if reclaim:
            self._reclaim()
            self.bound()
        done: Future[bool] = Future()
        done.set_result(True)
        return done

    def settled(self, room_id: str, future: Future[bool]) -> None:
        """The room's reset ``future`` is done: forget it (if it failed, as ``_settle``), and
        apply ``max_bytes`` now that its file counts."""
        if not self.closed and self.worker.resets.get(room_id) is future:
            self._settle(room_id)
            self.bound()

    def _settle(self, room_id: str) -> None:
        """Wait for the room's reset the store's thread is writing, if any (see
        ``store_worker.py``, *A pending reset*). If it failed, the rows still hold the
        history it was to replace, which is not the document's: they are deleted, and the
        error is raised."""
        future = self.worker.resets.pop(room_id, None)
        if future is None:
            return
        started = None if future.done() else time.perf_counter()
        try:
            future.result()
        except BaseException:
            if not self.closed:
                self._delete_rows(room_id)
            raise
        if started is not None:  # the room was used while its state was being written
            self.log.debug(
                "collab_kernels: waited %.0f ms for the stored state of %s",
                (time.perf_counter() - started) * 1000,
                room_id,
            )

    def _last_seq(self, room_id: str) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM updates WHERE room_id = ?", (room_id,))
        return int(row.fetchone()[0] or 0)

    def compact(self, room_id: str, state: bytes, *, in_file: bool) -> Future[bool]:
        """Replace the room's history by ``state`` (the document's full state, encoded on
        the event loop just now, so it holds every update appended so far) in the store
        worker's thread; the tags (file hash, lineage) stay as they are. The future says
        whether it was written (False: the history was replaced or deleted meanwhile)."""
        self._settle(room_id)
        upto = self._last_seq(room_id)
        generation = self.worker.generations.get(room_id, 0)  # only changed on this thread
        future = self.worker.compact(
            room_id, state, upto=upto, in_file=in_file, generation=generation
        )
        self._pending_counts[room_id] = 0
        self._pending_bytes[room_id] = 0
        self._state_bytes[room_id] = len(state)
        return future

    def reclaim(self) -> None:
        """Give freed pages back, truncate the WAL and apply ``max_bytes``."""
        self._reclaim()
        self.bound()

    def reclaim_later(self) -> Future[None]:
        """:meth:`reclaim`'s vacuum and WAL truncation in the store worker's thread (then
        call :meth:`bound` on the event loop)."""
        return self.worker.reclaim()

    def bound(self) -> None:
        """Keep the database under ``max_bytes`` (``store_bound.py``)."""
        keep_under_max_bytes(self)

    def saved_rooms_by_age(self) -> list[str]:
        """The rooms whose file holds all of their state, least recently written first."""
        rows = self._db.execute("SELECT room_id FROM docs WHERE in_file = 1 ORDER BY updated")
        return [room_id for (room_id,) in rows.fetchall()]

    def delete(self, room_id: str) -> None:
        """Forget a room (its file was deleted)."""
        self._delete_rows(room_id)
        self._pending_counts.pop(room_id, None)
        self._forget_base(room_id)
        self._reclaim()

    def _delete_rows(self, room_id: str) -> None:
        with contextlib.suppress(Exception):  # a failed reset: its rows go all the same
            self._settle(room_id)
        with self._transaction():
            self.worker.bump(room_id)
            old = self._state_file(room_id)
            self._db.execute("DELETE FROM updates WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM docs WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM states WHERE room_id = ?", (room_id,))
        if old is not None:  # now: the size bound counts the files
            self.files.remove(old)

    def _state_file(self, room_id: str) -> str | None:
        row = self._db.execute("SELECT file FROM states WHERE room_id = ?", (room_id,)).fetchone()
        return None if row is None else row[0]

    def _forget_base(self, room_id: str) -> None:
        if self.bases is not None:
            try:
                self.bases.delete(room_id)
            except sqlite3.Error as e:
                self.log.debug("collab_kernels: could not forget the saved text: %s", e)

    def _checkpoint_if_large(self) -> None:
        try:
            large = os.path.getsize(self.path + "-wal") > WAL_CHECKPOINT_BYTES
        except OSError:
            return
        if large:
            self.worker.kick_checkpoint()

    def _reclaim(self) -> None:
        """Give freed pages back and keep the WAL from growing with the history."""
        try:
            with self.worker.lock:
                # executescript steps the pragma to its end: execute() frees one page a call
                self._db.executescript("PRAGMA incremental_vacuum;")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:  # another process holds the database: try next time
            self.log.debug("collab_kernels: update store vacuum skipped: %s", e)

    def close(self) -> None:
        if self.closed:
            return
        for room_id in list(self.worker.resets):  # a graceful stop keeps the new histories
            try:
                self._settle(room_id)
            except Exception as e:
                self.log.error(
                    "collab_kernels: writing the stored state of %s failed: %s", room_id, e
                )
        self.closed = True
        self.worker.close()
        if self.bases is not None:
            self.bases.close()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._db.close()
        self.lock.release()
