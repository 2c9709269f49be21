"""The update store (RoomManager.update_store = "sqlite"): restore, lineage, compaction.

A "crash" here closes a room without saving it and forgets it, as a killed server would; the
real ``kill -9`` of a server process is in test_reliability_crash.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading

import nbformat
import pytest
from fixtures_execution import TIMEOUT, cell_py, post_execute, stream_text
from fixtures_rooms import eventually, read_notebook, store_config
from pycrdt import Doc, Text

from collab_kernels.rooms import store_worker
from collab_kernels.rooms.store import SQLiteUpdateStore


@pytest.fixture
def jp_server_config(jp_data_dir):
    return store_config(jp_data_dir, update_store_compact_every=25)


def sources(doc) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def disk_sources(root, path) -> list[str]:
    return ["".join(c["source"]) for c in read_notebook(root, path)["cells"]]


def crash(room_manager, room) -> None:
    """What a killed server leaves behind: no save, the room simply gone."""
    room.stop_timers()
    room.close()
    room_manager.forget_room(room)


async def edit_and_crash(path, collab_client, room_manager, jp_root_dir):
    alice = await collab_client(path)
    bob = await collab_client(path)
    source = alice.document.ycells[0]["source"]
    source.insert(len(source), "  # alice")
    alice.document.append_cell({"cell_type": "markdown", "source": "from alice", "metadata": {}})
    expected = ["a = 1  # alice", "b = 2", "from alice"]
    # bob received it: the server broadcast it, so it must survive a crash
    await bob.wait_for(lambda doc: sources(doc) == expected)
    room = await room_manager.get_room_for_path(path)
    assert room.unsaved and disk_sources(jp_root_dir, path) == ["a = 1", "b = 2"]
    crash(room_manager, room)
    await alice.wait_closed()
    await bob.wait_closed()
    return room, expected


async def test_restart_restores_edits_the_file_missed_without_duplicates(
    rooms_notebook, collab_client, room_manager, jp_root_dir
):
    path = rooms_notebook("store-restore.ipynb", ["a = 1", "b = 2"])
    old, expected = await edit_and_crash(path, collab_client, room_manager, jp_root_dir)
    room = await room_manager.get_room_for_path(path)
    assert room is not old and room.restored_from_store
    assert sources(room.document) == expected  # no cell twice
    cell_ids = [c.get("id") for c in room.document.ycells]
    assert len(set(cell_ids)) == 3
    # the restored edits are written to the file without waiting for the 600 s debounce
    await eventually(lambda: disk_sources(jp_root_dir, path) == expected, TIMEOUT)
    carol = await collab_client(path)
    assert sources(carol.document) == expected


async def test_file_rewritten_meanwhile_is_merged_never_duplicated(
    rooms_notebook, collab_client, room_manager, jp_root_dir
):
    """kill -9 with unsaved edits, then the file is rewritten with other cells (other ids):
    the history is not replayed on top of a document rebuilt from the file (every cell would
    be duplicated) nor dropped: it is merged with the file by cell id. The cell edited in
    the room stays, the one only the file removed goes, the file's new cell comes first (it
    has no predecessor), the room's new cell stays."""
    path = rooms_notebook("store-lineage.ipynb", ["a = 1", "b = 2"])
    room, _ = await edit_and_crash(path, collab_client, room_manager, jp_root_dir)
    await eventually(lambda: room_manager.store.bases.hash_of(room.room_id) is not None)
    # while "the server was down" someone rewrote the file (git checkout)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("c = 3"))
    nbformat.write(nb, str(jp_root_dir / path))
    again = await room_manager.get_room_for_path(path)
    assert again.restored_from_store
    merged = ["c = 3", "a = 1  # alice", "from alice"]
    assert sources(again.document) == merged
    assert len({cell["id"] for cell in again.document.ycells}) == 3
    await eventually(lambda: disk_sources(jp_root_dir, path) == merged)
    # once saved, the store holds the merged lineage tagged with the file's new hash
    await eventually(lambda: room_manager.store.load(again.room_id)[0] == again.file.hash)


