"""The endpoints the JupyterLab docprovider calls: the session PUT and the room websocket."""

from __future__ import annotations

import asyncio
import json
import posixpath
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from ..contract import FILE_TYPES, InvalidRoomId, parse_room_id
from ..handlers_base import CollabHandlerMixin
from . import progressive, protocol
from .content import is_refused_hidden
from .deflate import DEFLATE_LEVEL, Deflate, RoomProtocol, accept_offer, response_extension
from .fanout import Fanout, RoomClient
from .frames import WebsocketWriter
from .manager import RoomNotFound
from .protocol import ProtocolError

AUTH_RESOURCE = "contents"

#: Message handlers still running (save requests), kept referenced until done.
_RUNNING: set[asyncio.Future[None]] = set()


def _check_relative_path(path: str) -> str:
    """An API path inside the root: 400 without a path, 403 for one escaping the root."""
    path = path.replace("\\", "/").strip("/")
    if not path or "\0" in path:
        raise web.HTTPError(400, "A file path is required")
    parts = path.split("/")
    if any(part == ".." for part in parts) or posixpath.isabs(path):
        raise web.HTTPError(403, f"{path} is outside the root directory")
    return path


class SessionHandler(CollabHandlerMixin, APIHandler):
    """``PUT /api/collaboration/session/{path}``: the file id and a session id for a room."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized(action="read", resource=AUTH_RESOURCE)  # type: ignore[untyped-decorator]
    async def put(self, path: str) -> None:
        path = _check_relative_path(path)
        body = self.json_body()
        fmt = body.get("format")
        file_type = body.get("type")
        if (
            not isinstance(file_type, str)
            or file_type not in FILE_TYPES
            or FILE_TYPES[file_type] != fmt
        ):
            raise web.HTTPError(
                400,
                'Expected {"format": "json", "type": "notebook"} or '
                '{"format": "text", "type": "file"}',
            )
        cm = self.contents_manager
        try:
            exists = await ensure_async(cm.file_exists(path))  # type: ignore[no-untyped-call]
        except web.HTTPError as e:
            # The contents manager refuses paths outside its root with 404.
            code = 403 if e.status_code == 404 else e.status_code
            raise web.HTTPError(code, e.log_message) from None
        if not exists or await is_refused_hidden(cm, path):
            # A hidden file the contents manager does not serve does not exist for the client.
            raise web.HTTPError(404, f"No such file: {path}")
        fim = self.room_manager.file_id_manager
        if fim is None:
            raise web.HTTPError(500, "The jupyter_server_fileid extension is not enabled")
        file_id = fim.get_id(path)
        status = 200
        if file_id is None:
            file_id = fim.index(path)
            status = 201
        if file_id is None:
            raise web.HTTPError(404, f"No such file: {path}")
        session_id = self.room_manager.new_session(file_id)
        self.set_status(status)
        self.finish(
            json.dumps(
                {"format": fmt, "type": file_type, "fileId": file_id, "sessionId": session_id}
            )
        )
        # The client opens the room's websocket next: its load starts now (preload.py).
        self.room_manager.preload(self.room_manager.room_id_for(file_id, file_type))


class RoomWebsocketHandler(CollabHandlerMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """``/api/collaboration/room/{format}:{type}:{fileId}?sessionId=...`` (y-websocket v1).

    Needs ``contents:read``; updates from a connection without ``contents:write`` are dropped
    for that connection only (it still receives the live document and awareness).
    """

    auth_resource = AUTH_RESOURCE
    client: RoomClient | None = None
    room: Fanout | None = None
    can_write = False
    can_execute = False
    #: shared compressed frames for this connection (the offer it made, see deflate.py)
    deflate: Deflate | None = None

    def set_default_headers(self) -> None:
        """No JupyterHandler default headers on a websocket."""

    def get_compression_options(self) -> dict[str, Any] | None:
        if self.room_manager.websocket_deflate_threshold > 0:
            return {"compression_level": DEFLATE_LEVEL}
        return self.settings.get("websocket_compression_options", None)

    def set_header(self, name: str, value: Any) -> None:
        if name == "Sec-WebSocket-Extensions" and self.deflate is not None:
            value = response_extension(str(value))
        super().set_header(name, value)

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        # tornado's protocol 13 with its parameters, as the room's kind (deflate.py)
        protocol = super().get_websocket_protocol()
        if not isinstance(protocol, WebSocketProtocol13):
            return protocol
        return RoomProtocol(self, protocol.params, shared_deflate=self.deflate is not None)

    @property
    def max_message_size(self) -> int:
        # Tornado refuses frames beyond this (1009) before buffering them; frames between our
        # limit and this reach on_message, where we close with a log line naming the room.
        return self.room_manager.max_message_size * 2 + 1024

    @ws_authenticated
    async def get(self, room_id: str) -> None:
        user = self.current_user
        authorized_read = await ensure_async(
            self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)
        )
        if not authorized_read:
            raise web.HTTPError(403)
        self.can_write = bool(
            await ensure_async(self.authorizer.is_authorized(self, user, "write", AUTH_RESOURCE))
        )
        self.can_execute = bool(
            await ensure_async(self.authorizer.is_authorized(self, user, "execute", "kernels"))
        )
        self.room_id = room_id
        self.session_id = self.get_argument("sessionId", None)
        threshold = self.room_manager.websocket_deflate_threshold
        if threshold > 0:
            self.deflate = accept_offer(self.request.headers, threshold)
        await super().get(room_id)

    def _user_name(self) -> str:
        user = self.current_user
        name = getattr(user, "username", None) or str(user)
        return f"{name} ({self.request.remote_ip})"

    async def open(self, room_id: str) -> None:
        super().open()
        self.set_nodelay(True)
        manager = self.room_manager
        client = RoomClient(
            write=WebsocketWriter(self, self.deflate),  # shared frame bytes
            close=self._close_socket,
            can_write=self.can_write,
            name=self._user_name(),
            max_queue=manager.client_queue_size,
            max_bytes=manager.client_queue_bytes,
            log=self.log,
        )
        client.user = self.current_user
        client.can_execute = self.can_execute
        client.progressive = progressive.is_browser(self.request.headers)
        if room_id == protocol.GLOBAL_AWARENESS_ROOM:
            room: Fanout = manager.global_awareness
        else:
            try:
                file_id = parse_room_id(room_id).file_id
            except InvalidRoomId as e:
                self.log.warning("collab_kernels: refusing room websocket: %s", e)
                self._close_socket(protocol.CLOSE_BAD_REQUEST, "invalid room id")
                return
            if not manager.session_known(self.session_id, file_id):
                self._close_session("unknown_session")
                return
            try:
                room = await manager.get_room(room_id)
            except RoomNotFound:
                self._close_socket(protocol.CLOSE_NOT_FOUND, "no such file")
                return
            except Exception:
                self.log.exception("collab_kernels: could not open room %s", room_id)
                self._close_socket(protocol.CLOSE_INTERNAL, "could not load the document")
                return
            reason = manager.check_session(self.session_id, room)
            if reason is not None:
                self._close_session(reason)
                return
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        self.room = room
        self.client = client
        room.add_client(client)
        self.log.debug(
            "collab_kernels: %s joined %s%s",
            client.name,
            room.describe(),
            "" if client.can_write else " (read-only)",
        )

    def _close_session(self, reason: str) -> None:
        """Close with 1003 after ``stale_session_close_delay``: the stock frontend reconnects
        at once after each close while its reload dialog is open (the issue measured 105
        attempts in 12 s from one browser); meanwhile the connection's messages are ignored."""
        self.log.info(
            "collab_kernels: asking %s to reload room %s (%s)",
            self._user_name(),
            self.room_id,
            reason,
        )
        message = protocol.session_close_reason(reason, self.session_id)
        delay = self.room_manager.stale_session_close_delay
        if delay > 0:
            asyncio.get_running_loop().call_later(
                delay, self._close_socket, protocol.CLOSE_SESSION, message
            )
        else:
            self._close_socket(protocol.CLOSE_SESSION, message)

    def _close_socket(self, code: int, reason: str) -> None:
        if self.ws_connection is not None:
            self.close(code, reason)

    def on_message(self, message: str | bytes) -> None:
        client, room = self.client, self.room
        if client is None or room is None or client.closed:
            return
        limit = self.room_manager.max_message_size
        if len(message) > limit:
            self.log.warning(
                "collab_kernels: closing %s on %s: frame of %d bytes exceeds max_message_size (%d)",
                client.name,
                room.describe(),
                len(message),
                limit,
            )
            client.close(protocol.CLOSE_TOO_BIG, "message too big")
            return
        try:
            result = room.handle_message(client, message)  # type: ignore[arg-type]
        except ProtocolError as e:
            self.log.warning(
                "collab_kernels: closing %s on %s: malformed or refused message (%s)",
                client.name,
                room.describe(),
                e,
            )
            too_big = e.close_code == protocol.CLOSE_TOO_BIG
            client.close(e.close_code, "message too big" if too_big else "malformed message")
            return
        except Exception:
            self.log.exception(
                "collab_kernels: closing %s on %s: message could not be handled",
                client.name,
                room.describe(),
            )
            client.close(protocol.CLOSE_SERVER_ERROR, "message could not be handled")
            return
        if result is not None:
            task = asyncio.ensure_future(result)
            _RUNNING.add(task)
            task.add_done_callback(_RUNNING.discard)

    def on_close(self) -> None:
        if self.client is not None:
            self.client.stopped()
            where = self.room.describe() if self.room is not None else "?"
            self.log.debug("collab_kernels: %s left %s", self.client.name, where)
        self.client = None


default_handlers = [
    (r"/api/collaboration/session/(.*)", SessionHandler),
    (r"/api/collaboration/room/([^/]+)", RoomWebsocketHandler),
]
