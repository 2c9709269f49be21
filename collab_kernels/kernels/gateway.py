"""Remote kernels: the shared client of a gateway kernel is one websocket to the gateway.

With ``GatewayClient.url`` set (config, ``--gateway-url`` or ``JUPYTER_GATEWAY_URL``) kernels
run on a Jupyter Kernel Gateway or Enterprise Gateway. jupyter_server then proxies every
browser tab over its own gateway websocket and the server itself has no view of the kernel's
messages. Here, as for local kernels, each kernel has one shared client and every consumer
(browser tabs in both websocket protocols, documents, the CLI and the Python client through
the server's endpoints) is a listener on it:

- ``GatewayKernelClient``: a ``SharedKernelClient`` whose transport is one websocket to the
  gateway's ``/api/kernels/{id}/channels`` instead of ZMQ sockets. It connects with the
  gateway client's connection arguments (headers with the auth token and scheme, cookies,
  TLS files, timeouts), speaks ``v1.kernel.websocket.jupyter.org`` when the gateway offers
  it (Kernel Gateway 3) and the legacy JSON protocol otherwise (Enterprise Gateway 3, which
  runs jupyter_server 1), sends binary frames for messages with buffers, puts ``"channel"``
  on every message, and reconnects with the ``gateway_retry_*`` backoff under the same
  session id, so the gateway replays what it buffered while the websocket was down.
- ``CollabGatewayKernelManager`` / ``CollabGatewayMappingKernelManager``: jupyter_server's
  gateway managers (start, restart, interrupt and shut down over REST, as stock) that give
  each kernel its shared client and keep the server's own bookkeeping (connections per tab,
  activity from iopub, the offline buffer of a tab whose websocket dropped).

Browser tabs use ``SharedClientWebsocketConnection`` unchanged: it only needs the kernel's
``shared_client``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import socket
import typing as t
import uuid
from collections import deque
from pathlib import Path
from threading import Thread

import websocket
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.jsonutil import json_default
from jupyter_client.session import DELIM
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import (
    ChannelQueue,
    GatewayKernelManager,
    GatewayMappingKernelManager,
)
from jupyter_server.gateway.managers import GatewayKernelClient as GatewayKernelClient_
from jupyter_server.services.kernels.connection import base as _wire
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.escape import url_escape
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect
from traitlets import (
    Bool,
    CaselessStrEnum,
    DottedObjectName,
    Float,
    Instance,
    Integer,
    Type,
    Unicode,
    default,
)

from .client import REQUEST_CHANNELS, KernelMessage, Listener, SharedKernelClient
from .manager import SharedClientMappingKernelManager
from .websocket import V1_PROTOCOL, v1_frame_is_sane

# jupyter_server's wire helpers, typed
_from_v1 = t.cast(t.Callable[[bytes], tuple[str, list[bytes]]], _wire.deserialize_msg_from_ws_v1)
_to_v1 = t.cast(t.Callable[[list[bytes], str], bytes], _wire.serialize_msg_to_ws_v1)
_from_binary = t.cast(t.Callable[[bytes], dict[str, t.Any]], _wire.deserialize_binary_message)
_to_binary = t.cast(t.Callable[[dict[str, t.Any]], bytes], _wire.serialize_binary_message)

#: The namespace of the websocket session ids this server presents to a gateway.
SESSION_NAMESPACE = uuid.UUID("5f3c2b1e-8d4a-4c36-9a57-6f0e4b7d2c19")


class _WebsocketChannel:
    """One channel of the gateway websocket, in the shape the shared client sends to.

    ``SharedKernelClient`` signs and frames each message with ``Session.send`` /
    ``send_raw`` into a "stream" (for local kernels a ``ZMQStream``); this one hands the
    frames to the gateway websocket instead.
    """

    def __init__(self, client: GatewayKernelClient, channel: str):
        self.client = client
        self.channel = channel

    def send_multipart(self, frames: list[t.Any], *args: t.Any, **kwargs: t.Any) -> None:
        # [idents..., DELIM, signature, header, parent, metadata, content, *buffers]
        parts = [bytes(f) if not isinstance(f, bytes) else f for f in frames]
        start = parts.index(DELIM) + 2 if DELIM in parts else 1
        self.client._write(self.channel, parts[start:])

    def flush(self, *args: t.Any, **kwargs: t.Any) -> int:
        return 0

    def closed(self) -> bool:
        return self.client.closed


class GatewayKernelClient(SharedKernelClient):
    """The shared client of a gateway kernel: one websocket to the gateway.

    Ready once the kernel answered a ``kernel_info_request`` sent over the websocket (and
    the status of that request arrived on iopub, so the activity tracker saw one).
    Lifecycle events: ``"restarted"`` after a restart through the REST API or when the
    gateway reports an automatic restart (``status: restarting``), ``"dead"`` when the
    gateway reports the kernel dead, the kernel is gone from the gateway, or the websocket
    cannot be re-established within ``GatewayClient.gateway_retry_max`` attempts;
    ``"shutdown"`` on shutdown.
    """

    websocket_protocol = CaselessStrEnum(
        ["auto", "legacy"],
        default_value="auto",
        config=True,
        help=(
            "Kernel websocket protocol towards the gateway: 'auto' asks for "
            "v1.kernel.websocket.jupyter.org (binary frames, no JSON re-encoding; Kernel "
            "Gateway 3 offers it) and falls back to the legacy JSON protocol when the "
            "gateway does not select it (Enterprise Gateway 3); 'legacy' always uses JSON."
        ),
    )

    max_message_size = Integer(
        1024 * 1024 * 1024,
        config=True,
        help=(
            "Largest websocket message (bytes) accepted from the gateway; tornado's default "
            "of 10 MiB would drop the connection on one large output or widget buffer."
        ),
    )

    pending_send_limit = Integer(
        10000,
        config=True,
        help=(
            "Messages kept while the websocket to the gateway is being re-established; they "
            "are sent, in order, once it is back. Beyond this the oldest are dropped (logged)."
        ),
    )

    tcp_nodelay = Bool(
        True,
        config=True,
        help=(
            "Disable Nagle's algorithm on the websocket to the gateway: small frames "
            "(execute requests, replies, status) otherwise wait for delayed ACKs (~40 ms)."
        ),
    )

    tcp_quickack = Bool(
        True,
        config=True,
        help=(
            "Acknowledge every frame from the gateway at once (Linux TCP_QUICKACK). The "
            "gateway's websocket keeps Nagle's algorithm on, so the second of two quick "
            "frames (a reply, then the idle status) otherwise waits for our delayed ACK: "
            "~40 ms on every execution."
        ),
    )

    ready_attempt_timeout = Float(
        2.0,
        config=True,
        help=(
            "Seconds to wait for each kernel_info reply over the gateway websocket before "
            "asking again (until the kernel manager's kernel_info_timeout)."
        ),
    )

    # As jupyter_server's gateway websocket: a tab connects without waiting for the kernel
    # to answer (sends wait in the outbox; the gateway relays the replies).
    websockets_wait_ready = False

    def __init__(self, kernel_manager: t.Any, session_id: str | None = None, **kwargs: t.Any):
        super().__init__(kernel_manager, **kwargs)
        # The gateway signs what it forwards to the kernel: websocket messages carry no
        # signature, so our session has no key (its signatures are empty).
        self.session.key = b""
        self.session.session = session_id or f"collab-kernels-{uuid.uuid4()}"
        self.ws: WebSocketClientConnection | None = None
        #: the subprotocol the gateway selected ("" = legacy JSON)
        self.protocol: str | None = None
        self.reconnects = 0
        self.dropped_sends = 0
        self._channels = {ch: _WebsocketChannel(self, ch) for ch in REQUEST_CHANNELS}
        self._outbox: deque[tuple[str, list[bytes]]] = deque()
        self._gw_closed = False
        self._gw_ready: asyncio.Future[None] | None = None
        self._run_task: asyncio.Future[None] | None = None
        self._ready_task: asyncio.Future[None] | None = None
        self._ready_ids: set[str] = set()
        self._ready_status: asyncio.Future[None] | None = None
        self._ready_listener = Listener(self, self._on_ready_reply, name="gateway client")
        self._ready_reply: asyncio.Future[KernelMessage] | None = None
        self._restarting = False
        #: execute requests of documents still running: msg_id -> document_id, cell_id,
        #: execution_count; kept in ``inflight_path`` so that a restarted server can route
        #: the output the gateway buffered for them (see CollabGatewayMappingKernelManager)
        self.inflight: dict[str, dict[str, t.Any]] = {}
        self.inflight_path: Path | None = None

    # ------------------------------------------------------------------ state

    @property
    def session_id(self) -> str:
        """The session id presented to the gateway (its reconnect buffer is keyed on it)."""
        return str(self.session.session)

    @property
    def connected(self) -> bool:
        return self.ws is not None

    @property
    def closed(self) -> bool:
        return self._gw_closed

    @property
    def ready(self) -> bool:
        fut = self._gw_ready
        return fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None

    async def wait_ready(self, timeout: float | None = None) -> dict[str, t.Any]:
        if self._gw_ready is None:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        await asyncio.wait_for(asyncio.shield(self._gw_ready), timeout)
        return self.kernel_info

    def websocket_url(self) -> str:
        gw = GatewayClient.instance()
        url = url_path_join(
            gw.ws_url or "", gw.kernels_endpoint, url_escape(self.kernel_id), "channels"
        )
        return f"{url}?session_id={url_escape(self.session_id)}"

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> None:
        """Open the websocket to the gateway (in the background) and become ready."""
        if self._run_task is not None and not self._run_task.done():
            return
        self._gw_closed = False
        loop = asyncio.get_event_loop()
        if self._gw_ready is None or self._gw_ready.done():
            self._gw_ready = loop.create_future()
        self._run_task = asyncio.ensure_future(self._run())

    def reconnect(self) -> None:
        """After a restart: forget the requests sent to the previous process, become ready
        again (the websocket to the gateway stays open).

        ``connect_count`` counts kernel processes, as for local kernels (the execution layer
        tells requests sent to a previous process by it); ``reconnects`` counts websockets.
        """
        self.connect_count += 1
        self._forget_requests()
        self._begin_ready()

    def close(self) -> None:
        """Close the websocket; listeners stay registered but receive nothing more."""
        if self._gw_closed:
            return
        self._gw_closed = True
        for task in (self._run_task, self._ready_task):
            if task is not None and not task.done():
                task.cancel()
        self._run_task = self._ready_task = None
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close()
        self._outbox.clear()
        self._forget_requests()
        if self._gw_ready is not None and not self._gw_ready.done():
            self._gw_ready.cancel()

    def _forget_requests(self) -> None:
        # The base class's teardown of a transport: cancels server-side waiters and forgets
        # the owners of pending requests (they will never be answered). Its ZMQ part finds
        # no sockets here.
        self._close_streams()

    def _gone(self, event: str, reason: str) -> None:
        """The kernel cannot be reached any more: close and tell the listeners."""
        if self._gw_closed:
            return
        self.log.warning("Kernel %s on the gateway: %s", self.kernel_id, reason)
        ready = self._gw_ready
        self.close()
        if ready is not None and ready.cancelled():
            # waiters of wait_ready get an error, not a cancellation
            self._gw_ready = asyncio.get_event_loop().create_future()
            self._gw_ready.set_exception(RuntimeError(f"Kernel {self.kernel_id}: {reason}"))
            self._gw_ready.exception()
        self.fire_lifecycle(event)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the websocket

    async def _open(self) -> WebSocketClientConnection:
        """One websocket connection to the gateway, with the gateway client's arguments."""
        gw = GatewayClient.instance()
        kwargs = gw.load_connection_args()  # type: ignore[no-untyped-call]
        request = HTTPRequest(self.websocket_url(), **kwargs)
        subprotocols = [V1_PROTOCOL] if self.websocket_protocol == "auto" else None
        conn = await websocket_connect(
            request, subprotocols=subprotocols, max_message_size=self.max_message_size
        )
        if conn.headers is not None:
            gw.update_cookies(conn.headers)
        if self.tcp_nodelay and conn.stream is not None:
            conn.stream.set_nodelay(True)
        return conn

    async def _run(self) -> None:
        """Connect, read until the websocket closes, reconnect with backoff; repeat."""
        gw = GatewayClient.instance()
        attempt = 0
        first = True
        while not self._gw_closed:
            try:
                conn = await self._open()
            except asyncio.CancelledError:
                raise
            except HTTPClientError as e:
                if e.code in (404, 410):
                    self._gone("dead", "the gateway no longer has this kernel")
                    return
                if e.code in (401, 403):
                    self._gone("dead", f"the gateway refused the websocket ({e.code})")
                    return
                self.log.warning("Kernel %s: gateway websocket failed (%s)", self.kernel_id, e.code)
            except Exception as e:
                self.log.warning(
                    "Kernel %s: cannot reach the gateway websocket: %s", self.kernel_id, e
                )
            else:
                attempt = 0
                self.ws = conn
                self.protocol = conn.selected_subprotocol or ""
                self.log.info(
                    "Kernel %s: gateway websocket open (%s)",
                    self.kernel_id,
                    self.protocol or "legacy protocol",
                )
                if first:
                    first = False
                    self.connect_count += 1
                    self._begin_ready()
                else:
                    self.reconnects += 1
                self._flush_outbox()
                await self._read(conn)
                if self.ws is conn:
                    self.ws = None
                if self._gw_closed:
                    return
                self.log.warning("Kernel %s: lost the gateway websocket", self.kernel_id)
            if attempt >= gw.gateway_retry_max:
                self._gone(
                    "dead", f"no websocket to the gateway after {attempt} reconnect attempt(s)"
                )
                return
            delay = min(
                gw.gateway_retry_interval * (2**attempt), gw.gateway_retry_interval_max
            ) + random.uniform(0, 0.1 * gw.gateway_retry_interval)
            attempt += 1
            self.log.info(
                "Kernel %s: reconnecting to the gateway in %.2fs (%d/%d)",
                self.kernel_id,
                delay,
                attempt,
                gw.gateway_retry_max,
            )
            await asyncio.sleep(delay)

    async def _read(self, conn: WebSocketClientConnection) -> None:
        quickack = self._quickack(conn)
        while True:
            data = await conn.read_message()
            if data is None:
                return
            if quickack is not None:
                quickack()
            try:
                msg = self._decode(data)
            except Exception:
                self.log.warning(
                    "Kernel %s: malformed message from the gateway dropped",
                    self.kernel_id,
                    exc_info=True,
                )
                continue
            if msg is not None:
                self.dispatch(msg)

    def _quickack(self, conn: WebSocketClientConnection) -> t.Callable[[], None] | None:
        """ACK each received frame at once (Linux TCP_QUICKACK, re-armed after each read).

        The gateway does not disable Nagle on its websocket: the frames after the first of a
        burst (a reply, then the idle status) wait for our ACK, which the kernel delays by
        up to 40 ms unless asked to acknowledge at once.
        """
        option = getattr(socket, "TCP_QUICKACK", None)
        stream = conn.stream
        sock = getattr(stream, "socket", None) if stream is not None else None
        if not self.tcp_quickack or option is None or sock is None:
            return None

        def ack() -> None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)
            except OSError:
                pass

        return ack

    def _decode(self, data: str | bytes) -> KernelMessage | None:
        if self.protocol == V1_PROTOCOL:
            if not v1_frame_is_sane(data):
                raise ValueError("bad v1 frame")
            channel, parts = _from_v1(t.cast(bytes, data))
            raw = [b"", *parts]
        else:
            if isinstance(data, bytes):
                parsed = _from_binary(data)
            else:
                parsed = json.loads(data)
            channel = str(parsed.get("channel"))
            pack = self.session.pack
            raw = [
                b"",
                pack(parsed["header"]),
                pack(parsed.get("parent_header") or {}),
                pack(parsed.get("metadata") or {}),
                pack(parsed.get("content") or {}),
                *[bytes(b) for b in parsed.get("buffers") or []],
            ]
        if channel not in ("iopub", *REQUEST_CHANNELS):
            raise ValueError(f"unknown channel {channel!r}")
        return KernelMessage(channel, raw, self.session)

    def _encode(self, channel: str, parts: list[bytes]) -> tuple[str | bytes, bool]:
        if self.protocol == V1_PROTOCOL:
            return _to_v1(parts, channel), True
        unpack = self.session.unpack
        msg: dict[str, t.Any] = {
            "header": unpack(parts[0]),
            "parent_header": unpack(parts[1]),
            "metadata": unpack(parts[2]),
            "content": unpack(parts[3]),
            "channel": channel,
        }
        if len(parts) > 4:
            msg["buffers"] = parts[4:]
            return _to_binary(msg), True
        return json.dumps(msg, default=json_default), False

    # ------------------------------------------------------------------ sending

    def _stream(self, channel: str) -> t.Any:  # the base class sends through this
        if channel not in REQUEST_CHANNELS:
            raise ValueError(f"cannot send on channel {channel!r}; use {REQUEST_CHANNELS}")
        if self._gw_closed:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        # (not connected yet, or reconnecting: the message waits in the outbox)
        return self._channels[channel]

    def _write(self, channel: str, parts: list[bytes]) -> None:
        if channel == "shell" and self.inflight_path is not None and b"execute_request" in parts[0]:
            self._track(parts)
        ws = self.ws
        if ws is None or self._outbox:
            self._queue(channel, parts)
            return
        data, binary = self._encode(channel, parts)
        try:
            ws.write_message(data, binary=binary)
        except WebSocketClosedError:
            self._queue(channel, parts)

    def _track(self, parts: list[bytes]) -> None:
        try:
            header = self.session.unpack(parts[0])
            metadata = self.session.unpack(parts[2])
        except Exception:
            return
        document_id, cell_id = metadata.get("documentId"), metadata.get("cellId")
        if header.get("msg_type") != "execute_request" or not (
            isinstance(document_id, str) and isinstance(cell_id, str)
        ):
            return
        self.inflight[str(header.get("msg_id"))] = {
            "document_id": document_id,
            "cell_id": cell_id,
            "execution_count": None,
        }
        self._save_inflight()

    def _save_inflight(self) -> None:
        path = self.inflight_path
        if path is None:
            return
        try:
            if not self.inflight:
                path.unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.inflight))
            tmp.replace(path)
        except OSError as e:
            self.log.warning("Kernel %s: cannot keep its running requests: %s", self.kernel_id, e)

    def load_inflight(self) -> dict[str, dict[str, t.Any]]:
        """The running requests the previous server process kept for this kernel."""
        path = self.inflight_path
        if path is None:
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        if isinstance(data, dict):
            self.inflight = {
                str(k): v for k, v in data.items() if isinstance(v, dict) and "cell_id" in v
            }
        return dict(self.inflight)

    def _queue(self, channel: str, parts: list[bytes]) -> None:
        if len(self._outbox) >= self.pending_send_limit:
            self._outbox.popleft()
            self.dropped_sends += 1
            if self.dropped_sends == 1 or self.dropped_sends % 1000 == 0:
                self.log.warning(
                    "Kernel %s: %d message(s) to the gateway dropped while reconnecting",
                    self.kernel_id,
                    self.dropped_sends,
                )
        self._outbox.append((channel, parts))

    def _flush_outbox(self) -> None:
        ws = self.ws
        while self._outbox and ws is not None:
            channel, parts = self._outbox[0]
            data, binary = self._encode(channel, parts)
            try:
                ws.write_message(data, binary=binary)
            except WebSocketClosedError:
                return
            self._outbox.popleft()

    # ------------------------------------------------------------------ readiness

    def _begin_ready(self) -> None:
        loop = asyncio.get_event_loop()
        if self._gw_ready is None or self._gw_ready.done():
            self._gw_ready = loop.create_future()
        if self._ready_task is not None and not self._ready_task.done():
            self._ready_task.cancel()
        self._ready_task = asyncio.ensure_future(self._become_ready(self._gw_ready))

    def _on_ready_reply(self, msg: KernelMessage) -> None:
        fut = self._ready_reply
        if (
            fut is not None
            and not fut.done()
            and msg.msg_type == "kernel_info_reply"
            and msg.parent_msg_id in self._ready_ids
        ):
            fut.set_result(msg)

    async def _become_ready(self, ready: asyncio.Future[None]) -> None:
        parent = getattr(self.kernel_manager, "parent", None)
        timeout = float(getattr(parent, "kernel_info_timeout", 60) or 60)
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        self._ready_ids = set()
        self._ready_status = loop.create_future()
        try:
            while loop.time() < deadline:
                self._ready_reply = loop.create_future()
                msg = self.session.msg("kernel_info_request")
                self._ready_ids.add(msg["header"]["msg_id"])
                self.send("shell", msg, owner=self._ready_listener)
                try:
                    reply = await asyncio.wait_for(
                        asyncio.shield(self._ready_reply), self.ready_attempt_timeout
                    )
                except asyncio.TimeoutError:
                    continue
                self.kernel_info = reply.content
                try:
                    await asyncio.wait_for(
                        asyncio.shield(self._ready_status), self.ready_attempt_timeout
                    )
                except asyncio.TimeoutError:
                    continue
                if not ready.done():
                    ready.set_result(None)
                self.log.debug("Kernel %s: gateway client ready", self.kernel_id)
                return
            if not ready.done():
                ready.set_exception(TimeoutError(f"Kernel {self.kernel_id} did not answer"))
                ready.exception()
        except asyncio.CancelledError:
            pass
        except RuntimeError:
            # closed while becoming ready
            if not ready.done():
                ready.cancel()

    # ------------------------------------------------------------------ receiving

    def dispatch(self, msg: KernelMessage) -> None:
        if self.inflight and msg.channel == "iopub" and msg.parent_msg_id in self.inflight:
            if msg.msg_type == "execute_input":
                self.inflight[msg.parent_msg_id]["execution_count"] = msg.content.get(
                    "execution_count"
                )
                self._save_inflight()
            elif msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                super().dispatch(msg)
                del self.inflight[msg.parent_msg_id]
                self._save_inflight()
                return
        if msg.channel == "iopub" and msg.msg_type == "status":
            state = msg.content.get("execution_state")
            status = self._ready_status
            if status is not None and not status.done() and msg.parent_msg_id in self._ready_ids:
                status.set_result(None)
            if msg.parent_msg_id is None and state in ("restarting", "dead"):
                # jupyter_server's websocket on the gateway reports its restarter's events
                # with a status message of no parent.
                super().dispatch(msg)
                if state == "restarting" and not self._restarting:
                    self.log.info("Kernel %s: restarted by the gateway", self.kernel_id)
                    self.reconnect()
                    self.fire_lifecycle("restarted")
                elif state == "dead":
                    self._gone("dead", "the gateway reports the kernel dead")
                return
        super().dispatch(msg)


