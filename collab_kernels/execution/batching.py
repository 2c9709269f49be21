"""What one output transaction writes when a cell floods: joined chunks, cut to what it keeps.

A cell printing in a tight loop sends more stream text between two output transactions than
anyone can read, and far more than the room's per-cell output limit lets it keep. Pure
helpers of :class:`~.writer.DocumentWriter`, on its buffered messages (no document):

- :func:`join_streams`: consecutive chunks of one cell and stream name become one message
  (one ``Text`` insert instead of hundreds; the same text as applying them one by one,
  ``\\r`` being resolved over the cell's last line and the whole chunk either way);
- with the output limit, a run of ASCII chunks longer than the cell keeps is joined from its
  newest chunks only (``LEFT_OUT`` counts the rest);
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


#: the ASCII stream text :func:`join_streams` left out of a joined message (popped by
#: :meth:`StreamCuts.message`, never written; kept while the message is buffered again)
LEFT_OUT = "collab_kernels_left_out"


def join_streams(pending: list[Pending], keep: int = 0) -> list[Pending]:
    """Join consecutive stream chunks of one cell and stream name into one message.

    ``keep`` (the bytes a cell over the output limit keeps, 0: no limit): of a run of ASCII
    chunks longer than that, only the newest chunks that hold ``keep`` characters are joined
    (a flood's 15-36 MB of chunks per transaction were joined to be cut to 4 MB right
    after); how many characters were left out goes with the message (``LEFT_OUT``), so
    :class:`StreamCuts` cuts and counts exactly as for the whole text."""
    joined: list[Pending] = []
    parts: list[list[str]] = []  # the texts of each joined stream message
    for item in pending:
        cell_id, msg_type, content = item
        text = content.get("text") if msg_type == "stream" else None
        # a message joined before and buffered again (LEFT_OUT) only ever starts a run:
        # what it left out is older than its text, newer than the run's
        if isinstance(text, str) and joined and parts[-1] and LEFT_OUT not in content:
            last_cell, _, last = joined[-1]
            if last_cell == cell_id and last.get("name") == content.get("name"):
                parts[-1].append(text)
                continue
        joined.append(item)
        parts.append([text] if isinstance(text, str) else [])
    for index, texts in enumerate(parts):
        if len(texts) > 1:
            cell_id, msg_type, content = joined[index]
            left_out, texts = _newest(texts, keep)
            if left_out:
                content = {**content, LEFT_OUT: content.get(LEFT_OUT, 0) + left_out}
            joined[index] = (cell_id, msg_type, {**content, "text": "".join(texts)})
    return joined


def _newest(texts: list[str], keep: int) -> tuple[int, list[str]]:
    """(characters left out, the newest texts holding at least ``keep`` of them), all of
    them ASCII (``str.isascii`` is O(1): CPython knows it); else ``(0, texts)``."""
    if keep <= 0 or sum(map(len, texts)) <= keep or not all(t.isascii() for t in texts):
        return 0, texts
    first, held = len(texts), 0
    while first > 0 and held < keep:
        first -= 1
        held += len(texts[first])
    return sum(map(len, texts[:first])), texts[first:]


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
        carried = int(content.get(LEFT_OUT, 0))  # left out by join_streams
        if LEFT_OUT in content:
            content = {key: value for key, value in content.items() if key != LEFT_OUT}
        keep = self.keep
        if carried or (keep and len(text) > keep and text.isascii()):
            kept = min(keep, len(text)) if keep else len(text)
            before = self.cells.get(cell_id, (0, 0))[1]
            self.cells[cell_id] = (kept, before + carried + len(text) - kept)
            return {**content, "text": text[-kept:] if kept else ""}
        if cell_id in self.cells:
            written, left_out = self.cells[cell_id]
            self.cells[cell_id] = (written + len(text.encode("utf-8")), left_out)
        return content

    def of(self, cell_id: str) -> tuple[int | None, int]:
        """(bytes the cell keeps, bytes left out) for the output limit; (None, 0) if none
        of its text was cut."""
        return self.cells.get(cell_id, (None, 0))


__all__ = ["LEFT_OUT", "Pending", "StreamCuts", "join_streams"]