async def test_deleted_file_forgets_its_history(rooms_notebook, room_manager, jp_fetch):
    path = rooms_notebook("store-delete.ipynb", ["a = 1"])
    room = await room_manager.get_room_for_path(path)
    assert room_manager.store.load(room.room_id) is not None
    await jp_fetch("api", "contents", path, method="DELETE")
    await eventually(lambda: room.closed)
    assert room_manager.store.load(room.room_id) is None


async def test_kill_with_unsaved_edits_then_checkout_merges_by_cell(
    rooms_notebook, collab_client, room_manager, jp_root_dir, jp_fetch
):
    """kill -9 with edits the file lacks, then the file changes (git checkout) before the
    next start: the stored history and the file are merged by cell id against the text the
    room last saved. A cell changed on one side takes that side; the cell changed on both
    keeps the history's version and the file's goes into a checkpoint."""
    path = rooms_notebook("crash-checkout.ipynb", ["a = 1", "b = 2"])
    _room, expected = await edit_and_crash(path, collab_client, room_manager, jp_root_dir)
    assert expected == ["a = 1  # alice", "b = 2", "from alice"]
    # the text the room loaded is kept as the merge's base (in a worker thread)
    await eventually(lambda: room_manager.store.bases.hash_of(_room.room_id) is not None)
    nb = nbformat.read(str(jp_root_dir / path), as_version=4)
    nb.cells[0].source = "a = 100"  # changed on both sides
    nb.cells[1].source = "b = 3"  # changed in the file only
    nbformat.write(nb, str(jp_root_dir / path))

    again = await room_manager.get_room_for_path(path)
    assert again.restored_from_store
    merged = ["a = 1  # alice", "b = 3", "from alice"]
    assert sources(again.document) == merged
    await eventually(lambda: disk_sources(jp_root_dir, path) == merged)
    listed = json.loads((await jp_fetch("api", "contents", path, "checkpoints")).body)
    assert listed  # the file's version of the conflicting cell is kept
    checkpoint = jp_root_dir / ".ipynb_checkpoints" / "crash-checkout-checkpoint.ipynb"
    assert disk_sources(jp_root_dir, str(checkpoint.relative_to(jp_root_dir)))[:2] == [
        "a = 100",
        "b = 3",
    ]


STREAM_LINES = 100_000
STREAM_CELL = f"for i in range({STREAM_LINES}):\n    print('line', i)\n"


async def test_streaming_cell_leaves_a_store_the_size_of_the_document(
    notebook_session, api, wait_request, room_manager, jp_root_dir
):
    """100k lines streamed, three runs (each clears the last): the store stays ~ the doc."""
    nb = await notebook_session([STREAM_CELL])
    room = await room_manager.get_room(nb.room_id)
    store = room_manager.store
    appended = 0
    for _ in range(3):
        before = store.update_count(room.room_id)
        code, request, _ = await post_execute(api, nb, nb.cell_ids[0])
        assert code == 202, request
        await wait_request(request["request_id"], timeout=120)
        appended += max(store.update_count(room.room_id) - before, 0)
        await room.save()  # what the debounce does (600 s in this test)
    text = stream_text(cell_py(room.document, nb.cell_ids[0]))
    assert text.count("\n") == STREAM_LINES
    saved = read_notebook(jp_root_dir, nb.path)["cells"][0]
    assert "".join(saved["outputs"][0]["text"]).count("\n") == STREAM_LINES
    doc_size = len(json.dumps(room.document.get()).encode())  # the notebook as JSON
    history = 3 * len(text.encode())  # what an append-only log would at least hold
    stored = store.stored_bytes(room.room_id)  # before the room is quiet
    print(
        f"STORE FIGURES doc_json={doc_size} history>={history} stored={stored} "
        f"db_file={store.file_size()} appended_updates={appended}"
    )
    # A save re-tags the history with the file's hash instead of rewriting it; once the
    # room is quiet (a second without appends) the store is compacted to the document.
    await eventually(lambda: store.stored_bytes(room.room_id) <= 1.5 * doc_size + 64 * 1024)
    assert store.stored_bytes(room.room_id) < history / 2
    await eventually(lambda: store.file_size() < 3 * doc_size + 1024 * 1024)


