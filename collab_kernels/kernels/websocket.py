"""Kernel websockets as listeners of the kernel's shared client.

``SharedClientWebsocketConnection`` keeps jupyter_server's kernel websocket behaviour (both
the legacy JSON protocol and ``v1.kernel.websocket.jupyter.org``, rate limiting, traceback
hiding, allowed message types, stale-session replacement, connection counting, the offline
buffer and its replay, "restarting"/"dead" status on auto-restart) but opens no ZMQ socket:
it registers a listener on the shared client. Replies on shell, control and stdin come back
only to the tab whose request they answer; iopub goes to every tab.

Where the kernel manager is not ours (no ``shared_client``), it behaves exactly as stock.
"""

from __future__ import annotations

import asyncio
import json
import typing as t

from jupyter_client.jsonutil import json_default
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web
from tornado.websocket import WebSocketClosedError
from traitlets import Any, Bool, Int

from .client import REQUEST_CHANNELS, KernelMessage, Listener, SharedKernelClient
from .frames import legacy_frame_problem, v1_frame_problem

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


#: close code for a frame whose shape is refused (RFC 6455: invalid frame payload data)
CLOSE_MALFORMED = 1007


def v1_frame_is_sane(frame: t.Any, max_buffers: int = 4096) -> bool:
    """Whether a v1 frame's offset table is sound (see frames.py; used by gateway/client.py)."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        return False
    return v1_frame_problem(frame, max_buffers) is None


class SharedClientWebsocketConnection(ZMQChannelsWebsocketConnection):
    """A kernel websocket that listens to the kernel's shared client."""

    tcp_nodelay = Bool(
        True,
        config=True,
        help=(
            "Disable Nagle's algorithm on kernel websockets: small frames (status, replies) "
            "otherwise wait up to ~40 ms for delayed ACKs."
        ),
    )

    max_buffers = Int(
        64,
        min=0,
        config=True,
        help=(
            "Most binary buffers one kernel message from a websocket may carry (legacy binary "
            "frames and v1 frames alike). The frame's buffer table is checked against it and "
            "against the frame's own size before anything is parsed or allocated; a frame "
            "that fails closes its websocket with 1007 and a warning in the log."
        ),
    )

    listener = Any(None, allow_none=True)

    _disconnected = False
    #: decided once in prepare(): shared client (ours) or stock ZMQ sockets per websocket
    _use_shared = False

    @property
    def shared_client(self) -> SharedKernelClient | None:
        return getattr(self.kernel_manager, "shared_client", None)

    @property
    def _is_shared(self) -> bool:
        client = self.shared_client
        return client is not None and not client.closed

    @property
    def origin(self) -> str:
        """How request hooks see this connection."""
        return f"websocket:{self.session_key or self.session.session}"

    # ---------------------------------------------------------------- open

    async def prepare(self) -> None:
        self._use_shared = self._is_shared
        if not self._use_shared:
            if self.shared_client is not None:
                # ours, but shut down or dead: never fall back to per-tab sockets
                raise web.HTTPError(404, f"Kernel {self.kernel_id} is not running")
            await super().prepare()  # type: ignore[no-untyped-call]
            return
        await self._register_session()  # type: ignore[no-untyped-call]
        if hasattr(self.kernel_manager, "ready"):
            ready = self.kernel_manager.ready
            if not isinstance(ready, asyncio.Future):
                ready = asyncio.wrap_future(ready)
            try:
                await ready
            except Exception as e:
                self.kernel_manager.execution_state = "dead"
                self.kernel_manager.reason = str(e)
                raise web.HTTPError(500, str(e)) from e
        client = self.shared_client
        assert client is not None
        try:
            if client.websockets_wait_ready:
                await client.wait_ready(timeout=self.kernel_info_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            # Stock gives up waiting for kernel_info the same way and connects anyway.
            self.log.warning("Timeout waiting for kernel_info reply from %s", self.kernel_id)
        except asyncio.CancelledError as e:
            raise web.HTTPError(404, f"Kernel {self.kernel_id} is shutting down") from e
        self.session.key = self.kernel_manager.session.key

    def connect(self) -> t.Any:
        if not self._use_shared:
            return super().connect()
        if self.tcp_nodelay:
            try:
                self.websocket_handler.set_nodelay(True)
            except Exception:  # pragma: no cover - stream already gone
                pass
        mkm = self.multi_kernel_manager
        client = self.shared_client
        assert client is not None
        mkm.notify_connect(self.kernel_id)
        buffer_info = mkm.get_buffer(self.kernel_id, self.session_key)
        self.listener = client.add_listener(
            self._on_kernel_message,
            replies="owned",
            skip_withheld=True,
            name=f"websocket {self.session_key}",
        )
        # Non-empty so stock helpers that check self.channels see an open connection.
        self.channels = {channel: client for channel in ("iopub", *REQUEST_CHANNELS)}
        if buffer_info and buffer_info.get("session_key") == self.session_key:
            self.log.info("Restoring connection for %s", self.session_key)
            old = buffer_info.get("listener")
            if old is not None:
                client.transfer_ownership(old, self.listener)
            replay = list(buffer_info["buffer"])
            if replay:
                self.log.info("Replaying %s buffered messages", len(replay))
            for _channel, msg in replay:
                self._on_kernel_message(msg)
        mkm.add_restart_callback(self.kernel_id, self.on_kernel_restarted)
        mkm.add_restart_callback(self.kernel_id, self.on_restart_failed, "dead")
        ZMQChannelsWebsocketConnection._open_sockets.add(self)
        self._nudge_kernel(client)
        done: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        done.set_result(None)
        return done

    def _nudge_kernel(self, client: SharedKernelClient) -> None:
        """Stock nudges the kernel with a kernel_info request on every websocket open (unless
        busy); its status turns a new kernel's execution_state from "starting" to "idle"."""
        if getattr(self.kernel_manager, "execution_state", None) == "busy":
            return
        request = asyncio.ensure_future(
            client.request("kernel_info_request", timeout=self.kernel_info_timeout)
        )
        request.add_done_callback(lambda f: f.cancelled() or f.exception())

    # ---------------------------------------------------------------- close

    def disconnect(self) -> None:  # type: ignore[override]
        if not self._use_shared:
            super().disconnect()  # type: ignore[no-untyped-call]
            return
        if self._disconnected:
            return
        self._disconnected = True
        mkm = self.multi_kernel_manager
        mkm.notify_disconnect(self.kernel_id)
        self.log.debug("Websocket closed %s", self.session_key)
        if self._open_sessions.get(self.session_key) is self.websocket_handler:
            self._open_sessions.pop(self.session_key)
        listener = self.listener
        self.listener = None
        self.channels = {}
        if self.kernel_id in mkm:
            mkm.remove_restart_callback(self.kernel_id, self.on_kernel_restarted)
            mkm.remove_restart_callback(self.kernel_id, self.on_restart_failed, "dead")
            if (
                listener is not None
                and mkm._kernel_connections.get(self.kernel_id, None) == 0
                and self._is_shared
            ):
                # Last tab gone: hold its messages until it comes back (stock behaviour).
                mkm.start_buffering(self.kernel_id, self.session_key, owner=listener)
        if listener is not None:
            listener.client.remove_listener(listener)
        ZMQChannelsWebsocketConnection._open_sockets.discard(self)
        if not self._close_future.done():
            self._close_future.set_result(None)

    # ---------------------------------------------------------------- browser -> kernel

    def frame_problem(self, incoming_msg: t.Any) -> str | None:
        """What is wrong with the shape of a frame from the browser, or ``None``."""
        binary = isinstance(incoming_msg, (bytes, bytearray, memoryview))
        if self.subprotocol == V1_PROTOCOL:
            if not binary:
                return "a v1 message must be a binary frame"
            return v1_frame_problem(incoming_msg, self.max_buffers)
        if binary:
            return legacy_frame_problem(incoming_msg, self.max_buffers)
        return None

    def handle_incoming_message(self, incoming_msg: t.Any) -> None:
        problem = self.frame_problem(incoming_msg)
        if problem is not None:
            self.log.warning(
                "Kernel %s: closing websocket %s: malformed %s frame of %d bytes: %s",
                self.kernel_id,
                getattr(self, "session_key", "?"),
                "v1" if self.subprotocol == V1_PROTOCOL else "legacy binary",
                len(incoming_msg),
                problem,
            )
            handler = self.websocket_handler
            if handler is not None and handler.ws_connection is not None:
                handler.close(CLOSE_MALFORMED, "malformed kernel message")
            return
        if not self._use_shared:
            return super().handle_incoming_message(incoming_msg)
        client = self.shared_client
        if self.listener is None or client is None or client.closed:
            self.log.debug("Received message on closed websocket %r", incoming_msg)
            return
        frames = None
        msg = None
        try:
            if self.subprotocol == V1_PROTOCOL:
                channel, frames = deserialize_msg_from_ws_v1(incoming_msg)  # type: ignore[no-untyped-call]
                header = self.session.unpack(frames[0])
            else:
                if isinstance(incoming_msg, bytes):
                    msg = deserialize_binary_message(incoming_msg)  # type: ignore[no-untyped-call]
                else:
                    msg = json.loads(incoming_msg)
                channel = msg.pop("channel", None)
                header = msg["header"]
            msg_type = header["msg_type"]
        except Exception:
            self.log.warning(
                "Kernel %s: malformed message from websocket %s ignored",
                self.kernel_id,
                self.session_key,
                exc_info=True,
            )
            return
        if channel is None:
            self.log.warning("No channel specified, assuming shell: %s", msg_type)
            channel = "shell"
        if channel not in REQUEST_CHANNELS:
            self.log.warning("No such channel: %r", channel)
            return
        allowed = self.multi_kernel_manager.allowed_message_types
        if allowed and msg_type not in allowed:
            self.log.warning(
                'Received message of type "%s", which is not allowed. Ignoring.', msg_type
            )
            return
        try:
            client.forward_request(
                channel, msg, frames=frames, owner=self.listener, origin=self.origin
            )
        except Exception:
            self.log.warning(
                "Kernel %s: could not send %s from %s",
                self.kernel_id,
                msg_type,
                self.session_key,
                exc_info=True,
            )

    # ---------------------------------------------------------------- kernel -> browser

    def _on_kernel_message(self, msg: KernelMessage) -> None:
        handler = self.websocket_handler
        if handler is None or handler.ws_connection is None:
            return
        channel = msg.channel
        v1 = self.subprotocol == V1_PROTOCOL
        parts = msg.raw[1:]
        if channel == "iopub":
            if self.limit_rate:
                probe = {"header": msg.header, "parent_header": msg.parent_header, "content": None}
                if msg.msg_type == "status":
                    probe["content"] = msg.content
                if self._limit_rate(channel, probe, parts):  # type: ignore[no-untyped-call]
                    return
            if msg.msg_type == "error" and not self.multi_kernel_manager.allow_tracebacks:
                self._write_hidden_traceback(msg, v1)
                return
        try:
            if v1:
                handler.write_message(msg.ws_v1(), binary=True)
            else:
                data = msg.ws_legacy()
                handler.write_message(data, binary=isinstance(data, bytes))
        except WebSocketClosedError as e:
            self.log.warning(str(e))

    def _write_hidden_traceback(self, msg: KernelMessage, v1: bool) -> None:
        """Stock ``_on_error``: replace the traceback, on a copy (the message is shared)."""
        mkm = self.multi_kernel_manager
        content = dict(msg.content)
        content["ename"] = "ExecutionError"
        content["evalue"] = "Execution error"
        content["traceback"] = [mkm.traceback_replacement_message]
        if v1:
            parts = list(msg.raw[1:])
            parts[3] = self.session.pack(content)
            self.websocket_handler.write_message(
                serialize_msg_to_ws_v1(parts, msg.channel),  # type: ignore[no-untyped-call]
                binary=True,
            )
        else:
            out = dict(msg.parsed)
            out["content"] = content
            out["channel"] = msg.channel
            out.pop("buffers", None)
            self.websocket_handler.write_message(json.dumps(out, default=json_default))

    def _send_status_message(self, status: str) -> None:
        if not self._use_shared:
            super()._send_status_message(status)  # type: ignore[no-untyped-call]
            return
        client = self.shared_client
        if client is not None:
            # deliver what iopub already holds first, so the status comes after it
            client.flush("iopub")
        msg = self.session.msg("status", {"execution_state": status})
        try:
            if self.subprotocol == V1_PROTOCOL:
                self.write_message(
                    serialize_msg_to_ws_v1(msg, "iopub", self.session.pack),  # type: ignore[no-untyped-call]
                    binary=True,
                )
            else:
                msg["channel"] = "iopub"
                self.write_message(json.dumps(msg, default=json_default))
        except WebSocketClosedError as e:
            self.log.warning(str(e))


__all__ = ["Listener", "SharedClientWebsocketConnection"]
