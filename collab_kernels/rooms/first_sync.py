"""What a freshly loaded big document does after its first collaborator has it.

Opening a notebook of tens of megabytes, the first person waits for the room to read the
file, build the Y document and answer their SyncStep1 with the whole state. Two more pieces
of work used to come before that answer: the update store's new history (the full state
encoded, squashed through a scratch document, and written to SQLite: 0.4 s for 50 MB) and a
second full encode for the SyncStep2. :class:`FirstSync` encodes the state once, answers a
SyncStep1 with an empty state vector from those bytes while the document has not changed,
and writes the store's history with them *after* the answer, or ``DEFER_SECONDS`` after the
load if nobody syncs. A document built from a file into an empty Y document has no deleted
content, so the scratch squash is not needed. Writing that history (a state file of the
document's size) is the store's thread's job (``store_worker.py``, *A pending reset*): the
loop only hands it the bytes.

Until it is settled, every other use of the history (appending updates, a save's checkpoint,
deleting, stopping) settles it first: the history then holds the state as it is at that
moment (which already contains the updates about to be appended; appending them again is
harmless, Y updates are idempotent). Small documents are not deferred (``DEFER_BYTES``):
their history is written during the load, as before.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from pycrdt import Doc

from . import protocol
from .frames import Frame
from .update_parts import JoinedParts, Part, join_parts

if TYPE_CHECKING:  # pragma: no cover
    from .progressive import Client, FirstPart

#: documents whose encoded state is smaller than this write their history during the load
DEFER_BYTES = 1 << 18
#: the history of a loaded document nobody synced with is written after this many seconds
DEFER_SECONDS = 2.0
#: the encoded state vector of an empty document (what a browser opening a notebook sends)
EMPTY_STATE_VECTOR = b"\x00"


def framed_join(parts: list[Part], client_id: int) -> tuple[Frame, JoinedParts] | None:
    """In a worker thread: the SyncStep2 of a just-built document's state, framed for the
    wire from its build's updates (``update_parts.join_parts``) in one join, and the parts
    again as views of the frame's bytes: no copy of the state of its own
    (:attr:`FirstSync.state` is ``JoinedParts.state``); None when they are not joinable."""
    joined = join_parts(parts, client_id)
    if joined is None:
        return None
    frame = Frame.joined(protocol.sync_step2_pieces(*joined.pieces))
    state = frame.payload[len(frame.payload) - joined.size :]
    return frame, joined.parts_of(state)


class History(Protocol):
    def reset(self, file_hash: str | None, *, state: bytes | memoryview | None = None) -> None: ...


class FirstSync:
    """The full state of a just-loaded document, encoded once; its history written later."""

    def __init__(
        self,
        ydoc: Doc[Any] | None,
        history: History | None,
        file_hash: str | None,
        *,
        state: bytes | memoryview | None = None,
        message: Frame | None = None,
    ) -> None:
        """``state``: ``ydoc.get_update()`` if the caller has it already; ``message``: its
        SyncStep2, framed (:func:`framed_join`)."""
        self.ydoc = ydoc
        self.history = history
        self.file_hash = file_hash
        #: set once the history holds the loaded state (at once when nothing is deferred)
        self.settled = asyncio.Event()
        self._handle: asyncio.Handle | None = None
        self.state: bytes | memoryview | None = None
        #: the SyncStep2 message of ``state``, framed (``frame_off_loop``)
        self.message: Frame | None = message
        self.state_vector = b""
        #: a big notebook's first part, for the first browser (progressive.py)
        self.part: FirstPart | None = None
        if ydoc is None:
            self.settled.set()
            return
        self.state = ydoc.get_update() if state is None else state
        self.state_vector = ydoc.get_state()
        if len(self.state) < DEFER_BYTES:
            self.settle()
        else:
            self._handle = asyncio.get_event_loop().call_later(DEFER_SECONDS, self.settle)

    @classmethod
    def settled_already(cls) -> FirstSync:
        """Nothing to do (a room not loaded yet, or restored from the store)."""
        return cls(None, None, None)

    @property
    def pending(self) -> bool:
        return not self.settled.is_set()

    async def frame_off_loop(self) -> None:
        """Build the SyncStep2 message of a big state, framed for the wire, in a worker
        thread (on the loop its two copies held the GIL 80 ms for 65 MB)."""
        state = self.state
        if self.message is None and state is not None and len(state) >= DEFER_BYTES:
            pieces = protocol.sync_step2_pieces(bytes(state))
            self.message = await asyncio.to_thread(Frame.joined, pieces)
            if self.state is state:  # one copy of the state: the frame's
                self.state = self.message.payload[len(self.message.payload) - len(state) :]

    def answer(self, state_vector: bytes, client: Client | None = None) -> bytes | Frame | None:
        """The SyncStep2 for a client's ``state_vector`` from the bytes encoded at load (the
        whole message, framed, when :meth:`frame_off_loop` built it), if that client has
        nothing yet and the document did not change since; else None. The room's first
        SyncStep1 may get the first part of a big notebook (progressive.py)."""
        part = self.part.answer(state_vector, client) if self.part is not None else None
        if part is not None:
            return part
        self.part = None
        if self.state is None or self.ydoc is None or state_vector != EMPTY_STATE_VECTOR:
            return None
        if self.ydoc.get_state() != self.state_vector:
            return None
        return bytes(self.state) if self.message is None else self.message

    def answered(self) -> None:
        """A SyncStep2 went out: write the history on the next loop iterations (after the
        rest of a big notebook whose first part went out)."""
        part, self.part = self.part, None
        if part is not None:
            part.answered()
        if self.pending:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = asyncio.get_event_loop().call_soon(self.settle)

    def settle(self) -> None:
        """Write the history now (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self.pending:
            return
        state, self.state = self.state, None
        self.message = None
        self.settled.set()
        if self.history is None or self.ydoc is None:
            return
        if state is not None and self.ydoc.get_state() != self.state_vector:
            state = None  # changed since the load: the history encodes the state as it is now
        self.history.reset(self.file_hash, state=state)

    def cancel(self) -> None:
        """The room goes away without its history (deleted file)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.state = None
        self.message = None
        self.part = None
        self.settled.set()
