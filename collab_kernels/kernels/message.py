"""Kernel messages as the shared client hands them to listeners, and the names they carry.

The channel, message-type and lifecycle names are the Jupyter messaging protocol's; they are
spelled once here and used by the kernels and execution stages.
"""

from __future__ import annotations

import json
import time
import typing as t

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

Channel = t.Literal["iopub", "shell", "control", "stdin"]
RequestChannel = t.Literal["shell", "control", "stdin"]

IOPUB: t.Final = "iopub"
SHELL: t.Final = "shell"
CONTROL: t.Final = "control"
STDIN: t.Final = "stdin"

CHANNELS: tuple[Channel, ...] = (IOPUB, SHELL, CONTROL, STDIN)
REQUEST_CHANNELS: tuple[RequestChannel, ...] = (SHELL, CONTROL, STDIN)

# Message types the server itself reads.
STATUS: t.Final = "status"
STREAM: t.Final = "stream"
DISPLAY_DATA: t.Final = "display_data"
UPDATE_DISPLAY_DATA: t.Final = "update_display_data"
EXECUTE_INPUT: t.Final = "execute_input"
EXECUTE_RESULT: t.Final = "execute_result"
ERROR: t.Final = "error"
CLEAR_OUTPUT: t.Final = "clear_output"
EXECUTE_REQUEST: t.Final = "execute_request"
EXECUTE_REPLY: t.Final = "execute_reply"
KERNEL_INFO_REQUEST: t.Final = "kernel_info_request"
KERNEL_INFO_REPLY: t.Final = "kernel_info_reply"
INPUT_REQUEST: t.Final = "input_request"
INPUT_REPLY: t.Final = "input_reply"
INTERRUPT_REQUEST: t.Final = "interrupt_request"
COMM_OPEN: t.Final = "comm_open"
COMM_MSG: t.Final = "comm_msg"
COMM_CLOSE: t.Final = "comm_close"

#: iopub message types that carry a request's output (withheld when a hook claims it).
OUTPUT_MSG_TYPES: frozenset[str] = frozenset(
    {STREAM, DISPLAY_DATA, UPDATE_DISPLAY_DATA, EXECUTE_RESULT, ERROR, CLEAR_OUTPUT}
)

#: What happened to a kernel, as lifecycle listeners hear it:
#: "interrupted" (just before an interrupt is delivered through the kernel manager),
#: "restarted" (the shared client is connected to the new process), "dead" (the restarter
#: gave up), "shutdown".
LifecycleEvent = t.Literal["interrupted", "restarted", "dead", "shutdown"]
LIFECYCLE_EVENTS: tuple[LifecycleEvent, ...] = ("interrupted", "restarted", "dead", "shutdown")


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
        self._content: dict[str, t.Any] | None = None
        self._cache: dict[str, t.Any] = {}

    @property
    def parsed(self) -> dict[str, t.Any]:
        if self._parsed is None:
            parsed: dict[str, t.Any] = self._session.deserialize(list(self.raw), content=True)
            self._parsed = parsed
            self._content = parsed["content"]
        return self._parsed

    @property
    def content(self) -> dict[str, t.Any]:
        """The content dict (unpacked without the full deserialization)."""
        if self._content is None:
            self._content = self._session.unpack(self.raw[4])
        return self._content

    @property
    def buffers(self) -> list[bytes]:
        return list(self.raw[5:])

    # Serializations for kernel websockets, computed once per message for all of them.
    def ws_v1(self) -> bytes:
        data = self._cache.get("v1")
        if data is None:
            data = self._cache["v1"] = serialize_msg_to_ws_v1(  # type: ignore[no-untyped-call]
                self.raw[1:], self.channel
            )
        return t.cast(bytes, data)

    def ws_legacy(self) -> str | bytes:
        data = self._cache.get("legacy")
        if data is None:
            msg = dict(self.parsed)
            msg["channel"] = self.channel
            if msg.get("buffers"):
                data = serialize_binary_message(msg)  # type: ignore[no-untyped-call]
            else:
                data = json.dumps(msg, default=json_default)
            self._cache["legacy"] = data
        return t.cast("str | bytes", data)

    def __repr__(self) -> str:
        return f"<KernelMessage {self.channel} {self.msg_type} {self.msg_id}>"


def unpack_request(session: Session, channel: str, frames: list[bytes]) -> dict[str, t.Any]:
    """A request's packed frames ``[header, parent, metadata, content, *buffers]`` as a dict
    (what request hooks see; no signature check: it comes from an authorized websocket)."""
    header: dict[str, t.Any] = session.unpack(frames[0])
    return {
        "header": header,
        "parent_header": session.unpack(frames[1]),
        "metadata": session.unpack(frames[2]),
        "content": session.unpack(frames[3]),
        "buffers": list(frames[4:]),
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "channel": channel,
    }


__all__ = [
    "CHANNELS",
    "LIFECYCLE_EVENTS",
    "OUTPUT_MSG_TYPES",
    "REQUEST_CHANNELS",
    "Channel",
    "KernelMessage",
    "LifecycleEvent",
    "RequestChannel",
    "unpack_request",
]
