"""What one document room takes in: its clients' updates, and the stream output each of its
cells keeps.

Edits of a read-only connection are dropped (logged once per connection). An update over
``max_update_size`` bytes or nesting deeper than ``max_update_depth`` is refused before it
changes anything (``limits.check_update``, which raises); the room keeps an upper bound of
how deep its notebook nests types so that most updates are accepted without measuring the
document. The execution stage applies ``max_cell_output`` to a cell as its output arrives
(``repair.trim_cell_streams``; saves apply it to every cell), and the first cell trimmed is
logged once per room.

:func:`apply_client_update` applies an accepted update, and repairs the broadcast of one whose
clock skips ahead (pycrdt integrates it but reports nothing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map

from . import limits, repair
from .fanout import EMPTY_UPDATE, Fanout, RoomClient
from .host import RoomHost
from .protocol import ProtocolError


class DocumentIntake:
    """The update checks and the per-cell output limit of one room (``host``'s settings)."""

    def __init__(
        self,
        ydoc: Doc[Any],
        *,
        host: RoomHost,
        notebook: bool,
        describe: Callable[[], str],
        log: logging.Logger,
    ):
        self._ydoc = ydoc
        self._host = host
        self._notebook = notebook
        self._describe = describe
        self.log = log
        self._depth_bound: int | None = None
        self._trimmed_cells: set[str] = set()  # cells whose output limit was logged
        self._stream_facts: dict[str, repair.StreamFacts] = {}  # repair.trim_cell_streams

    # --- incoming updates --------------------------------------------------------------------
    def accept(self, client: RoomClient, update: bytes) -> bool:
        """Whether ``client``'s ``update`` is to be applied: False for an empty one or one of a
        read-only client (dropped); raises (``limits.check_update``) for one over the limits."""
        if not client.can_write:
            client.dropped_updates += 1
            if client.dropped_updates == 1:
                self.log.info(
                    "collab_kernels: dropping edits of read-only %s on %s",
                    client.name,
                    self._describe(),
                )
            return False
        if update == EMPTY_UPDATE:
            return False
        bound = limits.check_update(
            self._ydoc,
            update,
            max_size=self._host.max_update_size,
            max_depth=self._host.max_update_depth,
            notebook=self._notebook,
            depth_bound=self._type_depth_bound,
        )
        if bound is not None:
            self._depth_bound = bound
        return True

    def _type_depth_bound(self) -> int:
        """An upper bound of how deep the notebook nests types (measured once, then grown by
        what accepted updates add; the server's own edits stay within the schema's depth)."""
        if self._depth_bound is None:
            measured = limits.type_depth(limits.notebook_roots(self._ydoc), 10**6)
            self._depth_bound = max(measured, limits.SCHEMA_DEPTH)
        return self._depth_bound

    # --- cell output -------------------------------------------------------------------------
    @property
    def kept_cell_output(self) -> int:
        limit = self._host.max_cell_output
        return repair.kept_bytes(limit) if limit > 0 else 0

    def limit_cell_output(
        self,
        ycell: Map[Any],
        *,
        keep: int | None = None,
        dropped: int = 0,
        appended: int | None = None,
    ) -> bool:
        """Trim ``ycell``'s stream output to ``max_cell_output``; whether it trimmed."""
        limit = self._host.max_cell_output
        facts, more = self._stream_facts, appended
        if not repair.trim_cell_streams(
            ycell, limit, keep=keep, dropped_before=dropped, memo=facts, appended=more
        ):
            return False
        if not self._trimmed_cells:
            self.log.info(
                "collab_kernels: %s: cell %s printed more than max_cell_output (%d bytes); "
                "its oldest stream output is dropped as it runs",
                self._describe(),
                ycell.get("id"),
                limit,
            )
        self._trimmed_cells.add(str(ycell.get("id")))
        return True


def apply_client_update(room: Fanout, client: RoomClient, update: bytes) -> None:
    """Apply a client's (already bounded) Y update and make sure what it changed reaches
    the collaborators; raises ProtocolError for an update pycrdt refuses.

    The room broadcasts the update pycrdt reports for each transaction. For an update
    whose struct claims a clock beyond its client's known clock (a malformed or forged
    update), pycrdt 0.14 integrates the struct (its text appears in the document) but
    reports an empty update: the room's document would differ from every
    collaborator's, silently and for good. When the state vector moved but nothing
    but empty updates was reported, the difference from the previous state vector is
    sent instead.
    """
    state_before = room.ydoc.get_state()
    queued = room.pending_update_count
    try:
        room.ydoc.apply_update(update)
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        raise
    except BaseException as e:  # pycrdt raises (or panics) on a corrupt update
        raise ProtocolError(f"invalid Y update: {e}") from e
    finally:
        reported = room.pending_updates_since(queued)
        if all(u == EMPTY_UPDATE for u in reported) and room.ydoc.get_state() != state_before:
            room.log.warning(
                "collab_kernels: an update from %s on %s changed the document without a "
                "reported update (a struct whose clock skips ahead); sending the "
                "difference instead",
                client.name,
                room.describe(),
            )
            room.replace_pending_updates(queued, room.ydoc.get_update(state_before))
