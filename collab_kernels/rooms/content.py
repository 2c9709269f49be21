"""File content and Y documents: building, reading and editing a document from a file's content,
and which paths a room may serve.

Pure helpers over jupyter_ydoc documents and the contents manager's rules, shared by the file
stage, the room manager and the session endpoint.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_ydoc import YNotebook, YUnicode
from jupyter_ydoc.yunicode import _set_text
from pycrdt import Doc
from tornado.web import HTTPError


async def is_refused_hidden(contents_manager: Any, path: str) -> bool:
    """Whether ``path`` is hidden and the contents manager does not serve hidden files.

    The contents manager's own rule (``allow_hidden``, ``is_hidden``): a room or session for
    such a file answers as if it did not exist, as ``/api/contents`` does.
    """
    if getattr(contents_manager, "allow_hidden", False):
        return False
    is_hidden = getattr(contents_manager, "is_hidden", None)
    try:
        if is_hidden is None:
            raise NotImplementedError
        return bool(await ensure_async(is_hidden(path)))
    except NotImplementedError:  # a contents manager without the notion: dot files
        return any(part.startswith(".") for part in path.split("/"))
    except HTTPError:
        return True


#: the only transaction origin the server documents' undo managers track: none is ever used
_NO_UNDO = object()


def new_document(file_type: str, ydoc: Doc[Any] | None = None) -> YNotebook | YUnicode:
    """An empty jupyter_ydoc document of ``file_type`` (on ``ydoc`` when given).

    jupyter_ydoc gives every document an undo manager that captures every transaction on
    its cells. Nobody undoes on the server, and a captured deletion keeps its content alive
    (the Y garbage collector may not drop it): a cell printing in a loop, whose oldest text
    the output limit deletes, grew the document by everything it ever printed, and each
    save, compaction and append to the cell's text cost in proportion (50 MB and 130 ms for
    one encoding after 48 MB of output, instead of 4 MB and 8 ms). The undo manager is kept
    (jupyter_ydoc's API has it) but tracks only an origin no transaction has."""
    document: YNotebook | YUnicode = YNotebook(ydoc) if file_type == "notebook" else YUnicode(ydoc)
    document.undo_manager.include_origin(_NO_UNDO)
    return document


#: seconds of building a notebook between two turns of the loop (1000 cells: 62 -> 50 ms)
BUILD_SLICE = 0.01


async def build_document(document: YNotebook | YUnicode, content: Any) -> None:
    """Replace ``document``'s content by a file's; a notebook :func:`in_slices`."""
    if not isinstance(document, YNotebook):
        document.set(content)
        return
    steps = getattr(document, "_set", None)
    if steps is None or not inspect.isgeneratorfunction(steps):
        await document.aset(content)  # another jupyter_ydoc version
        return
    await in_slices(document.ydoc, steps(content))


async def in_slices(ydoc: Doc[Any], steps: Iterator[Any]) -> None:
    """Run ``steps`` (each one builds a little of ``ydoc``) in transactions of about
    ``BUILD_SLICE`` s each, building and commit, the loop given back between them.

    In one transaction, its commit encoded the whole document for the room's observer, one
    pycrdt call holding the GIL for 180 ms per 65 MB (``update_parts.py`` joins the slices'
    updates into the state). A slice's commit of big outputs can take three times as long
    as building them: each slice builds for the share of ``BUILD_SLICE`` the last one's
    commit left (at least a tenth); one step is the smallest slice."""
    budget = BUILD_SLICE  # of building; its commit takes about as long again, or more
    while True:
        started = time.perf_counter()
        with ydoc.transaction():
            for _ in steps:
                if time.perf_counter() - started > budget:
                    break
            else:
                return
            built = time.perf_counter() - started
        committed = time.perf_counter() - started - built
        # a commit encodes what was built: big outputs cost more to encode than to build
        budget = max(BUILD_SLICE / 10, BUILD_SLICE * built / (built + committed))
        await asyncio.sleep(0)


async def document_content(file_type: str, content: Any) -> Any:
    """What ``document.get()`` returns for a file's ``content`` (built in a scratch document)."""
    scratch = new_document(file_type)
    if isinstance(scratch, YNotebook):
        await scratch.aset(content)
    else:
        scratch.set(content)
    return scratch.get()


def apply_in_place(document: YNotebook | YUnicode, content: Any) -> None:
    """Give ``document`` a file's ``content``, editing only what differs: unchanged cells keep
    their identity, a changed source is edited as text (call inside a transaction)."""
    if not isinstance(document, YNotebook):
        document.set(content)
        return
    by_id = {}
    for ycell in document.ycells:
        cell_id = ycell.get("id")
        if cell_id is not None and cell_id not in by_id:
            by_id[cell_id] = ycell
    for cell in content.get("cells", []):
        ycell = by_id.get(cell.get("id"))
        if ycell is None or ycell.get("cell_type") != cell.get("cell_type"):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if str(ycell["source"]) != source:
            # Granular text edit, so YNotebook.set then sees an equal source.
            _set_text(document.ydoc, ycell["source"], source)
    document.set(content)


#: characters compared (a container counts as ``_NODE_COST``) between two yields of
#: :func:`same_content` to the event loop: about half a millisecond of work
COMPARE_STEP = 1 << 22
_NODE_COST = 1 << 10


async def same_content(a: Any, b: Any) -> bool:
    """``a == b`` for two contents of a document (``document.get()``), with the event loop
    free every few megabytes compared: ``==`` on a 65 MB notebook is one C call that held
    the loop for ~9 ms at every save, and one per cell ~40 us each for 2000 cells."""
    spent = [0]
    comparison = _compare(a, b, spent)
    try:
        while True:
            next(comparison)
            await asyncio.sleep(0)
    except StopIteration as done:
        return bool(done.value)


def _compare(a: Any, b: Any, spent: list[int]) -> Generator[None, None, bool]:
    """Yields when ``COMPARE_STEP`` is spent; returns whether ``a == b``."""
    if a is b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        if len(a) != len(b):
            return False
        for start in range(0, len(a), COMPARE_STEP):
            if a[start : start + COMPARE_STEP] != b[start : start + COMPARE_STEP]:
                return False
            spent[0] += min(COMPARE_STEP, len(a) - start)
            if spent[0] >= COMPARE_STEP:
                spent[0] = 0
                yield
        return True
    pairs: Iterator[tuple[Any, Any]]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        pairs = ((a[key], b[key]) for key in a)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        pairs = zip(a, b, strict=True)
    else:
        return bool(a == b)
    spent[0] += _NODE_COST
    for x, y in pairs:
        if not (yield from _compare(x, y, spent)):
            return False
    return True


def prefer_local_file_ids(serverapp: Any) -> bool:
    """Make jupyter_server_fileid follow files moved outside Jupyter (call at link time).

    Its default ``ArbitraryFileIdManager`` only knows moves made through Jupyter; for a local
    contents manager its ``LocalFileIdManager`` (as :class:`FollowingFileIdManager`) also
    finds a file that was ``mv``-ed or ``git mv``-ed (by inode), so the file's room follows
    it instead of closing as deleted.
    An explicit ``FileIdExtension.file_id_manager_class`` is kept, and so is the default when
    the file-id database already exists in the other manager's schema (it has no ``crtime``
    column; ``LocalFileIdManager`` would fail on every query of it, and every collaboration
    session with it): ids other tools stored stay valid, moves outside Jupyter are then
    handled as deletes, as before, and the log says how to opt in. Returns whether it was set.
    """
    config = serverapp.config
    if "file_id_manager_class" in config.get("FileIdExtension", {}):
        return False
    try:
        from jupyter_server.services.contents.fileio import FileManagerMixin
        from jupyter_server_fileid.manager import default_db_path

        from .file_ids import FollowingFileIdManager
    except ImportError:  # pragma: no cover - jupyter_server_fileid is a dependency
        return False
    contents_class = serverapp.contents_manager_class
    if not (isinstance(contents_class, type) and issubclass(contents_class, FileManagerMixin)):
        return False
    db_path = str(
        config.get("LocalFileIdManager", {}).get("db_path")
        or config.get("BaseFileIdManager", {}).get("db_path")
        or default_db_path
    )
    if not file_id_db_fits_local_manager(db_path):
        serverapp.log.info(
            "collab_kernels: the file-id database %s was made by jupyter_server_fileid's "
            "ArbitraryFileIdManager; keeping it, so rooms do not follow files moved outside "
            "Jupyter (set FileIdExtension.file_id_manager_class to LocalFileIdManager with "
            "a new BaseFileIdManager.db_path to have them followed)",
            db_path,
        )
        return False
    config.FileIdExtension.file_id_manager_class = FollowingFileIdManager
    return True


def file_id_db_fits_local_manager(db_path: str) -> bool:
    """Whether ``LocalFileIdManager`` can use the database at ``db_path``: there is none yet,
    it is in memory, or its ``Files`` table has the ``crtime`` column of that manager."""
    if db_path == ":memory:" or not os.path.exists(db_path):
        return True
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(Files)")}
    except sqlite3.Error:
        return False  # unreadable here: leave the choice to jupyter_server_fileid's default
    return not columns or "crtime" in columns
