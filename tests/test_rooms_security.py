"""Rooms under attack (#13): hidden files, awareness spoofing and flooding, slow readers,
poisoned Y updates. Real server, real websockets, two users (owner token and viewer token)."""

from __future__ import annotations

import json
import logging

import pytest
from fixtures_rooms import VIEWER_TOKEN, eventually, read_notebook, viewer_config
from pycrdt import Array, Doc, Map, create_update_message

from collab_kernels.client.connection import SessionError, open_session
from collab_kernels.rooms import protocol
from collab_kernels.rooms.manager import RoomNotFound


@pytest.fixture
def jp_server_config():
    return viewer_config(
        ContentsManager={"allow_hidden": False},
        RoomManager={
            "save_delay": 0.05,
            "file_check_interval": 0.2,
            "max_awareness_state_size": 1024,
            "client_queue_bytes": 1024 * 1024,
        },
    )


def server_errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR or (r.exc_info and "collab_kernels" in r.getMessage())
    ]


def disk_sources(root, path) -> list[str] | None:
    try:
        return ["".join(c["source"]) for c in read_notebook(root, path)["cells"]]
    except ValueError:
        return None


# --- 8: hidden files -------------------------------------------------------------------------
@pytest.mark.parametrize("path", [".hidden.ipynb", ".ipynb_checkpoints/x-checkpoint.ipynb"])
async def test_hidden_files_do_not_exist_for_sessions_and_rooms(
    path, rooms_notebook, collab_base_url, collab_token, room_manager, jp_serverapp, caplog
):
    rooms_notebook(path, ["secret = 1"])
    with pytest.raises(SessionError) as refused:
        await open_session(collab_base_url, path, token=collab_token)
    assert refused.value.status == 404  # as /api/contents answers: its existence does not leak
    with pytest.raises(RoomNotFound):
        await room_manager.get_room_for_path(path)
    # a room id made from the file's id (jupyter_server_fileid indexes any path) is no better
    file_id = jp_serverapp.web_app.settings["file_id_manager"].index(path)
    with pytest.raises(RoomNotFound):
        await room_manager.get_room(f"json:notebook:{file_id}")
    assert server_errors(caplog) == []
    # a visible notebook still opens
    rooms_notebook("visible.ipynb")
    session = await open_session(collab_base_url, "visible.ipynb", token=collab_token)
    assert session.status in (200, 201)


# --- 6: awareness ----------------------------------------------------------------------------
def awareness_frame(entries: list[tuple[int, int, dict]]) -> bytes:
    """An awareness message setting ``(client id, clock, state)`` entries."""
    from pycrdt import create_awareness_message

    update = protocol.encode_awareness_entries(
        [
            protocol.AwarenessEntry(cid, clock, json.dumps(state).encode())
            for cid, clock, state in entries
        ]
    )
    return create_awareness_message(update)


async def presence(jp_fetch, room_id: str) -> dict:
    response = await jp_fetch("api", "collaboration", "room", room_id, "presence")
    return json.loads(response.body)


async def test_a_connection_cannot_speak_for_another_connections_awareness_id(
    rooms_notebook, collab_client, jp_fetch
):
    path = rooms_notebook("spoof.ipynb")
    alice = await collab_client(path)
    bob = await collab_client(path)
    mallory = await collab_client(path, token=VIEWER_TOKEN)
    alice.set_awareness({"user": {"name": "alice"}})
    alice_id = alice.awareness.client_id
    await bob.wait_for(lambda _d: bob.awareness.states.get(alice_id, {}).get("user"))

    # mallory claims alice's id (with a newer clock), then publishes her own state
    await mallory.send_bytes(awareness_frame([(alice_id, 10_000, {"user": {"name": "mallory"}})]))
    mallory.set_awareness({"user": {"name": "mallory"}})
    mallory_id = mallory.awareness.client_id
    await bob.wait_for(lambda _d: mallory_id in bob.awareness.states)
    assert bob.awareness.states[alice_id]["user"] == {"name": "alice"}
    who = await presence(jp_fetch, alice.room_id)
    by_name = {c["username"]: c["awareness"] for c in who["clients"]}
    assert by_name["viewer"] == [{"user": {"name": "mallory"}}]

    # when mallory leaves, alice stays present
    await mallory.close()
    await bob.wait_for(lambda _d: mallory_id not in bob.awareness.states)
    assert bob.awareness.states[alice_id]["user"] == {"name": "alice"}


