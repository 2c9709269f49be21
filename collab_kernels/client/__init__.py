"""The Python client and the ``collab-kernels`` command line, for headless runs.

``CollabClient`` (async) and ``SyncCollabClient`` (blocking) talk to a server with
collab_kernels: open a notebook's shared document, edit cells, run them in the server,
iterate outputs as they arrive, answer ``input()``, interrupt, cancel.

The package's modules, one concept each:

- ``errors``: the exceptions; ``records``: the server's run record and the run events;
- ``rest``: one method per REST endpoint; ``client``: :class:`CollabClient` (REST + documents);
- ``notebook``: a notebook's live document; ``run``: a run; ``watcher``: a run's events from
  the document; ``sync``: the blocking wrapper;
- ``connection``: the room websocket; ``servers``: finding or embedding a server;
- ``params`` and ``papermill``: papermill's parameters and metadata; ``execute``: running a
  notebook papermill's way (``collab-kernels run``); ``api``: :func:`execute_notebook`;
- ``cli`` (the ``collab-kernels`` command) with ``cli_run``, ``cli_runs``, ``cli_watch`` and
  ``cli_term``.

Names are imported on first use, so that ``collab-kernels`` starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CellFinished": "records",
    "CellStarted": "records",
    "InputRequested": "records",
    "Output": "records",
    "RunFinished": "records",
    "CollabError": "errors",
    "ServerError": "errors",
    "NotFound": "errors",
    "RunNotFound": "errors",
    "CollabClient": "client",
    "Notebook": "notebook",
    "Run": "run",
    "SyncCollabClient": "sync",
    "ExecutionError": "errors",
    "RunFailed": "errors",
    "execute_notebook": "api",
}

__all__ = [
    "CellFinished",
    "CellStarted",
    "CollabClient",
    "CollabError",
    "ExecutionError",
    "InputRequested",
    "NotFound",
    "Notebook",
    "Output",
    "Run",
    "RunFailed",
    "RunFinished",
    "RunNotFound",
    "ServerError",
    "SyncCollabClient",
    "execute_notebook",
]

if TYPE_CHECKING:  # pragma: no cover
    from .api import execute_notebook
    from .client import CollabClient
    from .errors import CollabError, ExecutionError, NotFound, RunFailed, RunNotFound, ServerError
    from .notebook import Notebook
    from .records import CellFinished, CellStarted, InputRequested, Output, RunFinished
    from .run import Run
    from .sync import SyncCollabClient


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
