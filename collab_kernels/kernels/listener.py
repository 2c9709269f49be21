"""Listeners: the consumers of a shared kernel client, and the callback shapes they use.

A :class:`Listener` is what ``SharedKernelClient.add_listener`` returns. The Protocols name
the callbacks a client accepts: message callbacks, request hooks (see a kernel websocket's
request before it is sent, and claim its outputs) and lifecycle callbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing as t
from collections import deque
from functools import partial

from .message import CHANNELS, LIFECYCLE_EVENTS, KernelMessage, LifecycleEvent

Replies = t.Literal["all", "owned"]


class MessageCallback(t.Protocol):
    """Called with each message a listener matches; may return an awaitable."""

    def __call__(self, msg: KernelMessage, /) -> t.Awaitable[object] | None: ...


class RequestHook(t.Protocol):
    """``hook(msg, origin)`` for each request a kernel websocket sends, before it is sent.

    ``msg`` is the request as a dict (``header``, ``parent_header``, ``metadata``,
    ``content``, ``buffers``, ``channel``); ``origin`` names the websocket. Returning True
    claims the request: its output messages are withheld from kernel websockets (see
    ``SharedKernelClient.withhold_outputs_from``).
    """

    def __call__(self, msg: dict[str, t.Any], origin: str, /) -> bool: ...


class LifecycleCallback(t.Protocol):
    """Called with a :data:`~collab_kernels.kernels.message.LifecycleEvent`."""

    def __call__(self, event: LifecycleEvent, /) -> t.Awaitable[object] | None: ...


class ListenerHost(t.Protocol):
    """What a listener needs from the client it listens to."""

    @property
    def kernel_id(self) -> str: ...

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[t.Any]: ...

    def remove_listener(self, listener: Listener) -> None: ...


class Listener:
    """A consumer of a shared kernel client's messages (returned by ``add_listener``).

    The callback may be sync or async (or return an awaitable sometimes). While an awaitable
    returned by the callback is pending, later messages wait in a bounded queue, so the
    listener sees messages in arrival order and never blocks the channel or other
    listeners. Exceptions are logged with the kernel id and do not stop delivery.
    """

    def __init__(
        self,
        client: ListenerHost,
        callback: MessageCallback | t.Callable[[KernelMessage], t.Any],
        *,
        channels: t.Iterable[str] | None = None,
        msg_types: t.Iterable[str | tuple[str, str]] | None = None,
        replies: Replies = "all",
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
        self.replies: Replies = replies
        self.skip_withheld = skip_withheld
        self.name: str = name or str(getattr(callback, "__qualname__", None) or repr(callback))
        self.max_pending = max_pending
        self.closed = False
        self.first = False  # set by add_listener(first=True)
        self.dropped = 0
        self._pending: deque[KernelMessage] = deque()
        self._task: asyncio.Future[None] | None = None

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

    def _call(self, msg: KernelMessage) -> t.Awaitable[object] | None:
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
            return t.cast(t.Awaitable[object], result)
        return None

    async def _drain(self, awaitable: t.Awaitable[object]) -> None:
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


class LifecycleListeners:
    """The lifecycle callbacks of one client; each runs isolated (errors are logged)."""

    def __init__(self, host: ListenerHost):
        self.host = host
        self._callbacks: list[LifecycleCallback] = []

    def add(self, callback: LifecycleCallback) -> None:
        self._callbacks.append(callback)

    def remove(self, callback: LifecycleCallback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def fire(self, event: LifecycleEvent) -> None:
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {event!r}; use {LIFECYCLE_EVENTS}")
        log, kernel_id = self.host.log, self.host.kernel_id
        log.debug("Kernel %s: lifecycle event %s", kernel_id, event)
        for cb in list(self._callbacks):
            try:
                result = cb(event)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(partial(self._log_error, cb, event))
            except Exception:
                log.exception("Kernel %s: lifecycle listener %r failed on %s", kernel_id, cb, event)

    def _log_error(self, cb: t.Any, event: str, task: asyncio.Future[t.Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.host.log.error(
                "Kernel %s: lifecycle listener %r failed on %s",
                self.host.kernel_id,
                cb,
                event,
                exc_info=task.exception(),
            )


__all__ = [
    "LifecycleCallback",
    "LifecycleListeners",
    "Listener",
    "ListenerHost",
    "MessageCallback",
    "RequestHook",
]
