"""Pure functions: iopub messages -> edits of a jupyter_ydoc YNotebook cell.

Nothing here knows about kernels, rooms or the event loop. Every function works on pycrdt
types (the cell ``Map``, its ``outputs`` ``Array``, a stream output's ``Text``) and on plain
message dicts as ``Session.deserialize`` returns them. The caller opens the transaction: many
messages that arrive together are applied inside one ``with ydoc.transaction()``.

Rules (see docs/architecture.md and the frontend contract):

- A stream message appends to the ``Text`` of the last output when it is a stream of the same
  name, otherwise it appends a new stream output. ``\\r`` and ``\\b`` are resolved on the
  server (``terminal.py``), the way a terminal would, so that a progress bar stays one line
  in the document and in the saved file. A line whose cursor is not at its end (a chunk
  ending with ``\\r``) is stored as ``line + "\\r" + line[:cursor]``: browsers render that
  as ``line`` and the next chunk resumes at the right column, so the document itself carries
  the cursor.
- ``transient`` is never stored; its ``display_id`` goes into :class:`DisplayIndex`, which
  ``update_display_data`` uses to edit every output with that id, in any cell of the notebook.
- ``clear_output(wait=True)`` clears just before the next output of the cell.
- Nested types are edited in place, never replaced wholesale, with one exception: the
  frontend re-renders an output only when the outputs array changes (not when a key of an
  output Map does), and appends what is inserted. So ``update_display_data`` replaces the
  updated output and re-inserts the (small) outputs after it, keeping everyone's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Map, Text

from .terminal import needs_resolution, resolve_stream_text

#: iopub message types that produce or change outputs of a cell.
OUTPUT_MSG_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error", "clear_output"}
)


# --------------------------------------------------------------------------------------------
# Output conversion
# --------------------------------------------------------------------------------------------


def output_from_message(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """The nbformat output dict for an iopub message, ``transient`` dropped; None if the
    message does not produce an output by itself (status, clear_output, update...)."""
    if msg_type == "stream":
        return {
            "output_type": "stream",
            "name": content.get("name", "stdout"),
            "text": content.get("text", ""),
        }
    if msg_type == "display_data":
        return {
            "output_type": "display_data",
            "data": dict(content.get("data") or {}),
            "metadata": dict(content.get("metadata") or {}),
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "data": dict(content.get("data") or {}),
            "metadata": dict(content.get("metadata") or {}),
            "execution_count": content.get("execution_count"),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": str(content.get("ename", "")),
            "evalue": str(content.get("evalue", "")),
            "traceback": list(content.get("traceback") or []),
        }
    return None


def display_id_of(content: dict[str, Any]) -> str | None:
    transient = content.get("transient") or {}
    display_id = transient.get("display_id") if isinstance(transient, dict) else None
    return display_id if isinstance(display_id, str) and display_id else None


def error_output(ename: str, evalue: str, traceback: list[str] | None = None) -> dict[str, Any]:
    """An error output written by the server itself (kernel died, input timed out...)."""
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": traceback if traceback is not None else [f"{ename}: {evalue}"],
    }


# --------------------------------------------------------------------------------------------
# State that is not in the document
# --------------------------------------------------------------------------------------------


class DisplayIndex:
    """Where outputs with a ``display_id`` live: display_id -> [(cell_id, output index)].

    ``transient`` is not stored in the document (nbformat forbids it), so the ids live here,
    per document. Entries are verified before use (a collaborator may have cleared outputs) and
    forgotten when their cell's outputs are cleared.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, list[tuple[str, int]]] = {}

    def add(self, display_id: str, cell_id: str, index: int) -> None:
        self._by_id.setdefault(display_id, []).append((cell_id, index))

    def get(self, display_id: str) -> list[tuple[str, int]]:
        return list(self._by_id.get(display_id, ()))

    def forget_cell(self, cell_id: str) -> None:
        for display_id in list(self._by_id):
            kept = [entry for entry in self._by_id[display_id] if entry[0] != cell_id]
            if kept:
                self._by_id[display_id] = kept
            else:
                del self._by_id[display_id]

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())


@dataclass
class CellOutputState:
    """Per-cell state the document cannot carry: a pending ``clear_output(wait=True)`` and a
    cache of the last stream output's tail, so that resolving ``\\r`` does not read a
    megabyte-long ``Text`` on each chunk."""

    clear_pending: bool = False
    # (stream output index, byte length of its Text, its last line or None when too long,
    # whether that line may hold \r/\b) as we left them.
    stream_tail: tuple[int, int, str | None, bool] | None = None
    # bytes of ASCII appended verbatim to the last stream output since the output limit last
    # looked at the cell (None: written otherwise); the limit then cuts it unread
    plain_appended: int | None = None


@dataclass
class DocumentOutputState:
    displays: DisplayIndex = field(default_factory=DisplayIndex)
    cells: dict[str, CellOutputState] = field(default_factory=dict)

    def cell(self, cell_id: str) -> CellOutputState:
        state = self.cells.get(cell_id)
        if state is None:
            state = self.cells[cell_id] = CellOutputState()
        return state


