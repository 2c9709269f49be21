"""permessage-deflate (RFC 7692) on room websockets, each message compressed once for everyone.

Why: a cell printing 20000 lines reaches each of 300 watchers as the same 219 kB update, 65 MB
through the server's sockets (over a real network, that is what a viewer waits for); deflated
it is 46 kB. Browsers (and the ``websockets`` client) offer permessage-deflate, and tornado
negotiates it when ``get_compression_options`` returns options, but then ``write_message``
compresses every message again for every connection, with that connection's own compressor
(about 1 ms per 220 kB message each: 300 ms for one update to 300 viewers).

How, so that one compressed frame is valid for every connection:

- before tornado's handshake, :func:`accept_offer` keeps the client's first permessage-deflate
  offer that tornado can accept (tornado takes the first offer, and aborts the handshake on
  some it cannot handle); without one the header is dropped and the connection is not
  compressed. Tornado's answer gets ``server_no_context_takeover`` (:func:`response_extension`;
  RFC 7692, 7.1.1.1: a server may always include it), so the client expects each message
  compressed on its own, with no reference to earlier ones; and ``client_no_context_takeover``
  (7.1.1.2: likewise), so that the client compresses its messages on their own too and the
  server keeps no zlib state per connection between messages (:class:`RoomProtocol`);
- :meth:`.frames.Frame.deflated_wire` compresses a message of at least ``threshold`` bytes
  once per window size, with a fresh compressor, and keeps the frame (RSV1 set) for every
  connection of that window size; smaller messages go uncompressed, as RFC 7692 allows per
  message (compressing a few hundred bytes costs more than it saves);
- a client that asked for a smaller server window (``server_max_window_bits``) gets frames
  compressed with that window; offers below 9 bits are declined (zlib cannot make raw deflate
  streams with an 8-bit window, RFC 7692 8.1.2.1 notes it).

Client-to-server messages are decompressed by tornado, within the handler's
``max_message_size`` (a larger message closes the connection with 1009).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from tornado.httputil import HTTPHeaders
from tornado.websocket import WebSocketProtocol13

__all__ = [
    "DEFLATE_LEVEL",
    "DEFLATE_MAX",
    "Deflate",
    "RoomProtocol",
    "accept_offer",
    "deflate_message",
    "response_extension",
]

#: larger messages go uncompressed: compressing takes about 4 ms per MB on the event loop (a
#: 20 MB notebook's first sync would stall every room for 80 ms), and over loopback the
#: uncompressed bytes arrive sooner
DEFLATE_MAX = 1024 * 1024
#: zlib level of shared frames: 220 kB of cell output take 0.8 ms to 46 kB at level 1; level 6
#: is 7% smaller and takes three times as long (it is paid once per message, not per client)
DEFLATE_LEVEL = 1

_PARAMETERS = {
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
}
_HEADER = "Sec-WebSocket-Extensions"


@dataclass(frozen=True)
class Deflate:
    """How one connection's shared frames are compressed."""

    #: messages of fewer bytes go uncompressed
    threshold: int
    #: ...and messages of more bytes too
    limit: int = DEFLATE_MAX
    #: the LZ77 window the client accepts from the server (``server_max_window_bits``)
    wbits: int = zlib.MAX_WBITS
    level: int = DEFLATE_LEVEL


def deflate_message(payload: bytes | memoryview, level: int, wbits: int) -> bytes:
    """``payload`` compressed on its own (no context from earlier messages), as one
    permessage-deflate message body: raw deflate ending in a sync flush whose last four
    octets (``00 00 ff ff``) are removed (RFC 7692, 7.2.1)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


def _offers(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The extension offers of a ``Sec-WebSocket-Extensions`` header, split as tornado does
    (offers at commas, parameters at semicolons; names lowercased, quotes stripped); a
    parameter without ``=`` has the value None."""
    offers = []
    for offer in header.split(","):
        name, *parts = (part.strip() for part in offer.split(";"))
        params: list[tuple[str, str | None]] = []
        for part in parts:
            if part:
                key, sep, value = part.partition("=")
                params.append((key.strip().lower(), value.strip().strip('"') if sep else None))
        offers.append((name, params))
    return offers


def _bits(value: str | None, low: int) -> int | None:
    """A window size parameter's value, or None if it is not one from ``low`` to 15."""
    if value is None or not value.isdigit():
        return None
    bits = int(value)
    return bits if low <= bits <= zlib.MAX_WBITS else None


def _acceptable(params: list[tuple[str, str | None]]) -> int | None:
    """The server window size of an offer that tornado accepts and we can honour, else None
    (RFC 7692: an offer with an unknown, repeated or invalid parameter is declined; tornado
    would abort the handshake on some of them)."""
    keys = [key for key, _ in params]
    if len(set(keys)) != len(keys) or not set(keys) <= _PARAMETERS:
        return None
    values = dict(params)
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if values.get(flag) is not None:
            return None
    if "client_max_window_bits" in values:
        client = values["client_max_window_bits"]
        if client is not None and _bits(client, 8) is None:
            return None
    if "server_max_window_bits" not in values:
        return zlib.MAX_WBITS
    return _bits(values["server_max_window_bits"], 9)


def accept_offer(headers: HTTPHeaders, threshold: int) -> Deflate | None:
    """Keep only the client's first acceptable permessage-deflate offer in the request's
    headers, for tornado to negotiate; None (and no offer left) if there is none."""
    header = headers.get(_HEADER, "")
    for name, params in _offers(header):
        if name == "permessage-deflate":
            wbits = _acceptable(params)
            if wbits is not None:
                parts = [name] + [k if v is None else f"{k}={v}" for k, v in params]
                headers[_HEADER] = "; ".join(parts)
                return Deflate(threshold=threshold, wbits=wbits)
    if _HEADER in headers:
        del headers[_HEADER]
    return None


def response_extension(value: str) -> str:
    """Tornado's ``Sec-WebSocket-Extensions`` answer with ``server_no_context_takeover`` and
    ``client_no_context_takeover`` (tornado's header parser drops parameters without a value,
    so it never echoes them)."""
    if not value.startswith("permessage-deflate"):
        return value
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag not in value:
            value = f"{value}; {flag}"
    return value


class RoomProtocol(WebSocketProtocol13):
    """Tornado's server side of RFC 6455 for a room connection, selected by the room handler's
    ``get_websocket_protocol``.

    ``shared_deflate``: the handler accepted a permessage-deflate offer the room's way
    (:func:`accept_offer`) and its answer carries both no-context-takeover flags
    (:func:`response_extension`). Tornado's header parser drops those valueless flags, so it
    would keep a persistent zlib context on each side: its compressor would refer to
    messages the client has forgotten, and each context holds 40-260 kB per connection (5000
    viewers: over a GB). This class hands tornado's compressors the flags the answer gives.
    :attr:`deflated` says whether permessage-deflate was negotiated at all (tornado has no
    public flag): :class:`.frames.WebsocketWriter` picks the shared plain or compressed frames
    from it."""

    def __init__(self, handler: Any, params: Any, *, shared_deflate: bool) -> None:
        super().__init__(handler, False, params)
        self.shared_deflate = shared_deflate
        #: whether this connection negotiated permessage-deflate
        self.deflated = False

    def _create_compressors(
        self,
        side: str,
        agreed_parameters: dict[str, Any],
        compression_options: dict[str, Any] | None = None,
    ) -> None:
        if self.shared_deflate:
            agreed_parameters = {
                **agreed_parameters,
                "server_no_context_takeover": None,
                "client_no_context_takeover": None,
            }
        super()._create_compressors(side, agreed_parameters, compression_options)
        self.deflated = True
