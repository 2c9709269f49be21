"""Rooms: y-sync fan-out, saving, sessions, permissions, bad input (real server, real files)."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from fixtures_rooms import FAST_ROOMS, VIEWER_TOKEN, eventually, read_notebook, viewer_config
from jupyter_ydoc import YNotebook
from tornado.httpclient import HTTPClientError

from collab_kernels.client.connection import RoomClosedError, SessionError, open_session
from collab_kernels.rooms import protocol


@pytest.fixture
def jp_server_config():
    return viewer_config(RoomManager={**FAST_ROOMS, "max_message_size": 64 * 1024})


def sources(doc: YNotebook) -> list[str]:
    return [str(cell["source"]) for cell in doc.ycells]


def append_source(doc: YNotebook, index: int, text: str) -> None:
    source = doc.ycells[index]["source"]
    source.insert(len(source), text)


def disk_sources(root, path) -> list[str]:
    try:
        nb = read_notebook(root, path)
    except (OSError, ValueError):
        return []
    return ["".join(cell["source"]) for cell in nb["cells"]]


async def test_two_collaborators_converge(rooms_notebook, collab_client):
    path = rooms_notebook("converge.ipynb", ["a = 1", "b = 2"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    assert sources(alice.document) == ["a = 1", "b = 2"]
    # concurrent edits on both sides, before either has seen the other's
    append_source(alice.document, 0, "  # alice")
    append_source(bob.document, 1, "  # bob")
    bob.document.append_cell({"cell_type": "markdown", "source": "from bob", "metadata": {}})
    expected = ["a = 1  # alice", "b = 2  # bob", "from bob"]
    await alice.wait_for(lambda doc: sources(doc) == expected)
    await bob.wait_for(lambda doc: sources(doc) == expected)


async def test_server_edit_is_saved_with_no_client(rooms_notebook, room_manager, jp_root_dir):
    path = rooms_notebook("headless.ipynb", ["print('hi')"])
    room = await room_manager.get_room_for_path(path)
    assert room.path == path and room.file_type == "notebook"
    assert room_manager.find_room(room.room_id) is room
    with room.hold("test"):
        append_source(room.document, 0, "  # from the server")
        await eventually(
            lambda: disk_sources(jp_root_dir, path) == ["print('hi')  # from the server"]
        )
        assert room.document.ystate["dirty"] is False
        assert room.document.ystate["hash"]
        # held: never freed, even with no client
        await asyncio.sleep(0.5)
        assert room_manager.find_room(room.room_id) is room
    # released, saved and no client: freed after free_delay
    await eventually(lambda: room_manager.find_room(room.room_id) is None)


async def test_raw_save_is_answered_and_sets_hash(rooms_notebook, collab_client, jp_root_dir):
    path = rooms_notebook("save.ipynb", ["1"])
    conn = await collab_client(path)
    # nothing new to write: still "success", the stock frontend shows an error on "skipped"
    assert await conn.save() == "success"
    append_source(conn.document, 0, " + 1")
    assert await conn.save() == "success"  # whether or not the autosave won the race
    assert disk_sources(jp_root_dir, path) == ["1 + 1"]
    await conn.wait_for(lambda doc: doc.ystate.get("dirty") is False and doc.ystate.get("hash"))
    assert conn.raw_messages[-1]["type"] == "save"


async def test_text_file_round_trip(rooms_text, collab_client, jp_root_dir):
    path = rooms_text("notes.txt", "line one\n")
    conn = await collab_client(path, "file")
    assert conn.room_id.startswith("text:file:")
    assert conn.document.get() == "line one\n"
    source = conn.document._ysource
    source.insert(len(source), "line two\n")
    await eventually(lambda: (jp_root_dir / path).read_text() == "line one\nline two\n")
    other = await collab_client(path, "file")
    assert other.document.get() == "line one\nline two\n"


async def test_session_endpoint(rooms_notebook, jp_fetch, jp_root_dir):
    path = rooms_notebook("sess.ipynb")
    body = json.dumps({"format": "json", "type": "notebook"})
    first = await jp_fetch("api", "collaboration", "session", path, method="PUT", body=body)
    assert first.code == 201
    data = json.loads(first.body)
    assert data["format"] == "json" and data["type"] == "notebook" and data["sessionId"]
    assert "/" not in data["fileId"]
    second = await jp_fetch("api", "collaboration", "session", path, method="PUT", body=body)
    assert second.code == 200
    assert json.loads(second.body)["fileId"] == data["fileId"]

    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch("api", "collaboration", "session", "nope.ipynb", method="PUT", body=body)
    assert missing.value.code == 404
    with pytest.raises(HTTPClientError) as bad:
        await jp_fetch("api", "collaboration", "session", path, method="PUT", body="{")
    assert bad.value.code == 400


async def test_read_only_connection_edits_are_dropped(rooms_notebook, collab_client, jp_root_dir):
    path = rooms_notebook("readonly.ipynb", ["shared = 1"])
    writer = await collab_client(path)
    viewer = await collab_client(path, token=VIEWER_TOKEN)
    append_source(viewer.document, 0, "  # viewer was here")
    append_source(writer.document, 0, "  # writer")
    # the writer's edit reaches the viewer (it still receives the live doc) ...
    await viewer.wait_for(lambda doc: "# writer" in sources(doc)[0])
    # ... and the file, without the viewer's edit
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["shared = 1  # writer"])
    assert "viewer" not in sources(writer.document)[0]
    # a new collaborator never sees the viewer's edit either
    late = await collab_client(path)
    assert sources(late.document) == ["shared = 1  # writer"]
    # the viewer's save request is refused
    assert await viewer.save() == "failed"


async def test_awareness_relayed_to_everyone_including_sender(rooms_notebook, collab_client):
    path = rooms_notebook("aware.ipynb")
    alice = await collab_client(path)
    bob = await collab_client(path)
    alice.set_awareness({"user": {"name": "alice"}})
    cid = alice.awareness.client_id

    def has_alice(conn):
        return lambda _doc: (
            conn.awareness.states.get(cid, {}).get("user", {}).get("name") == "alice"
        )

    await bob.wait_for(has_alice(bob))
    assert cid in alice.awareness.states


@pytest.mark.parametrize(
    "frame",
    [
        b"",  # empty
        b"\x00\x02\x05\x01\x02",  # update whose length runs past the end
        b"\x00\x02\x03\xff\xff\xff",  # not a Y update
        b"\x01\x01\x01\x01\x01x",  # awareness state that is not JSON
        b"\x00\x07\x00",  # unknown sync step
    ],
)
async def test_malformed_frame_closes_only_that_connection(
    frame, rooms_notebook, collab_client, room_manager
):
    path = rooms_notebook("bad.ipynb", ["ok"])
    good = await collab_client(path)
    bad = await collab_client(path)
    await bad.send_bytes(frame)
    code, _reason = await bad.wait_closed()
    assert code == protocol.CLOSE_INVALID_PAYLOAD
    append_source(good.document, 0, " still")
    other = await collab_client(path)
    await other.wait_for(lambda doc: sources(doc) == ["ok still"])
    assert not good.closed.done()


async def test_oversized_frame_closes_only_that_connection(rooms_notebook, collab_client):
    path = rooms_notebook("big.ipynb", ["ok"])
    good = await collab_client(path)
    bad = await collab_client(path)
    await bad.send_bytes(protocol.raw_message("x" * (100 * 1024)))
    code, _reason = await bad.wait_closed()
    assert code == protocol.CLOSE_TOO_BIG
    append_source(good.document, 0, " fine")
    other = await collab_client(path)
    await other.wait_for(lambda doc: sources(doc) == ["ok fine"])
    assert not good.closed.done()


async def test_rename_follows_file_id(rooms_notebook, collab_client, jp_fetch, room_manager):
    path = rooms_notebook("before.ipynb", ["x"])
    conn = await collab_client(path)
    await jp_fetch(
        "api", "contents", path, method="PATCH", body=json.dumps({"path": "after.ipynb"})
    )
    await conn.wait_for(lambda doc: doc.ystate.get("path") == "after.ipynb")
    room = room_manager.find_room(conn.room_id)
    assert room.path == "after.ipynb"
    session = await open_session(conn.base_url, "after.ipynb", token=conn.token)
    assert session.room_id == conn.room_id


async def test_delete_closes_clients(rooms_notebook, collab_client, jp_fetch, room_manager):
    path = rooms_notebook("gone.ipynb", ["x"])
    conn = await collab_client(path)
    await jp_fetch("api", "contents", path, method="DELETE")
    code, reason = await conn.wait_closed()
    assert code == protocol.CLOSE_NOT_FOUND
    assert "deleted" in reason
    assert room_manager.find_room(conn.room_id) is None


async def test_unknown_session_is_refused(rooms_notebook, collab_client):
    path = rooms_notebook("stale.ipynb")
    conn = await collab_client(path, session_id="not-a-session", wait_synced=False)
    code, reason = await conn.wait_closed()
    assert code == protocol.CLOSE_SESSION
    data = json.loads(reason)
    assert data == {"reason": "unknown_session", "sessionId": "not-a-session", "reloadable": True}
    with pytest.raises(RoomClosedError):
        await conn.synced


async def test_session_endpoint_refuses_missing_and_outside_paths(
    collab_base_url, collab_token, jp_root_dir
):
    (jp_root_dir.parent / "outside.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    with pytest.raises(SessionError) as missing:
        await open_session(collab_base_url, "missing.ipynb", token=collab_token)
    assert missing.value.status == 404
    with pytest.raises(SessionError) as outside:
        await open_session(collab_base_url, "../outside.ipynb", token=collab_token)
    assert outside.value.status in (400, 403)
    with pytest.raises(SessionError) as directory:
        await open_session(collab_base_url, "", token=collab_token)
    assert directory.value.status in (400, 404)


async def test_stalled_client_is_closed_without_slowing_others():
    """A client whose transport never drains is closed once its queue is full."""
    import logging

    from collab_kernels.rooms.fanout import Fanout, RoomClient

    log = logging.getLogger("test")
    room = Fanout("test-room", log=log, coalesce_window=0)
    never = asyncio.get_event_loop().create_future()  # a write that never completes
    closed = []
    stalled = RoomClient(
        write=lambda frame: never,
        close=lambda code, reason: closed.append(code),
        can_write=True,
        name="stalled",
        max_queue=10,
        log=log,
    )
    received = []
    healthy = RoomClient(
        write=lambda frame: received.append(frame),
        close=lambda code, reason: None,
        can_write=True,
        name="healthy",
        max_queue=10,
        log=log,
    )
    room.add_client(stalled)
    room.add_client(healthy)
    text = room.ydoc.get("t", type=__import__("pycrdt").Text)
    for i in range(50):
        text.insert(len(text), str(i))
        await asyncio.sleep(0)  # let each update flush and the healthy writer drain
    assert closed == [protocol.CLOSE_TRY_AGAIN_LATER]
    assert stalled not in room.clients
    assert healthy in room.clients
    assert len(received) >= 50  # step1 + every update
    room.close()