class _ChannelQueue(ChannelQueue):
    """A channel of the in-process gateway client: sends carry ``"channel"`` (without it the
    gateway assumes shell, and an ``input()`` reply never reaches stdin), and a message with
    buffers goes as a binary frame."""

    def send(self, msg: dict[str, t.Any]) -> None:
        msg = dict(msg, channel=self.channel_name)
        buffers = msg.pop("buffers", None) or []
        if not buffers:
            super().send(msg)
            return
        msg["buffers"] = [bytes(b) for b in buffers]
        self.channel_socket.send_binary(_to_binary(msg))


class GatewayInProcessClient(GatewayKernelClient_):
    """What ``km.client()`` returns for a gateway kernel (extensions, debugger tools): the
    stock threaded client with its gaps closed. It presents the gateway client's headers
    (the auth token), its own session id, ``"channel"`` on every message, and routes binary
    frames (messages with buffers) instead of dying on them."""

    async def start_channels(  # type: ignore[override]
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        gw = GatewayClient.instance()
        url = url_path_join(
            gw.ws_url or "", gw.kernels_endpoint, url_escape(self.kernel_id), "channels"
        )
        url += f"?session_id={url_escape(self.session.session)}"
        args = gw.load_connection_args()  # type: ignore[no-untyped-call]
        headers = args.get("headers") or {}
        sslopt: dict[str, t.Any] = {
            "ca_certs": gw.ca_certs,
            "certfile": gw.client_cert,
            "keyfile": gw.client_key,
        }
        if not gw.validate_cert:
            import ssl

            sslopt["cert_reqs"] = ssl.CERT_NONE
        self.channel_socket = websocket.create_connection(
            url,
            timeout=gw.KERNEL_LAUNCH_TIMEOUT,
            enable_multithread=True,
            sslopt=sslopt,
            header=[f"{key}: {value}" for key, value in headers.items()],
        )
        queues = self._channel_queues
        assert queues is not None
        for name in ("shell", "iopub", "stdin", "control"):
            queue = _ChannelQueue(name, self.channel_socket, self.log)
            setattr(self, f"_{name}_channel", queue)
            queues[name] = queue
        AsyncKernelClient.start_channels(
            self, shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control
        )
        self.response_router = Thread(target=self._route_responses, daemon=True)
        self.response_router.start()

    def _route_responses(self) -> None:
        socket_ = self.channel_socket
        try:
            while not self._channels_stopped and socket_ is not None:
                raw = socket_.recv()
                if not raw:
                    break
                try:
                    msg = _from_binary(raw) if isinstance(raw, bytes) else json.loads(raw)
                    queue = (self._channel_queues or {}).get(str(msg.get("channel")))
                except Exception:
                    self.log.warning("Kernel %s: malformed message dropped", self.kernel_id)
                    continue
                if queue is not None:
                    queue.put_nowait(msg)
        except websocket.WebSocketConnectionClosedException:
            pass
        except Exception as e:
            if not self._channels_stopped:
                self.log.warning("Kernel %s: in-process client stopped: %s", self.kernel_id, e)
        for queue in list((self._channel_queues or {}).values()):
            queue.response_router_finished = True


AdoptionListener = t.Callable[[str, dict[str, dict[str, t.Any]]], t.Any]


def gateway_session_id(client_id: str, kernel_id: str) -> str:
    """The websocket session id this server uses for a kernel (stable across restarts)."""
    return f"collab-kernels-{uuid.uuid5(SESSION_NAMESPACE, f'{client_id}:{kernel_id}')}"


class CollabGatewayKernelManager(GatewayKernelManager):
    """jupyter_server's gateway kernel manager, with the kernel's shared client."""

    client_class = DottedObjectName("collab_kernels.kernels.gateway.GatewayInProcessClient")
    client_factory = Type(
        GatewayInProcessClient,
        klass=GatewayKernelClient_,
        config=True,
        help=(
            "The class of the clients km.client() returns for a gateway kernel (extensions, "
            "debugger tools); each opens its own websocket to the gateway."
        ),
    )

    shared_client_class = Type(
        GatewayKernelClient,
        klass=GatewayKernelClient,
        config=True,
        help="The class of the shared client of each gateway kernel.",
    )

    shared_client = Instance(SharedKernelClient, allow_none=True)

    def _new_client(self) -> GatewayKernelClient:
        parent = self.parent
        client_id = getattr(parent, "gateway_client_id", "") or uuid.uuid4().hex
        kernel_id = str(self.kernel_id)
        client = self.shared_client_class(
            self,
            session_id=gateway_session_id(client_id, kernel_id),
            parent=self,
            log=self.log,
        )
        client.kernel_id = kernel_id
        inflight_dir = getattr(parent, "inflight_dir", None)
        if inflight_dir is not None:
            client.inflight_path = Path(inflight_dir) / f"{kernel_id}.json"
        return t.cast(GatewayKernelClient, client)

    async def start_kernel(self, **kwargs: t.Any) -> None:  # type: ignore[override]
        adopting = bool(kwargs.pop("collab_adopt", False))
        await super().start_kernel(**kwargs)
        if not self.has_kernel:
            raise web.HTTPError(404, f"Kernel {kwargs.get('kernel_id')} not found on the gateway")
        ready = self.ready
        if not ready.done():
            ready.set_result(None)  # the gateway started it: what ``ready`` means locally
        if self.shared_client is None:
            self.shared_client = self._new_client()
        if not adopting:  # (an adopted kernel connects once its documents are linked)
            self.shared_client.connect()

    async def restart_kernel(self, **kw: t.Any) -> None:  # type: ignore[override]
        client = self.shared_client
        if isinstance(client, GatewayKernelClient):
            client._restarting = True
        try:
            await super().restart_kernel(**kw)
        finally:
            if isinstance(client, GatewayKernelClient):
                client._restarting = False
                if not client.closed:
                    client.reconnect()
                    client.fire_lifecycle("restarted")

    async def shutdown_kernel(  # type: ignore[override]
        self, now: bool = False, restart: bool = False
    ) -> None:
        client = self.shared_client
        if client is not None and not restart and not client.closed:
            client.close()
            client.fire_lifecycle("shutdown")
        if isinstance(client, GatewayKernelClient) and not restart:
            client.inflight.clear()
            client._save_inflight()
        await super().shutdown_kernel(now=now, restart=restart)

    async def refresh_model(self, model: dict[str, t.Any] | None = None) -> t.Any:
        """The gateway's model, with this server's own connection count.

        The gateway counts one connection (ours) however many tabs listen; the server's
        ``connections`` (what culling and ``GET /api/kernels`` report) counts tabs.
        """
        mkm = self.parent
        counts = getattr(mkm, "_kernel_connections", None)
        ours = counts.get(self.kernel_id) if counts is not None else None
        result = await super().refresh_model(model)  # type: ignore[no-untyped-call]
        if counts is not None and self.kernel_id is not None:
            counts[self.kernel_id] = ours or 0
        if isinstance(result, dict):
            result = dict(result, connections=ours or 0)
            self.kernel = result  # type: ignore[assignment]
        return result


class CollabGatewayMappingKernelManager(
    GatewayMappingKernelManager, SharedClientMappingKernelManager
):
    """Gateway kernels, each with one shared client; REST calls as jupyter_server's.

    Activity, connection counting and the offline buffer of dropped tabs come from
    ``SharedClientMappingKernelManager`` (listeners on the shared client).
    """

    gateway_client_id = Unicode(
        config=True,
        help=(
            "Identifies this Jupyter server to the gateway: the websocket session id of each "
            "kernel is derived from it and the kernel id, so a restarted server reconnects "
            "under the same session and gets the output the gateway buffered meanwhile. "
            "Default: a new random id per server process."
        ),
    )

    keep_kernels_on_exit = Bool(
        False,
        config=True,
        help=(
            "When the Jupyter server stops, leave its kernels running on the gateway (close "
            "the websockets: the gateway buffers their output) instead of shutting them "
            "down. With SessionManager.database_filepath set, the restarted server adopts "
            "the kernels its sessions point to and gets the buffered output."
        ),
    )

    @default("gateway_client_id")
    def _default_gateway_client_id(self) -> str:
        """A random id kept in the Jupyter data directory (the same after a restart)."""
        from jupyter_core.paths import jupyter_data_dir

        path = Path(jupyter_data_dir()) / "collab_kernels" / "gateway_client_id"
        try:
            existing = path.read_text().strip()
            if existing:
                return existing
        except OSError:
            pass
        value = uuid.uuid4().hex
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)
        except OSError as e:
            self.log.warning(
                "collab_kernels: cannot keep the gateway client id in %s (%s); a restarted "
                "server will not get the output its gateway kernels buffered",
                path,
                e,
            )
        return value

    def __init__(self, **kwargs: t.Any):
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        #: kernel ids of saved sessions being adopted -> the adoption task
        self._adopting: dict[str, asyncio.Future[None]] = {}
        self._adoption_listeners: list[AdoptionListener] = []

    @property
    def inflight_dir(self) -> Path:
        """Where each kernel's running document executions are kept (one JSON file each)."""
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "collab_kernels" / "gateway_inflight"

    def add_adoption_listener(self, callback: AdoptionListener) -> None:
        """``callback(kernel_id, inflight)`` (awaited if it returns an awaitable) when a
        kernel of a saved session is adopted, before its shared client connects (and the
        gateway replays its buffer):
        ``inflight`` maps the msg_id of each execute request that was still running to its
        ``document_id``, ``cell_id`` and ``execution_count``."""
        self._adoption_listeners.append(callback)

    def __contains__(self, kernel_id: str) -> bool:
        # A kernel being adopted counts as present: the session manager would otherwise
        # delete its session as culled before the adoption finished.
        return super().__contains__(kernel_id) or kernel_id in self._adopting

    def adopt_session_kernels(self, session_manager: t.Any) -> None:
        """Adopt the gateway kernels the saved sessions point to (at server start).

        The kernel ids are read from the session table now (before anything lists the
        sessions); each kernel is then looked up on the gateway and, if it still runs, taken
        over as if this server had started it: its shared client reconnects under the
        same session id as before the restart, so the gateway replays what it buffered.
        """
        try:
            rows = session_manager.cursor.execute("SELECT kernel_id FROM session").fetchall()
        except Exception:
            self.log.debug("collab_kernels: no saved sessions to adopt", exc_info=True)
            return
        ids = sorted({row[0] for row in rows if row[0] and row[0] not in self._kernels})
        for kernel_id in ids:
            self._adopting[kernel_id] = asyncio.ensure_future(self._adopt(kernel_id))

    async def _adopt(self, kernel_id: str) -> None:
        try:
            await self.start_kernel(kernel_id=kernel_id, collab_adopt=True)
            client = getattr(self.get_kernel(kernel_id), "shared_client", None)
            if not isinstance(client, GatewayKernelClient):
                raise RuntimeError("no shared gateway client")
            inflight = client.load_inflight()
            self._adopting.pop(kernel_id, None)  # present now: links can be made
            for callback in list(self._adoption_listeners):
                try:
                    result = callback(kernel_id, inflight)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.log.exception("collab_kernels: adoption listener %r failed", callback)
            client.connect()
        except Exception as e:
            self.log.info(
                "collab_kernels: kernel %s of a saved session is not running on the gateway (%s)",
                kernel_id,
                e,
            )
        else:
            self.log.info(
                "collab_kernels: adopted kernel %s, still running on the gateway", kernel_id
            )
        finally:
            self._adopting.pop(kernel_id, None)

    async def wait_adopted(self, kernel_id: str | None = None) -> None:
        """Wait until the adoption of ``kernel_id`` (or of every saved kernel) is done."""
        tasks = [self._adopting[kernel_id]] if kernel_id in self._adopting else []
        if kernel_id is None:
            tasks = list(self._adopting.values())
        if tasks:
            await asyncio.gather(*(asyncio.shield(task) for task in tasks))

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        if not self.keep_kernels_on_exit:
            await super().shutdown_all(now=now)  # type: ignore[no-untyped-call]
            return
        kept = 0
        for km in list(self._kernels.values()):
            client = getattr(km, "shared_client", None)
            if client is not None and not client.closed:
                client.close()
                kept += 1
        self.log.info("collab_kernels: left %d kernel(s) running on the gateway", kept)

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> str:
        return "collab_kernels.kernels.gateway.CollabGatewayKernelManager"

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: str | None = None, **kwargs: t.Any
    ) -> str:
        kid: str = await super().start_kernel(  # type: ignore[no-untyped-call]
            kernel_id=kernel_id, path=path, **kwargs
        )
        self._kernel_connections.setdefault(kid, 0)
        self.start_watching_activity(kid)
        return kid

    async def restart_kernel(self, kernel_id: str, now: bool = False, **kwargs: t.Any) -> t.Any:  # type: ignore[override]
        """Restart over REST; return once the gateway restarted the kernel, as stock.

        The returned Future resolves when the new process answers on the shared client
        (as for local kernels: docs/reliability.md, "Restart"); ``POST .../restart`` does not
        wait for it (waiting here outlasted the request timeout of a gateway that answers
        the restart but not yet the websocket).
        """
        self._check_kernel_id(kernel_id)  # type: ignore[no-untyped-call]
        km: t.Any = self.get_kernel(kernel_id)
        km.execution_state = "starting"
        await km.restart_kernel(now=now, **kwargs)
        client = km.shared_client
        if isinstance(client, SharedKernelClient):
            return self.answered_future(kernel_id, client)
        future: asyncio.Future[dict[str, t.Any]] = asyncio.get_running_loop().create_future()
        future.set_result({})
        return future

    def remove_kernel(self, kernel_id: str) -> t.Any:
        self._kernel_connections.pop(kernel_id, None)
        km = super().remove_kernel(kernel_id)  # type: ignore[no-untyped-call]
        client = getattr(km, "shared_client", None)
        if client is not None and not client.closed:
            client.close()
            client.fire_lifecycle("dead")
        return km

    async def kernel_model(self, kernel_id: str) -> t.Any:
        await self.wait_adopted(kernel_id)
        model = await super().kernel_model(kernel_id)  # type: ignore[no-untyped-call]
        if isinstance(model, dict):
            model = dict(model, connections=self._kernel_connections.get(kernel_id, 0))
        return model

    async def list_kernels(self, **kwargs: t.Any) -> list[dict[str, t.Any]]:
        models = await super().list_kernels(**kwargs)  # type: ignore[no-untyped-call]
        return [dict(m, connections=self._kernel_connections.get(m["id"], 0)) for m in models]


__all__ = [
    "CollabGatewayKernelManager",
    "CollabGatewayMappingKernelManager",
    "GatewayKernelClient",
    "gateway_session_id",
]
