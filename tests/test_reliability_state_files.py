"""Big squashed states of the update store are files (``rooms/state_files.py``): written by
the store's thread while the event loop's appends go on, switched in by one short
transaction, and a crash at any point of the write leaves the previous state usable. A
reset's file too (``store_worker.py``, *A pending reset*): the room's later appends wait for
it, and a crash before, during or after it restores the right document."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from collab_kernels.rooms.state_files import STATE_FILE_BYTES, StateFiles
from collab_kernels.rooms.store import SQLiteUpdateStore

BIG = 2 * STATE_FILE_BYTES  # a state this size goes to a file, in more than one piece


def text_of(updates: list[bytes]) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


class Room:
    """A Y document with one text, and the updates made to it since the last ``take``."""

    def __init__(self, text: str = ""):
        self.doc: Doc = Doc()
        self.text = self.doc.get("t", type=Text)
        self.text += text
        self._updates: list[bytes] = []
        self.doc.observe(lambda event: self._updates.append(event.update))

    def state(self) -> bytes:
        return self.doc.get_update()

    def edit(self, more: str) -> list[bytes]:
        self.text += more
        updates, self._updates = self._updates, []
        return updates


def state_names(path: str) -> list[str]:
    return sorted(os.listdir(path + ".states"))


class PausedFiles(StateFiles):
    """A state file write that stops after its first piece until ``resume`` is set."""

    writing = threading.Event()
    resume = threading.Event()

    def _write_piece(self, fd: int, piece: memoryview) -> None:
        super()._write_piece(fd, piece)
        if not self.writing.is_set():
            self.writing.set()
            assert self.resume.wait(30)


class PausedStore(SQLiteUpdateStore):
    state_files_class = PausedFiles


class FailingFiles(StateFiles):
    """The disk fails after the first piece of a state (ENOSPC)."""

    def _write_piece(self, fd: int, piece: memoryview) -> None:
        if os.fstat(fd).st_size:
            raise OSError(28, "No space left on device")
        super()._write_piece(fd, piece)


class FailingStore(SQLiteUpdateStore):
    state_files_class = FailingFiles


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
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, path, str(BIG)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "appended"
        assert proc.stdout.readline().strip() == "writing"
        assert any(name.endswith(".tmp") for name in state_names(path))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
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


def crash_copy(path: str, where: Path) -> str:
    """The store's files as a ``kill -9`` at this moment would leave them (a copy of the
    database, its WAL and the state files, taken while no write is in progress)."""
    copy = str(where / os.path.basename(path))
    shutil.copytree(path + ".states", copy + ".states")  # makes ``where``
    for suffix in ("", "-wal"):
        shutil.copyfile(path + suffix, copy + suffix)
    return copy


def loaded_text(path: str, room_id: str = "r") -> tuple[str | None, str, int] | None:
    """``(file_hash, text, updates)`` a newly opened store restores for the room (updates:
    how many, the squashed state included)."""
    store = SQLiteUpdateStore(path)
    try:
        loaded = store.load(room_id)
        return None if loaded is None else (loaded[0], text_of(loaded[1]), len(loaded[1]))
    finally:
        store.close()


class Stage:
    """A store whose thread can be held before (``gate``) or in the middle (``resume``) of
    the next big state it writes, and which says when the loop waits for a reset."""

    def __init__(self, tmp_path: Path, *, hold: str):
        self.writing, self.resume, self.waiting, self.gate = (threading.Event() for _ in range(4))
        stage = self

        class Files(StateFiles):
            def _write_piece(self, fd: int, piece: memoryview) -> None:
                super()._write_piece(fd, piece)
                if hold == "writing" and not stage.writing.is_set():
                    stage.writing.set()
                    assert stage.resume.wait(30)

        class Store(SQLiteUpdateStore):
            state_files_class = Files

            def _settle(self, room_id: str) -> None:
                pending = self.worker.resets.get(room_id)
                if pending is not None and not pending.done():
                    stage.waiting.set()
                super()._settle(room_id)

        self.path, self.hold = str(tmp_path / "resets.sqlite"), hold
        self.store = Store(self.path)
        # the room's previous history: a small state and an update on top of it
        self.old = Room("previous ")
        self.store.reset("r", "h1", self.old.state(), lineage="l1")
        self.store.append("r", self.old.edit("edit"))
        self.new = Room("n" * BIG)  # the room rebuilt from its file

    def reset(self):
        if self.hold == "queued":  # the thread is busy: the reset's job has not started
            self.store.worker._submit(lambda db: self.gate.wait(30))
        written = self.store.reset("r", "h2", self.new.state(), lineage="l2", in_file=True)
        if self.hold == "writing":
            assert self.writing.wait(30)
        return written

    def release(self) -> None:
        self.gate.set()
        self.resume.set()


@pytest.mark.parametrize("hold", ["queued", "writing"])
def test_a_reset_returns_before_its_state_file_is_written(tmp_path, hold):
    """A room built from a big file replaces its history without the event loop writing the
    state: ``reset`` returns while the store's thread has not started the file, or is in the
    middle of it. Meanwhile other rooms' writes go on, and a crash leaves the previous
    history whole (not a half-replaced one); once the thread is done, the new one."""
    stage = Stage(tmp_path, hold=hold)
    store = stage.store
    written = stage.reset()  # returns: the thread holds the state (old code: stuck here)
    assert not written.done()
    other = Room("other")
    store.reset("o", "ho", other.state(), lineage="lo")
    store.append("o", other.edit(" room"))
    assert loaded_text(crash_copy(stage.path, tmp_path / "during")) == ("h1", "previous edit", 2)
    stage.release()
    assert written.result(30) is True
    assert loaded_text(crash_copy(stage.path, tmp_path / "after")) == ("h2", str(stage.new.text), 1)
    assert loaded_text(crash_copy(stage.path, tmp_path / "o"), "o") == ("ho", "other room", 2)
    assert len(state_names(stage.path)) == 1
    store.close()


@pytest.mark.parametrize("hold", ["queued", "writing"])
def test_an_append_after_a_pending_reset_waits_for_it(tmp_path, hold):
    """An edit after the reset belongs on top of the new state: appended while the store's
    thread still writes it, it would sit on the previous history (a crash then restores a
    wrong document) or be deleted by the reset. The append waits: a crash while it waits
    restores the previous history (the edit was not acknowledged), one after it returns the
    new state with the edit, and the edit survives the reset's deletion of the old rows."""
    stage = Stage(tmp_path, hold=hold)
    store = stage.store
    written = stage.reset()
    edit = stage.new.edit(" typed after the load")
    returned = threading.Event()

    def append() -> None:
        store.append("r", edit)
        returned.set()
        stage.waiting.set()  # (an append that did not wait)

    appending = threading.Thread(target=append, daemon=True)  # the event loop's part
    appending.start()
    assert stage.waiting.wait(30)  # the append waits for the reset (or returned)
    crashed = loaded_text(crash_copy(stage.path, tmp_path / "waiting"))
    assert crashed == ("h1", "previous edit", 2)  # not the edit on top of the previous history
    assert not returned.is_set()
    stage.release()
    appending.join(30)
    assert returned.is_set() and written.done()
    after = loaded_text(crash_copy(stage.path, tmp_path / "appended"))
    assert after == ("h2", str(stage.new.text), 2)
    assert store.update_count("r") == 1  # the edit stays; the previous history's went
    store.append("r", stage.new.edit("!"))
    store.close()
    assert loaded_text(stage.path) == ("h2", str(stage.new.text), 3)


