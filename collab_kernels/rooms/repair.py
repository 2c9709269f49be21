"""Notebook repair: bring a Y notebook back to the notebook schema before it is saved.

A client can send any valid Y update: a number in ``cells``, a cell without a source, metadata
that is not a map. jupyter_ydoc cannot turn such a document into a notebook (every save would
fail, and honest edits would never reach the file again), and the JupyterLab frontend chokes on
it too. The fix is a normal transaction, so every collaborator gets the repaired document:
items that are not cells are removed, unknown cell types become raw cells, missing or mistyped
fields get their defaults.

Pure: works on a pycrdt ``Doc`` only (no room, no server), so it is unit tested on its own.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Assoc, Doc, Map, Text

#: cells looked at per transaction by the ``*_in_steps`` variants (the event loop runs between
#: two: one pass over 2000 cells took 80-90 ms)
CELLS_PER_STEP = 25


def repair_notebook(ydoc: Doc[Any]) -> list[str]:
    """Repair the notebook held by ``ydoc`` in one transaction; the problems found."""
    problems: list[str] = []
    ycells = ydoc.get("cells", type=Array)
    with ydoc.transaction():
        _repair_cells(ycells, 0, len(ycells), problems)
        _repair_meta(ydoc, problems)
    return problems


async def repair_notebook_in_steps(ydoc: Doc[Any]) -> list[str]:
    """:func:`repair_notebook` in transactions of ``CELLS_PER_STEP`` cells, from the last one
    back, the event loop free between two. A cell inserted or deleted meanwhile by a client
    may shift which cells a step sees: one missed is repaired before the next save."""
    problems: list[str] = []
    ycells = ydoc.get("cells", type=Array)
    end = len(ycells)
    while end > 0:
        start = max(end - CELLS_PER_STEP, 0)
        with ydoc.transaction():
            _repair_cells(ycells, start, min(end, len(ycells)), problems)
        end = start
        await asyncio.sleep(0)
    with ydoc.transaction():
        _repair_meta(ydoc, problems)
    return problems


def _repair_cells(ycells: Array[Any], start: int, end: int, problems: list[str]) -> None:
    for index in reversed(range(start, end)):
        ycell = ycells[index]
        if not isinstance(ycell, Map):
            del ycells[index]
            problems.append(f"removed a non-cell item at index {index}")
            continue
        problems.extend(repair_cell(ycell, index))


def _repair_meta(ydoc: Doc[Any], problems: list[str]) -> None:
    meta = ydoc.get("meta", type=Map)
    if not isinstance(meta.get("metadata"), (Map, dict)):
        meta["metadata"] = Map()
        problems.append("notebook metadata was not a map")
    for key, default in (("nbformat", 4), ("nbformat_minor", 5)):
        value = meta.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            meta[key] = default
            problems.append(f"{key} was {value!r}")


def repair_cell(ycell: Map[Any], index: int) -> list[str]:
    """Repair one cell ``Map`` in place (inside the caller's transaction)."""
    problems = []
    cell_type = ycell.get("cell_type")
    if cell_type not in ("code", "markdown", "raw"):
        problems.append(f"cell {index} had cell type {cell_type!r}")
        ycell["cell_type"] = cell_type = "raw"
    source = ycell.get("source")
    if not isinstance(source, Text):
        text = source if isinstance(source, str) else "" if source is None else str(source)
        ycell["source"] = Text(text)
        problems.append(f"cell {index} had no text source")
    if not isinstance(ycell.get("metadata"), (Map, dict)):
        ycell["metadata"] = Map()
        problems.append(f"cell {index} had no metadata map")
    cell_id = ycell.get("id")
    if not isinstance(cell_id, str) or not cell_id:
        ycell["id"] = uuid.uuid4().hex[:16]
        problems.append(f"cell {index} had no id")
    if cell_type == "code":
        outputs = ycell.get("outputs")
        if not isinstance(outputs, (Array, list)):
            ycell["outputs"] = Array()
            problems.append(f"cell {index} outputs were not a list")
        elif isinstance(outputs, Array):
            for j in reversed(range(len(outputs))):
                output = outputs[j]
                if not isinstance(output, (Map, dict)) or not isinstance(
                    output.get("output_type"), str
                ):
                    del outputs[j]
                    problems.append(f"cell {index} output {j} was not an output")
        count = ycell.get("execution_count")
        if "execution_count" not in ycell:
            ycell["execution_count"] = None
        elif count is not None and (not isinstance(count, (int, float)) or isinstance(count, bool)):
            ycell["execution_count"] = None
            problems.append(f"cell {index} execution count was {count!r}")
    else:
        for key in ("outputs", "execution_count"):
            if key in ycell:
                del ycell[key]
    return problems


#: the first line of a stream output whose beginning was dropped
_DROPPED = re.compile(r"^\[(\d+) bytes of earlier output dropped\]\n")


def dropped_marker(count: int) -> str:
    return f"[{count} bytes of earlier output dropped]\n"


def trim_stream_outputs(ydoc: Doc[Any], limit: int) -> list[str]:
    """Keep at most ``limit`` bytes (UTF-8) of stream text per cell (0: no limit), in place.

    A cell printing in a tight loop must not make a notebook no browser can open: the oldest
    text is deleted and the cell's first stream output starts with a marker saying how much
    was dropped (counts add up over successive trims). Text outputs are edited in place
    (appends of the running cell continue), plain string ones replaced. The cell ids trimmed.
    The execution stage trims a cell as its output arrives (:func:`trim_cell_streams`); this
    pass before each save catches the rest (outputs a browser wrote, a lowered limit), and
    costs one length per stream output when nothing is over the limit.
    """
    if limit <= 0:
        return []
    trimmed: list[str] = []
    ycells = ydoc.get("cells", type=Array)
    with ydoc.transaction():
        _trim_cells(ycells, 0, len(ycells), limit, trimmed)
    return trimmed


async def trim_in_steps(ydoc: Doc[Any], limit: int) -> list[str]:
    """:func:`trim_stream_outputs` in transactions of ``CELLS_PER_STEP`` cells, the event
    loop free between two (a cell moved meanwhile may be trimmed at the next save)."""
    if limit <= 0:
        return []
    trimmed: list[str] = []
    ycells = ydoc.get("cells", type=Array)
    start = 0
    while start < len(ycells):
        end = min(start + CELLS_PER_STEP, len(ycells))
        with ydoc.transaction():
            _trim_cells(ycells, start, end, limit, trimmed)
        start = end
        await asyncio.sleep(0)
    return trimmed


def _trim_cells(ycells: Array[Any], start: int, end: int, limit: int, trimmed: list[str]) -> None:
    for index in range(start, end):
        ycell = ycells[index]
        if isinstance(ycell, Map) and trim_cell_streams(ycell, limit):
            trimmed.append(str(ycell.get("id")))


def kept_bytes(limit: int) -> int:
    """Bytes of stream text a cell over ``limit`` keeps (a running cell is trimmed once per
    fifth of the limit it prints, not on every write)."""
    return int(limit * 0.8)


@dataclass(frozen=True)
class StreamFacts:
    """What the limit knew of a cell's only stream output when it last looked at it, so that
    the next trim of a flooding cell need not read its whole ``Text`` (``str()`` of 8 MB held
    the event loop 8-17 ms per kernel message during a flood): valid while the ``Text`` is
    the same one (its first character is the same item), nobody but the server edited the
    document since, and it grew by exactly what the execution stage appended verbatim in
    ASCII (``appended``). Then the whole text is ASCII (every byte offset is a character
    boundary) and its head is the marker the last trim wrote."""

    head: bytes  # the sticky index of its first character
    length: int  # its byte length
    others: dict[int, int]  # the document's clocks of every other client
    marker: int | None  # the count of the dropped marker at its head (None: no marker)
    marker_bytes: int
    ascii: bool


def _others(doc: Doc[Any]) -> dict[int, int]:
    """The clocks of every client but the document's own (the server's edits)."""
    data, pos, values = doc.get_state(), 0, []
    while pos < len(data):
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(value)
    pairs = dict(zip(values[1::2], values[2::2], strict=False))
    pairs.pop(doc.client_id, None)
    return pairs


def _facts(text: Text, marker: int | None, marker_bytes: int, ascii: bool) -> StreamFacts:
    return StreamFacts(
        head=text.sticky_index(0, Assoc.AFTER).encode(),
        length=len(text),
        others=_others(text.doc),
        marker=marker,
        marker_bytes=marker_bytes,
        ascii=ascii,
    )


def _known(
    facts: StreamFacts | None, text: Text | None, appended: int | None
) -> StreamFacts | None:
    if facts is None or appended is None or not facts.ascii or text is None:
        return None
    if len(text) != facts.length + appended or not facts.length:
        return None
    if text.sticky_index(0, Assoc.AFTER).encode() != facts.head:
        return None
    return facts if _others(text.doc) == facts.others else None


def trim_cell_streams(
    ycell: Map[Any],
    limit: int,
    *,
    keep: int | None = None,
    dropped_before: int = 0,
    memo: dict[str, StreamFacts] | None = None,
    appended: int | None = None,
) -> bool:
    """:func:`trim_stream_outputs` for one cell (inside the caller's transaction): whether
    text was dropped. Below the limit it reads only the length of each stream output (pycrdt
    keeps it: no text is read); above it the oldest text goes down to :func:`kept_bytes`.

    ``dropped_before``: bytes the caller already dropped from the head of the newest
    ``keep`` bytes it appended (a chunk longer than the cell may keep is never written in
    full): everything older goes, and the marker counts those bytes too.

    ``memo`` (cell id -> :class:`StreamFacts`, kept by the caller) and ``appended`` (bytes
    of ASCII appended verbatim to the cell's stream since the last call with this memo; None:
    unknown) let a cell with one stream output be cut without reading its text."""
    if limit <= 0 or ycell.get("cell_type") != "code":
        return False
    outputs = ycell.get("outputs")
    if not isinstance(outputs, Array):
        return False
    streams = [
        output
        for output in outputs
        if isinstance(output, Map) and output.get("output_type") == "stream"
    ]
    cell_id = str(ycell.get("id"))
    facts = memo.pop(cell_id, None) if memo is not None else None
    total = sum(_byte_length(stream) for stream in streams)
    only = streams[0].get("text") if len(streams) == 1 else None
    single = only if isinstance(only, Text) else None
    known = _known(facts, single, appended)
    if not streams or (total <= limit and not dropped_before):
        if known is not None and single is not None and memo is not None:
            memo[cell_id] = _facts(single, known.marker, known.marker_bytes, True)
        return False
    if known is not None and single is not None:  # all ASCII, its head known: cut unread
        before, marker_bytes = known.marker or 0, known.marker_bytes
        to_drop = max(total - marker_bytes - (kept_bytes(limit) if keep is None else keep), 0)
        cut = min(marker_bytes + to_drop, total)
        if cut > 0:
            del single[0:cut]
        count = before + cut - marker_bytes + dropped_before
        head = dropped_marker(count)
        single.insert(0, head)
        if memo is not None:
            memo[cell_id] = _facts(single, count, len(head), True)
        return True
    before = 0
    first = str(streams[0].get("text", ""))  # read once: a big Text is costly to read
    marker = _DROPPED.match(first[:100])
    marker_bytes = 0
    if marker:  # an earlier trim: its count carries over, its line is rewritten
        before = int(marker.group(1))
        marker_bytes = len(marker.group(0))  # ASCII
        total -= marker_bytes
    to_drop = max(total - (kept_bytes(limit) if keep is None else keep), 0)
    # the first stream: its old marker and its oldest text in one deletion
    dropped = _delete_head(streams[0], marker_bytes + to_drop, first) - marker_bytes
    for stream in streams[1:]:
        if dropped >= to_drop:
            break
        dropped += _delete_head(stream, to_drop - dropped)
    count = before + dropped + dropped_before
    _insert_head(streams[0], dropped_marker(count))
    text = streams[0].get("text")
    if memo is not None and len(streams) == 1 and isinstance(text, Text):
        memo[cell_id] = _facts(text, count, len(dropped_marker(count)), first.isascii())
    return True


def _byte_length(stream: Map[Any]) -> int:
    text = stream.get("text", "")
    return len(text) if isinstance(text, Text) else len(str(text).encode("utf-8"))


def _delete_head(stream: Map[Any], n: int, value: str | None = None) -> int:
    """Delete up to ``n`` bytes from the start of a stream's text (whole characters only);
    the bytes deleted. ``value``: the text as a ``str``, when the caller has read it."""
    text = stream.get("text", "")
    value = str(text) if value is None else value
    if value.isascii():  # the common case: bytes are characters, nothing to encode
        cut = min(n, len(value))
        data = b""
    else:
        data = value.encode("utf-8")
        cut = len(data[:n].decode("utf-8", "ignore").encode("utf-8"))
    if cut <= 0:
        return 0
    if isinstance(text, Text):
        del text[0:cut]  # pycrdt indexes text by UTF-8 bytes
    else:
        stream["text"] = value[cut:] if not data else data[cut:].decode("utf-8")
    return cut


def _insert_head(stream: Map[Any], head: str) -> None:
    text = stream.get("text", "")
    if isinstance(text, Text):
        text.insert(0, head)
    else:
        stream["text"] = head + str(text)
