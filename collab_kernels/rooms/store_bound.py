"""The update store's size bound (``RoomManager.update_store_max_bytes``).

When the database and its state files grow over ``max_bytes``, the store forgets whole
histories, least recently written first, and only those that lose nothing: the document's file
holds all of its state (``in_file``) and no live room uses it. The next opening of such a
document builds it from its file, and a browser session bound to the forgotten history is
asked to reload. Histories with unsaved edits are never forgotten; when they alone exceed the
bound, a warning says so and they stay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import SQLiteUpdateStore


def keep_under_max_bytes(store: SQLiteUpdateStore) -> None:
    """Evict saved, unused histories of ``store`` until it is under its ``max_bytes``."""
    if store.max_bytes <= 0 or store.file_size() <= store.max_bytes:
        return
    live = set(store.live_rooms())
    evicted = 0
    for room_id in store.saved_rooms_by_age():
        if room_id in live:
            continue
        store.delete(room_id)  # and gives its pages back, so file_size() tells the truth
        evicted += 1
        if store.file_size() <= store.max_bytes:
            break
    if evicted:
        store.log.info(
            "collab_kernels: update store over %d bytes: forgot the history of %d saved documents",
            store.max_bytes,
            evicted,
        )
    if store.file_size() > store.max_bytes:
        store.log.warning(
            "collab_kernels: the update store %s holds %d bytes (more than "
            "update_store_max_bytes = %d) of documents with unsaved edits or open rooms",
            store.path,
            store.file_size(),
            store.max_bytes,
        )
