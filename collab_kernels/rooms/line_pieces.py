"""nbformat's ``split_lines`` for a save's worker thread, a big text split a piece at a time.

Why: writing a notebook, nbformat stores each multi-line text (a cell's source, a stream's
text, a ``text/*`` output) as a list of lines, made by ``str.splitlines(True)``: one C call
holding the GIL for the whole text, 4 ms for the 1.3 MB stream of each cell of
``bench/room_save_bench.py --megabytes 65``. Every time the event loop gave the GIL up (a
socket write, a select, a SQLite call of the update store) it waited for the end of such a
call before going on: the save's thread ran them back to back, and the loop's rounds, which
give the GIL up five to ten times each, stood still for 30-60 ms (faulthandler dumps of
every thread at each stall: ``LOOP_PROBE_DUMP_MS``).

:func:`lines` gives the same list as ``text.splitlines(True)``, cutting the text after a
``"\\n"`` every ``PIECE`` characters or so and splitting the pieces one by one. A line
break never spans such a cut (``"\\r\\n"`` ends with the ``"\\n"`` it is cut after), so the
lines are the same (``tests/test_rooms_line_pieces.py`` compares them, hypothesis-generated
texts with every line break Python knows). A text without a ``"\\n"`` for longer than a
piece is split whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nbformat.v4 import rwbase

#: characters split per ``splitlines`` call (about 0.1 ms)
PIECE = 1 << 15

#: the mimetypes besides ``text/*`` whose strings nbformat stores as lines
SPLIT_MIMES: frozenset[str] = frozenset(
    getattr(rwbase, "_non_text_split_mimes", {"application/javascript", "image/svg+xml"})
)


def pieces(text: str, piece: int = PIECE) -> Iterator[str]:
    """``text`` cut after a ``"\n"`` every ``piece`` characters or so (a piece ends at the
    first ``"\n"`` from its ``piece``-th character on, or with the text)."""
    start, end = 0, len(text)
    while start < end:
        cut = text.find("\n", min(start + piece, end) - 1)
        stop = end if cut < 0 else cut + 1
        yield text[start:stop]
        start = stop


def lines(text: str, piece: int = PIECE) -> list[str]:
    """``text.splitlines(True)``, a piece of about ``piece`` characters at a time."""
    if len(text) <= piece:
        return text.splitlines(True)
    found: list[str] = []
    for part in pieces(text, piece):
        found += part.splitlines(True)
    return found


def _split_bundle(data: dict[str, Any]) -> None:
    for key, value in list(data.items()):
        if isinstance(value, str) and (key.startswith("text/") or key in SPLIT_MIMES):
            data[key] = lines(value)


def split_lines(nb: Any) -> Any:
    """``nbformat.v4.rwbase.split_lines(nb)`` (in place), with :func:`lines`."""
    for cell in nb.cells:
        source = cell.get("source", None)
        if isinstance(source, str):
            cell["source"] = lines(source)
        for attachment in cell.get("attachments", {}).values():
            _split_bundle(attachment)
        if cell.cell_type == "code":
            for output in cell.outputs:
                if output.output_type in {"execute_result", "display_data"}:
                    _split_bundle(output.get("data", {}))
                elif output.output_type == "stream" and isinstance(output.text, str):
                    output.text = lines(output.text)
    return nb


__all__ = ["PIECE", "lines", "pieces", "split_lines"]
