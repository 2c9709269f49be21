"""permessage-deflate on room websockets (#19.1): a big update is compressed once and the same
compressed frame goes to every connection that negotiated it; connections without it get the
plain frame; everyone ends up with the same document, byte for byte.

Real server, real clients: ``websockets`` (as the benchmark's watchers and many scripts; it
offers permessage-deflate as browsers do) and tornado's websocket client.
"""

from __future__ import annotations

import asyncio
import collections
import os
from urllib.parse import urlencode

import pytest
from fixtures_rooms import collab_config, eventually
from fixtures_watchers import Watcher
from pycrdt import Array, Doc, create_sync_message, handle_sync_message
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect
from websockets.extensions import permessage_deflate
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from collab_kernels.client.connection import open_session
from collab_kernels.rooms import frames, protocol
from collab_kernels.rooms.deflate import accept_offer, response_extension

QUEUE_BYTES = 1024 * 1024


@pytest.fixture
def jp_server_config():
    # the defaults: no ServerApp.websocket_compression_options, compression of room messages
    # from RoomManager.websocket_deflate_threshold (1024 bytes)
    return collab_config(RoomManager={"client_queue_bytes": QUEUE_BYTES})


@pytest.fixture
def received_frames(monkeypatch):
    """extension object of a websockets connection -> (RSV1 set, bytes on the wire) of each
    data frame it received."""
    seen: dict[int, list[tuple[bool, int]]] = collections.defaultdict(list)
    original = permessage_deflate.PerMessageDeflate.decode

    def decode(self, frame, *, max_size=None):
        seen[id(self)].append((frame.rsv1, len(frame.data)))
        return original(self, frame, max_size=max_size)

    monkeypatch.setattr(permessage_deflate.PerMessageDeflate, "decode", decode)
    return seen


@pytest.fixture
def compressed(monkeypatch):
    """(payload, window bits) of every message the server compressed, in order."""
    done: list[tuple[bytes, int]] = []
    original = frames.encode_deflated_frame

    def spy(payload: bytes, level: int, wbits: int) -> bytes | None:
        done.append((payload, wbits))
        return original(payload, level, wbits)

    monkeypatch.setattr(frames, "encode_deflated_frame", spy)
    return done


@pytest.fixture
def room_url(collab_base_url, collab_token):
    async def url_of(path: str) -> str:
        session = await open_session(collab_base_url, path, token=collab_token)
        query = urlencode({"sessionId": session.session_id})
        base = collab_base_url.replace("http", "ws", 1)
        return f"{base}api/collaboration/room/{session.room_id}?{query}"

    return url_of


@pytest.fixture
def watchers(room_url, collab_token, jp_asyncio_loop):
    opened: list[Watcher] = []

    async def open_watcher(path: str, **connect_args) -> Watcher:
        watcher = Watcher(await room_url(path), collab_token, **connect_args)
        opened.append(watcher)
        return await watcher.start()

    yield open_watcher

    async def close_all():
        await asyncio.gather(*(w.close() for w in opened), return_exceptions=True)

    jp_asyncio_loop.run_until_complete(close_all())


