"""When a shared client counts as ready: the kernel answers and every socket is connected.

After each connect (start or restart) the client sends kernel_info requests until one is
answered and its status arrived on iopub, then waits for every socket's ZMTP handshake:

- the status (the kernel publishes busy/idle around each kernel_info_request) proves our
  SUB subscription is established, and that consumers such as the activity tracker saw
  one. Any other iopub message is not enough: ipykernel 7 greets each new subscriber with
  ``iopub_welcome``, which can come after the statuses of a request the kernel answered
  before our subscription reached it;
- nothing answers on stdin, and the kernel's stdin ROUTER silently drops an
  ``input_request`` for an identity it has not seen yet: the handshake monitors of
  ``sockets.py`` prove it is connected (bounded by ``handshake_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing as t

from .message import KernelMessage
from .sockets import KernelSockets

#: Sends one kernel_info_request; returns its msg_id and the future of its reply.
SendKernelInfo = t.Callable[[], tuple[str, "asyncio.Future[KernelMessage]"]]


class Readiness:
    """The ready future of a shared client and the nudging that resolves it."""

    def __init__(
        self,
        *,
        send_kernel_info: SendKernelInfo,
        log: logging.Logger | logging.LoggerAdapter[t.Any],
        kernel_id: t.Callable[[], str],
    ):
        self._send_kernel_info = send_kernel_info
        self.log = log
        self._kernel_id = kernel_id
        self.kernel_info: dict[str, t.Any] = {}
        self.future: asyncio.Future[None] | None = None
        self._iopub_seen: asyncio.Future[None] | None = None
        self._nudge_ids: set[str] = set()
        self._startup_ids: set[str] = set()
        self._task: asyncio.Future[None] | None = None
        self._on_ready: list[t.Callable[[], None]] = []

    @property
    def ready(self) -> bool:
        fut = self.future
        return fut is not None and fut.done() and not fut.cancelled()

    def on_ready(self, callback: t.Callable[[], None]) -> None:
        """``callback()`` each time nudging ends (ready, or given up)."""
        self._on_ready.append(callback)

    def start(
        self,
        sockets: KernelSockets,
        *,
        first: bool,
        timeout: float,
        handshake_timeout: float,
    ) -> None:
        """Begin nudging a (re)connected socket set. ``first``: the kernel just started."""
        loop = asyncio.get_event_loop()
        if self.future is None or self.future.done():
            # (a reconnect while not ready yet keeps the future its waiters hold)
            self.future = loop.create_future()
        self._iopub_seen = loop.create_future()
        self._nudge_ids = set()
        self._task = asyncio.ensure_future(
            self._nudge(self.future, sockets, first, timeout, handshake_timeout)
        )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def cancel(self) -> None:
        """The client closed: waiters of ``wait`` get CancelledError."""
        self.stop()
        if self.future is not None and not self.future.done():
            self.future.cancel()

    async def wait(self, timeout: float | None) -> None:
        if self.future is None:
            raise RuntimeError(f"Kernel {self._kernel_id()}: shared client is not connected")
        await asyncio.wait_for(asyncio.shield(self.future), timeout)

    def is_startup_nudge(self, msg_id: str | None) -> bool:
        return msg_id is not None and msg_id in self._startup_ids

    def observe_iopub(self, msg: KernelMessage) -> None:
        """Called with every iopub message before it is dispatched."""
        seen = self._iopub_seen
        if (
            seen is not None
            and not seen.done()
            and msg.msg_type == "status"
            and msg.parent_msg_id in self._nudge_ids
        ):
            seen.set_result(None)
            self._nudge_ids.clear()

    def _ended(self) -> None:
        for callback in list(self._on_ready):
            try:
                callback()
            except Exception:
                self.log.exception("Kernel %s: ready callback failed", self._kernel_id())

    async def _nudge(
        self,
        ready: asyncio.Future[None],
        sockets: KernelSockets,
        first: bool,
        timeout: float,
        handshake_timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        attempt = 0
        iopub_seen = self._iopub_seen
        assert iopub_seen is not None
        try:
            while time.monotonic() < deadline:
                attempt += 1
                msg_id, reply_future = self._send_kernel_info()
                self._nudge_ids.add(msg_id)
                if first:
                    self._startup_ids.add(msg_id)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(reply_future), 1.0)
                except asyncio.TimeoutError:
                    if attempt % 10 == 0:
                        self.log.warning(
                            "Kernel %s: no kernel_info reply after %d attempts",
                            self._kernel_id(),
                            attempt,
                        )
                    continue
                self.kernel_info = reply.content
                try:
                    await asyncio.wait_for(asyncio.shield(iopub_seen), 1.0)
                except asyncio.TimeoutError:
                    continue
                await self._wait_handshakes(sockets, handshake_timeout)
                if not ready.done():
                    ready.set_result(None)
                self.log.debug("Kernel %s: shared client ready", self._kernel_id())
                self._ended()
                return
            self.log.warning(
                "Kernel %s: shared client got no kernel_info reply within %ss",
                self._kernel_id(),
                timeout,
            )
            if not ready.done():
                ready.set_exception(TimeoutError(f"Kernel {self._kernel_id()} did not answer"))
                ready.exception()  # mark retrieved: callers re-raise through wait_ready
            self._ended()  # (the kernel may still answer)
        except asyncio.CancelledError:
            pass

    async def _wait_handshakes(self, sockets: KernelSockets, handshake_timeout: float) -> None:
        """Wait for the sockets nothing answers on (stdin, control) to finish connecting.

        The kernel answered on shell, so it has bound all its sockets: the others connect
        on their next retry. Bounded, in case a kernel does not serve a channel.
        """
        if sockets.handshakes.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(sockets.handshakes), handshake_timeout)
        except asyncio.TimeoutError:
            missing = sockets.missing()
            self.log.warning(
                "Kernel %s: no connection on %s after %ss; input() prompts may be lost",
                self._kernel_id(),
                ", ".join(missing),
                handshake_timeout,
            )
            for channel in missing:
                sockets.stop_monitor(channel)


__all__ = ["Readiness", "SendKernelInfo"]
