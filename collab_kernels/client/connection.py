"""A y-websocket client connection to a collab_kernels room, speaking what the browser speaks.

Usage::

    session = await open_session("http://127.0.0.1:8888/", "demo.ipynb", token=token)
    async with RoomConnection.from_session("http://127.0.0.1:8888/", session, token=token) as conn:
        await conn.synced
        conn.document.ycells[0]["source"] += "print(1)"   # local edit, sent to the server
        await conn.wait_for(lambda doc: "print(1)" in str(doc.ycells[0]["source"]))
        assert await conn.save() == "success"

The connection answers the server's sync step1, sends its own, applies every update and
awareness message it receives, sends every local transaction as an update, and keeps the
raw JSON messages (save replies, conflicts) it is sent. ``wait_for`` re-checks its predicate
after every change of the local doc, awareness or raw messages: no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import (
    Awareness,
    Doc,
    create_awareness_message,
    create_sync_message,
    create_update_message,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ..contract import FILE_TYPES, InvalidRoomId, RoomId, parse_room_id
from ..rooms import protocol

DOCUMENT_CLASSES = {"notebook": YNotebook, "file": YUnicode}
FORMATS = FILE_TYPES  # document type -> room id format


@dataclass
class Session:
    """What ``PUT /api/collaboration/session/{path}`` answered."""

    path: str
    format: str
    type: str
    file_id: str
    session_id: str
    status: int

    @property
    def room_id(self) -> str:
        return str(RoomId(self.format, self.type, self.file_id))


class SessionError(Exception):
    """The session endpoint refused (``status`` is the HTTP code)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


