"""Server restarts with the update store on (the default): browsers keep their session.

A real server is stopped and a new one started in-process on the same root and data dir; the
"browser" is a y-websocket client (collab_kernels.client.connection.RoomConnection) that keeps
its Y document, and its edits, while the server is down and reconnects with its old
``sessionId``, as the stock docprovider does.
"""

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
from traitlets.config import Config

from collab_kernels.client.connection import RoomConnection, open_session
from collab_kernels.rooms import offload, protocol


@pytest.fixture
def jp_server_config():
    return collab_config(RoomManager=FAST_ROOMS)


async def test_browser_continues_after_restart_with_its_offline_edits(
    rooms_notebook,
    collab_client,
    restart_server,
    jp_root_dir,
):
    path = rooms_notebook("continue.ipynb", ["first", "second"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    append_source(alice.document, 1, " edited")
    await bob.wait_for(lambda doc: sources(doc) == ["first", "second edited"])
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["first", "second edited"])
    room_id = alice.room_id

    async with restart_server() as (
        base2,
        token2,
        app2,
    ):
        await alice.wait_closed()
        await bob.wait_closed()
        # while the server was down both typed: alice in a cell, bob a new cell
        append_source(alice.document, 0, " (alice offline)")
        bob.document.append_cell({"cell_type": "markdown", "source": "bob offline", "metadata": {}})

        # the browsers reconnect with their old sessions and histories: no 1003, no reload
        alice2 = RoomConnection(base2, room_id, alice.session_id, token=token2, ydoc=alice.ydoc)
        bob2 = RoomConnection(base2, room_id, bob.session_id, token=token2, ydoc=bob.ydoc)
        for conn in (alice2, bob2):
            await conn.connect()
            await asyncio.wait_for(asyncio.shield(conn.synced), 30)
        expected = ["first (alice offline)", "second edited", "bob offline"]
        await alice2.wait_for(lambda doc: sources(doc) == expected)
        await bob2.wait_for(lambda doc: sources(doc) == expected)
        assert not alice2.closed.done() and not bob2.closed.done()
        manager2 = app2.web_app.settings["collab_room_manager"]
        room = manager2.find_room(room_id)
        assert room.restored_from_store
        assert sources(room.document) == expected  # one copy of each cell
        assert len({cell["id"] for cell in room.document.ycells}) == 3
        # the offline edits reach the file, and a browser opening the notebook anew sees them
        await eventually(lambda: disk_sources(jp_root_dir, path) == expected)
        session = await open_session(base2, path, token=token2)
        fresh = RoomConnection.from_session(base2, session, token=token2)
        await fresh.connect()
        await asyncio.wait_for(asyncio.shield(fresh.synced), 30)
        assert sources(fresh.document) == expected
        # and editing goes on for everyone
        append_source(alice2.document, 2, "!")
        await fresh.wait_for(lambda doc: sources(doc)[2] == "bob offline!")
        for conn in (alice2, bob2, fresh):
            await conn.close()


async def test_the_loaded_text_is_kept_from_the_read_itself(
    rooms_notebook, collab_client, jp_serverapp, jp_root_dir, monkeypatch
):
    """Until its first save a room's merge base is the file's text as loaded: it is kept
    from the bytes the read hashed (offload_read.LoadedText), with no second read."""
    second_reads: list[str] = []
    monkeypatch.setattr(offload, "_keep_text", lambda os_path, *args: second_reads.append(os_path))
    path = rooms_notebook("kept.ipynb", ["ünïcode", "two"])
    on_disk = (jp_root_dir / path).read_bytes()
    conn = await collab_client(path)
    store = jp_serverapp.web_app.settings["collab_room_manager"].store
    await eventually(lambda: store.bases.get(conn.room_id) is not None)
    model = await jp_serverapp.contents_manager.get(path, content=False, require_hash=True)
    assert store.bases.get(conn.room_id) == (model["hash"], on_disk.decode("utf-8"))
    assert second_reads == []
    await conn.close()


async def test_history_that_cannot_match_is_refused_after_a_delay(
    rooms_notebook,
    collab_client,
    restart_server,
    jp_root_dir,
    jp_server_config,
    jp_serverapp,
):
    """The file changed while the server was down (git checkout) and the text the room last
    saved is not kept (a store written by an older version): the document is rebuilt from
    the file, another Y history, so the old browser is asked to reload (1003), and only after
    stale_session_close_delay so that a reload dialog's reconnect loop cannot spin the server."""
    path = rooms_notebook("changed.ipynb", ["one", "two"])
    conn = await collab_client(path)
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["one", "two"])
    store = jp_serverapp.web_app.settings["collab_room_manager"].store
    await eventually(lambda: store.bases.get(conn.room_id) is not None)
    store.bases.delete(conn.room_id)
    config = Config(jp_server_config)
    config.RoomManager.stale_session_close_delay = 0.5
    async with restart_server(config) as (
        base2,
        token2,
        _app2,
    ):
        await conn.wait_closed()
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("checked out"))
        nbformat.write(nb, str(jp_root_dir / path))

        loop = asyncio.get_running_loop()
        for _attempt in range(2):
            stale = RoomConnection(
                base2, conn.room_id, conn.session_id, token=token2, ydoc=conn.ydoc
            )
            started = loop.time()
            await stale.connect()
            code, reason = await stale.wait_closed()
            assert loop.time() - started >= 0.5  # never sooner than the delay
            assert code == protocol.CLOSE_SESSION
            assert json.loads(reason) == {
                "reason": "version_mismatch",
                "sessionId": conn.session_id,
                "reloadable": True,
            }
        # nothing of the stale history reached the room or the file
        await eventually(lambda: disk_sources(jp_root_dir, path) == ["checked out"])
        session = await open_session(base2, path, token=token2)
        fresh = RoomConnection.from_session(base2, session, token=token2)
        await fresh.connect()
        await asyncio.wait_for(asyncio.shield(fresh.synced), 30)
        assert sources(fresh.document) == ["checked out"]
        await fresh.close()


