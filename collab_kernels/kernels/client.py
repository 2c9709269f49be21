"""One shared kernel client per kernel; every consumer is a listener on it.

The client owns one ZMQ socket set (iopub, shell, control, stdin; see ``sockets.py``) to a
kernel and fans each message out to listeners as it arrives (``routing.py`` holds the
rules). Reception is driven by the event loop (``ZMQStream.on_recv`` callbacks, and on
iopub a reader that takes every message the socket holds at each wake-up): no polling and
no sleeps.

Why not ``jupyter_client.AsyncKernelClient``: its channels are read by awaiting one message
at a time per consumer, and it routes nothing; here one socket set is read once and each
message is decoded at most once for all consumers (``KernelMessage.parsed`` is shared).
"""

from __future__ import annotations

import asyncio
import typing as t
import uuid

import zmq
from jupyter_client.session import Session
from traitlets import CaselessStrEnum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable
from zmq.eventloop.zmqstream import ZMQStream

from .forwarding import WebsocketRequests
from .listener import (
    LifecycleCallback,
    LifecycleListeners,
    Listener,
    MessageCallback,
    Replies,
    RequestHook,
)
from .message import (
    CHANNELS,
    IOPUB,
    LIFECYCLE_EVENTS,
    OUTPUT_MSG_TYPES,
    REQUEST_CHANNELS,
    KernelMessage,
    LifecycleEvent,
)
from .readiness import Readiness
from .routing import Router
from .sockets import ConnectionInfo, KernelSockets


class KernelManagerLike(ConnectionInfo, t.Protocol):
    """What the client needs from its kernel manager (jupyter_client's ``KernelManager``)."""

    kernel_id: str | None
    session: Session
    parent: t.Any