async def test_compaction_every_n_updates_without_saves(
    rooms_notebook, collab_client, room_manager
):
    path = rooms_notebook("store-compact.ipynb", ["a = 1"])
    alice = await collab_client(path)
    room = await room_manager.get_room_for_path(path)
    every = room_manager.update_store_compact_every
    batches = 2 * every + 10
    source = alice.document.ycells[0]["source"]
    for i in range(batches):
        source.insert(len(source), "x")
        # each edit reaches the room (and the store) on its own
        await eventually(lambda n=i + 1: str(room.document.ycells[0]["source"]).count("x") == n)
    room.flush()
    assert room.unsaved  # no save happened
    # the last compaction is written by the store's worker thread
    await eventually(lambda: room_manager.store.update_count(room.room_id) < every)
    crash(room_manager, room)
    again = await room_manager.get_room_for_path(path)
    assert again.restored_from_store
    assert str(again.document.ycells[0]["source"]) == "a = 1" + "x" * batches


def test_store_stays_under_its_bound_and_never_forgets_unsaved_or_open_documents(tmp_path):
    # three documents of 256 KiB fit in 1 MiB (16 KiB pages), four do not
    store = SQLiteUpdateStore(str(tmp_path / "bounded.sqlite"), max_bytes=1024 * 1024)
    store.live_rooms = lambda: {"open"}
    state = os.urandom(256 * 1024)
    store.reset("oldest", "h1", state, lineage="l1", in_file=True)
    store.reset("open", "h2", state, lineage="l2", in_file=True)
    store.reset("unsaved", "h3", state, lineage="l3", in_file=False)
    assert store.load("oldest") is not None  # still under the bound
    store.reset("newest", "h4", state, lineage="l4", in_file=True)
    # over the bound: the least recently written saved document that is not open goes
    assert store.load("oldest") is None
    for room_id in ("open", "unsaved", "newest"):
        assert store.load(room_id) is not None
    assert store.file_size() <= 1024 * 1024
    store.close()


def test_session_ids_outlive_the_process_and_are_bounded(tmp_path):
    path = str(tmp_path / "sessions.sqlite")
    store = SQLiteUpdateStore(path)
    store.add_session("s1", "file-1", limit=10)
    store.bind_session("s1", "lineage-1")
    store.close()
    store = SQLiteUpdateStore(path)  # the next server process
    assert store.session("s1") == ("file-1", "lineage-1")
    assert store.session("nope") is None
    for i in range(30):
        store.add_session(f"more-{i}", "file-2", limit=10)
    remaining = [i for i in range(30) if store.session(f"more-{i}") is not None]
    assert len(remaining) <= 11 and remaining[-1] == 29  # the newest are kept
    store.close()


def _text_of(updates: list[bytes]) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


def test_compaction_in_the_worker_thread_keeps_every_update(tmp_path):
    """A compaction is written by the store's thread while appends go on: what was appended
    after its state was encoded stays, and a reopened store restores all of it."""
    path = str(tmp_path / "compact.sqlite")
    store = SQLiteUpdateStore(path)
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    store.reset("r", "h", doc.get_update(), lineage="l")
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(50):
        text += f"line {i}\n"
    store.append("r", updates)
    gate = threading.Event()
    store.worker._submit(lambda db: gate.wait(10))  # the thread is busy for a while
    written = store.compact("r", doc.get_update(), in_file=False)
    updates.clear()
    text += "after the encoding\n"
    store.append("r", updates)  # while the compaction waits for the thread
    gate.set()
    assert written.result(10) is True
    assert store.update_count("r") == 1  # the compacted rows are gone, the later one stays
    store.close()
    again = SQLiteUpdateStore(path)
    loaded = again.load("r")
    assert loaded is not None and loaded[0] == "h"  # the tags stay
    assert _text_of(loaded[1]) == str(text)
    again.close()


def test_compaction_never_overwrites_a_newer_history(tmp_path):
    """The loop replaced the history (a save, a reload) while a compaction of an older state
    waited for the thread: the compaction is dropped."""
    store = SQLiteUpdateStore(str(tmp_path / "newer.sqlite"))
    old: Doc = Doc()
    old.get("t", type=Text).insert(0, "old")
    store.reset("r", "h1", old.get_update())
    gate = threading.Event()
    store.worker._submit(lambda db: gate.wait(10))
    written = store.compact("r", old.get_update(), in_file=False)
    new: Doc = Doc()
    new.get("t", type=Text).insert(0, "new")
    store.reset("r", "h2", new.get_update())  # the room reloaded from its file
    gate.set()
    assert written.result(10) is False
    loaded = store.load("r")
    assert loaded is not None and loaded[0] == "h2"
    assert _text_of(loaded[1]) == "new"
    store.close()