def checkout(root, path: str, edit) -> None:
    """What ``git checkout`` of another version does to the file: cells keep their ids."""
    nb = nbformat.read(str(root / path), as_version=4)
    edit(nb)
    nbformat.write(nb, str(root / path))


async def test_file_changed_while_down_is_merged_with_the_history_and_offline_edits(
    rooms_notebook, collab_client, restart_server, jp_root_dir
):
    """The file changed while the server was down (git checkout of another version) and a
    browser typed meanwhile: the restored history and the file are merged by cell id
    against what the room last saved, the browser continues its session (no 1003) and its
    offline edit merges too; nothing is lost on either side."""
    path = rooms_notebook("checkout.ipynb", ["one", "two", "three"])
    alice = await collab_client(path)
    append_source(alice.document, 1, " edited")
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["one", "two edited", "three"])
    room_id = alice.room_id

    def git(nb) -> None:
        nb.cells[0].source = "one (checked out)"
        nb.cells.append(nbformat.v4.new_markdown_cell("new from git"))

    async with restart_server() as (base2, token2, app2):
        await alice.wait_closed()
        checkout(jp_root_dir, path, git)
        append_source(alice.document, 2, " (alice offline)")

        alice2 = RoomConnection(base2, room_id, alice.session_id, token=token2, ydoc=alice.ydoc)
        await alice2.connect()
        await asyncio.wait_for(asyncio.shield(alice2.synced), 30)
        expected = ["one (checked out)", "two edited", "three (alice offline)", "new from git"]
        await alice2.wait_for(lambda doc: sources(doc) == expected)
        assert not alice2.closed.done()  # the same session goes on
        room = app2.web_app.settings["collab_room_manager"].find_room(room_id)
        assert room.restored_from_store
        await eventually(lambda: sources(room.document) == expected)  # one copy of each cell
        await eventually(lambda: disk_sources(jp_root_dir, path) == expected)
        await alice2.close()


async def test_freed_room_reopened_from_the_store_keeps_its_sessions(
    rooms_notebook, collab_client, room_manager
):
    path = rooms_notebook("freed-store.ipynb", ["one", "two"])
    conn = await collab_client(path)
    room_id = conn.room_id
    await conn.close()
    await eventually(lambda: room_manager.find_room(room_id) is None)
    append_source(conn.document, 0, " later")  # typed while disconnected

    again = RoomConnection(
        conn.base_url, room_id, conn.session_id, token=conn.token, ydoc=conn.ydoc
    )
    await again.connect()
    await asyncio.wait_for(asyncio.shield(again.synced), 30)
    room = room_manager.find_room(room_id)
    await eventually(lambda: sources(room.document) == ["one later", "two"])
    assert room.restored_from_store and not again.closed.done()
    await again.close()
