"""A big notebook's first browser gets its first cells before the rest (progressive sync).

A browser opening a notebook of 1000 cells received the whole document in its SyncStep2
and spent one long task (0.4-0.9 s) creating every cell model before the first cell
showed. A notebook with more than ``progressive_sync_cells`` cells is now built from its
file in two parts: the notebook's metadata, its state and its first cells, then the other
cells (each part in slices, ``content.in_slices``). The first part (a causally complete
Y update) is joined when the first browser asks for it, from the first sync's frame
(``update_parts.JoinedParts``): a big notebook's load holds one copy of its state. The
first SyncStep1 the room answers, if it comes from a browser with an empty document while
the document did not change since the load, is answered with that first part: the page
marks itself synced, picks the kernel from the metadata and shows the first cells after a
short task. The rest follows on the next loop iteration as an ordinary update message (a
remote insert for the page). Every later SyncStep1 gets the whole state, as before.

A notebook holding big outputs is split the same way, whatever its number of cells: the first
part holds at most ``progressive_sync_output_bytes`` of outputs, and the outputs of the cells
over that follow with the rest (the cells are there, their outputs empty until the rest
comes). A browser renders 20 MB of stream output in several seconds before it shows any
cell; now it shows the cells first and the output when it comes, as when a kernel writes it.

Only browsers (a ``User-Agent`` starting with ``Mozilla/``, which every browser sends) get
the split: a Python client or a tool treats its SyncStep2 as the whole document (the Y
sync protocol's promise) and would otherwise run or read a notebook of only its first
cells. The room's content, version and file are those of a one-part load (the second part is
a server edit made during the load, not an edit to save).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Text, create_update_message

from . import update_parts
from .content import in_slices
from .first_sync import EMPTY_STATE_VECTOR


class Builder(Protocol):
    """The document room as the second part's build sees it."""

    @property
    def ydoc(self) -> Doc[Any]: ...
    @property
    def document(self) -> Any: ...
    def server_edit(self) -> Any: ...


class Client(Protocol):
    progressive: bool

    @property
    def closed(self) -> bool: ...
    def send(self, data: bytes) -> None: ...


def is_browser(headers: Mapping[str, str]) -> bool:
    """Whether a websocket request comes from a browser (its ``User-Agent``)."""
    return headers.get("User-Agent", "").startswith("Mozilla/")


@dataclass
class Rest:
    """What a notebook's first part leaves for the second: the cells after its first ones,
    and the outputs held back from its first cells (by the cell's index)."""

    cells: list[Any] = field(default_factory=list)
    outputs: list[tuple[int, list[Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cells or self.outputs)


def output_size(outputs: list[Any], limit: int) -> int:
    """The UTF-8 bytes of ``outputs``' texts and data (strings, at any depth), counted up to
    just over ``limit``. A string is encoded only when it is not ASCII (``isascii`` costs
    nothing) and has fewer characters than are left to the limit (its bytes are at least its
    characters, so a longer one is over it anyway)."""
    size, stack = 0, list(outputs)
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, str):
            if item.isascii() or len(item) > limit - size:
                size += len(item)
            else:
                size += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return size


def split(
    content: Any, file_type: str, first_cells: int, output_bytes: int = 0
) -> tuple[Any, Rest]:
    """A notebook's content with only its first ``first_cells`` cells, holding at most
    ``output_bytes`` of outputs (0: no bound), and the :class:`Rest`; ``(content, Rest())``
    when it is not split (a text file, a small notebook, or ``first_cells`` 0 = off)."""
    if file_type != "notebook" or first_cells <= 0 or not isinstance(content, dict):
        return content, Rest()
    cells = content.get("cells")
    if not isinstance(cells, list):
        return content, Rest()
    first, rest = cells[:first_cells], Rest(cells=cells[first_cells:])
    kept = 0
    for index, cell in enumerate(first if output_bytes > 0 else ()):
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            continue
        size = output_size(outputs, output_bytes - kept)
        if kept + size <= output_bytes:
            kept += size
        else:
            rest.outputs.append((index, outputs))
            first[index] = {**cell, "outputs": []}
    if not rest:
        return content, rest
    return {**content, "cells": first}, rest


def youtput(output: dict[str, Any]) -> Map[Any]:
    """One output as the notebook schema holds it (jupyter_ydoc's ``create_ycell``: a
    stream's text is a Text, the rest as it is)."""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return Map({**output, "text": Text(text if isinstance(text, str) else "".join(text))})
    return Map(output)


class FirstPart:
    """The first part's update and state vector, and the answer made of them."""

    def __init__(self, ydoc: Doc[Any], parts: int, state_vector: bytes, loaded: bytes):
        self.ydoc = ydoc
        #: how many of the load's transactions built the first part
        self.parts = parts
        #: the first part's update, built when asked (:meth:`keep`)
        self.update: Callable[[], bytes] | None = None
        #: what the first part holds: the follow-up is the document beyond it
        self.state_vector = state_vector
        #: the document's state vector at the end of the load
        self.loaded = loaded
        self._follow_up: Client | None = None

    def answer(self, state_vector: bytes, client: Client | None) -> bytes | None:
        """The first part, for the room's first SyncStep1 if it comes from a browser with an
        empty document and the document did not change since the load; else None (and the
        first part is dropped: later joiners get the whole state)."""
        update, self.update = self.update, None
        if update is None or client is None or not client.progressive:
            return None
        if state_vector != EMPTY_STATE_VECTOR or self.ydoc.get_state() != self.loaded:
            return None
        self._follow_up = client
        return update()

    def keep(
        self, built: Sequence[update_parts.Part], joined: update_parts.JoinedParts | None
    ) -> None:
        """Where the first part's update comes from once the load has joined its build:
        the first :attr:`parts` of ``joined`` (views of the first sync's frame, joined on
        the first browser's SyncStep1), or else ``built``'s first transactions joined now
        (None when they are not joinable: the first browser gets the whole state)."""
        if joined is not None:
            self.update = lambda: joined.joined(self.parts)
            return
        first = update_parts.join(built[: self.parts], self.ydoc.client_id)
        self.update = None if first is None else (lambda: first)

    def answered(self) -> None:
        """The first part went out: the rest follows on the next loop iteration."""
        client, self._follow_up = self._follow_up, None
        if client is not None:
            asyncio.get_event_loop().call_soon(self._send_rest, client)

    def _send_rest(self, client: Client) -> None:
        if not client.closed:
            # Whatever the client misses beyond the first part, edits since included.
            client.send(create_update_message(self.ydoc.get_update(self.state_vector)))


async def build_rest(
    room: Builder, rest: Rest, built: Sequence[update_parts.Part] = ()
) -> FirstPart | None:
    """Keep the first part (built already, in the transactions ``built``) and add the
    ``rest`` to the document: the outputs held back, then the other cells, as a server edit
    (call during the load), in slices (``content.in_slices``)."""
    if not rest:
        return None
    document = room.document
    if not isinstance(document, YNotebook):
        raise TypeError("only a notebook is built in two parts")
    ydoc = room.ydoc
    parts, first_state = len(built), ydoc.get_state()
    cells = document.ycells

    def steps() -> Iterator[None]:
        for index, outputs in rest.outputs:
            youtputs = cells[index]["outputs"]
            for output in outputs:
                youtputs.append(youtput(output))
                yield
        for cell in rest.cells:
            cells.append(document.create_ycell(cell))
            yield

    with room.server_edit():
        await in_slices(ydoc, steps())
    return FirstPart(ydoc, parts, first_state, ydoc.get_state())
