"""The watchers' own floor: how long fanout_bench's watchers take to take in one big update
when the server costs nothing.

    .venv/bin/python bench/fanout_clients_floor.py                      # 300 watchers, 2 processes
    .venv/bin/python bench/fanout_clients_floor.py --watchers 1000 --deflate

fanout_bench's batched20000x200 pattern ends with one Y update of 219 kB (the cell's 20000
lines) that every watcher must receive, apply to its pycrdt document and check. This script
replays that work without jupyter_server or a kernel: an asyncio server that does the
websocket handshake by hand and holds the update's frame encoded once (deflated once with
``--deflate``), and the same watchers as the benchmark (``websockets`` clients in worker
processes, each with a pycrdt ``Doc`` holding the notebook before the output and a
``CellView`` checking the text after every update). It writes the frame to every connection
at once and reports the time until the last watcher's document holds the text, with the
watchers' CPU time. No server can make fanout_bench's watchers faster than this, so it is the
lower bound of that scenario's time after the kernel's last output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing as mp
import sys
import time
from pathlib import Path

import psutil
from pycrdt import Array, Doc, Map, Text, create_update_message

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout.patterns import PATTERNS
from fanout.watcher import CellView, read_var_uint

from collab_kernels.rooms.deflate import DEFLATE_LEVEL
from collab_kernels.rooms.frames import encode_binary_frame, encode_deflated_frame

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


def run_once(watchers: int, workers: int, deflate: bool) -> tuple[float, float, int]:
    text = PATTERNS["batched20000x200"].expected
    before, update = documents(text)
    message = create_update_message(update)
    wire = encode_binary_frame(message)
    if deflate:
        wire = encode_deflated_frame(message, DEFLATE_LEVEL, 15) or wire
    port_q: mp.Queue = mp.Queue()
    out: mp.Queue = mp.Queue()
    go = mp.Event()
    server = mp.Process(target=serve, args=(port_q, go, watchers, wire, deflate), daemon=True)
    server.start()
    port = port_q.get(timeout=30)
    shares = [watchers // workers + (i < watchers % workers) for i in range(workers)]
    procs = [
        mp.Process(target=watch, args=(port, n, before, text, deflate, out), daemon=True)
        for n in shares
    ]
    for p in procs:
        p.start()
    for _ in procs:
        out.get(timeout=60)
    time.sleep(1.0)  # every handshake done and the processes idle
    t0 = time.monotonic()
    go.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in [*procs, server]:
        p.kill()
    return max(r[0] for r in results) - t0, sum(r[1] for r in results), len(wire)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="watcher processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deflate", action="store_true", help="the frame compressed once")
    args = parser.parse_args()
    for _ in range(args.repeats):
        load = psutil.getloadavg()[0]
        seconds, cpu, size = run_once(args.watchers, args.workers, args.deflate)
        print(
            f"{args.watchers} watchers, {size / 1000:.0f} kB frame"
            f"{' (deflated)' if args.deflate else ''}: last complete {seconds * 1000:.0f} ms "
            f"after the write, watcher CPU {cpu:.2f} s, load {load:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
