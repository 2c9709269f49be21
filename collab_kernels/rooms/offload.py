"""Saving a notebook through jupyter_server's stock file contents managers, off the event loop.

Why: ``(Async)FileContentsManager.save`` runs ``nbformat.from_dict`` and the notebook signing
(an HMAC over the whole notebook's JSON) on the event loop, and the async manager's atomic
write closes (``fsync``) its file there too; only ``nbformat.write`` (validation and
serialization) goes to a thread. ``get(..., require_hash=True)`` hashes the file's bytes on
the loop. For a 56 MB notebook (a cell that printed in a loop) the previous rooms helper
measured about 1.4 s inside that save, during which no room could apply or broadcast an edit
and ``/api/status`` did not answer (issue 15 measured 8.1 s edit latency in *another* room
during such a flood).

What this does instead, only when the contents manager is exactly one of jupyter_server's
stock file managers (not a subclass, no ``save`` replaced on the instance: any other
contents manager keeps its own ``save``, called as before):

- on the loop: the pre-save hooks (user code, as stock), the notary's secret (read or
  created once), the signature store's insert (its SQLite connection belongs to the loop's
  thread), the checkpoint check, the post-save hooks and the ``save`` event;
- in a worker thread: ``nbformat.from_dict``, the trust check, the signature's HMAC, then
  ``nbformat.write`` (validation and serialization) into the manager's own
  ``atomic_writing`` (its temporary copy, ``fsync`` and rename) and the hash of what was
  written, with the manager's own ``_get_hash``.

The file, the signature database and the events are the same as with the stock ``save``
(``tests/test_rooms_offload.py`` compares them). One save per room runs at a time (the room
file's lock); ``saving.py`` spaces autosaves of a big document by ``save_time_share``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nbformat
from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

try:  # the stock classes of the installed jupyter_server
    from jupyter_server.services.contents.filemanager import (
        AsyncFileContentsManager,
        FileContentsManager,
    )
    from jupyter_server.services.contents.largefilemanager import (
        AsyncLargeFileManager,
        LargeFileManager,
    )

    STOCK_MANAGERS: tuple[type, ...] = (
        AsyncFileContentsManager,
        FileContentsManager,
        AsyncLargeFileManager,
        LargeFileManager,
    )
except ImportError:  # pragma: no cover - another jupyter_server layout: always stock save
    STOCK_MANAGERS = ()


def is_stock(contents_manager: Any) -> bool:
    """Whether ``contents_manager`` is exactly a stock file manager whose ``save`` and
    ``get`` nobody replaced (a subclass or a patched instance keeps its own methods)."""
    if type(contents_manager) not in STOCK_MANAGERS:
        return False
    replaced = vars(contents_manager)
    return not any(name in replaced for name in ("save", "get", "check_and_sign"))


def _read_and_hash(contents_manager: Any, os_path: str) -> dict[str, str]:
    with open(os_path, "rb") as f:
        data = f.read()
    result: dict[str, str] = contents_manager._get_hash(data)
    return result


async def file_model(contents_manager: Any, path: str) -> dict[str, Any]:
    """``get(path, content=False, require_hash=True)`` with the file read and hashed in a
    worker thread (stock managers only)."""
    model: dict[str, Any] = await ensure_async(
        contents_manager.get(path, content=False, type="notebook")
    )
    os_path = contents_manager._get_os_path(path)
    model.update(await asyncio.to_thread(_read_and_hash, contents_manager, os_path))
    return model


def _prepare(notary: Any, content: dict[str, Any]) -> tuple[Any, str | None]:
    """In a worker thread: the NotebookNode and its signature (None: not trusted)."""
    nb = nbformat.from_dict(content)  # type: ignore[no-untyped-call]
    if notary.check_cells(nb):
        return nb, notary.compute_signature(nb)
    return nb, None


#: characters written per ``write`` call: encoding a whole notebook's text in one call would
#: hold the GIL (and so the event loop) for tens of milliseconds
WRITE_CHUNK = 1 << 20


def _write(
    contents_manager: Any, os_path: str, nb: Any, validation_error: dict[str, Any]
) -> dict[str, str]:
    """In a worker thread: what the stock ``_save_notebook`` does (``nbformat.write``, in
    chunks), then hash the file."""
    text = nbformat.writes(  # type: ignore[no-untyped-call]
        nb, version=nbformat.NO_CONVERT, capture_validation_error=validation_error
    )
    if not text.endswith("\n"):
        text += "\n"
    with contents_manager.atomic_writing(os_path, encoding="utf-8") as f:
        for start in range(0, len(text), WRITE_CHUNK):
            f.write(text[start : start + WRITE_CHUNK])
    return _read_and_hash(contents_manager, os_path)


async def save_notebook(contents_manager: Any, model: dict[str, Any], path: str) -> dict[str, Any]:
    """Save a notebook model like the stock ``save`` does; returns the saved file's model
    without content, with its ``hash``. Only for :func:`is_stock` managers."""
    cm = contents_manager
    path = path.strip("/")
    cm.run_pre_save_hooks(model=model, path=path)
    os_path = cm._get_os_path(path)
    cm.log.debug("Saving %s", os_path)
    notary = cm.notary
    notary.secret  # noqa: B018 - read (or create) the key on the loop, once
    nb, signature = await asyncio.to_thread(_prepare, notary, model["content"])
    if signature is not None:
        try:
            notary.store.store_signature(signature, notary.algorithm)
        except Exception:  # a corrupt signature store: the stock path recreates it
            cm.check_and_sign(nb, path)
    else:
        cm.log.warning("Notebook %s is not trusted", path)
    validation_error: dict[str, Any] = {}
    try:
        hashed = await asyncio.to_thread(_write, cm, os_path, nb, validation_error)
    except HTTPError:
        raise
    except Exception as e:  # what the stock save turns into a 500
        cm.log.error("Error while saving file: %s %s", path, e, exc_info=True)
        raise HTTPError(500, f"Unexpected error while saving file: {path} {e}") from e
    if not await ensure_async(cm.checkpoints.list_checkpoints(path)):
        await ensure_async(cm.create_checkpoint(path))
    if validation_error.get("ValidationError") is not None:
        cm.log.warning(
            "collab_kernels: %s was saved but does not validate: %s",
            path,
            validation_error["ValidationError"],
        )
    after: dict[str, Any] = await ensure_async(cm.get(path, content=False, type="notebook"))
    cm.run_post_save_hooks(model=after, os_path=os_path)
    cm.emit(data={"action": "save", "path": path})
    after.update(hashed)
    return after


__all__ = ["file_model", "is_stock", "save_notebook"]
