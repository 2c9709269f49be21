"""A freshly built document's state, joined from the updates of the transactions that built it.

Why: building a 65 MB notebook from its file in one transaction, the commit encoded the
whole document for the room's observer (180 ms, one pycrdt call that holds the GIL), and
the load then encoded it again with ``ydoc.get_update()`` for the first sync and the update
store (180 ms more): two stalls of every room's event loop. The build now commits a
transaction per slice (``file.set_document``), each encoding only what it added, and the
state is those updates joined (:func:`join`), without asking pycrdt to encode anything.

How: a Y update (v1) is the number of clients, then for each client the number of its
structs, its id, the clock of its first struct and the structs (each one self-delimiting),
then the delete set. The transactions of one client that built a document from empty
hold consecutive clock ranges and delete nothing, so their updates joined are one client's
structs from clock 0, in order, and an empty delete set: the document ``get_update()``
encodes (the same bytes for a notebook built from a file, whose texts are inserted whole;
``get_update()`` may squash two adjacent items of two transactions into one struct;
``tests/test_rooms_update_parts.py`` compares them on several notebooks).
Anything else (another client's structs, a deletion, a gap in the clocks) is not joined:
:func:`join` returns None and the caller encodes the document as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import NamedTuple

from pycrdt import write_var_uint

from .protocol import ProtocolError, read_var_uint

#: an update that holds nothing (a transaction that changed nothing)
EMPTY_UPDATE = b"\x00\x00"


def _header(update: bytes) -> tuple[int, int, int, int] | None:
    """``(structs, client, first clock, where the structs start)`` of an update holding one
    client's structs and no deletions; None for any other."""
    try:
        clients, pos = read_var_uint(update, 0)
        if clients != 1 or update[-1] != 0:  # one client; an empty delete set ends it
            return None
        structs, pos = read_var_uint(update, pos)
        client, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
    except ProtocolError:
        return None
    return structs, client, clock, pos


def _head(structs: int, client: int, clock: int) -> bytes:
    """The start of an update holding ``structs`` structs of one client from ``clock``."""
    return b"".join(
        [write_var_uint(1), write_var_uint(structs), write_var_uint(client), write_var_uint(clock)]
    )


def _clock(state_vector: bytes, client_id: int) -> int | None:
    """The clock of ``client_id`` in an encoded state vector that holds no other client
    (0 for an empty one); None if it holds another."""
    try:
        clients, pos = read_var_uint(state_vector, 0)
        if clients == 0:
            return 0
        client, pos = read_var_uint(state_vector, pos)
        clock, pos = read_var_uint(state_vector, pos)
    except ProtocolError:
        return None
    return clock if clients == 1 and client == client_id and pos == len(state_vector) else None


class Part(NamedTuple):
    """One transaction's update and the document's state vectors around it."""

    update: bytes
    before: bytes
    after: bytes


class Joined(NamedTuple):
    """The parts' updates as the pieces of one update, and where each part's structs are."""

    #: the joined update's header, the parts' structs, its empty delete set
    pieces: list[bytes]
    client_id: int
    #: per joined part: its number of structs and its first clock
    heads: list[tuple[int, int]]
    #: per joined part: its index in the parts given (transactions that changed nothing
    #: are left out)
    indices: list[int]

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    def parts_of(self, state: bytes | memoryview) -> JoinedParts:
        """The parts' updates again, read from ``state`` (these pieces joined, or a view of
        them) when asked: the bytes of one copy of the document, not two."""
        return JoinedParts(state, self)


class JoinedParts(Sequence[bytes]):
    """Each joined part's update rebuilt from a view of the joined state, one at a time (the
    same bytes as the part's own update: its header, its structs, an empty delete set)."""

    def __init__(self, state: bytes | memoryview, joined: Joined):
        self.state = memoryview(state)
        self.client_id = joined.client_id
        self.heads = joined.heads
        self.indices = joined.indices
        self.spans: list[tuple[int, int]] = []
        start = len(joined.pieces[0])
        for body in joined.pieces[1:-1]:
            self.spans.append((start, start + len(body)))
            start += len(body)

    def __len__(self) -> int:
        return len(self.spans)

    def joined(self, given: int) -> bytes:
        """The updates of the first ``given`` parts that were given to :func:`join_parts`
        as one update (one copy of their structs)."""
        count = bisect.bisect_left(self.indices, given)
        if count <= 0:
            return EMPTY_UPDATE
        structs = sum(head[0] for head in self.heads[:count])
        start, end = self.spans[0][0], self.spans[count - 1][1]
        return self._update(structs, 0, start, end)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        structs, clock = self.heads[index]
        return self._update(structs, clock, *self.spans[index])

    def _update(self, structs: int, clock: int, start: int, end: int) -> bytes:
        head = _head(structs, self.client_id, clock)
        return b"".join([head, self.state[start:end], b"\x00"])


def join_parts(parts: Sequence[Part], client_id: int) -> Joined | None:
    """The updates of ``parts`` (transactions in commit order, all by ``client_id``, the
    first on an empty document) as the pieces of one update, or None when they are not
    that."""
    structs = 0
    bodies: list[bytes] = []
    heads: list[tuple[int, int]] = []
    indices: list[int] = []
    expected = 0
    for index, part in enumerate(parts):
        before, after = _clock(part.before, client_id), _clock(part.after, client_id)
        if before != expected or after is None:
            return None
        if part.update == EMPTY_UPDATE and after == before:
            continue
        header = _header(part.update)
        if header is None:
            return None
        count, client, clock, start = header
        if client != client_id or clock != before or after <= before:
            return None
        structs += count
        bodies.append(part.update[start:-1])  # bytes: their join gives the GIL back
        heads.append((count, clock))
        indices.append(index)
        expected = after
    if not bodies:
        return None
    return Joined([_head(structs, client_id, 0), *bodies, b"\x00"], client_id, heads, indices)


def join(parts: Sequence[Part], client_id: int) -> bytes | None:
    """:func:`join_parts`, joined into one update."""
    joined = join_parts(parts, client_id)
    return None if joined is None else b"".join(joined.pieces)
