"""jupyter_server's activity tracking of one kernel, as a listener of its shared client.

The rules are stock ``MappingKernelManager.start_watching_activity``'s: every iopub message
of a tracked type (or whose parent is tracked, or while busy) is activity; a status message
sets ``execution_state`` when its parent is tracked, and the first status after starting
makes it idle. Two things cost less than stock, for the same results:

- the untracked message types are a set, rebuilt when the trait changes (stock scans the
  list twice per message);
- the kernel's ``last_activity`` and the manager's ``last_kernel_activity`` are traits
  (validated and notified on each assignment), so during a burst they are assigned at most
  once per ``SETTLE`` seconds, and always end with the burst's last activity: a time
  skipped is assigned when the interval ends. A status message is assigned at once, so
  when a request's idle status has been handled, everything is as stock has it.
"""

from __future__ import annotations

import asyncio
import typing as t
from datetime import datetime

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

from .message import STATUS, KernelMessage

#: Seconds between two assignments of the activity traits during a burst.
SETTLE = 0.01


class ActivityManager(t.Protocol):
    """What the tracking reads and sets on the mapping kernel manager."""

    last_kernel_activity: datetime
    untracked_message_types: list[str]

    def track_message_type(self, message_type: str | None) -> bool: ...

    def observe(self, handler: t.Callable[[t.Any], None], names: str) -> None: ...

    def unobserve(self, handler: t.Callable[[t.Any], None], names: str) -> None: ...


class KernelActivity:
    """The listener callback that records one kernel's activity and execution state."""

    def __init__(
        self,
        manager: ActivityManager,
        kernel: t.Any,
        is_nudge: t.Callable[[str | None], bool],
        clock: t.Callable[[], datetime] = utcnow,
    ):
        self.manager = manager
        self.kernel = kernel
        self._is_nudge = is_nudge
        self._clock = clock
        # A subclass's own track_message_type is asked; the stock one is a set lookup.
        self._stock_rule = (
            getattr(type(manager), "track_message_type", None)
            is MappingKernelManager.track_message_type
        )
        self._untracked: frozenset[str] = frozenset()
        self._types_changed(None)
        manager.observe(self._types_changed, "untracked_message_types")
        self._assigned_at = 0.0  # loop time of the last assignment
        self._skipped: datetime | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _types_changed(self, _change: t.Any) -> None:
        self._untracked = frozenset(self.manager.untracked_message_types)

    def _tracked(self, message_type: str | None) -> bool:
        if self._stock_rule:
            return message_type not in self._untracked
        return bool(self.manager.track_message_type(message_type))

    def __call__(self, msg: KernelMessage) -> None:
        if self._is_nudge(msg.parent_msg_id):
            return
        kernel = self.kernel
        parent_type = msg.parent_header.get("msg_type") if msg.parent_header else None
        parent_tracked = self._tracked(parent_type)
        status = msg.msg_type == STATUS
        if parent_tracked or self._tracked(msg.msg_type) or kernel.execution_state == "busy":
            self._record(self._clock(), at_once=status)
        if status:
            execution_state = msg.content.get("execution_state")
            if parent_tracked:
                kernel.execution_state = execution_state
            elif kernel.execution_state == "starting" and execution_state != "starting":
                kernel.execution_state = "idle"

    def _record(self, now: datetime, at_once: bool = False) -> None:
        loop = asyncio.get_event_loop()
        if at_once or loop.time() - self._assigned_at >= SETTLE:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._assign(now)
            return
        self._skipped = now
        if self._timer is None:
            self._timer = loop.call_at(self._assigned_at + SETTLE, self._assign_skipped)

    def _assign(self, now: datetime) -> None:
        self._assigned_at = asyncio.get_event_loop().time()
        self._skipped = None
        self.manager.last_kernel_activity = self.kernel.last_activity = now

    def _assign_skipped(self) -> None:
        self._timer = None
        if self._skipped is not None:
            self._assign(self._skipped)

    def stop(self) -> None:
        """Assign what is pending and stop observing the manager."""
        if self._timer is not None:
            self._timer.cancel()
            self._assign_skipped()
        self.manager.unobserve(self._types_changed, "untracked_message_types")


__all__ = ["SETTLE", "ActivityManager", "KernelActivity"]
