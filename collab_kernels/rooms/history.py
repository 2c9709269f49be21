"""The room's side of the update store: restore on load, append before broadcast, compact.

The store itself (``store.py``) knows rows and bytes; this glue knows which file content a
room's stored history belongs to (the file hash of its last save or load), when to replace the
history by one squashed update, and what a restored document must look like (nothing running).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pycrdt import Array, Doc, Map

from .store import SQLiteUpdateStore


class RoomHistory:
    """One room's Y history in the update store."""

    def __init__(
        self,
        store: SQLiteUpdateStore,
        *,
        room_id: str,
        ydoc: Doc[Any],
        log: logging.Logger,
        describe: Callable[[], str],
        compact_every: Callable[[], int],
        in_file: Callable[[], bool] = lambda: False,
    ):
        self.store = store
        self.room_id = room_id
        self.ydoc = ydoc
        self.log = log
        self.describe = describe
        self.compact_every = compact_every
        self.in_file = in_file
        #: the file hash the stored history belongs to
        self.file_hash: str | None = None
        #: the Y lineage of the room's document (sessions.py), stored with its history
        self.lineage: str | None = None
        self.failed = False

    @property
    def usable(self) -> bool:
        return not self.store.closed

    # --- reading -----------------------------------------------------------------------------
    def stored_state(self, file_hash: str | None) -> bytes | None:
        """The stored Y state of the room when it is the lineage of the file (same hash)."""
        try:
            stored = self.store.load(self.room_id)
        except Exception as e:
            self.log.error(
                "collab_kernels: reading the update store for %s failed (%s); rebuilding the "
                "document from the file",
                self.describe(),
                e,
            )
            return None
        if stored is None:
            return None
        stored_hash, updates = stored
        if stored_hash is None or stored_hash != file_hash:
            self.log.info(
                "collab_kernels: %s changed since its stored history was saved; rebuilding the "
                "document from the file",
                self.describe(),
            )
            return None
        scratch: Doc[Any] = Doc()
        try:
            for update in updates:
                scratch.apply_update(update)
            state = scratch.get_update()
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
            raise
        except BaseException as e:  # a corrupt row: fall back to the file
            self.log.error(
                "collab_kernels: the stored history of %s is unreadable (%s); rebuilding the "
                "document from the file",
                self.describe(),
                e,
            )
            return None
        self.file_hash = stored_hash
        try:
            self.lineage = self.store.lineage(self.room_id)
        except Exception:
            self.lineage = None
        self.log.info(
            "collab_kernels: restored %s from the update store (%d updates)",
            self.describe(),
            len(updates),
        )
        return state

    # --- writing -----------------------------------------------------------------------------
    def append(self, updates: list[bytes]) -> None:
        if self.store.closed:
            return
        try:
            count = self.store.append(self.room_id, updates)
        except Exception as e:
            self.error(e)
            return
        if count >= max(self.compact_every(), 1):
            self.reset(self.file_hash)

    def reset(self, file_hash: str | None) -> None:
        """Replace the stored history by the current state, tagged with the file's hash."""
        if self.store.closed:
            return
        try:
            # The live doc still encodes deleted content (cleared outputs) in full; applying
            # its state to a fresh Doc garbage-collects it: the squashed state is then the
            # size of the document, not of its history.
            scratch: Doc[Any] = Doc()
            scratch.apply_update(self.ydoc.get_update())
            self.store.reset(
                self.room_id,
                file_hash,
                scratch.get_update(),
                lineage=self.lineage,
                in_file=self.in_file(),
            )
        except Exception as e:
            self.error(e)
            return
        self.file_hash = file_hash

    def checkpoint(self, file_hash: str | None) -> None:
        """After a save or reload: compact (history up to here is in the file)."""
        if self.store.closed:
            return
        if file_hash != self.file_hash or self.store.pending_count(self.room_id):
            self.reset(file_hash)

    def delete(self) -> None:
        if self.store.closed:
            return
        try:
            self.store.delete(self.room_id)
        except Exception as e:
            self.error(e)

    def error(self, error: Exception) -> None:
        if not self.failed:
            self.failed = True
            self.log.error(
                "collab_kernels: writing %s to the update store failed (%s); its edits are "
                "only as safe as the last save",
                self.describe(),
                error,
            )


def reset_execution_state(ydoc: Doc[Any]) -> None:
    """Nothing runs after a restart: clear running marks kept in a stored notebook history."""
    ycells = ydoc.get("cells", type=Array)
    with ydoc.transaction():
        for ycell in ycells:
            if isinstance(ycell, Map) and ycell.get("execution_state") not in (None, "idle"):
                ycell["execution_state"] = "idle"
        if "execution" in ydoc.keys():
            emap = ydoc.get("execution", type=Map)
            for key in list(emap.keys()):
                del emap[key]
