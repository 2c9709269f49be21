"""Big squashed states of the update store are files (``rooms/state_files.py``): written by
the store's thread while the event loop's appends go on, switched in by one short
transaction, and a crash at any point of the write leaves the previous state usable (a
reset's file: ``test_reliability_pending_reset.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fixtures_state_files import (
    BIG,
    FailingStore,
    PausedFiles,
    PausedStore,
    Room,
    killed_after,
    state_names,
    text_of,
)

from collab_kernels.rooms.state_files import STATE_FILE_BYTES
from collab_kernels.rooms.store import SQLiteUpdateStore


def test_appends_go_on_while_a_big_state_is_written(tmp_path):
    """The store's thread is in the middle of writing a room's big state: the loop's
    appends, tags and other rooms' writes complete meanwhile (they would wait for the whole
    write if it held the store's lock), a reader still gets the previous state, and once
    the state is in, nothing appended is lost."""
    path = str(tmp_path / "paused.sqlite")
    store = PausedStore(path)
    room = Room("start ")
    store.reset("r", "h", room.state(), lineage="l")
    store.append("r", room.edit("x" * BIG))
    written = store.compact("r", room.state(), in_file=False)
    assert PausedFiles.writing.wait(30)
    # between two pieces of the state file: the loop's writes do not wait for it
    store.append("r", room.edit(" after"))
    assert store.mark_saved("r", "h2", in_file=False)
    other = Room("other room")
    store.reset("o", "ho", other.state(), lineage="lo")
    loaded = store.load("r")  # the state being written is not read half-done
    assert loaded is not None and text_of(loaded[1]) == str(room.text)
    assert len(loaded[1]) == 3  # the previous state and both appends
    assert not written.done()
    PausedFiles.resume.set()
    assert written.result(30) is True
    assert store.update_count("r") == 1  # the append made during the write stays
    store.close()
    again = SQLiteUpdateStore(path)
    loaded = again.load("r")
    assert loaded is not None and loaded[0] == "h2"
    assert text_of(loaded[1]) == str(room.text)
    assert len(state_names(path)) == 1  # the new state's file, nothing else
    again.close()


def test_a_failed_state_write_leaves_the_previous_state(tmp_path):
    """The disk fills in the middle of a state file: the compaction fails, the history it
    would have replaced is whole, and no partial file stays."""
    path = str(tmp_path / "failing.sqlite")
    store = FailingStore(path)
    room = Room("saved ")
    store.reset("r", "h", room.state(), lineage="l")
    store.append("r", room.edit("y" * BIG))
    error = store.compact("r", room.state(), in_file=False).exception(30)
    assert isinstance(error, OSError) and error.errno == 28
    assert state_names(path) == []
    loaded = store.load("r")
    assert loaded is not None and text_of(loaded[1]) == str(room.text)
    store.close()


CRASHING = r"""
import os, sys, time
from pycrdt import Doc, Text
from collab_kernels.rooms.state_files import StateFiles
from collab_kernels.rooms.store import SQLiteUpdateStore

class Stuck(StateFiles):
    def _write_piece(self, fd, piece):
        super()._write_piece(fd, piece)
        if os.environ.get("STUCK") and os.fstat(fd).st_size >= len(piece):
            print("writing", flush=True)
            time.sleep(600)

class Store(SQLiteUpdateStore):
    state_files_class = Stuck

