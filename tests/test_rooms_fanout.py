"""Fan-out to many watchers (#19.1): each update's websocket frame is built once and the same
bytes go to every connection; per-connection back-pressure and byte bounds still hold.

Real server, real websockets: the watchers are raw y-websocket clients (``websockets``) that
keep every message the server sends them, so the test can compare them byte for byte.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from urllib.parse import urlencode

import pytest
from fixtures_rooms import eventually
from fixtures_watchers import Watcher
from pycrdt import Doc, Text
from tornado.httpclient import HTTPRequest
from tornado.iostream import IOStream
from tornado.websocket import websocket_connect
from traitlets.config import Config

from collab_kernels.client.connection import open_session
from collab_kernels.rooms import frames, protocol

QUEUE_BYTES = 1024 * 1024


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                # compression allowed: a connection that asks for it gets permessage-deflate
                "websocket_compression_options": {},
            },
            "RoomManager": {"client_queue_bytes": QUEUE_BYTES},
        }
    )


@pytest.fixture
def encoded(monkeypatch):
    """Every payload the server encoded into a shared websocket frame, in order."""
    payloads: list[bytes] = []
    original = frames.encode_binary_frame

    def spy(payload: bytes) -> bytes:
        payloads.append(payload)
        return original(payload)

    monkeypatch.setattr(frames, "encode_binary_frame", spy)
    return payloads


@pytest.fixture
def watchers(collab_base_url, collab_token, jp_asyncio_loop):
    opened: list[Watcher] = []

    async def open_watchers(path: str, count: int, compression: str | None = None):
        session = await open_session(collab_base_url, path, token=collab_token)
        query = urlencode({"sessionId": session.session_id})
        url = (
            collab_base_url.replace("http", "ws", 1)
            + f"api/collaboration/room/{session.room_id}?{query}"
        )
        new = [Watcher(url, collab_token, compression=compression) for _ in range(count)]
        opened.extend(new)
        await asyncio.gather(*(w.start() for w in new))
        return new

    yield open_watchers

    async def close_all():
        await asyncio.gather(*(w.close() for w in opened), return_exceptions=True)

    jp_asyncio_loop.run_until_complete(close_all())


async def test_many_watchers_receive_the_same_frame_bytes(
    rooms_notebook, collab_client, watchers, room_manager, encoded
):
    path = rooms_notebook("watched.ipynb", [""])
    alice = await collab_client(path)
    plain = await watchers(path, 24)
    (deflate,) = await watchers(path, 1, compression="deflate")
    assert deflate.negotiated == ["permessage-deflate"]
    assert all(w.negotiated == [] for w in plain)
    room = room_manager.find_room(alice.room_id)
    assert len(room.clients) == 26
    encoded.clear()

    source = alice.document.ycells[0]["source"]
    for i in range(40):
        source.insert(len(source), f"line {i}\n")
        await asyncio.sleep(0)  # let some transactions go out one by one, others merged
    expected = str(source)
    await asyncio.gather(*(w.wait_for_source(expected) for w in [*plain, deflate]))

    # every watcher saw the same update messages, byte for byte, in the same order,
    # compressed or not (the deflate one's are decompressed by its client)
    reference = plain[0].updates
    assert reference
    for w in [*plain[1:], deflate]:
        assert w.updates == reference
    # ...and each of them was framed once for all the uncompressed watchers, not once each
    counts = collections.Counter(encoded)
    assert all(counts[update] == 1 for update in reference), counts.most_common(3)


async def test_slow_reader_among_many_watchers_is_dropped_with_1013(
    rooms_notebook, collab_client, watchers, room_manager, collab_base_url, collab_token
):
    path = rooms_notebook("flooded.ipynb", [""])
    alice = await collab_client(path)
    readers = await watchers(path, 6)
    room = room_manager.find_room(alice.room_id)
    # a viewer whose websocket never reads (tornado's client stops reading once one message
    # waits unread): what the room sends it piles up in the server
    session = await open_session(collab_base_url, path, token=collab_token)
    url = (
        collab_base_url.replace("http", "ws", 1)
        + f"api/collaboration/room/{session.room_id}?sessionId={session.session_id}"
    )
    stalled = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {collab_token}"})
    )
    await eventually(lambda: len(room.clients) == 8)
    source = alice.document.ycells[0]["source"]
    chunk = "z" * (512 * 1024)
    for _ in range(64):  # up to 32 MB: far beyond the 1 MB allowed to wait for one client
        source.insert(len(source), chunk)
        size = len(source)
        # every reader has it before the next one: they keep up, the stalled one does not
        await asyncio.gather(*(r.wait_for_source("z" * size) for r in readers))
        if len(room.clients) == 7:
            break
    await eventually(lambda: len(room.clients) == 7)  # alice and the six readers are left
    while await stalled.read_message() is not None:  # what was buffered, then the close
        pass
    assert stalled.close_code == protocol.CLOSE_TRY_AGAIN_LATER
    reference = readers[0].updates
    assert all(r.updates == reference for r in readers[1:])
    assert all(r.source() == str(source) for r in readers)
    # the dropped viewer reconnects and resyncs to the whole document
    (again,) = await watchers(path, 1)
    assert again.source() == str(source)


@pytest.mark.parametrize("share", [0.0, 0.1])
async def test_big_room_broadcasts_within_its_cpu_share(share, monkeypatch):
    """During a burst, a room whose last broadcast took t seconds of CPU waits t*(1/share-1)
    before the next one (a cell's end is still sent at once); share 0 only coalesces."""
    import logging

    from collab_kernels.rooms import fanout
    from collab_kernels.rooms.fanout import Fanout, RoomClient

    cpu = [0.0]  # the room's thread CPU clock: each broadcast "costs" 1 s
    monkeypatch.setattr(fanout.time, "thread_time", lambda: cpu[0])
    log = logging.getLogger("test")
    room = Fanout("burst", log=log, coalesce_window=0, fanout_cpu_share=share)
    received: list[bytes] = []

    def write(frame: frames.Frame) -> None:
        received.append(frame.payload)
        cpu[0] += 1.0

    client = RoomClient(
        write=write,
        close=lambda code, reason: None,
        can_write=True,
        name="c",
        max_queue=10,
        log=log,
    )
    room.add_client(client)
    text = room.ydoc.get("t", type=Text)
    text += "a"  # after a quiet period: out at once
    await asyncio.sleep(0)
    assert room.pending_update_count == 0
    sent = len(received)
    text += "b"  # in the burst: waits 9 s with share 0.1
    for _ in range(10):
        await asyncio.sleep(0)  # loop iterations, not time: nothing is due yet
    if share:
        assert room.pending_update_count == 1 and len(received) == sent
        room.flush_updates()  # e.g. the end of a cell
    assert room.pending_update_count == 0 and len(received) == sent + 1
    room.close()


async def test_joiners_see_every_awareness_state_from_one_snapshot():
    """A joining client gets all known presence states; the snapshot is encoded once per
    awareness broadcast (not per join), and a change made after it was encoded still reaches
    a client that joined in between."""
    import logging

    from pycrdt import Awareness, create_awareness_message

    from collab_kernels.rooms.fanout import Fanout, RoomClient

    log = logging.getLogger("test")
    room = Fanout("presence", log=log, coalesce_window=0, awareness_window=0)
    inbox: dict[str, list[frames.Frame]] = collections.defaultdict(list)

    def join(name: str) -> RoomClient:
        client = RoomClient(
            write=inbox[name].append,
            close=lambda code, reason: None,
            can_write=True,
            name=name,
            max_queue=100,
            log=log,
        )
        room.add_client(client)
        return client

    def seen(name: str) -> dict[int, dict]:
        view = Awareness(Doc())
        for frame in inbox[name]:
            message = protocol.parse_message(frame.payload)
            if message.kind == "awareness":
                view.apply_awareness_update(message.payload, "server")
        return {cid: state for cid, state in view.states.items() if state}

    ada_tab = Awareness(Doc())
    ada = join("ada")

    def ada_says(state: dict) -> None:
        ada_tab.set_local_state(state)
        update = ada_tab.encode_awareness_update([ada_tab.client_id])
        room.handle_message(ada, create_awareness_message(update))

    ada_says({"user": {"name": "Ada"}, "cell": 1})
    await asyncio.sleep(0)  # the change is relayed
    join("bob")
    join("cy")
    assert inbox["bob"][-1] is inbox["cy"][-1]  # the same snapshot frame, encoded once
    ada_says({"user": {"name": "Ada"}, "cell": 2})  # pending when dee joins
    join("dee")
    await asyncio.sleep(0)
    for name in ("bob", "cy", "dee"):
        assert seen(name) == {ada_tab.client_id: {"user": {"name": "Ada"}, "cell": 2}}
    room.close()


async def test_updates_stored_ahead_of_their_broadcast_are_stored_once():
    """A held cell end is stored when it is written (the kernel replied) and sent at its idle
    status: when a client gets an update, the store holds all of it, and nothing is stored
    twice (what was committed in between is stored with the broadcast)."""
    import logging

    from collab_kernels.rooms.fanout import Fanout, RoomClient

    stored: list[bytes] = []
    received: list[bytes] = []

    def replay(updates: list[bytes]) -> str:
        doc = Doc()
        for update in updates:
            doc.apply_update(update)
        return str(doc.get("t", type=Text))

    class StoredRoom(Fanout):
        def persist_updates(self, updates: list[bytes]) -> None:
            stored.extend(updates)

    def write(frame: frames.Frame) -> None:
        message = protocol.parse_message(frame.payload)
        if message.kind == "update":
            received.append(message.payload)
            assert replay(stored) == replay(received)  # nothing sent that is not stored

    log = logging.getLogger("test")
    room = StoredRoom("held", log=log, coalesce_window=0)
    room.add_client(
        RoomClient(
            write=write,
            close=lambda code, reason: None,
            can_write=True,
            name="c",
            max_queue=9,
            log=log,
        )
    )
    text = room.ydoc.get("t", type=Text)
    room.hold_updates(10)
    text += "result"
    text += ", count"
    room.store_pending_updates()
    assert replay(stored) == "result, count" and len(stored) == 1 and not received
    room.store_pending_updates()  # nothing new: nothing stored again
    text += ", late output"
    room.flush_updates()
    assert replay(received) == "result, count, late output" and len(received) == 1
    assert len(stored) == 2 and replay(stored) == "result, count, late output"
    text += "!"  # an ordinary update afterwards is stored as before
    await asyncio.sleep(0)
    assert replay(received) == replay(stored) == "result, count, late output!"
    room.close()


async def test_frames_written_to_the_socket_itself_keep_their_order_when_it_fills():
    """``WebsocketWriter._write`` writes to the socket while tornado has nothing waiting for
    it, and hands tornado the rest: over a real socket whose reader waits, a partial write
    and the frames after it arrive whole, in order, and the futures give back-pressure."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    ours.setblocking(False)
    stream = IOStream(ours)
    small = b"a" * 100
    assert frames.WebsocketWriter._write(stream, small) is None  # the socket took it all
    chunks = [bytes([65 + i]) * (300 * 1024) for i in range(4)]  # far beyond both buffers
    results = [frames.WebsocketWriter._write(stream, chunk) for chunk in chunks]
    assert results[0] is not None and stream.writing()  # partly written, the rest queued
    assert all(r is not None for r in results)
    assert not results[-1].done()  # back-pressure: the reader has not read yet
    theirs.setblocking(False)
    expected = small + b"".join(chunks)
    received = bytearray()
    loop = asyncio.get_running_loop()
    while len(received) < len(expected):
        received += await loop.sock_recv(theirs, 1 << 20)
    assert bytes(received) == expected
    await asyncio.gather(*results)
    assert frames.WebsocketWriter._write(stream, small) is None  # drained: direct again
    assert await loop.sock_recv(theirs, 1 << 20) == small
    stream.close()
    theirs.close()
