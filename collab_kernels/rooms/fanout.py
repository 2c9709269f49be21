"""Fan-out: one Y document's collaborators, their bounded send queues, updates and awareness.

Why not ``pycrdt.websocket.YRoom``: it schedules one task per client for every update (80-100 us
of CPU per update per client, see performance-facts), has no bound on what a stalled client
buffers, no per-connection write permission and no raw messages (save, conflict). The fan-out
here is a small replacement built on pycrdt primitives (``Doc``, ``Awareness``, the sync
message helpers, ``merge_updates``):

- an update committed after a quiet ``coalesce_window`` is sent at once; updates committed
  during a burst are merged into one Y update per window; either way it becomes one
  :class:`~.frames.Frame` whose wire bytes are built once and written to every client
  (``frames.py`` says why tornado's ``write_message`` is not used for that);
- a broadcast costs CPU in proportion to the number of clients (one socket write each, about
  12 us); during a burst the next one waits until the room's broadcasts used at most
  ``fanout_cpu_share`` of a core (a broadcast that took 10 ms of CPU is followed by at least
  90 ms of coalescing at 0.1), so a room with 1000 viewers gets about ten merged updates a
  second instead of one per output transaction; ``flush_updates`` (a cell's end) still goes
  out at once;
- each client (``clients.py``) has exactly one writer task draining its queue; a client whose
  queue overflows is closed (it reconnects and resyncs), so a stalled viewer never slows the
  others down nor grows server memory;
- awareness changes are batched per ``awareness_window`` (longer in a big room, by the same
  ``fanout_cpu_share`` rule) and relayed to every client, the sender included, as one
  message carrying the latest state of each changed client; a joining client gets every
  known state from a snapshot encoded once per awareness broadcast, not once per join;
- awareness *renewals* (a browser re-sends its unchanged state every 15 s) are not relayed one
  by one, which costs N^2/15 frames per second: they are gathered for
  ``awareness_renewal_window`` seconds and relayed as one combined message. Browsers drop a
  remote state they have not heard of for 30 s, so the window stays well under 15 s.

Nothing here knows about files: :class:`Fanout` calls the ``on_*`` hooks, which the document
room (``document.py``) overrides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator
from typing import Any

from pycrdt import (
    Awareness,
    Doc,
    TransactionEvent,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
)

from . import protocol, update_parts
from .clients import RoomClient, RoomClosed, same_user
from .frames import Frame
from .protocol import ProtocolError

__all__ = ["EMPTY_UPDATE", "Fanout", "GlobalAwarenessRoom", "RoomClient", "RoomClosed"]

#: A Y update that changes nothing (no structs, empty delete set).
EMPTY_UPDATE = b"\x00\x00"


class Fanout:
    """Fan-out of y-sync and awareness to a set of clients (see the module docstring)."""

    def __init__(
        self,
        room_id: str,
        *,
        log: logging.Logger,
        coalesce_window: float = 0.005,
        fanout_cpu_share: float = 0.0,
        awareness_window: float = 0.05,
        awareness_renewal_window: float = 5.0,
        max_awareness_state_size: int = 64 * 1024,
        max_awareness_ids: int = 16,
    ):
        self.room_id = room_id
        self.max_awareness_state_size = max_awareness_state_size
        self.max_awareness_ids = max_awareness_ids
        #: client id -> the connection that introduced it
        self._awareness_owners: dict[int, RoomClient] = {}
        self.awareness_renewal_window = awareness_renewal_window
        self._pending_renewals: set[int] = set()
        self._renewal_handle: asyncio.Handle | None = None
        self.log = log
        self.coalesce_window = coalesce_window
        #: at most this share of a core for this room's update broadcasts (0 or 1: no limit)
        self.fanout_cpu_share = fanout_cpu_share
        #: thread CPU seconds the last update broadcast took
        self._last_broadcast_cpu = 0.0
        self.awareness_window = awareness_window
        self.ydoc: Doc[Any] = Doc()
        self.awareness = Awareness(self.ydoc)
        self.clients: set[RoomClient] = set()
        self._pending_updates: list[bytes] = []
        #: how many pending updates are stored already (``store_pending_updates``)
        self._stored_pending = 0
        self._last_flush = float("-inf")
        self._update_handle: asyncio.Handle | None = None
        #: loop time until which committed updates wait (``hold_updates``)
        self._hold_until = 0.0
        self._pending_awareness: set[int] = set()
        self._awareness_handle: asyncio.Handle | None = None
        self._snapshot: Frame | None = None
        self._snapshot_stale = True
        #: thread CPU seconds the last awareness broadcast took
        self._last_awareness_cpu = 0.0
        self._closed = False
        #: set by rooms with an update store: pending updates are stored before a sync answer
        self.persist_before_sync = False
        #: the transactions noted by ``collect_updates``
        self._collected: list[update_parts.Part] | None = None
        self.awareness.observe(self._on_awareness)
        self._doc_subscription = self.ydoc.observe(self._on_doc_event)

    # --- descriptions for logs -------------------------------------------------------------
    def describe(self) -> str:
        return self.room_id

    # --- hooks (overridden by the document room) ---------------------------------------------
    def on_client_left(self) -> None:
        """A client left the room."""

    def on_doc_changed(self) -> None:
        """A transaction changed the document (called before the update is queued out)."""

    def on_update(self, client: RoomClient, update: bytes) -> None:
        """A sync step2 or update from a client (the global awareness room has no document)."""

    async def on_save_request(self, client: RoomClient, request_id: int | None) -> None:
        """A client's ``[2]["save"][id]``: answer it (nothing to save here)."""
        client.send(
            protocol.raw_message({"type": "save", "responseTo": request_id, "status": "skipped"})
        )

    def persist_updates(self, updates: list[bytes]) -> None:
        """Keep updates before they are broadcast (the update store)."""

    # --- clients ---------------------------------------------------------------------------
    def add_client(self, client: RoomClient) -> None:
        if self._closed:
            client.close(protocol.CLOSE_GOING_AWAY, "room closed")
            return
        client.room = self
        self.clients.add(client)
        client.start()
        self._flush_before_sync()
        client.send(create_sync_message(self.ydoc))
        snapshot = self._awareness_snapshot()
        if snapshot is not None:
            client.send(snapshot)

    def _awareness_snapshot(self) -> Frame | None:
        """Every known awareness state, for a joining client: encoded once per awareness
        broadcast, not once per join (5000 viewers joining would otherwise encode 12.5
        million states). What changed since it was encoded is pending and reaches the
        joiner with the next broadcast, since it is a client by then."""
        if self._snapshot_stale:
            self._snapshot_stale = False
            ids = [cid for cid in self.awareness.states if cid != self.awareness.client_id]
            self._snapshot = (
                Frame(create_awareness_message(self.awareness.encode_awareness_update(ids)))
                if ids
                else None
            )
        return self._snapshot

    def remove_client(self, client: RoomClient) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        for cid in client.awareness_ids:
            if self._awareness_owners.get(cid) is client:
                del self._awareness_owners[cid]
        gone = [cid for cid in client.awareness_ids if cid in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, client)
        self.on_client_left()

    # --- outgoing --------------------------------------------------------------------------
    def broadcast(self, data: bytes | Frame) -> None:
        """Send one message to every client: one :class:`Frame`, its wire bytes built once."""
        frame = Frame.of(data)
        for client in list(self.clients):
            client.send(frame)

    def broadcast_raw(self, payload: dict[str, Any]) -> None:
        """Send a raw ``[2][JSON]`` message to every client."""
        self.broadcast(protocol.raw_message(payload))

    def _on_doc_event(self, event: TransactionEvent) -> None:
        update = event.update
        if self._collected is not None:
            # (before_state and after_state: not in pycrdt's type stubs of TransactionEvent)
            states = (getattr(event, "before_state", b""), getattr(event, "after_state", b""))
            self._collected.append(update_parts.Part(update, *states))
        self.queue_update(update)

    @contextlib.contextmanager
    def collect_updates(self) -> Iterator[list[update_parts.Part]]:
        """Note each transaction committed meanwhile (a load: ``update_parts.join``)."""
        collected: list[update_parts.Part] = []
        self._collected = collected
        try:
            yield collected
        finally:
            self._collected = None

    def queue_update(self, update: bytes) -> None:
        """Send ``update`` to every client (coalesced with its neighbours)."""
        self._pending_updates.append(update)
        self.on_doc_changed()
        if self._update_handle is None and not self._closed:
            # Leading edge: an update after a quiet window goes out at once (with whatever
            # else this loop iteration commits); during a burst, one merged update per window.
            loop = asyncio.get_event_loop()
            wait = max(self.coalesce_window, self._spacing(self._last_broadcast_cpu))
            wait -= loop.time() - self._last_flush
            wait = max(wait, self._hold_until - loop.time())
            if wait > 0:
                self._update_handle = loop.call_later(wait, self._flush_updates)
            else:
                self._update_handle = loop.call_soon(self._flush_updates)

    def hold_updates(self, seconds: float) -> None:
        """Keep what is committed from now on for at most ``seconds`` before it is sent,
        unless :meth:`flush_updates` sends it earlier: a writer whose next commit follows
        shortly and should reach every collaborator with this one, as one update (a cell's
        result, before its count and idle). Ends with the next broadcast."""
        loop = asyncio.get_event_loop()
        self._hold_until = max(self._hold_until, loop.time() + seconds)
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = loop.call_later(
                self._hold_until - loop.time(), self._flush_updates
            )

    def store_pending_updates(self) -> None:
        """Store the pending updates now, ahead of their broadcast (a held cell end: the
        store's append is then off the broadcast's path); they stay pending, merged, and
        the broadcast stores only what is committed after this."""
        new = self._pending_updates[self._stored_pending :]
        if not new or self._closed:
            return
        update = new[0] if len(new) == 1 else merge_updates(*new)
        self.persist_updates([update])
        self._pending_updates[self._stored_pending :] = [update]
        self._stored_pending = len(self._pending_updates)

    def _spacing(self, cpu: float) -> float:
        """Seconds to wait after a broadcast that took ``cpu`` seconds of CPU, so that
        broadcasts take at most ``fanout_cpu_share`` of a core (0 when unlimited)."""
        if 0 < self.fanout_cpu_share < 1:
            return cpu * (1 / self.fanout_cpu_share - 1)
        return 0.0

    @property
    def pending_update_count(self) -> int:
        """Updates committed but not sent yet."""
        return len(self._pending_updates)

    def replace_pending_updates(self, start: int, update: bytes) -> None:
        """Replace the updates queued since ``start`` by ``update``."""
        del self._pending_updates[start:]
        self._stored_pending = min(self._stored_pending, start)
        self.queue_update(update)

    def pending_updates_since(self, start: int) -> list[bytes]:
        return self._pending_updates[start:]

    def drop_pending_updates(self) -> None:
        """Forget the queued updates (what they carry is already known elsewhere)."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        self._pending_updates = []
        self._stored_pending = 0

    def _flush_updates(self) -> None:
        self._update_handle = None
        self._hold_until = 0.0
        self._last_flush = asyncio.get_event_loop().time()
        updates, self._pending_updates = self._pending_updates, []
        stored, self._stored_pending = self._stored_pending, 0
        if not updates:
            return
        rest = updates[stored:]
        if not self.clients:
            if rest:
                self.persist_updates(rest)
            return
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        if rest:  # stored before anyone can receive it
            self.persist_updates(rest if stored else [update])
        started = time.thread_time()
        self.broadcast(create_update_message(update))
        self._last_broadcast_cpu = time.thread_time() - started

    def flush_updates(self) -> None:
        """Send the pending document updates now, without waiting for the coalescing window
        (a writer that just committed a final state, e.g. the end of a cell)."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        if self._pending_updates and not self._closed:
            self._flush_updates()

    def _flush_before_sync(self) -> None:
        """Store (and broadcast) pending updates before the full state goes to a client."""
        if self.persist_before_sync and self._pending_updates:
            if self._update_handle is not None:
                self._update_handle.cancel()
            self._flush_updates()

    def flush(self) -> None:
        """Send pending updates and awareness now (used before closing)."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._flush_updates()
        if self._awareness_handle is not None:
            self._awareness_handle.cancel()
            self._flush_awareness()
        if self._renewal_handle is not None:
            self._renewal_handle.cancel()
            self._flush_renewals()

    # --- awareness -------------------------------------------------------------------------
    def _on_awareness(self, topic: str, args: tuple[dict[str, Any], Any]) -> None:
        # pycrdt emits "change" (a state was added, removed or differs) then "update" (any
        # state received, renewals included) for the same awareness message.
        changes, _origin = args
        ids = changes["added"] + changes["updated"] + changes["removed"]
        ids = [cid for cid in ids if cid != self.awareness.client_id]
        if not ids or self._closed:
            return
        loop = asyncio.get_event_loop()
        if topic == "change":
            self._pending_awareness.update(ids)
            self._pending_renewals.difference_update(ids)
            if self._awareness_handle is None:
                wait = max(self.awareness_window, self._spacing(self._last_awareness_cpu))
                if wait > 0:
                    self._awareness_handle = loop.call_later(wait, self._flush_awareness)
                else:
                    self._awareness_handle = loop.call_soon(self._flush_awareness)
        elif topic == "update":
            renewed = [cid for cid in ids if cid not in self._pending_awareness]
            if not renewed:
                return
            self._pending_renewals.update(renewed)
            if self._renewal_handle is None:
                self._renewal_handle = loop.call_later(
                    max(self.awareness_renewal_window, self.awareness_window),
                    self._flush_renewals,
                )

    def _flush_renewals(self) -> None:
        self._renewal_handle = None
        self._snapshot_stale = True
        ids = [cid for cid in self._pending_renewals if cid in self.awareness.states]
        self._pending_renewals = set()
        if ids and self.clients and not self._closed:
            self._broadcast_awareness(ids)

    def _flush_awareness(self) -> None:
        self._awareness_handle = None
        self._snapshot_stale = True
        ids, self._pending_awareness = list(self._pending_awareness), set()
        if ids and self.clients:
            self._broadcast_awareness(ids)

    def _broadcast_awareness(self, ids: list[int]) -> None:
        started = time.thread_time()
        update = self.awareness.encode_awareness_update(ids)
        self.broadcast(create_awareness_message(update))
        self._last_awareness_cpu = time.thread_time() - started

    def apply_awareness(self, client: RoomClient, payload: bytes) -> None:
        """An awareness update from ``client`` (already validated by the protocol parser).

        A connection may only set states for the client ids it introduced (the first
        connection to publish an id owns it until it leaves; another connection of the same
        user takes it over, as a reconnecting tab does), at most ``max_awareness_ids`` of
        them, each state at most ``max_awareness_state_size`` bytes. Refused entries are
        neither applied nor relayed, so presence never sees them.
        """
        entries = protocol.awareness_entries(payload)
        allowed = [entry for entry in entries if self._awareness_allowed(client, entry)]
        if not allowed:
            return
        if len(allowed) != len(entries):
            payload = protocol.encode_awareness_entries(allowed)
        self.awareness.apply_awareness_update(payload, client)

    def _awareness_allowed(self, client: RoomClient, entry: protocol.AwarenessEntry) -> bool:
        cid = entry.client_id
        owner = self._awareness_owners.get(cid)
        if cid == self.awareness.client_id:
            return self._refuse_awareness(client, cid, "the server's own client id")
        if owner is not None and owner is not client:
            if not same_user(owner, client):
                return self._refuse_awareness(client, cid, "a client id of another connection")
        if self.max_awareness_state_size and len(entry.state) > self.max_awareness_state_size:
            return self._refuse_awareness(
                client,
                cid,
                f"a state of {len(entry.state)} bytes (max_awareness_state_size is "
                f"{self.max_awareness_state_size})",
            )
        if owner is not client:
            if self.max_awareness_ids and len(client.awareness_ids) >= self.max_awareness_ids:
                return self._refuse_awareness(client, cid, "more client ids than allowed")
            if owner is not None:  # the same user's newer connection takes it over
                owner.awareness_ids.discard(cid)
            self._awareness_owners[cid] = client
            client.awareness_ids.add(cid)
        return True

    def _refuse_awareness(self, client: RoomClient, cid: int, why: str) -> bool:
        client.refused_awareness += 1
        if client.refused_awareness == 1:
            self.log.warning(
                "collab_kernels: refusing awareness from %s on %s for client id %d: %s",
                client.name,
                self.describe(),
                cid,
                why,
            )
        return False

    # --- incoming --------------------------------------------------------------------------
    def sync_answer(self, state_vector: bytes, client: RoomClient | None = None) -> bytes | Frame:
        """The SyncStep2 payload for a client's SyncStep1: what it misses of the doc (or the
        whole SyncStep2 message, framed already)."""
        return self.ydoc.get_update(state_vector)

    def sync_answered(self) -> None:
        """A SyncStep2 was queued to a client (rooms defer work to after it)."""

    def handle_message(self, client: RoomClient, data: bytes) -> Awaitable[None] | None:
        """Apply one incoming frame; raises ProtocolError on a malformed one.

        Returns an awaitable for messages that need I/O (save), else None.
        """
        message = protocol.parse_message(data)
        if message.kind == "step1":
            self._flush_before_sync()
            try:
                update = self.sync_answer(message.payload, client)
            except Exception as e:
                raise ProtocolError(f"invalid state vector: {e}") from e
            client.send(
                update if isinstance(update, Frame) else protocol.sync_step2_message(update)
            )
            self.sync_answered()
        elif message.kind in ("step2", "update"):
            self.on_update(client, message.payload)
        elif message.kind == "awareness":
            self.apply_awareness(client, message.payload)
        elif message.kind == "save":
            return self.on_save_request(client, message.request_id)
        return None

    # --- lifecycle -------------------------------------------------------------------------
    def close_clients(self, code: int, reason: str) -> None:
        self.flush()
        for client in list(self.clients):
            client.close(code, reason)

    def close(self, code: int = protocol.CLOSE_GOING_AWAY, reason: str = "") -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True  # first: leaving clients must not schedule saves or frees
        for client in list(self.clients):
            client.close(code, reason)
        try:
            self.ydoc.unobserve(self._doc_subscription)
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closed


class GlobalAwarenessRoom(Fanout):
    """``JupyterLab:globalAwareness``: awareness only (who is online), no document."""
