"""The requests kernel websockets send through a kernel's shared client.

Each request runs the client's request hooks first (the execution stage claims the execute
requests whose outputs it writes into the document); the outputs of a claimed request are
withheld from kernel websockets (``routing.py``). While the kernel restarts, requests are
held and sent once it is ready: the new process may not have the client's iopub
subscription yet, and a request answered before it would lose its outputs.
"""

from __future__ import annotations

import typing as t

from jupyter_client.session import Session

from .listener import Listener, ListenerHost, RequestHook
from .message import unpack_request
from .routing import Router

#: a held request: channel, JSON message or packed frames, and the listener it is for
HeldRequest = tuple[str, dict[str, t.Any] | None, list[bytes] | None, Listener]


class RequestSender(ListenerHost, t.Protocol):
    """What forwarding needs from the shared client (``client.py``)."""

    session: Session
    router: Router

    def send(
        self, channel: str, msg: dict[str, t.Any], *, owner: Listener | None = None
    ) -> None: ...

    def send_raw(
        self, channel: str, frames: list[bytes], *, owner: Listener | None = None
    ) -> dict[str, t.Any]: ...


class WebsocketRequests:
    """Request hooks, withholding and holding during restarts for one shared client."""

    def __init__(self, client: RequestSender, *, restarting: t.Callable[[], bool]):
        self.client = client
        self._restarting = restarting
        self.hooks: list[RequestHook] = []
        self._held: list[HeldRequest] = []  # sent while restarting, sent once ready

    def add_hook(self, hook: RequestHook) -> None:
        self.hooks.append(hook)

    def remove_hook(self, hook: RequestHook) -> None:
        if hook in self.hooks:
            self.hooks.remove(hook)

    def forward(
        self,
        channel: str,
        msg: dict[str, t.Any] | None,
        frames: list[bytes] | None,
        *,
        owner: Listener,
        origin: str,
    ) -> None:
        """Run the request hooks on ``msg`` (JSON) or ``frames`` (v1 protocol), then send."""
        client = self.client
        if self.hooks:
            if msg is None:
                assert frames is not None
                parsed = unpack_request(client.session, channel, frames)
            else:
                parsed = msg
                parsed.setdefault("channel", channel)
            claimed = client.router.run_request_hooks(
                self.hooks, parsed, origin, client.log, client.kernel_id
            )
            if msg is not None and "channel" in msg:
                msg.pop("channel")
            if claimed:
                client.router.withhold(parsed["header"]["msg_id"], owner)
        if self._restarting():
            self._held.append((channel, msg, frames, owner))
            return
        self._send(channel, msg, frames, owner)

    def _send(
        self,
        channel: str,
        msg: dict[str, t.Any] | None,
        frames: list[bytes] | None,
        owner: Listener,
    ) -> None:
        if frames is not None:
            self.client.send_raw(channel, frames, owner=owner)
        else:
            assert msg is not None
            self.client.send(channel, msg, owner=owner)

    def release(self) -> None:
        """The kernel is ready: send the held requests of listeners still open."""
        held, self._held = self._held, []
        for channel, msg, frames, owner in held:
            if owner.closed:
                continue
            try:
                self._send(channel, msg, frames, owner)
            except Exception:
                self.client.log.warning(
                    "Kernel %s: could not send a held request",
                    self.client.kernel_id,
                    exc_info=True,
                )

    def drop_held(self) -> None:
        """The client closed: the held requests are never sent."""
        self._held = []
