"""The kernel websocket wire formats towards a gateway: jupyter_server's helpers (typed), the
frame codec of the gateway websocket (``decode``, ``encode``) and the "stream" the shared
client sends to, for a websocket."""

from __future__ import annotations

import json
import typing as t

from jupyter_client.jsonutil import json_default
from jupyter_client.session import DELIM, Session
from jupyter_server.services.kernels.connection import base as _wire

from ..message import REQUEST_CHANNELS, KernelMessage
from ..websocket import V1_PROTOCOL, v1_frame_is_sane

if t.TYPE_CHECKING:
    from .client import GatewayKernelClient

from_v1 = t.cast(t.Callable[[bytes], tuple[str, list[bytes]]], _wire.deserialize_msg_from_ws_v1)
to_v1 = t.cast(t.Callable[[list[bytes], str], bytes], _wire.serialize_msg_to_ws_v1)
from_binary = t.cast(t.Callable[[bytes], dict[str, t.Any]], _wire.deserialize_binary_message)
to_binary = t.cast(t.Callable[[dict[str, t.Any]], bytes], _wire.serialize_binary_message)


def decode(data: str | bytes, protocol: str | None, session: Session) -> KernelMessage:
    """A message from the gateway websocket: a v1 frame when ``protocol`` is
    ``V1_PROTOCOL``, else legacy JSON (text, or binary with buffers) that carries its
    ``channel``. Raises ``ValueError`` (or a JSON/struct error) on a malformed message."""
    if protocol == V1_PROTOCOL:
        if not v1_frame_is_sane(data):
            raise ValueError("bad v1 frame")
        channel, parts = from_v1(t.cast(bytes, data))
        raw = [b"", *parts]
    else:
        if isinstance(data, bytes):
            parsed = from_binary(data)
        else:
            parsed = json.loads(data)
        channel = str(parsed.get("channel"))
        pack = session.pack
        raw = [
            b"",
            pack(parsed["header"]),
            pack(parsed.get("parent_header") or {}),
            pack(parsed.get("metadata") or {}),
            pack(parsed.get("content") or {}),
            *[bytes(b) for b in parsed.get("buffers") or []],
        ]
    if channel not in ("iopub", *REQUEST_CHANNELS):
        raise ValueError(f"unknown channel {channel!r}")
    return KernelMessage(channel, raw, session)


def encode(
    channel: str, parts: list[bytes], protocol: str | None, session: Session
) -> tuple[str | bytes, bool]:
    """``[header, parent, metadata, content, *buffers]`` of ``channel`` as one websocket
    message in ``protocol``, and whether it is binary (v1, or legacy with buffers)."""
    if protocol == V1_PROTOCOL:
        return to_v1(parts, channel), True
    unpack = session.unpack
    msg: dict[str, t.Any] = {
        "header": unpack(parts[0]),
        "parent_header": unpack(parts[1]),
        "metadata": unpack(parts[2]),
        "content": unpack(parts[3]),
        "channel": channel,
    }
    if len(parts) > 4:
        msg["buffers"] = parts[4:]
        return to_binary(msg), True
    return json.dumps(msg, default=json_default), False


class WebsocketChannel:
    """One channel of the gateway websocket, in the shape the shared client sends to.

    ``SharedKernelClient`` signs and frames each message with ``Session.send`` /
    ``send_raw`` into a "stream" (for local kernels a ``ZMQStream``); this one hands the
    frames to the gateway websocket instead.
    """

    def __init__(self, client: GatewayKernelClient, channel: str):
        self.client = client
        self.channel = channel

    def send_multipart(self, frames: list[t.Any], *args: t.Any, **kwargs: t.Any) -> None:
        # [idents..., DELIM, signature, header, parent, metadata, content, *buffers]
        parts = [bytes(f) if not isinstance(f, bytes) else f for f in frames]
        start = parts.index(DELIM) + 2 if DELIM in parts else 1
        self.client.write_frames(self.channel, parts[start:])

    def flush(self, *args: t.Any, **kwargs: t.Any) -> int:
        return 0

    def closed(self) -> bool:
        return self.client.closed


__all__ = ["WebsocketChannel", "decode", "encode", "from_binary", "from_v1", "to_binary", "to_v1"]
