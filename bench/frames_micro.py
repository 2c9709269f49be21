"""Server CPU per frame per connection: tornado's write_message vs shared frames (rooms/frames.py).

    .venv/bin/python bench/frames_micro.py [--connections 1000] [--frames 40] [--size 700]

One process runs a plain tornado websocket server and a room's fan-out (``Fanout`` and one
``RoomClient`` per connection, as the room websocket handler wires them); a child process
opens the connections and only reads. The room broadcasts ``--frames`` messages of ``--size``
bytes, 20 ms apart, first through each handler's ``write_message`` (the old path), then through
``WebsocketWriter`` (one frame built per message, its bytes written to every stream), on the
same connections. Reported: this process's CPU seconds per frame per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import tornado.web
import tornado.websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collab_kernels.rooms.clients import RoomClient
from collab_kernels.rooms.fanout import Fanout
from collab_kernels.rooms.frames import Frame, WebsocketWriter

READERS = r"""
import asyncio, base64, os, sys

async def one(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    while await reader.read(1 << 16):
        pass

async def main(port, n):
    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(one(port)))
        if i % 50 == 0:
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""

HANDLERS: list[tornado.websocket.WebSocketHandler] = []


class Handler(tornado.websocket.WebSocketHandler):
    def open(self) -> None:
        self.set_nodelay(True)
        HANDLERS.append(self)

    def on_message(self, message: str | bytes) -> None:
        pass


def tornado_writer(handler: tornado.websocket.WebSocketHandler):
    return lambda frame: handler.write_message(frame.payload, binary=True)


async def measure(mode: str, frames: int, size: int) -> float:
    log = logging.getLogger("frames_micro")
    room = Fanout(mode, log=log)
    for handler in HANDLERS:
        write = WebsocketWriter(handler) if mode == "shared" else tornado_writer(handler)
        client = RoomClient(
            write=write,
            close=lambda code, reason: None,
            can_write=True,
            name="reader",
            max_queue=10000,
            log=log,
        )
        room.clients.add(client)
        client.room = room
        client.start()
    payload = os.urandom(size)
    await asyncio.sleep(0.5)
    cpu = time.process_time()
    for _ in range(frames):
        room.broadcast(Frame(payload))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    used = time.process_time() - cpu
    for client in list(room.clients):
        client.closed = True  # stop the writer tasks without closing the sockets
        client._wakeup.set()
    return used / (frames * len(HANDLERS))


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", type=int, default=700)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    # futures of writes still pending when the readers go away at the end: not errors here
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
    app = tornado.web.Application([("/ws", Handler)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app.listen(port, "127.0.0.1")
    readers = subprocess.Popen([sys.executable, "-c", READERS, str(port), str(args.connections)])
    try:
        while len(HANDLERS) < args.connections:
            await asyncio.sleep(0.05)
        for _ in range(args.repeats):
            for mode in ("write_message", "shared"):
                per = await measure(mode, args.frames, args.size)
                print(
                    f"{mode:>13}: {per * 1e6:5.1f} us server CPU per frame per connection "
                    f"({args.connections} connections, {args.size}-byte frames)",
                    flush=True,
                )
    finally:
        readers.kill()


if __name__ == "__main__":
    asyncio.run(main())