async def test_compressed_and_plain_watchers_get_the_same_document(
    rooms_notebook, collab_client, watchers, compressed, received_frames, room_manager
):
    path = rooms_notebook("deflated.ipynb", [""])
    alice = await collab_client(path)
    plain = [await watchers(path, compression=None) for _ in range(2)]
    deflated = [await watchers(path) for _ in range(3)]  # websockets offers deflate by default
    # a client that asks for a 1 kB server window (RFC 7692 7.1.2.1: the server must keep to
    # it; an inflater that keeps only 1 kB between chunks could not follow longer references)
    small_window = await watchers(
        path,
        compression=None,
        extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
    )
    assert all(w.deflate is None for w in plain)
    for w in [*deflated, small_window]:
        # each message is compressed on its own, both ways, as the server told the client
        assert w.deflate is not None and w.deflate.remote_no_context_takeover
        assert w.deflate.local_no_context_takeover
    assert small_window.deflate.remote_max_window_bits == 10
    compressed.clear()

    source = alice.document.ycells[0]["source"]
    for i in range(6):
        # 24 kB that repeat every 3 kB (compressed; into a tenth with a 32 kB window, into
        # half with 1 kB), or a small edit (sent uncompressed)
        big = os.urandom(1500).hex() * 8
        source.insert(len(source), big if i % 2 else f"small edit {i}\n")
        await asyncio.sleep(0.05)  # separate updates, not one merged broadcast
    expected = str(source)
    everyone = [*plain, *deflated, small_window]
    await asyncio.gather(*(w.wait_for_source(expected) for w in everyone))

    # the same update messages, byte for byte, in the same order, compressed or not
    reference = plain[0].updates
    assert len(reference) >= 6
    for w in everyone[1:]:
        assert w.updates == reference
        assert w.doc.get_state() == plain[0].doc.get_state()
        assert w.doc.get("cells", type=Array).to_py() == alice.document.ycells.to_py()
    # each big update was compressed once per window size, not once per connection
    big = [u for u in reference if len(u) >= 1024]
    assert len(big) >= 3
    counts = collections.Counter(compressed)
    for update in big:
        assert counts[(update, 15)] == 1 and counts[(update, 10)] == 1, counts.most_common(3)
    # and reached the deflate connections compressed (RSV1, a fraction of the size); the
    # small ones went uncompressed, as permessage-deflate allows per message
    for w in [*deflated, small_window]:
        got = received_frames[id(w.deflate)][-len(reference) :]
        assert [rsv1 for rsv1, _ in got] == [len(u) >= 1024 for u in reference]
        ratio = 1 if w is small_window else 1 / 4
        sizes = zip(got, reference, strict=True)
        assert all(size < len(u) * ratio for (rsv1, size), u in sizes if rsv1)
    # every connection got the shared frame bytes (none fell back to tornado's per-connection
    # write_message), compressed for exactly those that negotiated it
    writers = [c._write for c in room_manager.find_room(alice.room_id).clients]
    assert len(writers) == 7 and all(w.shares_frames for w in writers)
    assert sum(w.compresses for w in writers) >= 4 and sum(not w.compresses for w in writers) >= 2


async def test_tornado_client_with_compression(
    rooms_notebook, collab_client, room_url, collab_token
):
    path = rooms_notebook("tornado-client.ipynb", [""])
    alice = await collab_client(path)
    conn = await websocket_connect(
        HTTPRequest(await room_url(path), headers={"Authorization": f"token {collab_token}"}),
        compression_options={},  # offers "permessage-deflate; client_max_window_bits"
    )
    doc: Doc = Doc()
    await conn.write_message(create_sync_message(doc), binary=True)
    source = alice.document.ycells[0]["source"]
    source.insert(0, "".join(f"line {i}\n" for i in range(5000)))
    expected = str(source)
    text = ""
    while text != expected:
        message = await asyncio.wait_for(conn.read_message(), 30)
        assert isinstance(message, bytes)
        if message[0] == protocol.MESSAGE_SYNC:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await conn.write_message(reply, binary=True)
        cells = doc.get("cells", type=Array)
        text = str(cells[0]["source"]) if len(cells) else ""
    assert conn.protocol._compressor is not None  # it did negotiate compression
    conn.close()


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; foo=1",  # unknown parameter: tornado would abort the handshake
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot make 8-bit streams
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=x",
    ],
)
async def test_unusable_offers_connect_uncompressed(rooms_notebook, watchers, offer):
    path = rooms_notebook("odd-offer.ipynb", ["x = 1"])
    w = await watchers(path, compression=None, offer=offer)
    assert w.deflate is None
    assert w.source() == "x = 1"


def test_only_mid_sized_messages_are_compressed():
    """Below the threshold compressing costs more than it saves; above DEFLATE_MAX it would
    hold the event loop (about 4 ms per MB); both go uncompressed on a deflate connection."""
    import zlib

    from collab_kernels.rooms.deflate import Deflate

    deflate = Deflate(threshold=100, limit=10_000)
    for size, compressed in [(99, False), (100, True), (10_000, True), (10_001, False)]:
        frame = frames.Frame(b"y" * size)
        wire = frame.deflated_wire(deflate)
        assert (wire[0] == 0xC2) is compressed  # FIN, RSV1, binary
        if compressed:
            body = wire[2:] if wire[1] < 126 else wire[4:]
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            assert inflater.decompress(body + b"\x00\x00\xff\xff") == frame.payload
            assert frame.deflated_wire(deflate) is wire  # built once
        else:
            assert wire == frame.wire
    noise = frames.Frame(os.urandom(5000))  # larger when compressed: sent as it is
    assert noise.deflated_wire(deflate) == noise.wire


