"""A big notebook's first collaborator gets the document before the update store's history
is written (rooms/first_sync.py), and that history is still complete: a crash after the
load restores the document, edits made before the history was written included, with no
cell twice."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from fixtures_rooms import read_notebook, store_config

from collab_kernels.rooms.first_sync import DEFER_BYTES

CELLS = 40
#: each cell's output: the notebook's state is well over DEFER_BYTES
OUTPUT = "z" * 99 + "\n"
LINES = DEFER_BYTES // (CELLS * len(OUTPUT)) * 2


@pytest.fixture
def jp_server_config(jp_data_dir):
    return store_config(jp_data_dir)


def big_notebook(root, path: str) -> str:
    nb = nbformat.v4.new_notebook()
    for i in range(CELLS):
        cell = nbformat.v4.new_code_cell(f"x = {i}", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=OUTPUT * LINES)]
        nb.cells.append(cell)
    nbformat.write(nb, str(root / path))
    return path


def sources(doc) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def crash(room_manager, room) -> None:
    """What a killed server leaves behind: no save, the room simply gone."""
    room.stop_timers()
    room.close()
    room_manager.forget_room(room)


async def test_first_collaborator_gets_the_document_before_the_history_is_written(
    jp_root_dir, collab_client, room_manager
):
    path = big_notebook(jp_root_dir, "first-sync.ipynb")
    room = await room_manager.get_room_for_path(path)
    store = room_manager.store
    # Loaded, and the history not written yet: it waits for the first sync.
    assert room.first_sync.pending
    assert store.load(room.room_id) is None
    alice = await collab_client(path)
    assert sources(alice.document) == [f"x = {i}" for i in range(CELLS)]
    assert len(alice.document.ycells[3]["outputs"][0]["text"]) == len(OUTPUT) * LINES
    await asyncio.wait_for(room.first_sync.settled.wait(), 30)
    file_hash, updates = store.load(room.room_id)
    assert file_hash == room.file.hash and len(updates) == 1
    # The history is the document: after a crash it is restored from the store, no cell twice.
    crash(room_manager, room)
    await alice.wait_closed()
    again = await room_manager.get_room_for_path(path)
    assert again is not room and again.restored_from_store
    assert sources(again.document) == [f"x = {i}" for i in range(CELLS)]
    bob = await collab_client(path)
    assert sources(bob.document) == sources(again.document)


async def test_an_edit_before_the_history_is_written_survives_a_crash(
    jp_root_dir, collab_client, room_manager
):
    path = big_notebook(jp_root_dir, "first-sync-edit.ipynb")
    room = await room_manager.get_room_for_path(path)
    assert room.first_sync.pending
    # A server-side edit (as a run's start would write) before anyone synced: it is stored.
    source = room.document.ycells[0]["source"]
    source.insert(len(source), "  # edited")
    room.flush_updates()
    assert not room.first_sync.pending
    expected = ["x = 0  # edited"] + [f"x = {i}" for i in range(1, CELLS)]
    crash(room_manager, room)
    again = await room_manager.get_room_for_path(path)
    assert again.restored_from_store
    assert sources(again.document) == expected
    # The restored edit is not in the file yet: it is saved.
    alice = await collab_client(path)
    assert sources(alice.document) == expected
    await again.save()
    assert "".join(read_notebook(jp_root_dir, path)["cells"][0]["source"]) == expected[0]


async def test_a_deleted_big_notebook_leaves_no_history(jp_root_dir, room_manager, jp_fetch):
    path = big_notebook(jp_root_dir, "first-sync-delete.ipynb")
    room = await room_manager.get_room_for_path(path)
    assert room.first_sync.pending
    await jp_fetch("api", "contents", path, method="DELETE")
    await asyncio.wait_for(room.first_sync.settled.wait(), 30)
    assert room_manager.store.load(room.room_id) is None
