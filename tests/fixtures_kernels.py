"""Fixtures for the kernels tests: start real ipykernels, speak the kernel websocket protocol.

``KernelWebsocket`` is a small client of jupyter_server's kernel websocket, in either the
legacy JSON protocol or ``v1.kernel.websocket.jupyter.org`` (binary frames), as JupyterLab
speaks it. A background reader keeps every message received; waits are event driven
(each received message wakes the waiters) with generous timeouts.
"""

from __future__ import annotations

import asyncio
import json
import time
import typing as t
import uuid

import pytest
from fixtures_rooms import eventually
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

V1 = "v1.kernel.websocket.jupyter.org"
TIMEOUT = 30.0


class KernelWebsocket:
    """One browser tab's kernel connection."""

    def __init__(self, conn: t.Any, protocol: str, session_id: str, kernel_id: str):
        self.conn = conn
        self.protocol = protocol
        self.session_id = session_id
        self.kernel_id = kernel_id
        self.session = Session(session=session_id, username="test")
        self.messages: list[dict[str, t.Any]] = []
        self.closed = False
        self._new = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    # -------------------------------------------------------------- wire format
    async def _read(self) -> None:
        while True:
            data = await self.conn.read_message()
            if data is None:
                self.closed = True
                self._new.set()
                return
            self.messages.append(self.decode(data))
            self._new.set()

    def decode(self, data: str | bytes) -> dict[str, t.Any]:
        if self.protocol == V1:
            assert isinstance(data, bytes), "v1 protocol sends binary frames"
            channel, frames = deserialize_msg_from_ws_v1(data)
            header, parent, metadata, content = (json.loads(f) for f in frames[:4])
            return {
                "channel": channel,
                "header": header,
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
                "buffers": frames[4:],
                "msg_type": header["msg_type"],
            }
        msg = deserialize_binary_message(data) if isinstance(data, bytes) else json.loads(data)
        msg.setdefault("msg_type", msg["header"]["msg_type"])
        return msg

    def encode(self, channel: str, msg: dict[str, t.Any]) -> str | bytes:
        if self.protocol == V1:
            return serialize_msg_to_ws_v1(
                msg, channel, lambda o: json.dumps(o, default=json_default).encode()
            )
        out = dict(msg)
        out["channel"] = channel
        if out.get("buffers"):
            return serialize_binary_message(out)
        out.pop("buffers", None)
        return json.dumps(out, default=json_default)

    # -------------------------------------------------------------- requests
    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, t.Any] | None = None,
        *,
        metadata: dict[str, t.Any] | None = None,
        parent: dict[str, t.Any] | None = None,
    ) -> str:
        msg = self.session.msg(msg_type, content or {}, metadata=metadata, parent=parent)
        msg["buffers"] = []
        self.conn.write_message(self.encode(channel, msg), binary=self.protocol == V1)
        return msg["header"]["msg_id"]

    def execute(self, code: str, *, allow_stdin: bool = False, **metadata: t.Any) -> str:
        return self.send(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": allow_stdin,
                "stop_on_error": True,
            },
            metadata=metadata or None,
        )

    # -------------------------------------------------------------- waiting
    async def wait_for(
        self, predicate: t.Callable[[dict[str, t.Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, t.Any]:
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            while checked < len(self.messages):
                msg = self.messages[checked]
                checked += 1
                if predicate(msg):
                    return msg
            if self.closed:
                raise AssertionError("websocket closed while waiting")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching message within {timeout}s; got "
                    f"{[(m['channel'], m['msg_type']) for m in self.messages[-20:]]}"
                )
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def reply(self, msg_id: str, timeout: float = TIMEOUT) -> dict[str, t.Any]:
        return await self.wait_for(
            lambda m: (
                m["channel"] in ("shell", "control") and m["parent_header"].get("msg_id") == msg_id
            ),
            timeout,
        )

    async def idle(self, msg_id: str, timeout: float = TIMEOUT) -> dict[str, t.Any]:
        return await self.wait_for(
            lambda m: (
                m["channel"] == "iopub"
                and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
            ),
            timeout,
        )

    def children(self, msg_id: str, channel: str | None = None) -> list[dict[str, t.Any]]:
        return [
            m
            for m in self.messages
            if m["parent_header"].get("msg_id") == msg_id
            and (channel is None or m["channel"] == channel)
        ]

    def stream_text(self, msg_id: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.children(msg_id, "iopub")
            if m["msg_type"] == "stream"
        )

    async def run(self, code: str, **kw: t.Any) -> tuple[str, dict[str, t.Any]]:
        """Execute and wait until both the reply and the idle status arrived."""
        msg_id = self.execute(code, **kw)
        reply = await self.reply(msg_id)
        await self.idle(msg_id)
        return msg_id, reply

    def close(self) -> None:
        if not self.closed:
            self.conn.close()
        self._reader.cancel()

    async def closed_by_server(self, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)


async def wait_until(
    condition: t.Callable[[], t.Any], timeout: float = TIMEOUT, interval: float = 0.05
) -> t.Any:
    """Poll a condition that has no event to await (e.g. a REST model), with a timeout."""
    return await eventually(condition, timeout, interval)


@pytest.fixture
def start_kernel(jp_fetch):
    """Start a python3 kernel through the REST API; returns its id."""

    async def start(name: str = "python3") -> str:
        response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": name}))
        return json.loads(response.body)["id"]

    return start


@pytest.fixture
def kernel_model(jp_fetch):
    async def get(kernel_id: str) -> dict[str, t.Any]:
        response = await jp_fetch("api", "kernels", kernel_id, method="GET")
        return json.loads(response.body)

    return get


@pytest.fixture
def open_kernel_ws(jp_ws_fetch):
    """Open a kernel websocket like a JupyterLab tab: ``await open_kernel_ws(kid, protocol)``.

    ``protocol`` is ``"v1"`` (``v1.kernel.websocket.jupyter.org``) or ``"legacy"`` (JSON).
    """
    opened: list[KernelWebsocket] = []

    async def open_ws(
        kernel_id: str, protocol: str = "v1", session_id: str | None = None
    ) -> KernelWebsocket:
        session_id = session_id or uuid.uuid4().hex
        subprotocols = [V1] if protocol == "v1" else None
        conn = await jp_ws_fetch(
            "api",
            "kernels",
            kernel_id,
            "channels",
            params={"session_id": session_id},
            subprotocols=subprotocols,
        )
        selected = conn.selected_subprotocol
        if protocol == "v1":
            assert selected == V1, f"server selected {selected!r}"
        ws = KernelWebsocket(conn, V1 if selected == V1 else "", session_id, kernel_id)
        opened.append(ws)
        return ws

    yield open_ws
    for ws in opened:
        ws.close()


@pytest.fixture
def kernel_connections():
    """Count the connections a kernel's sockets accepted (TCP or unix sockets), from the
    kernel process's side, so nothing else in the test process is counted."""

    def count(km: t.Any) -> int:
        import psutil

        proc = psutil.Process(km.provisioner.process.pid)
        if km.transport == "tcp":
            ports = set(km.ports)
            return sum(
                1
                for c in proc.net_connections(kind="tcp")
                if c.laddr and c.laddr.port in ports and c.status == psutil.CONN_ESTABLISHED
            )
        paths = {f"{km.ip}-{port}" for port in km.ports}
        listening = sum(1 for c in proc.net_connections(kind="unix") if c.laddr in paths)
        return listening - len(paths)

    return count
