"""A reset's state file is written by the store's thread (``store_worker.py``, *A pending
reset*): the reset returns before it is written, the room's later appends wait for it, and a
crash before, during or after it restores the right document."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from fixtures_state_files import (
    BIG,
    FailingStore,
    Room,
    killed_after,
    state_names,
    text_of,
)

from collab_kernels.rooms.state_files import StateFiles
from collab_kernels.rooms.store import SQLiteUpdateStore


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
    with killed_after(RESET_KILLED, path, str(BIG)) as output:
        lines = {output.readline().strip(), output.readline().strip()}
        assert lines == {"reset", "writing"}  # the reset returned while its file is written
        assert any(name.endswith(".tmp") for name in state_names(path))
    assert loaded_text(path) == ("h1", "previous", 1)
    assert state_names(path) == []
