"""Shape checks of binary kernel websocket frames, done before jupyter_server parses them.

Both binary layouts start with a table whose length the sender claims, and jupyter_server's
parsers believe the claim before looking at the frame:

- legacy (no subprotocol): 4 bytes big-endian ``nbufs``, then ``nbufs`` 4-byte offsets from
  the frame's start; part 0 is the JSON message, the others its binary buffers.
  ``deserialize_binary_message`` builds the struct format ``"!" + "I" * nbufs``: a 68-byte
  frame claiming 40 million buffers compiles (and caches) a 40-million-code format, about a
  gigabyte, and blocks the event loop while doing it.
- ``v1.kernel.websocket.jupyter.org``: 8 bytes little-endian offset count, then that many
  8-byte offsets; the first is the table's end, the channel name and the message parts
  (header, parent header, metadata, content, then the buffers) follow.
  ``deserialize_msg_from_ws_v1`` builds a list as long as the count.

:func:`legacy_frame_problem` and :func:`v1_frame_problem` read only the table, with bounded
work (at most ``max_buffers`` offsets), and say what is wrong with a frame, or ``None``.
"""

from __future__ import annotations

import struct

#: parts of a v1 message before its buffers: header, parent header, metadata, content
V1_MESSAGE_PARTS = 4


def _check_offsets(offsets: tuple[int, ...], start: int, size: int) -> str | None:
    previous = start
    for index, offset in enumerate(offsets):
        if offset < previous:
            return f"offset {index} ({offset}) points before the previous part ({previous})"
        if offset > size:
            return f"offset {index} ({offset}) points past the end of the frame ({size} bytes)"
        previous = offset
    return None


def legacy_frame_problem(frame: bytes | bytearray | memoryview, max_buffers: int) -> str | None:
    """What is wrong with a legacy binary frame's buffer table, or ``None`` if it is sound.

    ``max_buffers`` bounds the binary buffers after the JSON part (``nbufs - 1``).
    """
    size = len(frame)
    if size < 8:
        return f"a binary frame of {size} bytes cannot hold its buffer table"
    (nbufs,) = struct.unpack_from("!i", frame, 0)  # signed, as jupyter_server reads it
    if nbufs < 1:
        return f"claims {nbufs} parts"
    if nbufs - 1 > max_buffers:
        return f"claims {nbufs - 1} buffers (limit {max_buffers})"
    table_end = 4 * (nbufs + 1)
    if table_end > size:
        return f"claims {nbufs} parts but the frame holds only {size} bytes"
    offsets = struct.unpack_from(f"!{nbufs}I", frame, 4)
    return _check_offsets(offsets, table_end, size)


def v1_frame_problem(frame: bytes | bytearray | memoryview, max_buffers: int) -> str | None:
    """What is wrong with a v1 frame's offset table, or ``None`` if it is sound."""
    size = len(frame)
    if size < 8:
        return f"a frame of {size} bytes cannot hold its offset table"
    count = int.from_bytes(bytes(frame[:8]), "little")
    least = 2 + V1_MESSAGE_PARTS  # table end, channel end, one end per part
    if count < least:
        return f"claims {count} offsets (a message needs {least})"
    if count - least > max_buffers:
        return f"claims {count - least} buffers (limit {max_buffers})"
    table_end = 8 * (count + 1)
    if table_end > size:
        return f"claims {count} offsets but the frame holds only {size} bytes"
    offsets = struct.unpack_from(f"<{count}Q", frame, 8)
    if offsets[0] != table_end:
        return f"its first offset ({offsets[0]}) is not the end of its table ({table_end})"
    return _check_offsets(offsets, table_end, size)


__all__ = ["legacy_frame_problem", "v1_frame_problem"]
