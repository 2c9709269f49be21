"""Who receives each kernel message: the routing rules of a shared client.

- iopub: every listener whose filters match, except that output messages of a request a
  request hook claimed are withheld from kernel websocket listeners (``skip_withheld``):
  from the tab that sent it, or from every tab (``withhold_outputs_from``).
- shell / control / stdin: a message whose parent request was sent with an ``owner`` goes to
  that owner only. Other replies go to listeners registered with ``replies="all"``.
"""

from __future__ import annotations

import logging
import typing as t
from collections import OrderedDict

from .listener import Listener, RequestHook
from .message import OUTPUT_MSG_TYPES, KernelMessage


class RoutingLimits(t.Protocol):
    """The client's settings the router reads (traits of ``SharedKernelClient``)."""

    request_table_size: int
    withheld_table_size: int
    withhold_outputs_from: str


class Router:
    """The listeners of one shared client and the tables that route replies to their owner."""

    def __init__(self, limits: RoutingLimits):
        self.limits = limits
        self.listeners: tuple[Listener, ...] = ()  # replaced, never mutated: safe to iterate
        self.owners: OrderedDict[str, Listener] = OrderedDict()
        self.withheld: OrderedDict[str, Listener] = OrderedDict()

    # ------------------------------------------------------------------ listeners

    def add(self, listener: Listener, *, first: bool = False) -> None:
        listener.first = first
        if first:
            ahead = sum(1 for x in self.listeners if x.first)
            self.listeners = (*self.listeners[:ahead], listener, *self.listeners[ahead:])
        else:
            self.listeners = (*self.listeners, listener)

    def remove(self, listener: Listener) -> None:
        self.listeners = tuple(x for x in self.listeners if x is not listener)

    # ------------------------------------------------------------------ requests

    def remember_owner(self, msg_id: str, msg_type: str, owner: Listener | None) -> None:
        if owner is None or not msg_type.endswith("_request"):
            return
        self.owners[msg_id] = owner
        while len(self.owners) > self.limits.request_table_size:
            self.owners.popitem(last=False)

    def withhold(self, msg_id: str, owner: Listener) -> None:
        """Withhold the outputs of request ``msg_id`` (sent by ``owner``) from websockets."""
        self.withheld[msg_id] = owner
        while len(self.withheld) > self.limits.withheld_table_size:
            self.withheld.popitem(last=False)

    def is_withheld(self, msg_id: str) -> bool:
        return msg_id in self.withheld

    def transfer(self, old: Listener, new: Listener) -> int:
        """Route pending replies (and withheld outputs) of ``old``'s requests to ``new``."""
        moved = 0
        for table in (self.owners, self.withheld):
            for msg_id, owner in table.items():
                if owner is old:
                    table[msg_id] = new
                    moved += 1
        return moved

    def forget_requests(self) -> None:
        """Requests sent to a previous kernel process will never be answered."""
        self.owners.clear()
        self.withheld.clear()

    @staticmethod
    def run_request_hooks(
        hooks: t.Sequence[RequestHook],
        parsed: dict[str, t.Any],
        origin: str,
        log: logging.Logger | logging.LoggerAdapter[t.Any],
        kernel_id: str,
    ) -> bool:
        """Whether any hook claims the request (each runs; a failing hook is logged)."""
        claimed = False
        for hook in list(hooks):
            try:
                if hook(parsed, origin):
                    claimed = True
            except Exception:
                log.exception(
                    "Kernel %s: request hook %r failed on %s from %s",
                    kernel_id,
                    hook,
                    parsed["header"].get("msg_type"),
                    origin,
                )
        return claimed

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, msg: KernelMessage) -> None:
        if msg.channel == "iopub":
            self._dispatch_iopub(msg)
        else:
            self._dispatch_reply(msg)

    def _dispatch_iopub(self, msg: KernelMessage) -> None:
        withheld_from = None
        parent = msg.parent_msg_id
        if parent is not None and self.withheld and parent in self.withheld:
            if msg.msg_type in OUTPUT_MSG_TYPES:
                withheld_from = self.withheld[parent]
            elif msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                # iopub is ordered: idle is the request's last iopub message.
                del self.withheld[parent]
        if withheld_from is None:
            for listener in self.listeners:
                if listener.matches(msg):
                    listener.deliver(msg)
            return
        everywhere = self.limits.withhold_outputs_from == "websockets"
        for listener in self.listeners:
            if listener is withheld_from or (everywhere and listener.skip_withheld):
                continue
            if listener.matches(msg):
                listener.deliver(msg)

    def _dispatch_reply(self, msg: KernelMessage) -> None:
        parent = msg.parent_msg_id
        owner = self.owners.get(parent) if parent is not None else None
        if owner is not None:
            if msg.channel in ("shell", "control") and msg.msg_type.endswith("_reply"):
                del self.owners[t.cast(str, parent)]
            if owner.matches(msg):
                owner.deliver(msg)
            return
        for listener in self.listeners:
            if listener.replies == "all" and listener.matches(msg):
                listener.deliver(msg)


__all__ = ["Router", "RoutingLimits"]
