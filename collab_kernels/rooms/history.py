"""The room's side of the update store: restore on load, append before broadcast, compact.

The store itself (``store.py``) knows rows and bytes; this glue knows which file content a
room's stored history belongs to (the file hash of its last save or load), when to replace the
history by one squashed update, and what a restored document must look like (nothing running).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Array, Doc, Map

from . import offload, offload_read
from .content import new_document
from .store import SQLiteUpdateStore

#: updates below this many bytes since the last compaction never trigger one by size
COMPACT_MIN_BYTES = 1 << 20
#: seconds without an append after which a busy room's store is tidied (compacted when the
#: updates weigh half the document, freed pages given back)
QUIET_DELAY = 1.0


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
        #: set by a restore whose file changed since: the file text the history was last
        #: saved as, the base of the merge of the two (None: nothing to merge)
        self.restart_base: str | None = None
        self.failed = False
        self._quiet_handle: asyncio.Handle | None = None
        #: a compaction is being written in the store's worker thread
        self._compacting = False

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
        self.restart_base = None
        if stored_hash is None or stored_hash != file_hash:
            self.restart_base = self._base_of(stored_hash)
            if self.restart_base is None:
                self.log.info(
                    "collab_kernels: %s changed since its stored history was saved; "
                    "rebuilding the document from the file",
                    self.describe(),
                )
                return None
            self.log.info(
                "collab_kernels: %s changed since its stored history was saved; restoring the "
                "history and merging the file into it by cell",
                self.describe(),
            )
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

    def restore(self, file_hash: str | None, file_type: str) -> bool:
        """Apply the stored history to the room's (empty) document when it is the lineage of
        the file (same hash) and reads back into a document; nothing is left running."""
        state = self.stored_state(file_hash)
        if state is None:
            return False
        try:  # a history that cannot be read back into a document is not restored
            scratch: Doc[Any] = Doc()
            scratch.apply_update(state)
            new_document(file_type, scratch).get()
        except Exception as e:
            self.log.error(
                "collab_kernels: the stored history of %s cannot be read back into a document "
                "(%s: %s); rebuilding the document from the file",
                self.describe(),
                type(e).__name__,
                e,
            )
            return False
        self.ydoc.apply_update(state)
        if file_type == "notebook":
            reset_execution_state(self.ydoc)
        return True

    def _base_of(self, stored_hash: str | None) -> str | None:
        """The file text the history was last saved as (bases.py), if it is kept."""
        bases = self.store.bases
        if stored_hash is None or bases is None:
            return None
        try:
            base = bases.get(self.room_id)
        except Exception as e:
            self.log.warning(
                "collab_kernels: reading the saved text of %s failed: %s", self.describe(), e
            )
            return None
        if base is None or base[0] != stored_hash:
            return None
        return base[1]

    @property
    def keeps_texts(self) -> bool:
        """Whether the saved (and loaded) texts are kept as merge bases (``bases.py``)."""
        return self.store.bases is not None

    def text_sink(self, read_at: float | None = None) -> offload.TextSink | None:
        """Where a save hands the file's text, kept as the base of a restart merge."""
        bases = self.store.bases
        return None if bases is None else bases.writer(self.room_id, read_at)

    def keep_loaded_text(self, contents_manager: Any, file: Any) -> asyncio.Future[None] | None:
        """Keep the text of the file as loaded (``file.path``, ``file.hash``), unless the kept
        one has that hash: the compressed text of the read (``file.loaded_text``), or else
        read again in a worker thread."""
        loaded: offload_read.LoadedText | None = file.loaded_text
        file.loaded_text = None
        bases = self.store.bases
        if bases is None or file.hash is None or bases.hash_of(self.room_id) == file.hash:
            return None
        if loaded is not None and loaded.file_hash == file.hash:
            return asyncio.ensure_future(self._keep_compressed(bases, loaded))
        sink = bases.writer(self.room_id, time.time())
        return asyncio.ensure_future(
            offload.keep_loaded_text(contents_manager, file.path, file.hash, sink)
        )

    async def _keep_compressed(self, bases: Any, loaded: offload_read.LoadedText) -> None:
        try:  # in a worker thread: the row is as big as the compressed text
            compressed = await loaded.compressed
            await asyncio.to_thread(
                bases.put, self.room_id, loaded.file_hash, compressed, read_at=loaded.read_at
            )
        except Exception as e:  # only a restart merge would miss it
            self.log.warning(
                "collab_kernels: could not keep the loaded text of %s for a restart merge: %s",
                self.describe(),
                e,
            )

    # --- writing -----------------------------------------------------------------------------
    def append(self, updates: list[bytes]) -> None:
        if self.store.closed:
            return
        try:
            count = self.store.append(self.room_id, updates)
        except Exception as e:
            self.error(e)
            return
        if count >= max(self.compact_every(), 1) or self._grown():
            # during a burst: compact, and leave reclaiming pages to a quiet moment
            self.compact()
            self._tidy_when_quiet()
        elif self._quiet_handle is not None:
            self._tidy_when_quiet()  # still busy: later

    def _tidy_when_quiet(self) -> None:
        if self._quiet_handle is not None:
            self._quiet_handle.cancel()
        self._quiet_handle = asyncio.get_event_loop().call_later(QUIET_DELAY, self._tidy)

    def _tidy(self) -> None:
        self._quiet_handle = None
        if self.store.closed:
            return
        if self._compacting:  # the burst's last compaction is still being written
            self._tidy_when_quiet()
            return
        if self._grown(0.5, 64 * 1024):
            self.compact(then=self._reclaim)
            return
        self._reclaim()

    def _reclaim(self) -> None:
        """Freed pages back to the file and the WAL truncated, in the store's worker thread;
        then ``max_bytes`` applied on the loop."""
        if self.store.closed:
            return
        try:
            future = asyncio.wrap_future(self.store.reclaim_later())
        except Exception as e:  # the worker is shut down: the store is closing
            self.error(e)
            return
        future.add_done_callback(self._reclaimed)

    def _reclaimed(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or self.store.closed:
            return
        error = future.exception()
        if isinstance(error, Exception):
            self.error(error)
            return
        try:
            self.store.bound()
        except Exception as e:
            self.error(e)

    def compact(self, then: Callable[[], None] | None = None) -> None:
        """Replace the stored history by the document's state: encoded here (a few ms for
        megabytes), written in the store's worker thread (``store_worker.py``); one at a
        time per room. ``then`` runs on the loop once it is written."""
        if self.store.closed or self._compacting:
            return
        try:
            # No scratch squash: the documents keep no undo history (content.py), so the live
            # state holds no deleted content (pycrdt's GC already dropped it).
            future = self.store.compact(
                self.room_id, self.ydoc.get_update(), in_file=self.in_file()
            )
        except Exception as e:
            self.error(e)
            return
        self._compacting = True

        def done(written: asyncio.Future[bool]) -> None:
            self._compacting = False
            if written.cancelled() or self.store.closed:
                return
            error = written.exception()
            if isinstance(error, Exception):
                self.error(error)
            elif error is None and then is not None:
                then()

        asyncio.wrap_future(future).add_done_callback(done)

    def stop(self) -> None:
        """The room closes: no tidying left to do for it."""
        if self._quiet_handle is not None:
            self._quiet_handle.cancel()
            self._quiet_handle = None

    def _grown(self, factor: float = 4, least: int = COMPACT_MIN_BYTES) -> bool:
        """The updates since the last compaction outweigh ``factor`` times the squashed
        document: a cell printing in a loop appends megabytes of text that later trims
        delete; compacting then bounds the database by the document's size."""
        pending = self.store.pending_bytes(self.room_id)
        return pending > least and pending > factor * self.store.state_bytes(self.room_id)

    def reset(
        self,
        file_hash: str | None,
        *,
        reclaim: bool = True,
        state: bytes | memoryview | None = None,
    ) -> None:
        """Replace the stored history by the current state, tagged with the file's hash.

        ``state``: the document's full state when the caller has it encoded already and it
        holds no deleted content (a document just built from its file), stored as it is."""
        if self.store.closed:
            return
        try:
            if state is None:
                # The live doc still encodes deleted content (cleared outputs) in full;
                # applying its state to a fresh Doc garbage-collects it: the squashed state
                # is then the size of the document, not of its history.
                scratch: Doc[Any] = Doc()
                scratch.apply_update(self.ydoc.get_update())
                state = scratch.get_update()
            written = self.store.reset(
                self.room_id,
                file_hash,
                state,
                lineage=self.lineage,
                in_file=self.in_file(),
                reclaim=reclaim,
            )
        except Exception as e:
            self.error(e)
            return
        self.file_hash = file_hash
        if not written.done():  # a big state, written by the store's thread
            asyncio.wrap_future(written).add_done_callback(lambda _: self._reset_written(written))

    def _reset_written(self, written: concurrent.futures.Future[bool]) -> None:
        """The store's thread wrote the reset: a failure is reported now, not at the room's
        next use of the store."""
        if self.store.closed:
            return
        try:
            self.store.settled(self.room_id, written)
        except Exception as e:
            self.error(e)

    def checkpoint(self, file_hash: str | None) -> None:
        """After a save or reload: the stored history belongs to the file's new hash.

        Rewriting the squashed state on every save costs a full encoding of the document on
        the event loop (tens of milliseconds for a notebook of a few megabytes, at every
        autosave of a flooding cell): the row is re-tagged instead, and compaction waits
        for ``compact_every`` updates, for the updates to outweigh four times the document,
        or for a quiet second (no append) when they weigh half of it: at rest the store holds
        at most about 1.5 times the document, and a flooding room is not compacted at every
        autosave."""
        if self.store.closed:
            return
        if file_hash == self.file_hash and not self.store.pending_count(self.room_id):
            return
        try:
            marked = self.store.mark_saved(self.room_id, file_hash, in_file=self.in_file())
        except Exception as e:
            self.error(e)
            return
        if not marked:
            self.reset(file_hash)
            return
        self.file_hash = file_hash
        if self.store.pending_count(self.room_id) >= max(self.compact_every(), 1):
            self.compact()
        elif self._grown(0.5, 64 * 1024):
            self._tidy_when_quiet()

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
