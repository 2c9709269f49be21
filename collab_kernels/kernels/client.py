"""One shared kernel client per kernel; every consumer is a listener on it.

The client owns one ZMQ socket set (iopub, shell, control, stdin) to a kernel and fans each
message out to listeners as it arrives. Reception is driven by the event loop through
``ZMQStream.on_recv`` callbacks: no polling and no sleeps.

Routing rules (see docs/architecture.md, "kernels/"):

- iopub: every listener whose filters match, except that output messages of a request a
  request hook claimed are withheld from kernel websocket listeners (``skip_withheld``).
- shell / control / stdin: a message whose parent request was sent with an ``owner`` goes to
  that owner only. Other replies go to listeners registered with ``replies="all"``.

Why not ``jupyter_client.AsyncKernelClient``: its channels are read by awaiting one message
at a time per consumer, and it routes nothing; here one socket set is read once and each
message is decoded at most once for all consumers (``KernelMessage.parsed`` is shared).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import typing as t
from collections import OrderedDict, deque
from functools import partial

import zmq
from jupyter_client.connect import channel_socket_types
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from traitlets import CaselessStrEnum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable
from zmq.eventloop.zmqstream import ZMQStream
from zmq.utils.monitor import parse_monitor_message

CHANNELS = ("iopub", "shell", "control", "stdin")
REQUEST_CHANNELS = ("shell", "control", "stdin")

#: iopub message types that carry a request's output (withheld when a hook claims it).
OUTPUT_MSG_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error", "clear_output"}
)

LIFECYCLE_EVENTS = ("restarted", "dead", "shutdown")


class KernelMessage:
    """A message received from the kernel, decoded lazily and at most once.

    ``raw`` holds the wire frames after the routing identities: ``[signature, header,
    parent_header, metadata, content, *buffers]``. ``parsed`` is the dict that
    ``Session.deserialize(raw, content=True)`` returns (signature checked), computed on first
    use and shared by every listener: do not mutate it.
    """

    __slots__ = (
        "_cache",
        "_content",
        "_parsed",
        "_session",
        "channel",
        "header",
        "msg_id",
        "msg_type",
        "parent_header",
        "parent_msg_id",
        "raw",
        "received",
    )

    def __init__(self, channel: str, raw: list[bytes], session: Session):
        self.channel = channel
        self.raw = raw
        self._session = session
        self.header: dict[str, t.Any] = session.unpack(raw[1])
        self.parent_header: dict[str, t.Any] = session.unpack(raw[2]) if raw[2] else {}
        self.msg_type: str = self.header.get("msg_type", "")
        self.msg_id: str = self.header.get("msg_id", "")
        self.parent_msg_id: str | None = self.parent_header.get("msg_id") or None
        self.received = time.monotonic()
        self._parsed: dict[str, t.Any] | None = None
        self._content: t.Any = None
        self._cache: dict[str, t.Any] = {}

    @property
    def parsed(self) -> dict[str, t.Any]:
        if self._parsed is None:
            self._parsed = self._session.deserialize(list(self.raw), content=True)
            self._content = self._parsed["content"]
        return self._parsed

    @property
    def content(self) -> dict[str, t.Any]:
        """The content dict (unpacked without the full deserialization)."""
        if self._content is None:
            self._content = self._session.unpack(self.raw[4])
        return self._content

    # Serializations for kernel websockets, computed once per message for all of them.
    def ws_v1(self) -> bytes:
        data = self._cache.get("v1")
        if data is None:
            data = self._cache["v1"] = serialize_msg_to_ws_v1(self.raw[1:], self.channel)
        return data

    def ws_legacy(self) -> str | bytes:
        data = self._cache.get("legacy")
        if data is None:
            msg = dict(self.parsed)
            msg["channel"] = self.channel
            if msg.get("buffers"):
                data = serialize_binary_message(msg)
            else:
                data = json.dumps(msg, default=json_default)
            self._cache["legacy"] = data
        return data

    def __repr__(self) -> str:
        return f"<KernelMessage {self.channel} {self.msg_type} {self.msg_id}>"


class Listener:
    """A consumer of a shared kernel client's messages (returned by ``add_listener``).

    The callback may be sync or async (or return an awaitable sometimes). While an awaitable
    returned by the callback is pending, later messages wait in a bounded queue, so the
    listener sees messages in arrival order and never blocks the channel or other
    listeners. Exceptions are logged with the kernel id and do not stop delivery.
    """

    def __init__(
        self,
        client: SharedKernelClient,
        callback: t.Callable[[KernelMessage], t.Any],
        *,
        channels: t.Iterable[str] | None = None,
        msg_types: t.Iterable[str | tuple[str, str]] | None = None,
        replies: str = "all",
        skip_withheld: bool = False,
        name: str | None = None,
        max_pending: int = 10000,
    ):
        if replies not in ("all", "owned"):
            raise ValueError(f"replies must be 'all' or 'owned', not {replies!r}")
        self.client = client
        self.callback = callback
        self.channels = frozenset(channels) if channels is not None else None
        if self.channels is not None and not self.channels <= set(CHANNELS):
            raise ValueError(f"unknown channel in {sorted(self.channels)}; use {CHANNELS}")
        types: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        if msg_types is not None:
            for item in msg_types:
                if isinstance(item, str):
                    types.add(item)
                else:
                    mt, ch = item
                    pairs.add((mt, ch))
        self._filter_types = msg_types is not None
        self.msg_types = frozenset(types)
        self.msg_type_channels = frozenset(pairs)
        self.replies = replies
        self.skip_withheld = skip_withheld
        self.name = name or getattr(callback, "__qualname__", repr(callback))
        self.max_pending = max_pending
        self.closed = False
        self.first = False  # set by add_listener(first=True)
        self.dropped = 0
        self._pending: deque[KernelMessage] = deque()
        self._task: asyncio.Task | None = None

    def matches(self, msg: KernelMessage) -> bool:
        if self.channels is not None and msg.channel not in self.channels:
            return False
        if self._filter_types:
            return (
                msg.msg_type in self.msg_types
                or (msg.msg_type, msg.channel) in self.msg_type_channels
            )
        return True

    @property
    def pending(self) -> int:
        """Messages waiting for a slow (async) callback."""
        return len(self._pending)

    def deliver(self, msg: KernelMessage) -> None:
        if self.closed:
            return
        if self._task is not None:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    self.client.log.warning(
                        "Kernel %s: listener %s is too slow, dropped %d message(s) "
                        "(queue limit %d)",
                        self.client.kernel_id,
                        self.name,
                        self.dropped,
                        self.max_pending,
                    )
                return
            self._pending.append(msg)
            return
        result = self._call(msg)
        if result is not None:
            self._task = asyncio.ensure_future(self._drain(result))

    def _call(self, msg: KernelMessage) -> t.Awaitable | None:
        try:
            result = self.callback(msg)
        except Exception:
            self.client.log.exception(
                "Kernel %s: listener %s failed on %s message %s",
                self.client.kernel_id,
                self.name,
                msg.msg_type,
                msg.msg_id,
            )
            return None
        if result is not None and inspect.isawaitable(result):
            return result
        return None

    async def _drain(self, awaitable: t.Awaitable) -> None:
        try:
            while True:
                try:
                    await awaitable
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.client.log.exception(
                        "Kernel %s: listener %s failed", self.client.kernel_id, self.name
                    )
                nxt = None
                while self._pending and not self.closed:
                    nxt = self._call(self._pending.popleft())
                    if nxt is not None:
                        break
                if nxt is None:
                    return
                awaitable = nxt
        finally:
            self._task = None

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def __repr__(self) -> str:
        return f"<Listener {self.name} kernel={self.client.kernel_id}>"


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

    def __init__(self, kernel_manager: t.Any, **kwargs: t.Any):
        kwargs.setdefault("parent", kernel_manager)
        kwargs.setdefault("log", kernel_manager.log)
        super().__init__(**kwargs)
        self.kernel_manager = kernel_manager
        self.kernel_id = kernel_manager.kernel_id or ""
        self.session: Session = kernel_manager.session.clone()
        self.streams: dict[str, t.Any] = {}
        self.kernel_info: dict[str, t.Any] = {}
        self._listeners: tuple[Listener, ...] = ()  # replaced, never mutated: safe to iterate
        self._owners: OrderedDict[str, Listener] = OrderedDict()
        self._withheld: OrderedDict[str, Listener] = OrderedDict()
        self._request_hooks: list[t.Callable[[dict, str], t.Any]] = []
        self._lifecycle: list[t.Callable[[str], t.Any]] = []
        self._waiters: dict[str, asyncio.Future] = {}
        self._internal = Listener(self, self._on_internal_reply, name="shared client")
        self._ready: asyncio.Future | None = None
        self._iopub_seen: asyncio.Future | None = None
        self._nudge_ids: set[str] = set()
        self._handshakes: asyncio.Future | None = None
        self._handshaken: set[str] = set()
        self._monitors: dict[str, ZMQStream] = {}
        self._nudge_task: asyncio.Task | None = None
        self._closed = False
        self.connect_count = 0

    # ------------------------------------------------------------------ connection

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
        loop = asyncio.get_event_loop()
        if self._ready is None or self._ready.done():
            # (a reconnect while not ready yet keeps the future its waiters hold)
            self._ready = loop.create_future()
        self._iopub_seen = loop.create_future()
        self._nudge_ids = set()
        self._handshakes = loop.create_future()
        self._handshaken = set()
        self.connect_count += 1
        for channel in CHANNELS:
            stream = self._connect_channel(channel)
            stream.on_recv(partial(self._on_recv, channel), copy=True)
            self.streams[channel] = stream
        self.log.debug(
            "Kernel %s: shared client connecting (%s)",
            self.kernel_id,
            self.kernel_manager.transport,
        )
        self._nudge_task = asyncio.ensure_future(self._nudge(self._ready))

    def _connect_channel(self, channel: str) -> ZMQStream:
        """One socket of the set, watched until its connection to the kernel is complete.

        Mirrors jupyter_client's ``_create_connected_socket`` (same socket types, linger and
        CURVE keys), plus what it offers no hook for, set before ``connect``:

        - the iopub receive high-water mark (fixed when the pipe is created);
        - the shell identity on shell, control and stdin: replies to our shell requests and
          the kernel's stdin prompts are addressed to it;
        - a ZMQ socket monitor reporting the end of the ZMTP handshake. The sockets are
          connected while the kernel process is still starting, so each one's first
          attempt is refused and retried on its own timer (``reconnect_ivl``, 100 ms).
          The shell reply and an iopub message prove those two are up, but nothing
          answers on stdin, and the kernel's stdin ROUTER silently drops an
          ``input_request`` for an identity it has not seen yet: an ``input()`` run in
          that window waited forever. ``wait_ready`` also waits for every handshake.
        """
        km = self.kernel_manager
        sock = zmq.Socket(km.context, channel_socket_types[channel])
        sock.linger = 1000
        if channel == "iopub":
            sock.rcvhwm = self.iopub_receive_hwm
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            sock.identity = self.session.bsession
        if getattr(km, "curve_publickey", None) is not None:
            sock.curve_secretkey = km.curve_secretkey
            sock.curve_publickey = km.curve_publickey
            sock.curve_serverkey = km.curve_publickey
        address = f"inproc://collab-kernels-monitor-{id(self):x}-{self.connect_count}-{channel}"
        sock.monitor(address, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        monitor = zmq.Socket(km.context, zmq.PAIR)
        monitor.linger = 0
        monitor.connect(address)
        monitor_stream = ZMQStream(monitor, km.loop)
        monitor_stream.on_recv(partial(self._on_monitor_event, channel))
        self._monitors[channel] = monitor_stream
        sock.connect(km._make_url(channel))
        return ZMQStream(sock, km.loop)

    def _on_monitor_event(self, channel: str, frames: list[bytes]) -> None:
        try:
            event = parse_monitor_message(frames)["event"]
        except Exception:  # pragma: no cover - libzmq sends well-formed events
            return
        if event != zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return
        self._stop_monitor(channel)
        self._handshaken.add(channel)
        self.log.debug("Kernel %s: %s socket connected", self.kernel_id, channel)
        done = self._handshakes
        if done is not None and not done.done() and self._handshaken >= set(CHANNELS):
            done.set_result(None)

    def _stop_monitor(self, channel: str) -> None:
        monitor = self._monitors.pop(channel, None)
        if monitor is None:
            return
        stream = self.streams.get(channel)
        try:
            if stream is not None and not stream.closed():
                stream.socket.disable_monitor()
        except zmq.ZMQError:  # pragma: no cover - socket already closed
            pass
        if not monitor.closed():
            monitor.on_recv(None)
            monitor.close(linger=0)

    def _close_streams(self) -> None:
        if self._nudge_task is not None:
            self._nudge_task.cancel()
            self._nudge_task = None
        # Monitors first: libzmq's context cannot terminate while one is open.
        for channel in list(self._monitors):
            self._stop_monitor(channel)
        for stream in self.streams.values():
            try:
                if not stream.closed():
                    stream.on_recv(None)
                    stream.close(linger=0)
            except Exception:  # pragma: no cover - closing a dead socket
                self.log.debug("Kernel %s: error closing stream", self.kernel_id, exc_info=True)
        self.streams = {}
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        # Requests sent to the previous kernel process will never be answered.
        self._owners.clear()
        self._withheld.clear()

    def reconnect(self) -> None:
        """Drop the sockets to the previous kernel process and connect to the current one."""
        self._close_streams()
        self.connect()

    def close(self) -> None:
        """Close the sockets; listeners stay registered but receive nothing more."""
        if self._closed:
            return
        self._closed = True
        self._close_streams()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()

    async def wait_ready(self, timeout: float | None = None) -> dict[str, t.Any]:
        """Wait until the kernel answered a kernel_info_request and iopub delivers."""
        if self._ready is None:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        return self.kernel_info

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.done() and not self._ready.cancelled()

    async def _nudge(self, ready: asyncio.Future) -> None:
        """Send kernel_info_requests until one is answered and its status arrived on iopub.

        The status (the kernel publishes busy/idle around each kernel_info_request) proves
        our SUB subscription is established, and that consumers such as the activity
        tracker saw one: the first status after a start turns ``execution_state`` from
        "starting" to "idle". Any other iopub message is not enough: ipykernel 7 greets
        each new subscriber with ``iopub_welcome``, which can come after the statuses of
        a request the kernel answered before our subscription reached it.
        """
        timeout = float(getattr(self.kernel_manager.parent, "kernel_info_timeout", 60) or 60)
        deadline = time.monotonic() + timeout
        attempt = 0
        try:
            while time.monotonic() < deadline:
                attempt += 1
                msg = self.session.msg("kernel_info_request")
                self._nudge_ids.add(msg["header"]["msg_id"])
                fut = self._expect_reply(msg)
                self.send("shell", msg, owner=self._internal)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(fut), 1.0)
                except asyncio.TimeoutError:
                    if attempt % 10 == 0:
                        self.log.warning(
                            "Kernel %s: no kernel_info reply after %d attempts",
                            self.kernel_id,
                            attempt,
                        )
                    continue
                self.kernel_info = reply.content
                try:
                    await asyncio.wait_for(asyncio.shield(self._iopub_seen), 1.0)
                except asyncio.TimeoutError:
                    continue
                await self._wait_handshakes()
                if not ready.done():
                    ready.set_result(None)
                self.log.debug("Kernel %s: shared client ready", self.kernel_id)
                return
            self.log.warning(
                "Kernel %s: shared client got no kernel_info reply within %ss",
                self.kernel_id,
                timeout,
            )
            if not ready.done():
                ready.set_exception(TimeoutError(f"Kernel {self.kernel_id} did not answer"))
                ready.exception()  # mark retrieved: callers re-raise through wait_ready
        except asyncio.CancelledError:
            pass

    async def _wait_handshakes(self) -> None:
        """Wait for the sockets nothing answers on (stdin, control) to finish connecting.

        The kernel answered on shell, so it has bound all its sockets: the others connect
        on their next retry. Bounded, in case a kernel does not serve a channel.
        """
        handshakes = self._handshakes
        if handshakes is None or handshakes.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(handshakes), self.handshake_timeout)
        except asyncio.TimeoutError:
            missing = sorted(set(CHANNELS) - self._handshaken)
            self.log.warning(
                "Kernel %s: no connection on %s after %ss; input() prompts may be lost",
                self.kernel_id,
                ", ".join(missing),
                self.handshake_timeout,
            )
            for channel in missing:
                self._stop_monitor(channel)

    def _expect_reply(self, msg: dict[str, t.Any]) -> asyncio.Future:
        fut = asyncio.get_event_loop().create_future()
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
        callback: t.Callable[[KernelMessage], t.Any],
        *,
        channels: t.Iterable[str] | None = None,
        msg_types: t.Iterable[str | tuple[str, str]] | None = None,
        replies: str = "all",
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
        if first:
            ahead = sum(1 for x in self._listeners if getattr(x, "first", False))
            self._listeners = (*self._listeners[:ahead], listener, *self._listeners[ahead:])
        else:
            self._listeners = (*self._listeners, listener)
        listener.first = first
        return listener

    def remove_listener(self, listener: Listener) -> None:
        listener.close()
        self._listeners = tuple(x for x in self._listeners if x is not listener)

    @property
    def listeners(self) -> list[Listener]:
        return list(self._listeners)

    def transfer_ownership(self, old: Listener, new: Listener) -> int:
        """Route pending replies (and withheld outputs) of ``old``'s requests to ``new``."""
        moved = 0
        for table in (self._owners, self._withheld):
            for msg_id, owner in table.items():
                if owner is old:
                    table[msg_id] = new
                    moved += 1
        return moved

    def add_request_hook(self, hook: t.Callable[[dict, str], t.Any]) -> None:
        """``hook(msg, origin) -> bool`` for each request a kernel websocket sends."""
        self._request_hooks.append(hook)

    def remove_request_hook(self, hook: t.Callable[[dict, str], t.Any]) -> None:
        if hook in self._request_hooks:
            self._request_hooks.remove(hook)

    def add_lifecycle_listener(self, callback: t.Callable[[str], t.Any]) -> None:
        """``callback(event)`` with ``"restarted"``, ``"dead"`` or ``"shutdown"``."""
        self._lifecycle.append(callback)

    def remove_lifecycle_listener(self, callback: t.Callable[[str], t.Any]) -> None:
        if callback in self._lifecycle:
            self._lifecycle.remove(callback)

    def fire_lifecycle(self, event: str) -> None:
        self.log.debug("Kernel %s: lifecycle event %s", self.kernel_id, event)
        for cb in list(self._lifecycle):
            try:
                result = cb(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(partial(self._log_lifecycle_error, cb, event))
            except Exception:
                self.log.exception(
                    "Kernel %s: lifecycle listener %r failed on %s", self.kernel_id, cb, event
                )

    def _log_lifecycle_error(self, cb: t.Any, event: str, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error(
                "Kernel %s: lifecycle listener %r failed on %s",
                self.kernel_id,
                cb,
                event,
                exc_info=task.exception(),
            )

    # ------------------------------------------------------------------ sending

    def _remember_owner(self, msg_id: str, msg_type: str, owner: Listener | None) -> None:
        if owner is None or not msg_type.endswith("_request"):
            return
        self._owners[msg_id] = owner
        while len(self._owners) > self.request_table_size:
            self._owners.popitem(last=False)

    def _stream(self, channel: str) -> t.Any:
        if channel not in REQUEST_CHANNELS:
            raise ValueError(f"cannot send on channel {channel!r}; use {REQUEST_CHANNELS}")
        stream = self.streams.get(channel)
        if stream is None:
            raise RuntimeError(f"Kernel {self.kernel_id}: shared client is not connected")
        return stream

    def send(self, channel: str, msg: dict[str, t.Any], *, owner: Listener | None = None) -> None:
        """Sign and send ``msg`` (built with ``self.session.msg``) on ``channel``."""
        stream = self._stream(channel)
        header = msg["header"]
        self._remember_owner(header["msg_id"], header.get("msg_type", ""), owner)
        self.session.send(stream, msg)
        self._flush_sends(stream)

    def send_raw(
        self, channel: str, frames: list[bytes], *, owner: Listener | None = None
    ) -> dict[str, t.Any]:
        """Sign and send packed frames ``[header, parent, metadata, content, *buffers]``.

        Returns the unpacked header.
        """
        stream = self._stream(channel)
        header = self.session.unpack(frames[0])
        self._remember_owner(header.get("msg_id", ""), header.get("msg_type", ""), owner)
        self.session.send_raw(stream, list(frames))
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
        """Send a request from a kernel websocket: run request hooks, then send.

        Give either ``msg`` (legacy JSON protocol) or ``frames`` (v1 protocol).
        """
        if self._request_hooks:
            parsed = msg
            if parsed is None:
                assert frames is not None
                parsed = {
                    "header": self.session.unpack(frames[0]),
                    "parent_header": self.session.unpack(frames[1]),
                    "metadata": self.session.unpack(frames[2]),
                    "content": self.session.unpack(frames[3]),
                    "buffers": list(frames[4:]),
                }
                parsed["msg_id"] = parsed["header"].get("msg_id")
                parsed["msg_type"] = parsed["header"].get("msg_type")
            parsed.setdefault("channel", channel)
            claimed = False
            for hook in list(self._request_hooks):
                try:
                    if hook(parsed, origin):
                        claimed = True
                except Exception:
                    self.log.exception(
                        "Kernel %s: request hook %r failed on %s from %s",
                        self.kernel_id,
                        hook,
                        parsed["header"].get("msg_type"),
                        origin,
                    )
            if msg is not None and "channel" in msg:
                msg.pop("channel")
            if claimed:
                self._withheld[parsed["header"]["msg_id"]] = owner
                while len(self._withheld) > self.withheld_table_size:
                    self._withheld.popitem(last=False)
        if frames is not None:
            self.send_raw(channel, frames, owner=owner)
        else:
            assert msg is not None
            self.send(channel, msg, owner=owner)

    def is_withheld(self, msg_id: str) -> bool:
        return msg_id in self._withheld

    def flush(self, channel: str = "iopub") -> None:
        """Deliver what the socket already received (before a synthetic status message)."""
        stream = self.streams.get(channel)
        if stream is not None and not stream.closed():
            stream.flush()

    # ------------------------------------------------------------------ receiving

    def _on_recv(self, channel: str, msg_list: list[bytes]) -> None:
        try:
            _idents, frames = self.session.feed_identities(msg_list, copy=True)
            msg = KernelMessage(channel, frames, self.session)
        except Exception:
            self.log.warning(
                "Kernel %s: malformed message on %s dropped", self.kernel_id, channel, exc_info=True
            )
            return
        self.dispatch(msg)

    def dispatch(self, msg: KernelMessage) -> None:
        if msg.channel == "iopub":
            self._dispatch_iopub(msg)
        else:
            self._dispatch_reply(msg)

    def _dispatch_iopub(self, msg: KernelMessage) -> None:
        iopub_seen = self._iopub_seen
        if (
            iopub_seen is not None
            and not iopub_seen.done()
            and msg.msg_type == "status"
            and msg.parent_msg_id in self._nudge_ids
        ):
            iopub_seen.set_result(None)
            self._nudge_ids.clear()
        withheld_from = None
        parent = msg.parent_msg_id
        if parent is not None and self._withheld and parent in self._withheld:
            if msg.msg_type in OUTPUT_MSG_TYPES:
                withheld_from = self._withheld[parent]
            elif msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                # iopub is ordered: idle is the request's last iopub message.
                del self._withheld[parent]
        if withheld_from is None:
            for listener in self._listeners:
                if listener.matches(msg):
                    listener.deliver(msg)
            return
        everywhere = self.withhold_outputs_from == "websockets"
        for listener in self._listeners:
            if listener is withheld_from or (everywhere and listener.skip_withheld):
                continue
            if listener.matches(msg):
                listener.deliver(msg)

    def _dispatch_reply(self, msg: KernelMessage) -> None:
        parent = msg.parent_msg_id
        owner = self._owners.get(parent) if parent is not None else None
        if owner is not None:
            if msg.channel in ("shell", "control") and msg.msg_type.endswith("_reply"):
                del self._owners[parent]
            if owner.matches(msg):
                owner.deliver(msg)
            return
        for listener in self._listeners:
            if listener.replies == "all" and listener.matches(msg):
                listener.deliver(msg)