def test_a_store_of_the_previous_schema_keeps_its_histories(tmp_path):
    """Upgrading the server: a store written with schema 2 (the state beside the tags) is
    opened with every history, tag and session it held, and keeps working."""
    import sqlite3

    path = str(tmp_path / "v2.sqlite")
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    text += "saved "
    state = doc.get_update()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text += "offline edit"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "CREATE TABLE docs (room_id TEXT PRIMARY KEY, file_hash TEXT, state BLOB NOT NULL, "
        "updated REAL NOT NULL, lineage TEXT, in_file INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL, "
        "data BLOB NOT NULL);"
        "CREATE INDEX updates_room ON updates (room_id, seq);"
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, file_id TEXT NOT NULL, "
        "lineage TEXT, used REAL NOT NULL);"
        "PRAGMA user_version=2;"
    )
    db.execute("INSERT INTO docs VALUES ('r', 'h1', ?, 0, 'l1', 0)", (state,))
    db.executemany("INSERT INTO updates (room_id, data) VALUES ('r', ?)", [(u,) for u in updates])
    db.execute("INSERT INTO sessions VALUES ('s1', 'file-1', 'l1', 0)")
    db.close()

    store = SQLiteUpdateStore(path)
    loaded = store.load("r")
    assert loaded is not None and loaded[0] == "h1"
    assert _text_of(loaded[1]) == "saved offline edit"
    assert store.lineage("r") == "l1"
    assert store.session("s1") == ("file-1", "l1")
    assert store.mark_saved("r", "h2", in_file=True)
    assert store.compact("r", doc.get_update(), in_file=True).result(10) is True
    store.close()
    again = SQLiteUpdateStore(path)
    loaded = again.load("r")
    assert loaded is not None and loaded[0] == "h2"
    assert _text_of(loaded[1]) == "saved offline edit"
    again.delete("r")
    assert again.load("r") is None and again.stored_bytes() == 0
    again.close()


def test_freed_pages_are_given_back_in_short_steps(tmp_path, monkeypatch):
    """After a flood's compaction the store's thread gives the freed pages back to the file
    a few at a time, the lock let go between steps (one step for all of them held the lock,
    and so the loop's next append, 93 ms), until none is left; and it stops on a database
    that cannot give pages back (no auto_vacuum) instead of trying forever."""
    monkeypatch.setattr(store_worker, "VACUUM_PAGES", 4)
    path = str(tmp_path / "vacuum.sqlite")
    store = SQLiteUpdateStore(path)
    doc: Doc = Doc()
    store.reset("r", "h", doc.get_update(), lineage="l")
    store.append("r", [os.urandom(60_000) for _ in range(40)])  # rows of many pages
    store.reset("r", "h", doc.get_update(), lineage="l", reclaim=False)  # rows gone, pages free
    db = store.worker._connection()
    assert db.execute("PRAGMA freelist_count").fetchone()[0] > 4 * 3
    steps: list[int] = []
    lock = store.worker.lock

    class Counted:
        def __enter__(self):
            lock.acquire()
            steps.append(1)

        def __exit__(self, *args):
            lock.release()

    monkeypatch.setattr(store.worker, "lock", Counted())
    store.reclaim_later().result(30)
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert len(steps) > 3  # in steps, not one
    store.close()
    plain = sqlite3.connect(str(tmp_path / "plain.sqlite"), isolation_level=None)
    plain.execute("CREATE TABLE t (b BLOB)")
    plain.execute("INSERT INTO t VALUES (?)", (os.urandom(200_000),))
    plain.execute("DELETE FROM t")
    assert plain.execute("PRAGMA freelist_count").fetchone()[0] > 0
    worker = store_worker.StoreWorker.__new__(store_worker.StoreWorker)
    worker.lock, worker._stopping, worker.log = threading.Lock(), False, store.log
    worker._reclaim(plain)  # returns: nothing can be given back without auto_vacuum
    plain.close()
