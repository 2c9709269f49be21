"""The kernels stage's pure parts, without a server or a kernel: who receives each message
(routing.py) and how a listener takes them (listener.py)."""

from __future__ import annotations

import asyncio
import logging
import typing as t

import pytest
from jupyter_client.session import Session

from collab_kernels.kernels.listener import LifecycleListeners, Listener
from collab_kernels.kernels.message import KernelMessage, unpack_request
from collab_kernels.kernels.routing import Router

SESSION = Session(key=b"")


def message(
    channel: str, msg_type: str, content: dict[str, t.Any] | None = None, parent: str = ""
) -> KernelMessage:
    parent_header = {"msg_id": parent, "msg_type": "execute_request"} if parent else {}
    msg = SESSION.msg(msg_type, content or {}, parent=parent_header)
    frames = SESSION.serialize(msg)
    return KernelMessage(channel, frames[1:], SESSION)  # (frames[0] is the delimiter)


class Host:
    """A stand-in client: what listeners and the router need of one."""

    kernel_id = "k1"
    log = logging.getLogger("test_kernels_units")
    request_table_size = 3
    withheld_table_size = 3
    withhold_outputs_from = "origin"

    def remove_listener(self, listener: Listener) -> None:
        listener.close()


def listener(host: Host, router: Router, **kw: t.Any) -> tuple[Listener, list[KernelMessage]]:
    got: list[KernelMessage] = []
    first = kw.pop("first", False)
    lst = Listener(host, got.append, **kw)
    router.add(lst, first=first)
    return lst, got


def test_replies_go_to_the_tab_that_asked_others_to_replies_all():
    host = Host()
    router = Router(host)
    tab_a, got_a = listener(host, router, replies="owned", skip_withheld=True)
    _tab_b, got_b = listener(host, router, replies="owned", skip_withheld=True)
    _docs, got_docs = listener(host, router, replies="all", channels=["shell", "iopub"])
    router.remember_owner("req-a", "execute_request", tab_a)
    reply = message("shell", "execute_reply", parent="req-a")
    router.dispatch(reply)
    assert got_a == [reply] and got_b == [] and got_docs == []
    assert "req-a" not in router.owners  # a shell reply ends the request
    stray = message("shell", "execute_reply", parent="someone-else")
    router.dispatch(stray)
    assert got_docs == [stray] and got_a == [reply]
    status = message("iopub", "status", {"execution_state": "busy"}, parent="req-a")
    router.dispatch(status)
    assert got_a[-1] is status and got_b[-1] is status and got_docs[-1] is status


def test_claimed_outputs_are_withheld_from_the_origin_until_idle():
    host = Host()
    router = Router(host)
    origin, got_origin = listener(host, router, replies="owned", skip_withheld=True)
    _other_tab, got_other = listener(host, router, replies="owned", skip_withheld=True)
    _docs, got_docs = listener(host, router, channels=["iopub"])
    router.withhold("req", origin)
    stream = message("iopub", "stream", {"name": "stdout", "text": "x"}, parent="req")
    router.dispatch(stream)
    assert stream not in got_origin and stream in got_other and stream in got_docs
    idle = message("iopub", "status", {"execution_state": "idle"}, parent="req")
    router.dispatch(idle)
    assert idle in got_origin and not router.is_withheld("req")
    late = message("iopub", "stream", {"name": "stdout", "text": "late"}, parent="req")
    router.dispatch(late)
    assert late in got_origin  # after idle the request is no longer claimed

    host.withhold_outputs_from = "websockets"
    router.withhold("req2", origin)
    out = message("iopub", "display_data", {"data": {}, "metadata": {}}, parent="req2")
    router.dispatch(out)
    assert out not in got_origin and out not in got_other and out in got_docs


def test_tables_are_bounded_and_ownership_moves():
    host = Host()
    router = Router(host)
    old, _ = listener(host, router, replies="owned")
    new, got_new = listener(host, router, replies="owned")
    for n in range(5):
        router.remember_owner(f"r{n}", "execute_request", old)
    router.remember_owner("not-a-request", "comm_msg", old)  # only *_request are owned
    assert list(router.owners) == ["r2", "r3", "r4"]
    assert router.transfer(old, new) == 3
    reply = message("shell", "execute_reply", parent="r4")
    router.dispatch(reply)
    assert got_new == [reply]
    router.forget_requests()
    assert not router.owners and not router.withheld


def test_first_listeners_are_served_first():
    host = Host()
    router = Router(host)
    order: list[str] = []
    for name, first in (("activity", False), ("docs", True), ("tab", False), ("docs2", True)):
        lst = Listener(host, lambda m, name=name: order.append(name), name=name)
        router.add(lst, first=first)
    router.dispatch(message("iopub", "status", {"execution_state": "idle"}))
    assert order == ["docs", "docs2", "activity", "tab"]


def test_filters_by_channel_and_message_type():
    host = Host()
    lst = Listener(host, lambda m: None, channels=["iopub"], msg_types=["stream", ("x", "shell")])
    assert lst.matches(message("iopub", "stream"))
    assert not lst.matches(message("iopub", "status"))
    assert not lst.matches(message("shell", "x"))  # channel filter first
    with pytest.raises(ValueError):
        Listener(host, lambda m: None, channels=["nosuch"])
    with pytest.raises(ValueError):
        Listener(host, lambda m: None, replies="some")  # type: ignore[arg-type]


async def test_a_slow_async_listener_keeps_order_and_is_bounded():
    host = Host()
    release = asyncio.Event()
    done = asyncio.Event()
    seen: list[str] = []

    async def slow(msg: KernelMessage) -> None:
        seen.append(msg.content["text"])
        await release.wait()
        if msg.content["text"] == "2":
            done.set()

    lst = Listener(host, slow, max_pending=2)
    for text in ("0", "1", "2", "3", "4"):
        lst.deliver(message("iopub", "stream", {"name": "stdout", "text": text}))
    # the first is being handled, two wait in the queue, the others are dropped (logged)
    assert lst.pending == 2 and lst.dropped == 2
    release.set()
    await asyncio.wait_for(done.wait(), 10)
    assert seen == ["0", "1", "2"]


async def test_lifecycle_callbacks_are_isolated():
    host = Host()
    lifecycle = LifecycleListeners(host)
    heard: list[str] = []
    async_done = asyncio.Event()

    def broken(event: str) -> None:
        raise RuntimeError("listener bug")

    async def later(event: str) -> None:
        heard.append(f"async {event}")
        async_done.set()

    lifecycle.add(broken)  # type: ignore[arg-type]
    lifecycle.add(heard.append)  # type: ignore[arg-type]
    lifecycle.add(later)  # type: ignore[arg-type]
    lifecycle.fire("interrupted")
    assert heard == ["interrupted"]  # the broken one did not stop the others
    await asyncio.wait_for(async_done.wait(), 10)
    assert heard == ["interrupted", "async interrupted"]
    with pytest.raises(ValueError):
        lifecycle.fire("exploded")  # type: ignore[arg-type]


def test_unpack_request():
    msg = SESSION.msg("execute_request", {"code": "1"})
    frames = [SESSION.pack(msg[k]) for k in ("header", "parent_header", "metadata", "content")]
    parsed = unpack_request(SESSION, "shell", [*frames, b"buf"])
    assert parsed["msg_type"] == "execute_request" and parsed["content"] == {"code": "1"}
    assert parsed["channel"] == "shell" and parsed["buffers"] == [b"buf"]