@pytest.mark.parametrize("hold", ["queued", "writing", "done"])
def test_closing_the_store_finishes_a_pending_reset(tmp_path, hold):
    """A graceful stop right after a big room was built: the store's close waits for the
    reset (a queued one is not dropped), so the next process has the new history (its
    sessions continue) and no stray file."""
    stage = Stage(tmp_path, hold="writing" if hold == "writing" else "queued")
    written = stage.reset()
    if hold == "done":
        stage.release()
        assert written.result(30) is True
    closing = threading.Thread(target=stage.store.close, daemon=True)
    closing.start()
    if hold != "done":
        assert stage.waiting.wait(30)  # close waits for the reset
        stage.release()
    closing.join(30)
    assert stage.store.closed
    assert loaded_text(stage.path) == ("h2", str(stage.new.text), 1)
    assert len(state_names(stage.path)) == 1


def test_a_failed_reset_forgets_the_previous_history(tmp_path):
    """The disk fills while the store's thread writes a reset's state: the previous history
    is not the document's (it was rebuilt from its file), so it is forgotten rather than
    restored with the document's later edits on top; the error reaches the room."""
    path = str(tmp_path / "failed.sqlite")
    store = FailingStore(path)
    old = Room("previous ")
    store.reset("r", "h1", old.state(), lineage="l1")
    store.append("r", old.edit("edit"))
    new = Room("n" * BIG)
    written = store.reset("r", "h2", new.state(), lineage="l2")
    error = written.exception(30)
    assert isinstance(error, OSError) and error.errno == 28
    with pytest.raises(OSError):
        store.append("r", new.edit(" typed"))
    store.append("r", new.edit(" more"))
    assert store.load("r") is None  # rebuilt from the file, as with no store
    store.close()
    assert loaded_text(path) is None
    assert state_names(path) == []


RESET_KILLED = r"""
import os, sys, time
from pycrdt import Doc, Text
from collab_kernels.rooms.state_files import StateFiles
from collab_kernels.rooms.store import SQLiteUpdateStore

class Stuck(StateFiles):
    def _write_piece(self, fd, piece):
        super()._write_piece(fd, piece)
        os.write(1, b"writing\n")  # one write: the two threads' lines do not mix
        time.sleep(600)

class Store(SQLiteUpdateStore):
    state_files_class = Stuck

old, new = Doc(), Doc()
old.get("t", type=Text).insert(0, "previous")
text = new.get("t", type=Text)
text += "n" * int(sys.argv[2])
updates = []
new.observe(lambda event: updates.append(event.update))
store = Store(sys.argv[1])
store.reset("r", "h1", old.get_update(), lineage="l1")
store.reset("r", "h2", new.get_update(), lineage="l2")
os.write(1, b"reset\n")
text += " typed"
store.append("r", updates)
os.write(1, b"appended\n")
time.sleep(600)
"""


def test_kill9_while_a_reset_is_written(tmp_path):
    """A server killed (SIGKILL) while its store's thread writes a reset's state and an edit
    waits for it: the next process restores the previous history, and the half-written
    file is removed."""
    path = str(tmp_path / "killed.sqlite")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", RESET_KILLED, path, str(BIG)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
        assert lines == {"reset", "writing"}  # the reset returned while its file is written
        assert any(name.endswith(".tmp") for name in state_names(path))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert loaded_text(path) == ("h1", "previous", 1)
    assert state_names(path) == []
