"""The watchers' own floor: how long N watchers take to take in one update frame from a server
that costs nothing (see bench/fanout_clients_floor.py, its command line, and bench/README.md).

An asyncio server does the websocket handshake by hand and holds the frame encoded once
(deflated once with ``deflate``); it writes it to every connection at once. The watchers are
the benchmark's: pycrdt ones (``raw=False``: a ``Doc`` holding the notebook before the output
and a ``CellView`` checking the text after every update) or raw ones (``raw=True``: frames
parsed, nothing applied; complete when the frame's fingerprint arrived). No server can make
those watchers faster than this.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing as mp
import time

from pycrdt import Array, Doc, Map, Text, create_update_message

from collab_kernels.rooms.deflate import DEFLATE_LEVEL, deflate_message
from collab_kernels.rooms.frames import encode_binary_frame, encode_deflated_frame

from .patterns import PATTERNS
from .raw_watcher import RawWatcher, compressed_fingerprint
from .watcher import CellView, fingerprint, read_var_uint

CELL = "bench"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def documents(text: str) -> tuple[bytes, bytes]:
    """(the notebook before the cell's output, the update that adds it), shaped as our server
    writes a stream output: a Map whose ``text`` is a Text, in the cell's ``outputs``."""
    doc: Doc = Doc()
    cells = doc.get("cells", type=Array)
    cells.append(Map({"id": CELL, "cell_type": "code", "source": Text("..."), "outputs": Array()}))
    cells[0]["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": Text()}))
    before = doc.get_update()
    state = doc.get_state()
    stream = cells[0]["outputs"][0]["text"]
    stream.insert(0, text)
    return before, doc.get_update(state)


def serve(port_q: mp.Queue, go: mp.Event, count: int, wire: bytes, deflate: bool) -> None:
    """The costless server: handshake, then ``wire`` to every connection once ``go`` is set."""

    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []
        everyone = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            ext = (
                b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                if deflate
                else b""
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n" + ext + b"\r\n"
            )
            writers.append(writer)
            if len(writers) == count:
                everyone.set()
            await reader.read()  # until the client goes

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await everyone.wait()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        for writer in writers:
            writer.write(wire)
        await asyncio.gather(*(w.drain() for w in writers))
        await asyncio.sleep(3600)

    asyncio.run(main())


def watch(port: int, count: int, before: bytes, expected: str, deflate: bool, out: mp.Queue):
    """``count`` watchers in one process: (when the last one was complete, CPU seconds)."""

    async def main() -> None:
        from websockets.asyncio.client import connect

        done = asyncio.Event()
        connected = asyncio.Event()
        opened = [0]
        complete = [0]
        last = [0.0]

        async def one() -> None:
            doc: Doc = Doc()
            doc.apply_update(before)
            view = CellView(doc, CELL)
            url = f"ws://127.0.0.1:{port}/"
            compression = "deflate" if deflate else None
            async with connect(url, compression=compression, max_size=None) as ws:
                opened[0] += 1
                if opened[0] == count:
                    connected.set()
                async for data in ws:
                    length, pos = read_var_uint(data, 2)
                    doc.apply_update(data[pos : pos + length])
                    if view.length() == len(expected) and view.text() == expected:
                        complete[0] += 1
                        last[0] = time.monotonic()
                        if complete[0] == count:
                            done.set()

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await connected.wait()
        out.put((0.0, 0.0))
        cpu = time.process_time()
        await done.wait()
        out.put((last[0], time.process_time() - cpu))
        for task in tasks:
            task.cancel()

    asyncio.run(main())


def watch_raw(port: int, count: int, until: tuple[int, int], deflate: bool, out: mp.Queue) -> None:
    """``count`` raw watchers in one process: (when the last one got the frame, CPU seconds)."""

    async def main() -> None:
        done = asyncio.Event()
        complete = [0]
        last = [0.0]

        def completed(w: RawWatcher) -> None:
            complete[0] += 1
            last[0] = max(last[0], w.complete_at or 0.0)
            if complete[0] == count:
                done.set()

        url = f"ws://127.0.0.1:{port}/"
        watchers = [
            RawWatcher(i, url, until=until, on_complete=completed, deflate=deflate)
            for i in range(count)
        ]
        tasks = [asyncio.create_task(w.run(None)) for w in watchers]
        await asyncio.gather(*(w.opened.wait() for w in watchers))
        out.put((0.0, 0.0))
        cpu = time.process_time()
        await done.wait()
        out.put((last[0], time.process_time() - cpu))
        for task in tasks:
            task.cancel()

    asyncio.run(main())


def run_once(
    watchers: int,
    workers: int,
    deflate: bool = False,
    message: bytes | None = None,
    raw: bool = False,
) -> tuple[float, float, int]:
    """(seconds from the write until the last watcher has the frame, the watchers' CPU
    seconds, the frame's size on the wire). ``message``: the y-sync message to send (raw
    watchers only; default: the batched pattern's 20000 lines as one update)."""
    text = PATTERNS["batched20000x200"].expected
    before, update = documents(text)
    if message is None:
        message = create_update_message(update)
    elif not raw:
        raise ValueError("a given message needs raw watchers (the pycrdt ones check the text)")
    wire = encode_binary_frame(message)
    until = fingerprint(message)
    if deflate and (deflated := encode_deflated_frame(message, DEFLATE_LEVEL, 15)):
        wire = deflated
        until = compressed_fingerprint(deflate_message(message, DEFLATE_LEVEL, 15))
    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    out: mp.Queue = ctx.Queue()
    go = ctx.Event()
    server = ctx.Process(target=serve, args=(port_q, go, watchers, wire, deflate), daemon=True)
    server.start()
    port = port_q.get(timeout=30)
    shares = [watchers // workers + (i < watchers % workers) for i in range(workers)]
    procs = [
        ctx.Process(target=watch_raw, args=(port, n, until, deflate, out), daemon=True)
        if raw
        else ctx.Process(target=watch, args=(port, n, before, text, deflate, out), daemon=True)
        for n in shares
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            out.get(timeout=60)
        time.sleep(1.0)  # every handshake done and the processes idle
        t0 = time.monotonic()
        go.set()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in [*procs, server]:
            p.kill()
            p.join(5)
    return max(r[0] for r in results) - t0, sum(r[1] for r in results), len(wire)
