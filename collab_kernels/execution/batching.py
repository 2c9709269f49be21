"""What one output transaction writes when a cell floods: joined chunks, cut to what it keeps.

A cell printing in a tight loop sends more stream text between two output transactions than
anyone can read, and far more than the room's per-cell output limit lets it keep. Pure
helpers of :class:`~.writer.DocumentWriter`, on its buffered messages (no document):

- :func:`join_streams`: consecutive chunks of one cell and stream name become one message
  (one ``Text`` insert instead of hundreds; the same text as applying them one by one,
  ``\\r`` being resolved over the cell's last line and the whole chunk either way);
- :class:`StreamCuts`: a chunk longer than what the cell keeps (``kept_cell_output``) is
  written from its newest part only; the room's limit then drops everything older and its
  marker counts the left-out bytes too, so what the cell shows is the same as if the whole
  chunk had been written and trimmed, without writing (storing, broadcasting) megabytes that
  are deleted right after.
"""

from __future__ import annotations

from typing import Any

#: (cell id, msg_type, content) of a buffered output message
Pending = tuple[str, str, dict[str, Any]]


def join_streams(pending: list[Pending]) -> list[Pending]:
    """Join consecutive stream chunks of one cell and stream name into one message."""
    joined: list[Pending] = []
    parts: list[list[str]] = []  # the texts of each joined stream message
    for item in pending:
        cell_id, msg_type, content = item
        text = content.get("text") if msg_type == "stream" else None
        if isinstance(text, str) and joined and parts[-1]:
            last_cell, _, last = joined[-1]
            if last_cell == cell_id and last.get("name") == content.get("name"):
                parts[-1].append(text)
                continue
        joined.append(item)
        parts.append([text] if isinstance(text, str) else [])
    for index, texts in enumerate(parts):
        if len(texts) > 1:
            cell_id, msg_type, content = joined[index]
            joined[index] = (cell_id, msg_type, {**content, "text": "".join(texts)})
    return joined


class StreamCuts:
    """The stream text left out of each cell in one output transaction."""

    def __init__(self, keep: int):
        #: bytes of stream text a cell over the limit keeps (0: no limit)
        self.keep = keep
        #: cell id -> (bytes written since the cut, bytes left out)
        self.cells: dict[str, tuple[int, int]] = {}

    def message(self, cell_id: str, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """The content to apply for one message, in order: a stream chunk longer than what
        the cell keeps is cut to its newest part (ASCII only: bytes are characters)."""
        if msg_type == "clear_output":
            self.cells.pop(cell_id, None)  # what was cut went with the outputs it clears
            return content
        text = content.get("text")
        if msg_type != "stream" or not isinstance(text, str):
            return content
        keep = self.keep
        if keep and len(text) > keep and text.isascii():
            before = self.cells.get(cell_id, (0, 0))[1]
            self.cells[cell_id] = (keep, before + len(text) - keep)
            return {**content, "text": text[-keep:]}
        if cell_id in self.cells:
            written, left_out = self.cells[cell_id]
            self.cells[cell_id] = (written + len(text.encode("utf-8")), left_out)
        return content

    def of(self, cell_id: str) -> tuple[int | None, int]:
        """(bytes the cell keeps, bytes left out) for the output limit; (None, 0) if none
        of its text was cut."""
        return self.cells.get(cell_id, (None, 0))


__all__ = ["Pending", "StreamCuts", "join_streams"]
