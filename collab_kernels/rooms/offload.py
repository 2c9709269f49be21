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
  created once), the post-save hooks and the ``save`` event, and the first checkpoint when
  the checkpoints class is not exactly a stock file one (the manager's own methods);
- in a worker thread: ``nbformat.from_dict``, the trust check, the signature's HMAC and its
  insert into the signature database (nbformat's ``SQLiteSignatureStore`` on the notary's
  file, one per worker thread: the notary's own connection belongs to the loop's thread), then
  what ``nbformat.writes`` does (validation, the v4 JSON writer's line splitting and
  encoding with ``indent=1, sort_keys=True, ensure_ascii=False``) written as it is encoded
  into the manager's own ``atomic_writing`` (its temporary copy, ``fsync`` and rename), the
  first checkpoint's copy with the stock ``FileCheckpoints``/``AsyncFileCheckpoints``
  (:func:`first_checkpoint`), and the hash of what was written (``hashlib`` with the
  manager's ``hash_algorithm``, what its ``get(require_hash=True)`` computes).

The worker thread shares the GIL with the event loop: pure-Python work gives it back every
few milliseconds, one long C call does not. ``json.dumps`` ends by joining the whole text
(50 ms for 65 MB, and the C encoder used without ``indent`` holds it for the whole encoding:
210 ms), so the text is encoded with the same encoder's ``iterencode`` and written in
1 MiB pieces: the bytes are those of ``nbformat.writes`` plus the trailing newline the stock
manager adds (``tests/test_rooms_offload.py`` compares them), and no single step holds the
GIL for more than a few milliseconds; the split copy the encoder walked is freed in slices
(:func:`release`), and while the thread runs Python's switch interval is 1 ms
(:func:`quick_switches`). Python's cyclic collector is paused while the split copy lives
(:func:`no_collections`): a young collection walked its ~700,000 line references, 17 ms with
the GIL held, in the saving thread or on the loop, once every few saves. Measured with
``bench/save_stall_bench.py --megabytes 65``: the longest gap of the event loop went from
16-27 ms to 4-5 ms (stock ``save``: 70-95 ms).

``_get_os_path`` is the stock managers' private method: no public API maps an API path to
the OS path with the checks the stock manager applies (inside ``root_dir``, 404 otherwise),
and :func:`is_stock` limits this module to the exact classes that define it.

The file, the signature database and the events are the same as with the stock ``save``
(``tests/test_rooms_offload.py`` compares them). One save per room runs at a time (the room
file's lock); ``saving.py`` spaces autosaves of a big document by ``save_time_share``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import copy
import gc
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import nbformat
from jupyter_core.utils import ensure_async
from nbformat.sign import SQLiteSignatureStore
from nbformat.v4.nbjson import BytesEncoder
from nbformat.v4.rwbase import strip_transient
from tornado.web import HTTPError
from traitlets.log import get_logger

from .line_pieces import split_lines

try:  # the stock classes of the installed jupyter_server
    from jupyter_server.services.contents.filecheckpoints import (
        AsyncFileCheckpoints,
        FileCheckpoints,
    )
    from jupyter_server.services.contents.fileio import copy2_safe
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
    STOCK_CHECKPOINTS: tuple[type, ...] = (AsyncFileCheckpoints, FileCheckpoints)
except ImportError:  # pragma: no cover - another jupyter_server layout: always stock save
    STOCK_MANAGERS = STOCK_CHECKPOINTS = ()


def is_stock(contents_manager: Any) -> bool:
    """Whether ``contents_manager`` is exactly a stock file manager whose ``save`` and
    ``get`` nobody replaced (a subclass or a patched instance keeps its own methods)."""
    if type(contents_manager) not in STOCK_MANAGERS:
        return False
    replaced = vars(contents_manager)
    return not any(name in replaced for name in ("save", "get", "check_and_sign"))


#: what the stock checkpoints' first copy uses; replaced on an instance, the manager's own
#: ``create_checkpoint`` runs instead
_CHECKPOINT_METHODS = ("create_checkpoint", "list_checkpoints", "checkpoint_path", "_copy")


def stock_checkpoints(contents_manager: Any) -> Any | None:
    """The manager's checkpoints when they are exactly jupyter_server's ``FileCheckpoints`` or
    ``AsyncFileCheckpoints`` (nothing replaced on the instance, nor the manager's own
    ``create_checkpoint``): their first copy of a file can run in the save's worker thread."""
    checkpoints = getattr(contents_manager, "checkpoints", None)
    if type(checkpoints) not in STOCK_CHECKPOINTS or "create_checkpoint" in vars(contents_manager):
        return None
    replaced = vars(checkpoints)
    return None if any(name in replaced for name in _CHECKPOINT_METHODS) else checkpoints


def first_checkpoint(checkpoints: Any, path: str, os_path: str) -> None:
    """In a worker thread: what the stock save's ``if not list_checkpoints(path):
    create_checkpoint(path)`` does with the stock file checkpoints (the file copied to
    ``checkpoint_path``, with its stat; ``tests/test_rooms_offload.py`` compares them). The
    copy of a 65 MB notebook held the event loop 20 ms with ``FileCheckpoints``."""
    dest = checkpoints.checkpoint_path("checkpoint", path)
    if not os.path.isfile(dest):
        copy2_safe(os_path, dest, log=checkpoints.log)  # type: ignore[no-untyped-call]


def _read_and_hash(contents_manager: Any, os_path: str) -> dict[str, str]:
    """The file's ``hash`` and ``hash_algorithm`` as the manager's ``get(require_hash=True)``
    reports them (``hashlib`` gives the GIL back while it hashes)."""
    algorithm = str(contents_manager.hash_algorithm)
    digest = hashlib.new(algorithm)
    with open(os_path, "rb") as f:
        while block := f.read(WRITE_CHUNK):
            digest.update(block)
    return {"hash": digest.hexdigest(), "hash_algorithm": algorithm}


async def file_model(contents_manager: Any, path: str) -> dict[str, Any]:
    """``get(path, content=False, require_hash=True)`` with the file read and hashed in a
    worker thread (stock managers only)."""
    model: dict[str, Any] = await ensure_async(
        contents_manager.get(path, content=False, type="notebook")
    )
    os_path = contents_manager._get_os_path(path)
    model.update(await asyncio.to_thread(_read_and_hash, contents_manager, os_path))
    return model


def _keep_text(os_path: str, file_hash: str, algorithm: str, sink: TextSink) -> None:
    with open(os_path, "rb") as f:
        data = f.read()
    if hashlib.new(algorithm, data).hexdigest() != file_hash:
        return  # changed since it was loaded: the next save keeps its text
    # decoded (and encoded again by the sink) in pieces: one call on the whole text held the
    # GIL, and so the event loop, for 40 ms per 65 MB
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), WRITE_CHUNK):
        sink.write(decoder.decode(view[start : start + WRITE_CHUNK]))
    sink.write(decoder.decode(b"", final=True))
    sink.close(file_hash)


async def keep_loaded_text(
    contents_manager: Any, path: str, file_hash: str, sink: TextSink
) -> None:
    """Hand the text of the file as loaded (``file_hash``) to ``sink``, read in a worker
    thread (stock managers only: the text the room's first save will replace)."""
    os_path = contents_manager._get_os_path(path.strip("/"))
    algorithm = str(contents_manager.hash_algorithm)
    await asyncio.to_thread(_keep_text, os_path, file_hash, algorithm, sink)


def _prepare(notary: Any, content: dict[str, Any]) -> tuple[Any, str | None, bool]:
    """In a worker thread: the NotebookNode, its signature (None: not trusted) and whether
    the signature is stored already (:func:`_store_signature`)."""
    nb = nbformat.from_dict(content)  # type: ignore[no-untyped-call]
    if notary.check_cells(nb):
        signature = notary.compute_signature(nb)
        return nb, signature, _store_signature(notary, signature)
    return nb, None, False


_signature_stores = threading.local()


def thread_signature_store(notary: Any) -> SQLiteSignatureStore | None:
    """In a worker thread: a ``SQLiteSignatureStore`` of this thread on the notary's
    database file (the notary's own connection belongs to the loop's thread); None for any
    other store, or when it cannot be opened (the loop then uses the notary's own)."""
    store = notary.store
    db_file = getattr(store, "db_file", None)
    if type(store) is not SQLiteSignatureStore or not db_file or db_file == ":memory:":
        return None
    mine = getattr(_signature_stores, "by_file", None)
    if mine is None:
        mine = _signature_stores.by_file = {}
    if db_file not in mine:
        try:
            mine[db_file] = SQLiteSignatureStore(  # type: ignore[no-untyped-call]
                db_file=db_file, cache_size=store.cache_size
            )
        except Exception:
            return None
    found: SQLiteSignatureStore = mine[db_file]
    return found


def forget_signature_store(notary: Any) -> None:
    """In a worker thread: drop this thread's store on the notary's file (after an error)."""
    mine = getattr(_signature_stores, "by_file", None)
    if mine is not None:
        mine.pop(getattr(notary.store, "db_file", None), None)


def _store_signature(notary: Any, signature: str) -> bool:
    """In a worker thread: store the signature through :func:`thread_signature_store`. Its
    commit syncs the database file: 30-80 ms the event loop waited for at every autosave of
    a flooding notebook. False (the loop stores it) for any other store."""
    store = thread_signature_store(notary)
    if store is None:
        return False
    try:
        store.store_signature(signature, notary.algorithm)  # type: ignore[no-untyped-call]
    except Exception:  # the loop tries (and recreates a corrupt store as stock does)
        forget_signature_store(notary)
        return False
    return True


#: Python's GIL switch interval (seconds) while a save's worker thread runs
SAVE_SWITCH_INTERVAL = 0.001
_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.0


@contextlib.contextmanager
def quick_switches() -> Iterator[None]:
    """While a save's worker thread is busy, the event loop gets the GIL back within
    ``SAVE_SWITCH_INTERVAL`` instead of Python's default 5 ms (restored after the last one).

    The loop gives the GIL up at every wait for I/O (select, a socket's send, each SQLite
    call of the update store); getting it back from a busy thread takes up to the switch
    interval, and one edit's round on the loop (read, store append, broadcast) gives it up
    five to ten times: 25-50 ms of delay for the edits of every room while a 65 MB notebook
    was saved, 5-10 ms at 1 ms. A thread that computes gives the GIL up more often; the cost
    of the switches is well under 1% of the save's time."""
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, SAVE_SWITCH_INTERVAL))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = False


