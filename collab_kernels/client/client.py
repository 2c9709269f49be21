"""The Python client for a collab_kernels server: notebooks, runs, outputs, prompts.

Everything goes through the server: the REST API (sessions, the collaboration session, the
execute/request/input endpoints of ``docs/architecture.md``) and the notebook's room, a Y
document kept in sync over the room websocket (:class:`~.connection.RoomConnection`).
A run's state lives in the server; a client only watches it, so any number of clients (and
browsers) can watch the same run, come and go.

Async use::

    async with CollabClient("http://127.0.0.1:8888/", token="...") as client:
        nb = await client.open_notebook("analysis.ipynb")
        nb.set_source(0, "x = 41")
        run = await nb.execute()              # all code cells, one request
        async for event in run.events():      # outputs line by line, prompts, progress
            ...
        status = await run.wait()

Blocking use: :class:`SyncCollabClient` wraps the same objects and runs them on a private
event loop thread.
"""

from __future__ import annotations

import os
from typing import Any

from ..contract import build_room_id
from .errors import CollabError, NotFound, RunNotFound, ServerError
from .notebook import Notebook
from .records import (
    CellFinished,
    CellStarted,
    InputRequested,
    Output,
    RunEvent,
    RunFinished,
    RunRecord,
    output_text,
)
from .rest import RestClient
from .run import Run
from .servers import ServerInfo, running_servers, server_for_path

__all__ = [
    "CellFinished",
    "CellStarted",
    "CollabClient",
    "CollabError",
    "InputRequested",
    "NotFound",
    "Notebook",
    "Output",
    "Run",
    "RunEvent",
    "RunFinished",
    "RunNotFound",
    "RunRecord",
    "ServerError",
    "output_text",
]


class CollabClient(RestClient):
    """An async client for one server, given by URL and token (see :meth:`discover` too)."""

    def __init__(
        self,
        url: str | ServerInfo,
        token: str | None = None,
        *,
        request_timeout: float = 60.0,
        poll_interval: float = 0.3,
    ):
        super().__init__(url, token, request_timeout=request_timeout, poll_interval=poll_interval)
        self._notebooks: list[Notebook] = []

    @classmethod
    def discover(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> CollabClient:
        """A client for a running server (as ``jupyter server list`` lists them): the one whose
        root holds ``path`` if given, else the most recently started one."""
        if path is not None:
            server = server_for_path(path)
            if server is None:
                raise CollabError(f"no running Jupyter server serves {path}")
            return cls(server, **kwargs)
        servers = running_servers()
        if not servers:
            raise CollabError("no running Jupyter server found (see `jupyter server list`)")
        servers.sort(key=lambda s: s.pid or 0)
        return cls(servers[-1], **kwargs)

    async def __aenter__(self) -> CollabClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every open notebook (their runs go on in the server) and the HTTP pool."""
        for nb in list(self._notebooks):
            await nb.close()
        await self.aclose()

    def forget(self, notebook: Notebook) -> None:
        """``notebook`` was closed: nothing left to close for it."""
        if notebook in self._notebooks:
            self._notebooks.remove(notebook)

    # -- documents ---------------------------------------------------------------------------

    async def open_notebook(
        self,
        path: str,
        *,
        kernel_name: str | None = None,
        cwd: str | None = None,
        start_kernel: bool = True,
        session: dict[str, Any] | None = None,
    ) -> Notebook:
        """Open the notebook's document with its kernel session: ``session`` if given, else the
        notebook's session, created (``kernel_name``, in ``cwd``) unless ``start_kernel=False``.
        """
        if session is None:
            session = (
                await self.start_session(path, kernel_name, cwd)
                if start_kernel
                else await self.session_for(path)
            )
        collab = await self.collaboration_session(path)
        room_id = build_room_id(collab["fileId"])
        nb = Notebook(self, path, room_id, collab.get("sessionId"), session)
        await nb.connect()
        self._notebooks.append(nb)
        return nb

    async def attach(self, run_id: str) -> Run:
        """Watch an existing run (by request id): opens its notebook's document."""
        record = await self.find_run(run_id)
        path = record.get("path")
        if not path:
            raise CollabError(f"run {run_id} has no notebook path (its document is gone?)")
        nb = await self.open_notebook(path, start_kernel=False)
        return Run(nb, record)


def __getattr__(name: str) -> Any:
    if name == "SyncCollabClient":  # defined on top of this module's CollabClient
        from .sync import SyncCollabClient

        return SyncCollabClient
    raise AttributeError(name)
