"""A raw y-websocket watcher for room tests: a ``websockets`` client (as many scripts, and as
the benchmark's watchers; it offers permessage-deflate as browsers do unless told
``compression=None``) that keeps every update message the server sent it, byte for byte."""

from __future__ import annotations

import asyncio

from pycrdt import Array, Doc, Map, Text, create_sync_message, handle_sync_message
from websockets.asyncio.client import connect as ws_connect

from collab_kernels.rooms import protocol


class Watcher:
    """A ``websockets`` y-websocket client keeping every update message it received."""

    def __init__(self, url: str, token: str, offer: str | None = None, **connect_args):
        self.url, self.token, self.connect_args = url, token, connect_args
        self.headers = {"Authorization": f"token {token}"}
        if offer is not None:  # an extension offer of our own (with compression=None)
            self.headers["Sec-WebSocket-Extensions"] = offer
        self.doc: Doc = Doc()
        self.updates: list[bytes] = []
        self.answers = 0
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.ws = None
        self.task: asyncio.Task | None = None

    async def start(self) -> Watcher:
        self.ws = await ws_connect(
            self.url,
            additional_headers=self.headers,
            max_size=None,
            **self.connect_args,
        )
        await self.ws.send(create_sync_message(self.doc))
        self.task = asyncio.ensure_future(self._read())
        await asyncio.wait_for(self.synced.wait(), 30)
        return self

    async def _read(self) -> None:
        async for message in self.ws:
            if not isinstance(message, bytes) or message[0] != protocol.MESSAGE_SYNC:
                continue
            if message[1] == protocol.SYNC_UPDATE:
                self.updates.append(message)
            reply = handle_sync_message(message[1:], self.doc)
            if reply is not None:
                await self.ws.send(reply)
            if message[1] == 1:  # the server's sync step 2 (the answer to our step 1)
                self.answers += 1
                self.synced.set()
            self.changed.set()

    def source(self) -> str:
        cells = self.doc.get("cells", type=Array)
        cell = cells[0] if len(cells) else None
        source = cell["source"] if isinstance(cell, Map) else None
        return str(source) if isinstance(source, Text) else ""

    async def wait_for_source(self, expected: str) -> None:
        while self.source() != expected:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)

    async def wait_for_answers(self, count: int) -> None:
        while self.answers < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)

    @property
    def deflate(self):
        """The negotiated permessage-deflate extension, or None."""
        (ext,) = self.ws.protocol.extensions or [None]
        return ext

    @property
    def negotiated(self) -> list[str]:
        """The names of the websocket extensions the server agreed to."""
        return [ext.name for ext in self.ws.protocol.extensions]

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