def _auth_headers(token: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    result = dict(headers or {})
    if token:
        result.setdefault("Authorization", f"token {token}")
    return result


async def open_session(
    base_url: str,
    path: str,
    file_type: str = "notebook",
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Session:
    """Ask the server for the file id and a session id of ``path`` (raises SessionError)."""
    url = base_url.rstrip("/") + "/api/collaboration/session/" + quote(path.strip("/"), safe="")
    body = {"format": FORMATS.get(file_type, "json"), "type": file_type}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.put(url, json=body, headers=_auth_headers(token, headers))
    if response.status_code not in (200, 201):
        raise SessionError(response.status_code, response.text)
    data = response.json()
    return Session(
        path=path,
        format=data["format"],
        type=data["type"],
        file_id=data["fileId"],
        session_id=data["sessionId"],
        status=response.status_code,
    )


class RoomClosedError(ConnectionError):
    """The server closed the room websocket (``code`` and ``reason`` say why)."""

    def __init__(self, code: int | None, reason: str):
        super().__init__(f"room websocket closed: {code} {reason}")
        self.code = code
        self.reason = reason


class RoomConnection:
    """One y-websocket connection to a room.

    ``ydoc`` may be an existing Doc (e.g. to reconnect with a previous history); ``document``
    is a jupyter_ydoc ``YNotebook`` or ``YUnicode`` bound to it.
    """

    def __init__(
        self,
        base_url: str,
        room_id: str,
        session_id: str | None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        ydoc: Doc[Any] | None = None,
        file_type: str | None = None,
    ):
        self.base_url = base_url
        self.room_id = room_id
        self.session_id = session_id
        self.token = token
        self.headers = headers
        if file_type is None:
            try:
                file_type = parse_room_id(room_id).file_type
            except InvalidRoomId:
                file_type = "notebook"
        self.file_type = file_type
        self.ydoc = ydoc if ydoc is not None else Doc()
        self.awareness = Awareness(self.ydoc)
        doc_class = DOCUMENT_CLASSES.get(file_type, YNotebook)
        self.document = doc_class(self.ydoc, self.awareness)
        self.raw_messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        #: the last frame handed to the websocket: frames go out in the order they are queued
        self._last_send: asyncio.Future[None] | None = None
        self._applying_remote = False
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future[Any]]] = []
        self._save_replies: dict[Any, asyncio.Future[Any]] = {}
        self._next_save_id = 1
        self._check_scheduled = False
        self._subscription: Any = None
        self._awareness_sub: Any = None
        self.synced: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
        self.closed: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_event_loop().create_future()
        )

    @classmethod
    def from_session(cls, base_url: str, session: Session, **kwargs: Any) -> RoomConnection:
        kwargs.setdefault("file_type", session.type)
        return cls(base_url, session.room_id, session.session_id, **kwargs)

    # --- connecting ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/api/collaboration/room/" + self.room_id
        query = {}
        if self.session_id:
            query["sessionId"] = self.session_id
        return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))

    async def connect(self) -> RoomConnection:
        """Open the websocket and start the handshake (await ``synced`` for its end)."""
        self._ws = await ws_connect(
            self.url,
            additional_headers=_auth_headers(self.token, self.headers),
            max_size=None,
            compression=None,
        )
        self._subscription = self.ydoc.observe(self._on_local_event)
        self._awareness_sub = self.awareness.observe(self._on_awareness_event)
        self._reader = asyncio.ensure_future(self._read())
        # If the server refuses the room (e.g. 1003 after a restart) these sends fail:
        # ``synced`` and ``closed`` then tell why.
        with contextlib.suppress(RoomClosedError):
            await self._send(create_sync_message(self.ydoc))
            state = self.awareness.get_local_state()
            if state:
                await self._send(
                    create_awareness_message(
                        self.awareness.encode_awareness_update([self.awareness.client_id])
                    )
                )
        return self

    async def __aenter__(self) -> RoomConnection:
        if self._ws is None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _send(self, frame: bytes) -> None:
        """Send ``frame`` after every frame queued before it (an edit made just before a
        save request reaches the server before it, so the save holds the edit)."""
        if self._ws is None:
            raise RoomClosedError(self.close_code, self.close_reason)
        await self._queue(frame)

    def _send_soon(self, frame: bytes) -> None:
        if self._ws is not None and not self.closed.done():
            task = self._queue(frame)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _queue(self, frame: bytes) -> asyncio.Future[None]:
        task = asyncio.ensure_future(self._send_after(self._last_send, frame))
        self._last_send = task
        return task

    async def _send_after(self, previous: asyncio.Future[None] | None, frame: bytes) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its error is its sender's, not ours
        try:
            await self._ws.send(frame)
        except ConnectionClosed as e:
            raise RoomClosedError(self.close_code, self.close_reason) from e

    async def send_bytes(self, frame: bytes) -> None:
        """Send an arbitrary frame (for tests of the server's input checks)."""
        await self._send(frame)

    # --- receiving -------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    continue
                self._handle(frame)
        except ConnectionClosed:
            pass
        except Exception as e:  # pragma: no cover - a bug, surfaced to waiters
            self._fail(e)
        finally:
            rcvd = getattr(self._ws, "close_rcvd", None)
            self.close_code = rcvd.code if rcvd is not None else self._ws.close_code
            self.close_reason = rcvd.reason if rcvd is not None else (self._ws.close_reason or "")
            error = RoomClosedError(self.close_code, self.close_reason)
            self._fail(error)
            if not self.closed.done():
                self.closed.set_result((self.close_code, self.close_reason))

    def _fail(self, error: Exception) -> None:
        for future in [self.synced, *self._save_replies.values()] + [f for _, f in self._waiters]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: nobody may be awaiting it
        self._waiters.clear()

    def _handle(self, frame: bytes) -> None:
        message = protocol.parse_message(frame)
        if message.kind == "step1":
            update = self.ydoc.get_update(message.payload)
            self._send_soon(protocol.sync_step2_message(update))
        elif message.kind in ("step2", "update"):
            if message.payload != b"\x00\x00":
                self._applying_remote = True
                try:
                    self.ydoc.apply_update(message.payload)
                finally:
                    self._applying_remote = False
            if message.kind == "step2" and not self.synced.done():
                self.synced.set_result(True)
        elif message.kind == "awareness":
            self.awareness.apply_awareness_update(message.payload, "remote")
        elif message.kind == "raw":
            payload = protocol.parse_raw_json(message.payload)
            if payload is not None:
                self.raw_messages.append(payload)
                if payload.get("type") == "save":
                    future = self._save_replies.pop(payload.get("responseTo"), None)
                    if future is not None and not future.done():
                        future.set_result(payload.get("status"))
        self._schedule_check()

    # --- local edits and awareness ---------------------------------------------------------
    def _on_local_event(self, event: Any) -> None:
        if not self._applying_remote:
            self._send_soon(create_update_message(event.update))
        self._schedule_check()

    def _on_awareness_event(self, topic: str, args: Any) -> None:
        _changes, origin = args
        if topic == "update" and origin == "local":
            update = self.awareness.encode_awareness_update([self.awareness.client_id])
            self._send_soon(create_awareness_message(update))

    def set_awareness(self, state: dict[str, Any] | None) -> None:
        """Set (and send) this client's awareness state, e.g. ``{"user": {"name": ...}}``."""
        self.awareness.set_local_state(state)

    # --- waiting ---------------------------------------------------------------------------
    def _schedule_check(self) -> None:
        if not self._check_scheduled:
            self._check_scheduled = True
            asyncio.get_event_loop().call_soon(self._check_waiters)

    def _check_waiters(self) -> None:
        self._check_scheduled = False
        for item in list(self._waiters):
            predicate, future = item
            if future.done():
                self._waiters.remove(item)
                continue
            try:
                ok = predicate(self.document)
            except Exception:
                ok = False
            if ok:
                self._waiters.remove(item)
                future.set_result(True)

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 30) -> None:
        """Wait until ``predicate(document)`` is true; re-checked on every change."""
        try:
            if predicate(self.document):
                return
        except Exception:
            pass
        if self.closed.done():
            raise RoomClosedError(self.close_code, self.close_reason)
        future = asyncio.get_event_loop().create_future()
        item = (predicate, future)
        self._waiters.append(item)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if item in self._waiters:
                self._waiters.remove(item)

    async def wait_for_raw(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for a raw JSON message of ``{"type": kind}`` and return it."""

        def found(_doc: Any) -> bool:
            return any(m.get("type") == kind for m in self.raw_messages)

        await self.wait_for(found, timeout)
        return next(m for m in self.raw_messages if m.get("type") == kind)

    async def wait_closed(self, timeout: float = 30) -> tuple[int | None, str]:
        """Wait until the server closes the connection; returns (code, reason)."""
        return await asyncio.wait_for(asyncio.shield(self.closed), timeout)

    # --- requests --------------------------------------------------------------------------
    async def save(self, timeout: float = 30) -> str:
        """Send the raw save request and return the server's status."""
        request_id = self._next_save_id
        self._next_save_id += 1
        future = asyncio.get_event_loop().create_future()
        self._save_replies[request_id] = future
        await self._send(protocol.save_request_message(request_id))
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        """Close the websocket (idempotent)."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                self.ydoc.unobserve(self._subscription)
            self._subscription = None
        if self._awareness_sub is not None:
            with contextlib.suppress(Exception):
                self.awareness.unobserve(self._awareness_sub)
            self._awareness_sub = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 10)


async def connect_room(
    base_url: str,
    path: str,
    file_type: str = "notebook",
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    wait_synced: bool = True,
) -> RoomConnection:
    """Open a session for ``path`` and a synced connection to its room."""
    session = await open_session(base_url, path, file_type, token=token, headers=headers)
    conn = RoomConnection.from_session(base_url, session, token=token, headers=headers)
    await conn.connect()
    if wait_synced:
        await asyncio.wait_for(asyncio.shield(conn.synced), 30)
    return conn


__all__ = [
    "RoomClosedError",
    "RoomConnection",
    "Session",
    "SessionError",
    "connect_room",
    "open_session",
]
