"""The y-websocket wire format spoken by the JupyterLab docprovider, and our close codes.

Every binary frame starts with a varUint message type:

- ``0`` sync, followed by a varUint sub-type (``0`` step1, ``1`` step2, ``2`` update) and a
  varUint-length-prefixed payload (a state vector for step1, a Y update otherwise);
- ``1`` awareness, followed by a length-prefixed awareness update;
- ``2`` raw, followed by a varString (the save request ``"save"`` plus a varUint id, or a
  JSON object from the server such as ``{"type":"save",...}`` or ``{"type":"conflict"}``).

The pycrdt helpers build and read most of it; this module adds strict parsing (a malformed
frame must raise :class:`ProtocolError`, never an IndexError deep inside a room) and the raw
messages pycrdt does not know about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, YMessageType, YSyncMessageType, write_var_uint

MESSAGE_SYNC = int(YMessageType.SYNC)
MESSAGE_AWARENESS = int(YMessageType.AWARENESS)
MESSAGE_RAW = 2

SYNC_STEP1 = int(YSyncMessageType.SYNC_STEP1)
SYNC_STEP2 = int(YSyncMessageType.SYNC_STEP2)
SYNC_UPDATE = int(YSyncMessageType.SYNC_UPDATE)

#: Close codes. 1003 with a JSON reason makes the frontend offer a reload instead of merging a
#: stale history; 44xx/4500 map HTTP errors (the docprovider shows them before first sync).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_SESSION = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 4500

#: The room name of the frontend's "who is online" awareness.
GLOBAL_AWARENESS_ROOM = "JupyterLab:globalAwareness"


class ProtocolError(ValueError):
    """A frame that does not follow the y-websocket protocol (or is refused)."""

    #: the close code of the connection that sent it
    close_code = CLOSE_INVALID_PAYLOAD


class MessageTooBig(ProtocolError):
    """A message over a size limit."""

    close_code = CLOSE_TOO_BIG


@dataclass(frozen=True)
class Message:
    """A decoded incoming frame.

    ``kind`` is one of ``"step1"``, ``"step2"``, ``"update"``, ``"awareness"``, ``"save"``,
    ``"raw"`` (another raw message, ``payload`` is its text) or ``"other"`` (a y-websocket
    message type we do not handle, e.g. auth or query-awareness; ignored).
    """

    kind: str
    payload: Any = None
    request_id: int | None = None


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """The varUint at ``pos`` and where it ends; ProtocolError if it is cut or too long."""
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varUint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varUint too long")


def _read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("length prefix runs past the end of the frame")
    return bytes(data[pos:end]), end


def parse_message(data: bytes) -> Message:
    """Decode one incoming frame, raising :class:`ProtocolError` if it is malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("text frames are not part of the protocol")
    data = bytes(data)
    if not data:
        raise ProtocolError("empty frame")
    msg_type, pos = read_var_uint(data, 0)
    if msg_type == MESSAGE_SYNC:
        sub, pos = read_var_uint(data, pos)
        payload, pos = _read_var_bytes(data, pos)
        if sub == SYNC_STEP1:
            return Message("step1", payload)
        if sub == SYNC_STEP2:
            return Message("step2", payload)
        if sub == SYNC_UPDATE:
            return Message("update", payload)
        raise ProtocolError(f"unknown sync message type {sub}")
    if msg_type == MESSAGE_AWARENESS:
        payload, pos = _read_var_bytes(data, pos)
        _check_awareness(payload)
        return Message("awareness", payload)
    if msg_type == MESSAGE_RAW:
        raw, pos = _read_var_bytes(data, pos)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("raw message is not UTF-8") from e
        if text == "save":
            request_id, pos = read_var_uint(data, pos)
            return Message("save", None, request_id)
        return Message("raw", text)
    return Message("other", msg_type)


def _check_awareness(payload: bytes) -> None:
    """Validate an awareness update fully before any state is touched."""
    count, pos = read_var_uint(payload, 0)
    for _ in range(count):
        _, pos = read_var_uint(payload, pos)  # client id
        _, pos = read_var_uint(payload, pos)  # clock
        state, pos = _read_var_bytes(payload, pos)
        try:
            json.loads(state.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError("awareness state is not JSON") from e


@dataclass(frozen=True)
class AwarenessEntry:
    """One client's state in an awareness update (``state`` is its JSON text, as bytes)."""

    client_id: int
    clock: int
    state: bytes


def awareness_entries(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an (already validated) awareness update."""
    entries = []
    count, pos = read_var_uint(payload, 0)
    for _ in range(count):
        client_id, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        state, pos = _read_var_bytes(payload, pos)
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


def encode_awareness_entries(entries: list[AwarenessEntry]) -> bytes:
    """An awareness update carrying ``entries``."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts.append(write_var_uint(entry.client_id))
        parts.append(write_var_uint(entry.clock))
        parts.append(write_var_uint(len(entry.state)))
        parts.append(entry.state)
    return b"".join(parts)


def awareness_client_ids(payload: bytes) -> list[int]:
    """The client ids an (already validated) awareness update talks about."""
    decoder = Decoder(payload)
    ids = []
    for _ in range(decoder.read_var_uint()):
        ids.append(decoder.read_var_uint())
        decoder.read_var_uint()
        decoder.read_var_string()
    return ids


def raw_message(payload: dict[str, Any] | str) -> bytes:
    """A ``[2][varString]`` frame; dicts are sent as compact JSON."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    encoded = text.encode("utf-8")
    return bytes([MESSAGE_RAW]) + write_var_uint(len(encoded)) + encoded


def sync_step2_message(update: bytes) -> bytes:
    """A sync step2 frame carrying ``update`` (the answer to a step1)."""
    return b"".join(sync_step2_pieces(update))


def sync_step2_pieces(*update: bytes) -> list[bytes]:
    """:func:`sync_step2_message` of the update made of these pieces, in pieces (to be
    joined off the loop)."""
    size = sum(len(piece) for piece in update)
    return [bytes([MESSAGE_SYNC, SYNC_STEP2]), write_var_uint(size), *update]


def save_request_message(request_id: int) -> bytes:
    """The client's ``[2]["save"][id]`` frame (used by the Python client)."""
    return raw_message("save") + write_var_uint(request_id)


def parse_raw_json(text: str) -> dict[str, Any] | None:
    """A raw message's JSON object, or None when it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def session_close_reason(reason: str, session_id: str | None) -> str:
    """The JSON close reason the docprovider parses on code 1003 (kept under 123 bytes)."""
    text = json.dumps(
        {"reason": reason, "sessionId": session_id or "", "reloadable": True},
        separators=(",", ":"),
    )
    if len(text.encode()) > 123:  # a close reason must fit a control frame
        text = json.dumps({"reason": reason, "sessionId": "", "reloadable": True})
    return text