doc = Doc()
text = doc.get("t", type=Text)
updates = []
doc.observe(lambda event: updates.append(event.update))
store = Store(sys.argv[1])
text += "a" * int(sys.argv[2])
store.reset("r", "h", doc.get_update(), lineage="l")
updates.clear()
text += "b" * int(sys.argv[2])
store.append("r", updates)
print("appended", flush=True)
os.environ["STUCK"] = "1"
store.compact("r", doc.get_update(), in_file=False)
time.sleep(600)
"""


def test_kill9_in_the_middle_of_a_state_file(tmp_path):
    """A server process killed (SIGKILL) while its store's thread writes a big state: the
    next process gets the previous state and every update appended, and the half-written
    file is removed."""
    path = str(tmp_path / "killed.sqlite")
    with killed_after(CRASHING, path, str(BIG)) as output:
        assert output.readline().strip() == "appended"
        assert output.readline().strip() == "writing"
        assert any(name.endswith(".tmp") for name in state_names(path))
    store = SQLiteUpdateStore(path)
    loaded = store.load("r")
    assert loaded is not None and loaded[0] == "h"
    assert text_of(loaded[1]) == "a" * BIG + "b" * BIG
    assert len(loaded[1]) == 2  # the state written by reset (a file) and the append
    assert not any(name.endswith(".tmp") for name in state_names(path))
    store.close()


def test_a_state_file_no_row_names_is_removed_at_opening(tmp_path):
    """Killed after a state file was renamed into place but before its row was switched (or
    before the replaced one was removed): the file is removed when the store is opened."""
    path = str(tmp_path / "stray.sqlite")
    store = SQLiteUpdateStore(path)
    room = Room("z" * BIG)
    store.reset("r", "h", room.state(), lineage="l")
    store.close()
    (kept,) = state_names(path)
    Path(path + ".states", "0" * 32 + ".ystate").write_bytes(b"never switched in")
    store = SQLiteUpdateStore(path)
    assert state_names(path) == [kept]
    loaded = store.load("r")
    assert loaded is not None and text_of(loaded[1]) == str(room.text)
    store.close()


def test_a_schema_3_store_keeps_its_histories(tmp_path):
    """Upgrading the server: a store of schema 3 (big states inline in ``states``) opens
    with its histories and sessions; the next compaction moves a big state to a file and
    frees the row; deleting the room removes the file."""
    path = str(tmp_path / "v3.sqlite")
    room = Room("w" * BIG)
    state = room.state()
    updates = room.edit(" offline edit")
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;"
        "CREATE TABLE docs (room_id TEXT PRIMARY KEY, file_hash TEXT, state BLOB NOT NULL, "
        "updated REAL NOT NULL, lineage TEXT, in_file INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL, "
        "data BLOB NOT NULL);"
        "CREATE INDEX updates_room ON updates (room_id, seq);"
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, file_id TEXT NOT NULL, "
        "lineage TEXT, used REAL NOT NULL);"
        "CREATE TABLE states (room_id TEXT PRIMARY KEY, state BLOB NOT NULL);"
        "PRAGMA user_version=3;"
    )
    db.execute("INSERT INTO docs VALUES ('r', 'h1', x'', 0, 'l1', 0)")
    db.execute("INSERT INTO states VALUES ('r', ?)", (state,))
    db.executemany("INSERT INTO updates (room_id, data) VALUES ('r', ?)", [(u,) for u in updates])
    db.execute("INSERT INTO sessions VALUES ('s1', 'file-1', 'l1', 0)")
    db.close()

    store = SQLiteUpdateStore(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 4
    loaded = store.load("r")
    assert loaded is not None and loaded[0] == "h1"
    assert text_of(loaded[1]) == str(room.text)
    assert store.lineage("r") == "l1" and store.session("s1") == ("file-1", "l1")
    assert store.compact("r", room.state(), in_file=True).result(30) is True
    assert len(state_names(path)) == 1
    inline = store._db.execute("SELECT LENGTH(state) FROM states").fetchone()[0]
    assert inline == 0
    assert store.stored_bytes("r") >= BIG
    store.close()
    again = SQLiteUpdateStore(path)
    loaded = again.load("r")
    assert loaded is not None and loaded[0] == "h1"
    assert text_of(loaded[1]) == str(room.text)
    again.delete("r")
    assert again.load("r") is None and again.stored_bytes() == 0
    assert state_names(path) == []
    again.close()


def test_the_size_bound_counts_state_files(tmp_path):
    """``max_bytes`` bounds the database and the state files together: a saved, closed
    document's big state is forgotten (its file removed), an unsaved one's never."""
    path = str(tmp_path / "bounded.sqlite")
    store = SQLiteUpdateStore(path, max_bytes=6 * STATE_FILE_BYTES)
    store.live_rooms = frozenset

    def reset(room_id: str, room: Room, *, in_file: bool) -> None:
        written = store.reset(room_id, "h", room.state(), lineage="l", in_file=in_file)
        assert written.result(30) is True
        store.settled(room_id, written)  # as the room does: the bound, with the file written

    saved, unsaved = Room("s" * BIG), Room("u" * BIG)
    reset("saved", saved, in_file=True)
    reset("unsaved", unsaved, in_file=False)
    assert store.load("saved") is not None and len(state_names(path)) == 2
    reset("newest", Room("n" * BIG), in_file=True)
    assert store.load("saved") is None  # the oldest saved one went, with its file
    assert store.load("unsaved") is not None and store.load("newest") is not None
    assert len(state_names(path)) == 2
    assert store.file_size() <= 6 * STATE_FILE_BYTES
    store.close()


# --- resets: written by the store's thread, the room's later updates wait for them ----------
