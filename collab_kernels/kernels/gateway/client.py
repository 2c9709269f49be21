"""``GatewayKernelClient``: the shared client of a gateway kernel, one websocket to the
gateway instead of ZMQ sockets (see the package's doc)."""

from __future__ import annotations

import asyncio
import random
import socket
import typing as t
import uuid
from collections import deque

from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.utils import url_path_join
from tornado.escape import url_escape
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect
from traitlets import Bool, CaselessStrEnum, Float, Integer

from ..client import REQUEST_CHANNELS, KernelMessage, Listener, SharedKernelClient
from ..websocket import V1_PROTOCOL
from .inflight import InflightRequests
from .wire import WebsocketChannel, decode, encode


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
        self._channels = {ch: WebsocketChannel(self, ch) for ch in REQUEST_CHANNELS}
        self._outbox: deque[tuple[str, list[bytes]]] = deque()
        self._gw_closed = False
        self._gw_ready: asyncio.Future[None] | None = None
        self._run_task: asyncio.Future[None] | None = None
        self._ready_task: asyncio.Future[None] | None = None
        self._ready_ids: set[str] = set()
        self._ready_status: asyncio.Future[None] | None = None
        self._ready_listener = Listener(self, self._on_ready_reply, name="gateway client")
        self._ready_reply: asyncio.Future[KernelMessage] | None = None
        #: a restart through the REST API is under way (its "restarting" status is ours)
        self.restarting = False
        self._holding = False  # requests wait for the restarted kernel (see reconnect)
        self._nudging = False
        #: execute requests of documents still running, kept on disk so that a restarted
        #: server can route the output the gateway buffered for them (inflight.py)
        self.inflight = InflightRequests(None, self.log)

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
        self.forget_requests()
        # Until the new process answered (and its iopub reached us), requests wait in the
        # outbox: the gateway's sockets reconnect to the new process on their own timers,
        # and the output of a request sent before would be lost.
        self._holding = True
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
        self.forget_requests()
        if self._gw_ready is not None and not self._gw_ready.done():
            self._gw_ready.cancel()

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
                msg = decode(data, self.protocol, self.session)
            except Exception:
                self.log.warning(
                    "Kernel %s: malformed message from the gateway dropped",
                    self.kernel_id,
                    exc_info=True,
                )
                continue
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

    # ------------------------------------------------------------------ sending

    def send_stream(self, channel: str) -> t.Any:  # the websocket, in a stream's shape
        if channel not in REQUEST_CHANNELS:
            raise ValueError(f"cannot send on channel {channel!r}; use {REQUEST_CHANNELS}")
        if self._gw_closed:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        # (not connected yet, or reconnecting: the message waits in the outbox)
        return self._channels[channel]

    def write_frames(self, channel: str, parts: list[bytes]) -> None:
        """Send ``[header, parent, metadata, content, *buffers]`` on ``channel`` (queued while
        the websocket is down)."""
        if channel == "shell" and b"execute_request" in parts[0]:
            self.inflight.track(self.session.unpack(parts[0]), self.session.unpack(parts[2]))
        ws = self.ws
        held = self._outbox or self._holding
        if ws is None or (held and not self._nudging):
            self._queue(channel, parts)
            return
        data, binary = encode(channel, parts, self.protocol, self.session)
        try:
            ws.write_message(data, binary=binary)
        except WebSocketClosedError:
            self._queue(channel, parts)

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

    def _release(self) -> None:
        """Send what waited for the kernel to be ready after a restart."""
        self._holding = False
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        if self._holding:
            return
        ws = self.ws
        while self._outbox and ws is not None:
            channel, parts = self._outbox[0]
            data, binary = encode(channel, parts, self.protocol, self.session)
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
                self._nudging = True
                try:
                    self.send("shell", msg, owner=self._ready_listener)
                finally:
                    self._nudging = False
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
                self._release()
                self.log.debug("Kernel %s: gateway client ready", self.kernel_id)
                return
            if not ready.done():
                ready.set_exception(TimeoutError(f"Kernel {self.kernel_id} did not answer"))
                ready.exception()
            self._release()
        except asyncio.CancelledError:
            pass
        except RuntimeError:
            # closed while becoming ready
            if not ready.done():
                ready.cancel()

    # ------------------------------------------------------------------ receiving

    def dispatch(self, msg: KernelMessage) -> None:
        parent = msg.parent_msg_id
        if msg.channel == "iopub" and parent is not None and parent in self.inflight:
            if msg.msg_type == "execute_input":
                self.inflight.started(parent, msg.content.get("execution_count"))
            elif msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                super().dispatch(msg)
                self.inflight.ended(parent)
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
                if state == "restarting" and not self.restarting:
                    self.log.info("Kernel %s: restarted by the gateway", self.kernel_id)
                    self.reconnect()
                    self.fire_lifecycle("restarted")
                elif state == "dead":
                    self._gone("dead", "the gateway reports the kernel dead")
                return
        super().dispatch(msg)


__all__ = ["GatewayKernelClient"]
