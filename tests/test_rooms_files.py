"""Rooms and the file: out-of-band changes, conflicts, server restarts, freed rooms."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from fixtures_rooms import (
    FAST_ROOMS,
    append_source,
    collab_config,
    disk_sources,
    eventually,
    sources,
)
from pycrdt import Text
from traitlets.config import Config

from collab_kernels.client.connection import RoomConnection, open_session
from collab_kernels.rooms import protocol
from collab_kernels.rooms.manager import ROOM_EVENT_SCHEMA_ID


@pytest.fixture
def jp_server_config():
    return collab_config(RoomManager=FAST_ROOMS)


def write_out_of_band(root, path, sources_: list[str], ids: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    for source, cell_id in zip(sources_, ids, strict=True):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    (root / path).write_text(nbformat.writes(nb))


def room_events(jp_serverapp) -> list[dict]:
    events: list[dict] = []

    async def listener(logger, schema_id, data):
        events.append(dict(data))

    jp_serverapp.event_logger.add_listener(schema_id=ROOM_EVENT_SCHEMA_ID, listener=listener)
    return events


async def test_out_of_band_change_is_applied_in_place(rooms_notebook, collab_client, jp_root_dir):
    path = rooms_notebook("oob.ipynb", ["a = 1", "b = 2", "c = 3"])
    conn = await collab_client(path)
    ids = [cell["id"] for cell in conn.document.ycells]
    structure_changes = []
    conn.document.ycells.observe(lambda event: structure_changes.append(event))
    first_source = conn.document.ycells[0]["source"]

    # another editor (or git checkout) rewrites the file: only cell 1 differs
    write_out_of_band(jp_root_dir, path, ["a = 1", "b = 20", "c = 3"], ids)
    await conn.wait_for(lambda doc: sources(doc) == ["a = 1", "b = 20", "c = 3"])

    assert structure_changes == []  # no cell inserted or deleted: identities kept
    assert [cell["id"] for cell in conn.document.ycells] == ids
    assert str(first_source) == "a = 1"
    assert conn.raw_messages == []  # no conflict
    # the room adopted the file: nothing to write back, the file is untouched
    assert disk_sources(jp_root_dir, path) == ["a = 1", "b = 20", "c = 3"]


async def test_text_file_conflict_keeps_room_content_and_file(
    rooms_text, collab_client, jp_root_dir, room_manager, jp_serverapp
):
    """Text files are not merged: the room keeps its content, an explicit save overwrites.
    (Notebooks are merged by cell: tests/test_rooms_nothing_lost.py.)"""
    events = room_events(jp_serverapp)
    room_manager.save_delay = 30  # keep the room's edit unsaved
    path = rooms_text("conflict.txt", "x = 1\n")
    conn = await collab_client(path, "file")
    room = room_manager.find_room(conn.room_id)
    text = conn.ydoc.get("source", type=Text)
    text.insert(len(text), "# mine\n")
    await eventually(lambda: room.unsaved)

    (jp_root_dir / path).write_text("x = 2  # theirs\n")
    message = await conn.wait_for_raw("conflict")
    assert message == {"type": "conflict"}

    # the room keeps the user's edit, the file keeps the other change
    assert room.document.get() == "x = 1\n# mine\n"
    assert (jp_root_dir / path).read_text() == "x = 2  # theirs\n"
    assert await room.save() == "failed"  # an autosave never overwrites it
    assert (jp_root_dir / path).read_text() == "x = 2  # theirs\n"
    await eventually(lambda: any(e["action"] == "conflict" for e in events))
    assert room_manager.find_room(conn.room_id) is room  # never freed with unsaved edits

    # an explicit save (the user saw the dialog) writes the room's content
    assert await conn.save() == "success"
    assert (jp_root_dir / path).read_text() == "x = 1\n# mine\n"
    await eventually(lambda: any(e["action"] == "overwritten" for e in events))


async def test_freed_room_refuses_stale_history(rooms_notebook, collab_client, room_manager):
    """Without the update store a freed room is rebuilt from the file: another Y history."""
    room_manager.update_store = "none"
    path = rooms_notebook("freed.ipynb", ["one", "two"])
    conn = await collab_client(path)
    room_id, session_id, old_doc = conn.room_id, conn.session_id, conn.ydoc
    await conn.close()
    await eventually(lambda: room_manager.find_room(room_id) is None)

    stale = RoomConnection(conn.base_url, room_id, session_id, token=conn.token, ydoc=old_doc)
    await stale.connect()
    code, reason = await stale.wait_closed()
    assert code == protocol.CLOSE_SESSION
    assert json.loads(reason)["reason"] == "version_mismatch"
    assert json.loads(reason)["reloadable"] is True
    fresh = await collab_client(path)
    assert sources(fresh.document) == ["one", "two"]
    assert sources(room_manager.find_room(room_id).document) == ["one", "two"]


async def test_restarted_server_never_duplicates_cells(
    rooms_notebook,
    collab_client,
    jp_serverapp,
    restart_server,
    jp_root_dir,
    jp_server_config,
):
    """Without the update store (with it: tests/test_rooms_restart.py) a restarted server
    rebuilds documents from their files: a browser's old history is refused (1003)."""
    no_store = Config(jp_server_config)
    no_store.RoomManager.update_store = "none"
    jp_serverapp.web_app.settings["collab_room_manager"].update_store = "none"
    path = rooms_notebook("restart.ipynb", ["first", "second"])
    conn = await collab_client(path)
    append_source(conn.document, 1, " edited")
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["first", "second edited"])
    room_id, session_id, old_doc = conn.room_id, conn.session_id, conn.ydoc
    # an edit still waiting for its debounced save when the server stops
    room_manager = jp_serverapp.web_app.settings["collab_room_manager"]
    room_manager.save_delay = 30
    room = room_manager.find_room(room_id)
    append_source(conn.document, 0, " last")
    # the edit has reached the room (unsaved alone may still be the previous save's tail)
    await eventually(
        lambda: room.unsaved and str(room.document.ycells[0]["source"]) == "first last"
    )

    # the server stops (clients are closed, the document is saved); a new server process
    # starts on the same root dir
    async with restart_server(no_store) as (
        base2,
        token2,
        _app2,
    ):
        await conn.wait_closed()
        assert disk_sources(jp_root_dir, path) == ["first last", "second edited"]
        # the browser reconnects with its pre-restart session and history
        stale = RoomConnection(base2, room_id, session_id, token=token2, ydoc=old_doc)
        await stale.connect()
        code, reason = await stale.wait_closed()
        assert code == protocol.CLOSE_SESSION
        assert json.loads(reason) == {
            "reason": "unknown_session",
            "sessionId": session_id,
            "reloadable": True,
        }
        # after the reload: one copy of each cell, in the doc and on disk
        session = await open_session(base2, path, token=token2)
        assert session.room_id == room_id  # file ids survive the restart
        fresh = RoomConnection.from_session(base2, session, token=token2)
        await fresh.connect()
        await asyncio.wait_for(fresh.synced, 30)
        assert sources(fresh.document) == ["first last", "second edited"]
        append_source(fresh.document, 0, "!")
        await eventually(
            lambda: disk_sources(jp_root_dir, path) == ["first last!", "second edited"]
        )
        await fresh.close()
        await stale.close()