@contextlib.contextmanager
def no_collections() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a save holds the split copy of a notebook.

    That copy is young: its line lists (about 700,000 references for a 65 MB notebook) are in
    the collector's youngest generation, and each young collection walks every one of them,
    in whichever thread allocated the 700th container: 17 ms of CPU with the GIL held in one C
    call, measured in the saving thread and on the event loop. The copy has no reference
    cycles and is freed by :func:`release` before the collector runs again. Saves in several
    threads share the pause; the last one out restores the collector as the first found it.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


#: characters written per ``write`` call: encoding a whole notebook's text in one call would
#: hold the GIL (and so the event loop) for tens of milliseconds
WRITE_CHUNK = 1 << 20


def notebook_json(nb: Any, validation_error: dict[str, Any]) -> Iterator[str]:
    """The text of ``nbformat.writes(nb, version=NO_CONVERT, capture_validation_error=...)``
    plus a trailing newline (what the stock manager writes), in pieces of about
    ``WRITE_CHUNK`` characters."""
    version, _ = nbformat.reader.get_version(nb)  # type: ignore[no-untyped-call]
    if version != 4:  # another writer: nbformat's own
        text = nbformat.writes(  # type: ignore[no-untyped-call]
            nb, version=nbformat.NO_CONVERT, capture_validation_error=validation_error
        )
        yield text if text.endswith("\n") else text + "\n"
        return
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        get_logger().error("Notebook JSON is invalid: %s", e)
        validation_error["ValidationError"] = e
    with no_collections():
        plain = strip_transient(split_lines(copy.deepcopy(nb)))  # type: ignore[no-untyped-call]
        encoder = BytesEncoder(indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
        pieces: list[str] = []
        size = 0
        for piece in encoder.iterencode(plain):
            pieces.append(piece)
            size += len(piece)
            if size >= WRITE_CHUNK:
                yield "".join(pieces)
                pieces, size = [], 0
        pieces.append("\n")  # JSON never ends with a newline: the stock manager adds it
        yield "".join(pieces)
        release(plain)


#: items freed per step by :func:`release`
RELEASE_STEP = 4096


def release(value: Any) -> None:
    """Free a big JSON-like structure a few thousand objects at a time (in a worker thread).

    Dropping the last reference to the split copy of a 65 MB notebook frees its ~700,000
    line strings in one C call that holds the GIL for ~15 ms; emptied bottom-up, in slices
    of ``RELEASE_STEP`` items, no single step holds it for more than a fraction of a
    millisecond and the event loop gets the GIL back between them.
    """
    stack = [value]
    while stack:
        item = stack[-1]
        children = item.values() if isinstance(item, dict) else item
        nested = [c for c in children if isinstance(c, (dict, list)) and c]
        if nested:
            stack.extend(nested)
            continue
        stack.pop()
        if isinstance(item, dict):
            item.clear()
        else:
            while item:
                del item[-RELEASE_STEP:]


class TextSink(Protocol):
    """Gets the pieces of a saved file's text in the saving thread, then its hash once the
    file is in place (``bases.BaseWriter``); not closed when the save fails."""

    def write(self, piece: str) -> None: ...
    def close(self, file_hash: str) -> None: ...


def _write(
    contents_manager: Any,
    os_path: str,
    nb: Any,
    validation_error: dict[str, Any],
    sink: TextSink | None = None,
    checkpoint: tuple[Any, str] | None = None,
) -> dict[str, str]:
    """In a worker thread: what the stock ``_save_notebook`` does, written as it is encoded,
    then the first checkpoint (``checkpoint``: the stock checkpoints and the API path) and
    the file's hash."""
    with contents_manager.atomic_writing(os_path, encoding="utf-8") as f:
        for piece in notebook_json(nb, validation_error):
            f.write(piece)
            if sink is not None:
                sink.write(piece)
    if checkpoint is not None:
        first_checkpoint(checkpoint[0], checkpoint[1], os_path)
    hashed = _read_and_hash(contents_manager, os_path)
    if sink is not None:
        sink.close(hashed["hash"])
    return hashed


async def save_notebook(
    contents_manager: Any, model: dict[str, Any], path: str, sink: TextSink | None = None
) -> dict[str, Any]:
    """Save a notebook model like the stock ``save`` does; returns the saved file's model
    without content, with its ``hash``. Only for :func:`is_stock` managers. ``sink`` gets
    the file's text as it is written (in the worker thread)."""
    cm = contents_manager
    path = path.strip("/")
    cm.run_pre_save_hooks(model=model, path=path)
    os_path = cm._get_os_path(path)
    cm.log.debug("Saving %s", os_path)
    notary = cm.notary
    notary.secret  # noqa: B018 - read (or create) the key on the loop, once
    with quick_switches():
        nb, signature, stored = await asyncio.to_thread(_prepare, notary, model["content"])
    if signature is not None and not stored:
        try:
            notary.store.store_signature(signature, notary.algorithm)
        except Exception:  # a corrupt signature store: the stock path recreates it
            cm.check_and_sign(nb, path)
    else:
        cm.log.warning("Notebook %s is not trusted", path)
    validation_error: dict[str, Any] = {}
    checkpoints = stock_checkpoints(cm)
    checkpoint = None if checkpoints is None else (checkpoints, path)
    try:
        with quick_switches():
            hashed = await asyncio.to_thread(
                _write, cm, os_path, nb, validation_error, sink, checkpoint
            )
    except HTTPError:
        raise
    except Exception as e:  # what the stock save turns into a 500
        cm.log.error("Error while saving file: %s %s", path, e, exc_info=True)
        raise HTTPError(500, f"Unexpected error while saving file: {path} {e}") from e
    if checkpoints is None and not await ensure_async(cm.checkpoints.list_checkpoints(path)):
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