async def test_oversized_awareness_state_is_refused_and_not_relayed(
    rooms_notebook, collab_client, jp_fetch
):
    path = rooms_notebook("big-awareness.ipynb")
    bob = await collab_client(path)
    mallory = await collab_client(path, token=VIEWER_TOKEN)
    big_id, small_id = 900_001, 900_002
    await mallory.send_bytes(
        awareness_frame([(big_id, 1, {"user": {"name": "m"}, "junk": "x" * 4096})])
    )
    await mallory.send_bytes(awareness_frame([(small_id, 1, {"user": {"name": "m2"}})]))
    await bob.wait_for(lambda _d: small_id in bob.awareness.states)  # both were handled
    assert big_id not in bob.awareness.states
    who = await presence(jp_fetch, bob.room_id)
    states = [s for c in who["clients"] for s in c["awareness"]]
    assert {"user": {"name": "m2"}} in states
    assert all("junk" not in s for s in states)


# --- 7: output held per connection is bounded in bytes ---------------------------------------
async def test_a_reader_that_stops_reading_is_dropped_by_bytes_and_resyncs(
    rooms_notebook, collab_client, collab_base_url, room_manager
):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    path = rooms_notebook("flood.ipynb", ["print('x')"])
    alice = await collab_client(path)
    room = room_manager.find_room(alice.room_id)
    # a viewer whose websocket never reads (tornado's client stops reading once one message
    # waits unread): everything the room sends it piles up in the server
    session = await open_session(collab_base_url, path, token=VIEWER_TOKEN)
    url = (
        collab_base_url.replace("http", "ws", 1)
        + f"api/collaboration/room/{session.room_id}?sessionId={session.session_id}"
    )
    stalled = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {VIEWER_TOKEN}"})
    )
    await eventually(lambda: len(room.clients) == 2)
    chunk = "y" * (512 * 1024)
    source = alice.document.ycells[0]["source"]
    for _ in range(64):  # 32 MB of output: far more than the 1 MB allowed to wait
        source.insert(len(source), chunk)
        size = len(str(source))
        # the room has it (and sent it on) before the next one
        await eventually(lambda n=size: len(str(room.document.ycells[0]["source"])) == n)
        if len(room.clients) == 1:
            break
    await eventually(lambda: len(room.clients) == 1)  # only alice is left
    while await stalled.read_message() is not None:  # what was buffered, then the close
        pass
    assert stalled.close_code == protocol.CLOSE_TRY_AGAIN_LATER
    # the viewer reconnects and resyncs to the full document
    viewer = await collab_client(path, token=VIEWER_TOKEN)
    expected = str(alice.document.ycells[0]["source"])
    await viewer.wait_for(lambda doc: str(doc.ycells[0]["source"]) == expected)


# --- 4: poisoned documents ------------------------------------------------------------------
def nested_maps(metadata, depth: int) -> None:
    cursor = metadata
    for _ in range(depth):
        cursor["a"] = Map()
        cursor = cursor["a"]


def nested_value(metadata, depth: int) -> None:
    value: dict = {}
    cursor = value
    for _ in range(depth):
        cursor["a"] = {}
        cursor = cursor["a"]
    metadata["evil"] = value


@pytest.mark.parametrize("poison", [nested_maps, nested_value])
async def test_deeply_nested_update_is_refused_and_saves_keep_working(
    poison, rooms_notebook, collab_client, jp_root_dir, caplog
):
    path = rooms_notebook("poison.ipynb", ["a = 1"])
    mallory = await collab_client(path)
    bob = await collab_client(path)
    # an update nesting 2000 levels inside the first cell's metadata
    scratch: Doc = Doc()
    scratch.apply_update(mallory.ydoc.get_update())
    before = scratch.get_state()
    with scratch.transaction():
        poison(scratch.get("cells", type=Array)[0]["metadata"], 2000)
    await mallory.send_bytes(create_update_message(scratch.get_update(before)))
    code, _reason = await mallory.wait_closed()
    assert code == protocol.CLOSE_INVALID_PAYLOAD
    # honest edits still reach the file; the poison reached nobody
    source = bob.document.ycells[0]["source"]
    source.insert(len(source), "  # bob")
    await eventually(lambda: disk_sources(jp_root_dir, path) == ["a = 1  # bob"])
    metadata = bob.document.ycells[0]["metadata"]
    assert "a" not in metadata and "evil" not in metadata
    assert "max_update_depth" in caplog.text
    assert server_errors(caplog) == []


async def test_update_over_max_update_size_is_refused(rooms_notebook, collab_client, room_manager):
    path = rooms_notebook("big-update.ipynb", ["a = 1"])
    room_manager.max_update_size = 10_000
    try:
        mallory = await collab_client(path)
        source = mallory.document.ycells[0]["source"]
        source.insert(len(source), "x" * 20_000)
        code, _reason = await mallory.wait_closed()
        assert code == protocol.CLOSE_TOO_BIG
        room = room_manager.find_room(mallory.room_id)
        assert str(room.document.ycells[0]["source"]) == "a = 1"
    finally:
        room_manager.max_update_size = 32 * 1024 * 1024