# --------------------------------------------------------------------------------------------
# Document edits (call inside a transaction)
# --------------------------------------------------------------------------------------------


def find_cell(ycells: Array[Any], cell_id: str) -> Map[Any] | None:
    for ycell in ycells:
        if isinstance(ycell, Map) and ycell.get("id") == cell_id:
            return ycell
    return None


def cell_outputs(ycell: Map[Any]) -> Array[Any]:
    outputs = ycell.get("outputs")
    if not isinstance(outputs, Array):
        outputs = ycell["outputs"] = Array()
    return outputs


def clear_outputs(ycell: Map[Any], doc_state: DocumentOutputState) -> None:
    outputs = cell_outputs(ycell)
    if len(outputs):
        outputs.clear()
    cell_id = str(ycell.get("id"))
    doc_state.displays.forget_cell(cell_id)
    state = doc_state.cell(cell_id)
    state.clear_pending = False
    state.stream_tail = None
    state.plain_appended = None


def start_execution(ycell: Map[Any], doc_state: DocumentOutputState) -> None:
    """At execution start, one transaction: clear outputs, count None, state running
    (a value that is already so is not written again: a cell of "run all" shown queued,
    [*], or never run sends collaborators no item for it)."""
    clear_outputs(ycell, doc_state)
    if ycell.get("execution_count") is not None:
        ycell["execution_count"] = None
    if ycell.get("execution_state") != "running":
        ycell["execution_state"] = "running"


def clear_execution(ycell: Map[Any], doc_state: DocumentOutputState) -> None:
    """What JupyterLab does for a cell with no code: outputs cleared, no count, idle."""
    clear_outputs(ycell, doc_state)
    if ycell.get("execution_count") is not None:
        ycell["execution_count"] = None
    if ycell.get("execution_state") != "idle":
        ycell["execution_state"] = "idle"


def finish_execution(ycell: Map[Any], execution_count: int | None) -> None:
    """At the end, together: count and idle (browsers flip to idle on a non-null count)."""
    ycell["execution_count"] = execution_count
    ycell["execution_state"] = "idle"


def _last_line(text: str) -> str:
    pos = text.rfind("\n")
    return text if pos < 0 else text[pos + 1 :]


_TAIL_CACHE_LIMIT = 1 << 16


def _append_stream(outputs: Array[Any], name: str, chunk: str, state: CellOutputState) -> None:
    n = len(outputs)
    last = outputs[n - 1] if n else None
    if last is None or last.get("output_type") != "stream" or last.get("name") != name:
        text = resolve_stream_text(chunk)
        outputs.append(Map({"output_type": "stream", "name": name, "text": Text(text)}))
        _remember_tail(state, n, len(text.encode("utf-8")), _last_line(text))
        state.plain_appended = None
        return
    ytext = last.get("text")
    if not isinstance(ytext, Text):
        # A stream stored as a plain value: make it a Text, in place of the plain value.
        ytext = Text(ytext if isinstance(ytext, str) else "".join(ytext or []))
        last["text"] = ytext
        state.plain_appended = None
    length = len(ytext)
    cached = state.stream_tail
    known = cached is not None and cached[0] == n - 1 and cached[1] == length
    tail: str | None = cached[2] if cached is not None and known else None
    tail_dirty = cached is None or not known or cached[3]
    chunk_ctrl = needs_resolution(chunk)
    if not chunk_ctrl and not tail_dirty:
        # The common case: plain text after a clean line.
        ytext += chunk
        _count_plain(state, chunk)
        new_tail = _last_line(chunk) if "\n" in chunk else (None if tail is None else tail + chunk)
        _remember_tail(state, n - 1, length + len(chunk.encode("utf-8")), new_tail, dirty=False)
        return
    if tail is None:
        tail = _last_line(str(ytext))
    if not chunk_ctrl and not needs_resolution(tail):
        ytext += chunk
        _count_plain(state, chunk)
        new_tail = _last_line(chunk) if "\n" in chunk else tail + chunk
        _remember_tail(state, n - 1, length + len(chunk.encode("utf-8")), new_tail)
        return
    resolved = resolve_stream_text(tail + chunk)
    tail_bytes = len(tail.encode("utf-8"))
    state.plain_appended = None
    if resolved.startswith(tail):
        addition = resolved[len(tail) :]
        if addition:
            ytext += addition
    else:
        start = length - tail_bytes
        del ytext[start:length]
        ytext.insert(start, resolved)
    new_length = length - tail_bytes + len(resolved.encode("utf-8"))
    _remember_tail(state, n - 1, new_length, _last_line(resolved))


def _count_plain(state: CellOutputState, chunk: str) -> None:
    if state.plain_appended is not None:
        state.plain_appended = state.plain_appended + len(chunk) if chunk.isascii() else None


