"""The Python client and the ``collab-kernels`` command line, for headless runs.

``CollabClient`` (async) and ``SyncCollabClient`` (blocking) talk to a server with
collab_kernels: open a notebook's shared document, edit cells, run them in the server,
iterate outputs as they arrive, answer ``input()``, interrupt, cancel.
"""

from .client import (
    CellFinished,
    CellStarted,
    CollabClient,
    CollabError,
    InputRequested,
    Notebook,
    Output,
    Run,
    RunFinished,
    SyncCollabClient,
)

__all__ = [
    "CellFinished",
    "CellStarted",
    "CollabClient",
    "CollabError",
    "InputRequested",
    "Notebook",
    "Output",
    "Run",
    "RunFinished",
    "SyncCollabClient",
]
