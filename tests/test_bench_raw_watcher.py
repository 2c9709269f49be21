"""The fan-out benchmark's cheap watchers (bench/fanout/raw_watcher.py) against a real
``websockets`` server: they must see exactly the messages a full watcher sees (same
fingerprints, a fragmented 300 kB message included), answer the server's y-sync step1 and its
pings, and refuse a compressed frame they did not negotiate."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from websockets.asyncio.server import serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from fanout.raw_watcher import RawWatcher
from fanout.watcher import MSG_AWARENESS, MSG_SYNC, awareness_frame, fingerprint


def _update(size: int) -> bytes:
    """A y-sync update message with ``size`` bytes of (random) payload."""
    body = os.urandom(size)
    return bytes((MSG_SYNC, 2)) + body


def test_raw_watcher_sees_the_same_updates_and_answers_the_protocol() -> None:
    big = _update(300_000)
    updates = [_update(100), big, _update(70_000), _update(3)]
    received: list[bytes] = []

    async def main() -> tuple[RawWatcher, list[bytes]]:
        done = asyncio.Event()

        async def handler(ws) -> None:
            received.append(await ws.recv())  # the watcher's step1
            received.append(await ws.recv())  # its awareness state
            await ws.send(bytes((MSG_SYNC, 0, 1, 0)))  # the server's step1
            received.append(await ws.recv())  # the watcher's step2 answer
            await ws.send(updates[0])
            # the big one in fragments, as a server may send it
            await ws.send([big[:1000], big[1000:200_000], big[200_000:]])
            await asyncio.wait_for(await ws.ping(), 10)  # answered with a pong
            await ws.send(awareness_frame(7, 1, {"user": {"name": "x"}}))
            await ws.send(updates[2])
            await ws.send(updates[3])
            await done.wait()

        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            last = asyncio.Event()
            w = RawWatcher(
                0,
                f"ws://127.0.0.1:{port}/room?token=t",
                until=fingerprint(updates[-1]),  # complete live at the last update
                on_complete=lambda _: last.set(),
            )
            task = asyncio.create_task(w.run({"user": {"name": "raw"}}))
            await asyncio.wait_for(last.wait(), 30)
            assert w.complete_at == w.times[-1]
            w.complete_at = None
            done.set()
            await w.aclose()
            await asyncio.wait_for(task, 10)
        return w, received

    w, received = asyncio.run(main())
    assert w.error is None
    assert received[0] == bytes((MSG_SYNC, 0, 1, 0))  # step1: an empty state vector
    assert received[1][0] == MSG_AWARENESS
    assert received[2] == bytes((MSG_SYNC, 1, 2, 0, 0))  # step2: an empty update
    assert w.fps == [fingerprint(u) for u in updates]
    assert w.awareness_frames == 1
    presence = awareness_frame(7, 1, {"user": {"name": "x"}})
    assert w.bytes == sum(map(len, updates)) + 4 + len(presence)
    # completion by reference: the first k updates equal a full watcher's
    assert not w.resolve([fingerprint(u) for u in updates[:1]] + [fingerprint(updates[2])])
    assert w.resolve([fingerprint(u) for u in updates[:2]])
    assert w.complete_at == w.times[1]


def test_raw_watcher_refuses_compression_it_did_not_offer() -> None:
    async def main() -> RawWatcher:
        async def handler(ws) -> None:
            await ws.recv()
            # a frame with RSV1 set, as a deflate frame is, written past the library
            ws.transport.write(b"\xc2\x03abc")
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            w = RawWatcher(0, f"ws://127.0.0.1:{port}/")
            await asyncio.wait_for(w.run(None), 10)
        return w

    w = asyncio.run(main())
    assert w.error is not None and "RSV" in w.error
    assert w.fps == []


def _compressible_update(size: int) -> bytes:
    """A y-sync update whose payload deflates (cell output is text)."""
    line = os.urandom(8).hex().encode() + b" printed a line\n"
    return bytes((MSG_SYNC, 2)) + (line * (size // len(line) + 1))[:size]


def _deflate_server(no_context_takeover: bool):
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=no_context_takeover,
        client_no_context_takeover=True,
    )
    return {"extensions": [factory], "compression": None, "max_size": None}


def test_raw_watchers_with_deflate_resolve_through_the_inflating_one() -> None:
    """Watchers offering permessage-deflate, as browsers do, against a server that compresses
    each message on its own: each fingerprints the compressed bytes, one inflates for all, and
    both resolve against the plain messages a full watcher sees."""
    from fanout import raw_watcher

    raw_watcher.INFLATED.clear()
    updates = [_compressible_update(50), _compressible_update(220_000), _compressible_update(9)]
    presence = awareness_frame(7, 1, {"user": {"name": "x" * 2000}})  # compressed too
    offers: list[str] = []

    async def main() -> list[RawWatcher]:
        done = asyncio.Event()

        async def handler(ws) -> None:
            offers.append(ws.request.headers.get("Sec-WebSocket-Extensions", ""))
            await ws.recv()  # step1
            await ws.send(bytes((MSG_SYNC, 0, 1, 0)))  # the server's step1
            await ws.recv()  # step2 answer
            await ws.send(presence)
            for u in updates:
                await ws.send(u)
            await done.wait()

        async with serve(handler, "127.0.0.1", 0, **_deflate_server(True)) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/"
            watchers = [
                RawWatcher(0, url, deflate=True, inflates=True),
                RawWatcher(1, url, deflate=True),
            ]
            tasks = [asyncio.create_task(w.run(None)) for w in watchers]
            while not all(len(w.fps) == len(updates) for w in watchers):
                await asyncio.sleep(0.01)
            done.set()
            for w in watchers:
                await w.aclose()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return watchers

    watchers = asyncio.run(main())
    assert all("permessage-deflate" in offer for offer in offers)
    plain = [fingerprint(u) for u in updates]
    for w in watchers:
        assert w.error is None
        assert w.result(0.0)["deflate"]
        assert w.awareness_frames == 1
        assert all(fp[0] < 0 for fp in w.fps)  # the compressed bytes' fingerprints
        assert w.bytes < sum(map(len, updates))  # the big update came deflated
        assert not w.resolve(plain[:1] + plain[2:])
        assert w.resolve(plain)
        assert w.complete_at == w.times[-1]
    assert watchers[0].fps == watchers[1].fps
    raw_watcher.INFLATED.clear()


def test_raw_watchers_refuse_a_server_compressing_per_connection() -> None:
    """With context takeover each connection's compressed bytes differ: refused at once, with
    the reason, instead of being reported incomplete later."""

    async def main() -> RawWatcher:
        async def handler(ws) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, **_deflate_server(False)) as server:
            port = server.sockets[0].getsockname()[1]
            w = RawWatcher(0, f"ws://127.0.0.1:{port}/", deflate=True)
            await asyncio.wait_for(w.run(None), 10)
        return w

    w = asyncio.run(main())
    assert w.error is not None and "context takeover" in w.error
