"""Reading a notebook through jupyter_server's stock file contents managers, off the event loop.

Why: opening a 65 MB notebook, the stock ``get(path, content=True, require_hash=True)``
held the event loop of every room for 0.3-0.45 s (``bench/room_save_bench.py
--first-build``): its hash of the file's bytes and its trust check (the signature's HMAC
over the whole notebook, and a commit to the signature database) run on the loop, and the
JSON parse it sends to a thread is one C call that holds the GIL for 250 ms anyway.

What :func:`notebook_model` does instead, only for :func:`offload.is_stock` managers whose
notary is nbformat's own (anything else keeps its own ``get``, called as before):

- on the loop: ``get(path, content=False)`` (the stock checks: 404, hidden files, the
  ``get`` event), the notary's secret (read or created once), marking the cells trusted or
  not, the stock warning, and ``validate_notebook_model`` with the validation error
  captured in the thread;
- in a worker thread, with the GIL handed over every millisecond (``quick_switches``) and
  the cyclic collector paused (``no_collections``: the parse makes ~700,000 young objects):
  the file's bytes, their hash (``hashlib`` gives the GIL back), ``nbformat.reads`` with the
  JSON decoded in pieces (``json_pieces.PiecewiseDecoder``), the signature's HMAC and its
  lookup in the signature database through the thread's own connection (as saving does);
- with ``keep_text`` (a room's load), in another worker thread beside the parse: the bytes
  zlib-compressed, the text the room keeps as the base of a restart merge until its first
  save (:class:`LoadedText`; before, a second thread read, hashed and decoded the file again).

Any error in the thread (a file that is not UTF-8 or not JSON, a permission error) falls
back to the stock ``get``, which reports it as stock does (and restores a notebook from its
atomic-writing intermediate). The model is the stock one (``tests/test_rooms_offload_read.py``
compares them, trusted and not). The UTF-8 decoding of the whole file is still one step:
40 ms for 65 MB, most of it page faults of the new string.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zlib
from dataclasses import dataclass
from typing import Any

import nbformat
from jupyter_core.utils import ensure_async
from nbformat.sign import NotebookNotary

from . import offload
from .json_pieces import PiecewiseDecoder


def is_offloaded(contents_manager: Any) -> bool:
    """Whether :func:`notebook_model` reads for this manager (its notary is nbformat's own,
    nothing replaced on it)."""
    if not offload.is_stock(contents_manager):
        return False
    notary = getattr(contents_manager, "notary", None)
    if type(notary) is not NotebookNotary:
        return False
    replaced = vars(notary)
    return not any(name in replaced for name in ("check_signature", "compute_signature"))


@dataclass
class _Read:
    nb: Any
    validation_error: dict[str, Any]
    #: the notebook's signature (None: nbformat < 3, never trusted)
    signature: str | None
    #: whether the signature is stored (None: not looked up in the thread)
    trusted: bool | None


def _read_bytes(os_path: str, algorithm: str) -> tuple[bytes, dict[str, str]]:
    """In a worker thread: the file's bytes and hash (both give the GIL back)."""
    with open(os_path, "rb") as f:
        data = f.read()
    return data, {"hash": hashlib.new(algorithm, data).hexdigest(), "hash_algorithm": algorithm}


def _parse(notary: Any, held: list[bytes]) -> _Read:
    """In a worker thread: the notebook of the file's bytes (taken out of ``held``: nothing
    else keeps them once decoded, or beyond their compression), and its trust."""
    with offload.no_collections():
        text = held.pop().decode("utf-8")
        validation_error: dict[str, Any] = {}
        nb = nbformat.reads(  # type: ignore[no-untyped-call]
            text, as_version=4, capture_validation_error=validation_error, cls=PiecewiseDecoder
        )
        del text
        if nb.nbformat < 3:
            return _Read(nb, validation_error, None, False)
        signature = notary.compute_signature(nb)
    store = offload.thread_signature_store(notary)
    trusted: bool | None = None
    if store is not None:
        try:
            trusted = bool(store.check_signature(signature, notary.algorithm))  # type: ignore[no-untyped-call]
        except Exception:  # the loop looks it up with the notary's own store
            offload.forget_signature_store(notary)
    return _Read(nb, validation_error, signature, trusted)


def _compress(data: bytes) -> bytes:
    """In a worker thread: the file's text as ``bases.SavedBases`` keeps it (zlib gives the
    GIL back while it compresses, so this runs beside the parse)."""
    return zlib.compress(data, 1)


@dataclass
class LoadedText:
    """The text of a notebook as read, zlib-compressed beside its parse: what the room keeps
    as the base of a restart merge (``history.keep_loaded_text``) without reading, hashing
    and decoding the file a second time."""

    file_hash: str
    #: when the file was read
    read_at: float
    compressed: asyncio.Future[bytes]


async def notebook_read(
    contents_manager: Any, path: str, *, keep_text: bool = False
) -> tuple[dict[str, Any], LoadedText | None]:
    """``get(path, content=True, type="notebook", require_hash=True)`` with the work done
    off the loop (only for :func:`is_offloaded` managers), and with ``keep_text`` the file's
    text compressed beside the parse (None when the contents manager read it itself)."""
    cm = contents_manager
    model: dict[str, Any] = await ensure_async(cm.get(path, content=False, type="notebook"))
    notary = cm.notary
    notary.secret  # noqa: B018 - read (or create) the key on the loop, once
    loaded: LoadedText | None = None
    try:
        os_path = cm._get_os_path(path.strip("/"))
        read_at = time.time()
        data, hashed = await asyncio.to_thread(_read_bytes, os_path, str(cm.hash_algorithm))
        if keep_text:
            compressed = asyncio.ensure_future(asyncio.to_thread(_compress, data))
            loaded = LoadedText(hashed["hash"], read_at, compressed)
        with offload.quick_switches():
            held = [data]
            del data
            read = await asyncio.to_thread(_parse, notary, held)
    except Exception as e:
        cm.log.debug("collab_kernels: %s read by the contents manager itself: %r", path, e)
        stock: dict[str, Any] = await ensure_async(
            cm.get(path, content=True, type="notebook", require_hash=True)
        )
        return stock, None
    trusted = read.trusted
    if trusted is None:
        trusted = read.signature is not None and bool(
            notary.store.check_signature(read.signature, notary.algorithm)
        )
    if not trusted:
        cm.log.warning("Notebook %s is not trusted", path)
    notary.mark_cells(read.nb, trusted)
    model["content"] = read.nb
    model["format"] = "json"
    cm.validate_notebook_model(model, read.validation_error)
    model.update(hashed)
    return model, loaded


async def notebook_model(contents_manager: Any, path: str) -> dict[str, Any]:
    """:func:`notebook_read`'s model."""
    model, _ = await notebook_read(contents_manager, path)
    return model


__all__ = ["LoadedText", "is_offloaded", "notebook_model", "notebook_read"]