class SharedKernelClient(LoggingConfigurable):
    """The one client (one ZMQ socket set) of a kernel, shared by all its consumers.

    Created and driven by ``SharedClientKernelManager``: connected once when the kernel
    starts, reconnected after every restart (listeners stay registered), closed on
    shutdown.
    """

    kernel_id = Unicode("", help="The id of the kernel this client talks to.")

    listener_queue_limit = Integer(
        10000,
        config=True,
        help=(
            "Messages kept for one listener while its async callback is still busy; beyond "
            "this the listener misses messages (logged with the kernel id) instead of "
            "holding up the kernel's other consumers."
        ),
    )

    request_table_size = Integer(
        10000,
        config=True,
        help=(
            "Pending requests remembered per kernel to route their replies to the consumer "
            "(browser tab) that sent them. Oldest entries are forgotten first, so requests "
            "that never get a reply cannot grow memory."
        ),
    )

    withheld_table_size = Integer(
        10000,
        config=True,
        help=(
            "Requests per kernel whose outputs are withheld from kernel websockets "
            "(claimed by a request hook); oldest entries are forgotten first."
        ),
    )

    iopub_receive_hwm = Integer(
        0,
        config=True,
        help=(
            "ZMQ receive high-water mark (messages) of the shared iopub socket; 0 means "
            "unlimited. A kernel silently drops iopub messages (outputs, even the final idle "
            "status) for a subscriber whose queue is full; with one shared subscriber that "
            "would hit every consumer at once, so by default the server queues what it has "
            "not processed yet instead."
        ),
    )

    handshake_timeout = Float(
        5.0,
        config=True,
        help=(
            "Seconds to wait, once the kernel answered on shell, for the stdin and control "
            "sockets to finish connecting before the kernel counts as ready (a stdin prompt "
            "sent to a socket still connecting is dropped by the kernel)."
        ),
    )

    withhold_outputs_from = CaselessStrEnum(
        ["origin", "websockets"],
        default_value="origin",
        config=True,
        help=(
            "When a request hook claims a request sent by a kernel websocket (the server "
            "writes its outputs into the document), withhold its output messages from "
            "'origin': only the browser tab that sent it (the only one that would write them "
            "into the document; consoles and other tabs attached to the kernel still see "
            "them), or 'websockets': every kernel websocket."
        ),
    )

    #: Kernel websockets open only once the client is ready (stock's nudge on open). A
    #: transport that buffers sends and relays replies itself (a gateway) may not wait.
    websockets_wait_ready: t.ClassVar[bool] = True

    def __init__(self, kernel_manager: KernelManagerLike, **kwargs: t.Any):
        kwargs.setdefault("parent", kernel_manager)
        kwargs.setdefault("log", getattr(kernel_manager, "log", None))
        super().__init__(**kwargs)
        self.kernel_manager = kernel_manager
        self.kernel_id = kernel_manager.kernel_id or ""
        # Same key and signature scheme as the kernel manager's session, but our own session
        # id: it is the ZMQ identity of our shell, control and stdin sockets, and
        # ``km.client()`` presents the manager's (see sockets.py, ROUTER_HANDOVER).
        self.session: Session = kernel_manager.session.clone()
        self.session.session = f"collab-kernels-{uuid.uuid4().hex}"
        self.router = Router(self)
        self.lifecycle = LifecycleListeners(self)
        self._waiters: dict[str, asyncio.Future[KernelMessage]] = {}
        self._internal = Listener(self, self._on_internal_reply, name="shared client")
        self._sockets: KernelSockets | None = None
        self.readiness = Readiness(
            send_kernel_info=self._send_kernel_info, log=self.log, kernel_id=lambda: self.kernel_id
        )
        #: request hooks, withheld outputs, requests held while restarting (forwarding.py)
        self.websocket_requests = WebsocketRequests(self, restarting=self._restarting)
        self.readiness.on_ready(self.websocket_requests.release)
        self._closed = False
        self.connect_count = 0

    # ------------------------------------------------------------------ connection

    @property
    def streams(self) -> dict[str, ZMQStream]:
        return self._sockets.streams if self._sockets is not None else {}

    @property
    def identity(self) -> bytes:
        """The ZMQ identity of our shell, control and stdin sockets."""
        return self.session.bsession

    @property
    def connected(self) -> bool:
        return bool(self.streams)

    @property
    def closed(self) -> bool:
        return self._closed

    def connect(self) -> None:
        """Open the socket set to the kernel (current connection info) and start nudging."""
        if self.streams:
            return
        self._closed = False
        self.connect_count += 1
        self._sockets = KernelSockets(
            self.kernel_manager,
            identity=self.identity,
            on_recv=self._on_recv,
            iopub_hwm=self.iopub_receive_hwm,
            log=self.log,
            kernel_id=self.kernel_id,
            label=f"{id(self):x}-{self.connect_count}",
        )
        self.log.debug(
            "Kernel %s: shared client connecting (%s)",
            self.kernel_id,
            self.kernel_manager.transport,
        )
        parent = getattr(self.kernel_manager, "parent", None)
        self.readiness.start(
            self._sockets,
            first=self.connect_count == 1,
            timeout=float(getattr(parent, "kernel_info_timeout", 60) or 60),
            handshake_timeout=self.handshake_timeout,
        )

    def _close_streams(self) -> None:
        self.readiness.stop()
        if self._sockets is not None:
            self._sockets.close()
            self._sockets = None
        self.forget_requests()

    def forget_requests(self) -> None:
        """The transport is gone: cancel the server's own waiters and forget the owners of
        pending replies (a transport of another kind calls it when it drops its own)."""
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        self.router.forget_requests()

    def reconnect(self) -> None:
        """Drop the sockets to the previous kernel process and connect to the current one."""
        self._close_streams()
        self.connect()

    def close(self) -> None:
        """Close the sockets; listeners stay registered but receive nothing more."""
        if self._closed:
            return
        self._closed = True
        self.websocket_requests.drop_held()
        self._close_streams()
        self.readiness.cancel()

    async def wait_ready(self, timeout: float | None = None) -> dict[str, t.Any]:
        """Wait until the kernel answered, iopub delivers and every socket is connected
        (see readiness.py); returns the kernel_info reply content."""
        await self.readiness.wait(timeout)
        return self.kernel_info

    @property
    def kernel_info(self) -> dict[str, t.Any]:
        return self.readiness.kernel_info

    @kernel_info.setter
    def kernel_info(self, value: dict[str, t.Any]) -> None:
        self.readiness.kernel_info = value

    def is_startup_nudge(self, msg_id: str | None) -> bool:
        """Whether ``msg_id`` is one of the kernel_info requests that connected us to a newly
        started kernel. Activity tracking ignores their statuses: with stock
        jupyter_server a kernel nobody connected to yet stays "starting"."""
        return self.readiness.is_startup_nudge(msg_id)

    @property
    def ready(self) -> bool:
        return self.readiness.ready

    def _send_kernel_info(self) -> tuple[str, asyncio.Future[KernelMessage]]:
        msg = self.session.msg("kernel_info_request")
        fut = self._expect_reply(msg)
        self.send("shell", msg, owner=self._internal)
        return msg["header"]["msg_id"], fut

    def _expect_reply(self, msg: dict[str, t.Any]) -> asyncio.Future[KernelMessage]:
        fut: asyncio.Future[KernelMessage] = asyncio.get_event_loop().create_future()
        self._waiters[msg["header"]["msg_id"]] = fut
        return fut

    def _on_internal_reply(self, msg: KernelMessage) -> None:
        fut = self._waiters.pop(msg.parent_msg_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def request(
        self,
        msg_type: str,
        content: dict[str, t.Any] | None = None,
        *,
        channel: str = "shell",
        timeout: float | None = 30,
    ) -> KernelMessage:
        """Send a request from the server itself and await its reply (seen by no listener)."""
        msg = self.session.msg(msg_type, content or {})
        fut = self._expect_reply(msg)
        self.send(channel, msg, owner=self._internal)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(msg["header"]["msg_id"], None)

    # ------------------------------------------------------------------ listeners

    def add_listener(
        self,
        callback: MessageCallback | t.Callable[[KernelMessage], t.Any],
        *,
        channels: t.Iterable[str] | None = None,
        msg_types: t.Iterable[str | tuple[str, str]] | None = None,
        replies: Replies = "all",
        skip_withheld: bool = False,
        name: str | None = None,
        first: bool = False,
    ) -> Listener:
        """Register a consumer.

        ``first`` puts it before the listeners registered without it (each message is
        delivered to listeners in order): for consumers on a latency-critical path, such as
        the documents that write a cell's end, ahead of bookkeeping like activity tracking.

        ``msg_types`` items are message types (any channel) or ``(msg_type, channel)``
        pairs. ``replies="owned"`` receives shell/control/stdin messages only for requests
        it sent with ``owner=`` this listener (what a browser tab expects).
        ``skip_withheld`` marks a kernel websocket: outputs claimed by a request hook are
        not delivered to it.
        """
        listener = Listener(
            self,
            callback,
            channels=channels,
            msg_types=msg_types,
            replies=replies,
            skip_withheld=skip_withheld,
            name=name,
            max_pending=self.listener_queue_limit,
        )
        self.router.add(listener, first=first)
        return listener

    def remove_listener(self, listener: Listener) -> None:
        listener.close()
        self.router.remove(listener)

    @property
    def listeners(self) -> list[Listener]:
        return list(self.router.listeners)

    def transfer_ownership(self, old: Listener, new: Listener) -> int:
        """Route pending replies (and withheld outputs) of ``old``'s requests to ``new``."""
        return self.router.transfer(old, new)

    def add_request_hook(self, hook: RequestHook) -> None:
        """``hook(msg, origin) -> bool`` for each request a kernel websocket sends."""
        self.websocket_requests.add_hook(hook)

    def remove_request_hook(self, hook: RequestHook) -> None:
        self.websocket_requests.remove_hook(hook)

    def add_lifecycle_listener(self, callback: LifecycleCallback) -> None:
        """``callback(event)`` with an event of ``LIFECYCLE_EVENTS`` (see message.py)."""
        self.lifecycle.add(callback)

    def remove_lifecycle_listener(self, callback: LifecycleCallback) -> None:
        self.lifecycle.remove(callback)

    def fire_lifecycle(self, event: LifecycleEvent) -> None:
        self.lifecycle.fire(event)

    # ------------------------------------------------------------------ sending

    def send_stream(self, channel: str) -> ZMQStream:
        """Where ``send``/``send_raw`` write signed frames; another transport overrides it
        (ZMQStream's ``send_multipart`` and ``flush``: kernels/gateway/wire.py)."""
        if channel not in REQUEST_CHANNELS:
            raise ValueError(f"cannot send on channel {channel!r}; use {REQUEST_CHANNELS}")
        stream = self.streams.get(channel)
        if stream is None:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        return stream

    def send(self, channel: str, msg: dict[str, t.Any], *, owner: Listener | None = None) -> None:
        """Sign and send ``msg`` (built with ``self.session.msg``) on ``channel``."""
        stream = self.send_stream(channel)
        header = msg["header"]
        self.router.remember_owner(header["msg_id"], header.get("msg_type", ""), owner)
        if self._send_direct(stream):
            self.session.send(stream.socket, msg)
            self._recheck_incoming(stream)
            return
        self.session.send(stream, msg)
        self._flush_sends(stream)

    @staticmethod
    def _send_direct(stream: ZMQStream) -> bool:
        """Whether ``msg`` can go straight to the stream's ZMQ socket: a real ZMQStream with
        nothing queued (order kept) whose socket takes a message now (no blocking send).
        Saves what ``send_multipart`` + ``flush`` cost around the socket send: a queue put
        and get, two polls and a loop callback (about 50 us per execute request)."""
        return (
            type(stream) is ZMQStream
            and not stream.closed()
            and not stream.sending()
            and bool(t.cast(int, stream.socket.get(zmq.EVENTS)) & zmq.POLLOUT)
        )

    @staticmethod
    def _recheck_incoming(stream: ZMQStream) -> None:
        """After a send behind the stream's back: a message that came in meanwhile may have
        used up the edge of the socket's file descriptor, which the stream waits on, so the
        stream is told to read on the loop's next iteration (never now: the caller's
        transaction comes before any reply is handled)."""
        if t.cast(int, stream.socket.get(zmq.EVENTS)) & zmq.POLLIN:
            asyncio.get_event_loop().call_soon(
                lambda: None if stream.closed() else stream.flush(zmq.POLLIN)
            )

    def send_raw(
        self, channel: str, frames: list[bytes], *, owner: Listener | None = None
    ) -> dict[str, t.Any]:
        """Sign and send packed frames ``[header, parent, metadata, content, *buffers]``.

        Returns the unpacked header.
        """
        stream = self.send_stream(channel)
        header: dict[str, t.Any] = self.session.unpack(frames[0])
        self.router.remember_owner(header.get("msg_id", ""), header.get("msg_type", ""), owner)
        self.session.send_raw(stream, list(frames))  # type: ignore[arg-type]
        self._flush_sends(stream)
        return header

    @staticmethod
    def _flush_sends(stream: ZMQStream) -> None:
        """Hand what the stream queued to ZMQ now, not on the loop's next iteration.

        ``ZMQStream.send_multipart`` only queues; the socket send happens when the loop
        next reports the socket writable, after whatever else this iteration does (the
        202 of an execute request, the document's "running" transaction and its frames).
        ``flush(POLLOUT)`` sends the queue in order and then re-checks the socket's
        events, so an incoming message whose edge the send consumed is still handled
        (sending on the socket behind the stream's back would lose it).
        """
        stream.flush(zmq.POLLOUT)

    def forward_request(
        self,
        channel: str,
        msg: dict[str, t.Any] | None = None,
        *,
        frames: list[bytes] | None = None,
        owner: Listener,
        origin: str,
    ) -> None:
        """Send a request from a kernel websocket: run request hooks, then send (held while
        the kernel restarts; forwarding.py). Give either ``msg`` (legacy JSON protocol) or
        ``frames`` (v1 protocol)."""
        self.websocket_requests.forward(channel, msg, frames, owner=owner, origin=origin)

    def _restarting(self) -> bool:
        """Connected to a restarted kernel that is not ready yet."""
        return self._sockets is not None and self.connect_count > 1 and not self.readiness.ready

    def is_withheld(self, msg_id: str) -> bool:
        return self.router.is_withheld(msg_id)

    def flush(self, channel: str = "iopub") -> None:
        """Deliver what the socket already received (before a synthetic status message)."""
        if channel == IOPUB:
            if self._sockets is not None and not self._sockets.iopub.closed():
                self._sockets.iopub.flush()
            return
        stream = self.streams.get(channel)
        if stream is not None and not stream.closed():
            stream.flush()

    # ------------------------------------------------------------------ receiving

    def _on_recv(self, channel: str, msg_list: list[bytes]) -> None:
        try:
            _idents, frames = self.session.feed_identities(msg_list, copy=True)
            msg = KernelMessage(channel, t.cast(list[bytes], frames), self.session)
        except Exception:
            self.log.warning(
                "Kernel %s: malformed message on %s dropped", self.kernel_id, channel, exc_info=True
            )
            return
        self.dispatch(msg)

    def dispatch(self, msg: KernelMessage) -> None:
        if msg.channel == "iopub":
            self.readiness.observe_iopub(msg)
        self.router.dispatch(msg)


__all__ = [
    "CHANNELS",
    "LIFECYCLE_EVENTS",
    "OUTPUT_MSG_TYPES",
    "REQUEST_CHANNELS",
    "KernelMessage",
    "Listener",
    "SharedKernelClient",
]
