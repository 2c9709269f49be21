"""The kernel websocket wire formats (jupyter_server's helpers, typed) and the "stream" the
shared client sends to, for a websocket."""

from __future__ import annotations

import typing as t

from jupyter_client.session import DELIM
from jupyter_server.services.kernels.connection import base as _wire

if t.TYPE_CHECKING:
    from .client import GatewayKernelClient

from_v1 = t.cast(t.Callable[[bytes], tuple[str, list[bytes]]], _wire.deserialize_msg_from_ws_v1)
to_v1 = t.cast(t.Callable[[list[bytes], str], bytes], _wire.serialize_msg_to_ws_v1)
from_binary = t.cast(t.Callable[[bytes], dict[str, t.Any]], _wire.deserialize_binary_message)
to_binary = t.cast(t.Callable[[dict[str, t.Any]], bytes], _wire.serialize_binary_message)


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


__all__ = ["WebsocketChannel", "from_binary", "from_v1", "to_binary", "to_v1"]
