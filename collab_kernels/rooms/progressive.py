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

Only browsers (a ``User-Agent`` starting with ``Mozilla/``, which every browser sends) get
the split: a Python client or a tool treats its SyncStep2 as the whole document (the Y
sync protocol's promise) and would otherwise run or read a notebook of only its first
cells. The room's content, version and file are those of a one-part load (the second part is
a server edit made during the load, not an edit to save).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from jupyter_ydoc import YNotebook
from pycrdt import Doc, create_update_message

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


def split(content: Any, file_type: str, first_cells: int) -> tuple[Any, list[Any]]:
    """A notebook's content with only its first ``first_cells`` cells, and the other cells;
    ``(content, [])`` when it is not split (a text file, few cells, or 0 = off)."""
    if file_type != "notebook" or first_cells <= 0 or not isinstance(content, dict):
        return content, []
    cells = content.get("cells")
    if not isinstance(cells, list) or len(cells) <= first_cells:
        return content, []
    return {**content, "cells": cells[:first_cells]}, cells[first_cells:]


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
    room: Builder, rest: list[Any], built: Sequence[update_parts.Part] = ()
) -> FirstPart | None:
    """Keep the first part (built already, in the transactions ``built``) and append the
    ``rest`` of the cells to the document, as a server edit (call during the load), in
    slices (``content.in_slices``)."""
    if not rest:
        return None
    document = room.document
    if not isinstance(document, YNotebook):
        raise TypeError("only a notebook is built in two parts")
    ydoc = room.ydoc
    parts, first_state = len(built), ydoc.get_state()
    cells = document.ycells
    with room.server_edit():
        await in_slices(ydoc, (cells.append(document.create_ycell(cell)) for cell in rest))
    return FirstPart(ydoc, parts, first_state, ydoc.get_state())
