"""A three-way merge applied to a live room: the file's version kept, the result in place.

``merge.py`` is the pure merge of three notebook dicts; this is what a room does with it,
for an out-of-band change while it has unsaved edits (``file.py``) and for a room restored
from the update store whose file changed while the server was down (``document.py``'s load,
the base being the text the room last saved, ``bases.py``): cells changed on both sides keep
the room's version, the file's version is kept first as the contents manager's checkpoint,
the result is applied in place (only what differs is edited) and announced to collaborators
(raw ``merged`` message) and on the event bus; the caller saves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nbformat
from jupyter_core.utils import ensure_async

from .content import apply_in_place
from .merge import merge_notebooks

if TYPE_CHECKING:
    from .file import RoomFile


async def merge_restored(file: RoomFile, base_text: str) -> None:
    """On load (the lock held, the file read): the document was restored from the update
    store, but the file changed while the server was down (a ``git checkout``). Merge
    them by cell id against ``base_text``, the file as the room last saved it, like an
    out-of-band change of a live room; the caller saves the result."""
    nb = nbformat.reads(base_text, as_version=4)  # type: ignore[no-untyped-call]
    file.contents_manager.mark_trusted_cells(nb, file.path)
    base = await file.content_of(nb)
    await merge_into(
        file,
        base,
        file.saved_content,
        "The file changed while the server was down; the document restored from the update "
        "store and the file",
        file.hash,
        file.last_modified,
    )


async def merge_into(
    file: RoomFile, base: Any, disk: Any, why: str, disk_hash: str | None, disk_modified: Any
) -> None:
    """Merge the document and ``disk`` against ``base``, keep the file's version as a
    checkpoint when cells conflict, apply the result in place and announce it."""
    side = file.side
    checkpoint: str | None = None
    result = merge_notebooks(base, file.notebook_now(), disk)
    if result.conflicts:
        try:
            created = await ensure_async(file.contents_manager.create_checkpoint(file.path))
            checkpoint = created.get("id") if isinstance(created, dict) else None
        except Exception as e:
            file.log.error(
                "collab_kernels: could not keep the file's version of %s as a checkpoint "
                "before merging: %s",
                file.path,
                e,
            )
        # the document may have changed while the checkpoint was written
        result = merge_notebooks(base, file.notebook_now(), disk)
    # the file holds the disk's version now; the merge is what the room will save
    file.hash = disk_hash
    file.last_modified = disk_modified
    file.saved_content = disk
    if result.from_disk:
        with side.server_edit(), side.ydoc.transaction():
            apply_in_place(file.document, result.content)
    conflicts = list(result.conflicts)
    if conflicts:
        message = (
            f"{why}; both were merged. {len(conflicts)} cell(s) changed on both sides kept "
            f"this document's version; the file's version is kept as checkpoint "
            f"{checkpoint!r}."
        )
        file.log.warning("collab_kernels: %s: %s (%s)", file.path, message, conflicts)
    else:
        message = f"{why}; both were merged."
        file.log.info("collab_kernels: %s: %s", file.path, message)
    side.broadcast_raw(
        {
            "type": "merged",
            "path": file.path,
            "conflicts": conflicts,
            "checkpoint": checkpoint,
        }
    )
    side.file_event("merged", message)


__all__ = ["merge_into", "merge_restored"]
