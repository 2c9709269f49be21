"""When a document room saves: debounced after edits, retried with backoff when it fails.

A save is requested by every edit and runs ``save_delay`` seconds after the last one (at most
``save_max_delay`` after the first), one at a time; after a save that took long (a big
document) the next one waits so that saving takes at most ``save_time_share`` of the time.
A save that fails for a reason a retry may cure (disk full, read-only file, contents manager
error) is tried again after ``save_retry_delay`` seconds, doubling up to
``save_retry_max_delay``, with no new edit needed; meanwhile the document's state stays
dirty and collaborators get a raw ``{"type": "save_failed", "path", "reason", "retry_in"}``
message; the first save that works again sends ``{"type": "save_recovered", "path"}`` and a
``saved`` room event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

SaveStatus = str  # "success" | "skipped" | "failed"


class SaveSide(Protocol):
    """What the schedule needs from its document room."""

    @property
    def path(self) -> str: ...
    @property
    def unsaved(self) -> bool: ...
    @property
    def active(self) -> bool:
        """Loaded and not closed."""

    def save(self) -> Awaitable[SaveStatus]: ...
    def failure(self) -> tuple[str | None, bool]:
        """Why the last save failed and whether a retry may help."""

    def set_state(self, **values: Any) -> None: ...
    def broadcast_raw(self, payload: dict[str, Any]) -> None: ...
    def file_event(self, action: str, message: str) -> None: ...
    def saved_or_failed(self) -> None:
        """An autosave ended (the room may be freed now)."""


class Delays(Protocol):
    @property
    def save_delay(self) -> float: ...
    @property
    def save_max_delay(self) -> float: ...
    @property
    def save_retry_delay(self) -> float: ...
    @property
    def save_retry_max_delay(self) -> float: ...
    @property
    def save_time_share(self) -> float: ...


class SaveSchedule:
    """The autosave timer, the running save and the retries of one room."""

    def __init__(self, side: SaveSide, delays: Delays, log: logging.Logger):
        self.side = side
        self.delays = delays
        self.log = log
        self._handle: asyncio.TimerHandle | None = None
        self._first_request: float | None = None
        self._task: asyncio.Future[None] | None = None
        self._retry_handle: asyncio.TimerHandle | None = None
        self._cooldown_until = 0.0
        self.failures = 0

    @property
    def retry_pending(self) -> bool:
        return self._retry_handle is not None

    def request(self, delay: float | None = None) -> None:
        """Save after ``save_delay`` without further edits (at most ``save_max_delay`` late).

        ``delay`` overrides ``save_delay`` (0: as soon as the event loop is free).
        """
        if not self.side.active:
            return
        loop = asyncio.get_event_loop()
        now = loop.time()
        if self._first_request is None:
            self._first_request = now
        delay = max(self.delays.save_delay if delay is None else delay, 0)
        deadline = self._first_request + max(self.delays.save_max_delay, delay)
        delay = max(0.0, min(delay, deadline - now), self._cooldown_until - now)
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_later(delay, self._start)

    def _start(self) -> None:
        self._handle = None
        self._first_request = None
        if self._task is not None and not self._task.done():
            # A save is running; save again after it.
            self._task.add_done_callback(lambda _: self.request())
            return
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        started = time.monotonic()
        try:
            status = await self.side.save()
        except Exception:
            self.log.exception("collab_kernels: autosave of %s failed", self.side.path)
            status = "failed"
        self._cool_down(time.monotonic() - started)
        self.ended(status)
        self.side.saved_or_failed()

    def ended(self, status: SaveStatus) -> None:
        """A save ended (autosave or explicit): retry a failed write, or say it works again."""
        side = self.side
        if not side.active:
            return
        reason, retryable = side.failure()
        if status == "failed" and retryable and side.unsaved:
            self.failures += 1
            base = max(self.delays.save_retry_delay, 0.01)
            delay = min(
                base * 2 ** (self.failures - 1), max(self.delays.save_retry_max_delay, base)
            )
            reason = reason or "unknown error"
            side.set_state(dirty=True)
            side.broadcast_raw(
                {"type": "save_failed", "path": side.path, "reason": reason, "retry_in": delay}
            )
            self.log.warning(
                "collab_kernels: %s is not saved (attempt %d: %s); retrying in %.1f s",
                side.path,
                self.failures,
                reason,
                delay,
            )
            if self._retry_handle is not None:
                self._retry_handle.cancel()
            self._retry_handle = asyncio.get_event_loop().call_later(delay, self._retry)
        elif status != "failed" and self.failures:
            self.log.info(
                "collab_kernels: %s is saved again after %d failed attempts",
                side.path,
                self.failures,
            )
            self.failures = 0
            side.broadcast_raw({"type": "save_recovered", "path": side.path})
            side.file_event("saved", "The document is saved again after failed saves.")

    def _cool_down(self, took: float) -> None:
        """A big document's saves take long (jupyter_server validates, signs and serializes on
        the event loop): the next autosave waits so that saving takes at most
        ``save_time_share`` of the time, e.g. a save that took 1 s is followed by 9 s without
        one at 0.1 (a cell printing in a loop then costs others 10%, not everything)."""
        share = self.delays.save_time_share
        if share <= 0 or share >= 1:
            self._cooldown_until = 0.0
            return
        wait = took * (1 / share - 1)
        self._cooldown_until = asyncio.get_event_loop().time() + wait
        if wait > 1:
            self.log.info(
                "collab_kernels: saving %s took %.1f s; the next autosave waits %.1f s",
                self.side.path,
                took,
                wait,
            )

    def _retry(self) -> None:
        self._retry_handle = None
        self.request(delay=0)

    def stop(self) -> None:
        for handle in (self._handle, self._retry_handle):
            if handle is not None:
                handle.cancel()
        self._handle = self._retry_handle = None