def stream_trimmed(ycell: Map[Any], state: CellOutputState) -> None:
    """The oldest text of ``ycell``'s streams was dropped (the per-cell output limit): the
    cached tail keeps its line and learns the Text's new length, so the next chunk does
    not read the whole Text to find its last line again."""
    cached = state.stream_tail
    if cached is None:
        return
    index, _length, tail, dirty = cached
    outputs = ycell.get("outputs")
    output = outputs[index] if isinstance(outputs, Array) and index < len(outputs) else None
    text = output.get("text") if isinstance(output, Map) else None
    if not isinstance(text, Text) or (tail is not None and len(text) < len(tail.encode())):
        state.stream_tail = None  # the trim reached the last line: read it again
        return
    state.stream_tail = (index, len(text), tail, dirty)


def _remember_tail(
    state: CellOutputState, index: int, length: int, tail: str | None, dirty: bool | None = None
) -> None:
    if dirty is None:
        dirty = tail is None or needs_resolution(tail)
    if tail is not None and len(tail) > _TAIL_CACHE_LIMIT:
        tail = None  # too long to keep; a chunk with \r or \b will read it from the Text
    state.stream_tail = (index, length, tail, dirty)


def update_display(
    ycells: Array[Any], doc_state: DocumentOutputState, display_id: str, content: dict[str, Any]
) -> int:
    """Apply ``update_display_data``: edit every output with ``display_id``, in any cell.
    Returns how many outputs were updated."""
    entries = doc_state.displays.get(display_id)
    if not entries:
        return 0
    by_cell: dict[str, Map[Any]] = {}
    wanted = {cell_id for cell_id, _ in entries}
    for ycell in ycells:
        cid = ycell.get("id")
        if cid in wanted and cid not in by_cell:
            by_cell[cid] = ycell
    data = dict(content.get("data") or {})
    metadata = dict(content.get("metadata") or {})
    updated = 0
    for cell_id, index in entries:
        ycell = by_cell.get(cell_id)
        if ycell is None:
            continue
        outputs = ycell.get("outputs")
        if not isinstance(outputs, Array) or index >= len(outputs):
            continue
        youtput = outputs[index]
        if youtput.get("output_type") not in ("display_data", "execute_result"):
            continue
        _replace_output(outputs, index, data, metadata)
        updated += 1
    return updated


#: Outputs after an updated display are re-inserted with it up to this many characters of
#: text; beyond, the display is edited in place (collaborators see it on their next load).
REINSERT_LIMIT = 1 << 18


def _replace_output(
    outputs: Array[Any], index: int, data: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """Give output ``index`` new data, so that every frontend re-renders it: the output and
    those after it are replaced by copies (frontends apply an inserted output at the end)."""
    tail = [outputs[j] for j in range(index + 1, len(outputs))]
    if sum(_text_size(o) for o in tail) > REINSERT_LIMIT:
        youtput = outputs[index]
        youtput["data"] = data
        youtput["metadata"] = metadata
        return
    updated = {key: _plain(value) for key, value in outputs[index].items()}
    updated["data"] = data
    updated["metadata"] = metadata
    copies = [Map(updated), *(Map({k: _plain(v) for k, v in o.items()}) for o in tail)]
    del outputs[index:]
    outputs.extend(copies)


def _plain(value: Any) -> Any:
    """A value of an output Map, fit to be put into a new Map (a Text is copied)."""
    if isinstance(value, Text):
        return Text(str(value))
    if isinstance(value, (Map, Array)):
        return value.to_py()
    return value


def _text_size(youtput: Any) -> int:
    if not isinstance(youtput, Map):
        return 0
    text = youtput.get("text")
    return len(text) if isinstance(text, (Text, str)) else 0


def apply_output_message(
    ycells: Array[Any],
    ycell: Map[Any] | None,
    msg_type: str,
    content: dict[str, Any],
    doc_state: DocumentOutputState,
) -> bool:
    """Apply one iopub message to the document. ``ycell`` is the cell the message belongs to
    (None when it is gone); ``update_display_data`` may edit other cells too.

    Must be called inside a transaction of the cell's document. Returns True if the document
    was (or may have been) changed.
    """
    if msg_type == "update_display_data":
        display_id = display_id_of(content)
        if display_id is None:
            return False
        return update_display(ycells, doc_state, display_id, content) > 0
    if ycell is None:
        return False
    cell_id = str(ycell.get("id"))
    state = doc_state.cell(cell_id)
    if msg_type == "clear_output":
        if content.get("wait"):
            state.clear_pending = True
            return False
        clear_outputs(ycell, doc_state)
        return True
    output = output_from_message(msg_type, content)
    if output is None:
        return False
    if state.clear_pending:
        clear_outputs(ycell, doc_state)
    outputs = cell_outputs(ycell)
    if msg_type == "stream":
        if output["text"]:
            _append_stream(outputs, output["name"], output["text"], state)
        return True
    outputs.append(Map(output))
    display_id = display_id_of(content)
    if display_id is not None:
        doc_state.displays.add(display_id, cell_id, len(outputs) - 1)
    return True