def test_offer_negotiation():
    """What tornado is given to negotiate, and what the client is answered."""
    from tornado.httputil import HTTPHeaders

    def offer(header: str):
        headers = HTTPHeaders({"Sec-WebSocket-Extensions": header})
        deflate = accept_offer(headers, 1024)
        return deflate and deflate.wbits, headers.get("Sec-WebSocket-Extensions")

    browser = "permessage-deflate; client_max_window_bits"
    assert offer(browser) == (15, browser)
    assert offer("permessage-deflate; server_max_window_bits=8, permessage-deflate") == (
        15,
        "permessage-deflate",
    )
    assert offer('permessage-deflate; server_max_window_bits="12"') == (
        12,
        "permessage-deflate; server_max_window_bits=12",
    )
    assert offer("x-webkit-deflate-frame") == (None, None)
    assert offer("permessage-deflate; server_no_context_takeover; server_no_context_takeover") == (
        None,
        None,
    )
    flags = "server_no_context_takeover; client_no_context_takeover"
    assert response_extension("permessage-deflate") == f"permessage-deflate; {flags}"
    assert response_extension("permessage-deflate; server_max_window_bits=12") == (
        f"permessage-deflate; server_max_window_bits=12; {flags}"
    )


async def test_stalled_compressed_reader_is_dropped_with_1013(
    rooms_notebook, collab_client, watchers, room_manager, room_url, collab_token
):
    path = rooms_notebook("stalled-deflate.ipynb", [""])
    alice = await collab_client(path)
    readers = [await watchers(path) for _ in range(3)]
    room = room_manager.find_room(alice.room_id)
    # a deflate viewer that never reads (tornado's client stops reading once one message
    # waits unread): the bound counts what waits for it uncompressed
    stalled = await websocket_connect(
        HTTPRequest(await room_url(path), headers={"Authorization": f"token {collab_token}"}),
        compression_options={},
    )
    await eventually(lambda: len(room.clients) == 5)
    source = alice.document.ycells[0]["source"]
    for _ in range(64):  # hex of random bytes: compresses to about half
        source.insert(len(source), os.urandom(256 * 1024).hex())
        expected = str(source)
        await asyncio.gather(*(r.wait_for_source(expected) for r in readers))
        if len(room.clients) == 4:
            break
    await eventually(lambda: len(room.clients) == 4)
    while await stalled.read_message() is not None:
        pass
    assert stalled.close_code == protocol.CLOSE_TRY_AGAIN_LATER
    assert all(r.updates == readers[0].updates for r in readers[1:])
    again = await watchers(path)  # reconnects and resyncs to the whole document
    assert again.source() == str(source)


async def test_compressed_viewers_cost_the_server_no_zlib_state(
    rooms_notebook, collab_client, watchers
):
    """Tornado made its zlib compressor and decompressor of each deflate connection
    persistent (40-260 kB each); with each message compressed on its own both ways, a
    compressed viewer costs about what a plain one does."""
    import gc
    import tracemalloc

    path = rooms_notebook("memory.ipynb", [""])
    alice = await collab_client(path)
    source = alice.document.ycells[0]["source"]

    async def growth_per_viewer(compression: str | None) -> float:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        viewers = [await watchers(path, compression=compression) for _ in range(12)]
        source.insert(len(source), os.urandom(4000).hex() * 2)  # a compressed frame to each
        await asyncio.gather(*(v.wait_for_source(str(source)) for v in viewers))
        for v in viewers:  # and a compressed message from each, which the server answers
            await v.ws.send(create_sync_message(v.doc))
        await asyncio.gather(*(v.wait_for_answers(2) for v in viewers))
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / len(viewers)

    tracemalloc.start()
    try:
        plain = await growth_per_viewer(None)
        deflated = await growth_per_viewer("deflate")
    finally:
        tracemalloc.stop()
    # (the difference also holds this process's client-side websockets objects; one
    # persistent zlib compressor alone is 256 kB)
    assert deflated - plain < 128 * 1024, (plain, deflated)


async def test_compressed_bomb_is_refused_with_1009(
    rooms_notebook, collab_client, watchers, room_manager
):
    """A client's compressed message that inflates past the size limit closes that connection
    with 1009 while the server inflates at most the limit (a few kB on the wire that would
    inflate to more than twice max_message_size); the room goes on serving everyone else."""
    path = rooms_notebook("bomb.ipynb", [""])
    alice = await collab_client(path)
    bomber = await watchers(path)
    assert bomber.deflate is not None
    inflated = 2 * room_manager.max_message_size + 64 * 1024
    bomb = bytes([protocol.MESSAGE_SYNC, protocol.SYNC_UPDATE]) + bytes(inflated)
    await bomber.ws.send(bomb)
    await asyncio.gather(bomber.task, return_exceptions=True)
    assert bomber.ws.close_code == protocol.CLOSE_TOO_BIG
    del bomb
    # the others still edit and sync
    other = await watchers(path)
    source = alice.document.ycells[0]["source"]
    source.insert(0, "still served")
    await other.wait_for_source("still served")
