"""Kernel messages to document cells: where an iopub message becomes a Y edit.

Each kernel with documents gets a :class:`KernelLink`: one listener on its
``SharedKernelClient``, a request hook (executions a browser sends over its kernel websocket)
and a lifecycle listener. The link's :class:`RouteTable` maps the msg_id of every execute
request to the cell it belongs to (:class:`Route`); the :class:`Router` handles what the link
hears: output messages go to the document's writer, the execute_reply and idle status end a
server-side cell (:class:`RunEvents`, the runner), stdin prompts go to the input broker.

Routing lives with the kernel, not with a room object: a room may be freed and recreated
while its kernel keeps producing output (a background thread, a long cell with nobody
connected); the route outlives the room and the output is written into whichever room object
holds the document when it arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from tornado.web import HTTPError

from ..kernels.client import SharedKernelClient
from ..kernels.listener import Listener
from ..kernels.manager import SharedClientMappingKernelManager
from ..kernels.message import KernelMessage
from .outputs import OUTPUT_MSG_TYPES
from .ports import Log, RoomSource
from .requests import CellRun, ExecutionRequest
from .writer import notebook_cells
from .writer_pool import WriterPool


@dataclass(eq=False)
class Route:
    """Where the output of one execute request goes: a cell of a document (``document_id``
    None for a scratch execution), and the run's collected outputs if it has them."""

    document_id: str | None
    cell_id: str
    run: CellRun | None = None  # a server-owned execution
    request: ExecutionRequest | None = None
    external: bool = False  # sent by a browser over its kernel websocket
    execution_count: int | None = None


class RouteTable:
    """msg_id -> Route, bounded (oldest forgotten first). Finished executions stay routable
    so that late output (a background thread printing after its cell ended) still lands."""

    def __init__(self, size: int = 10000):
        self.size = size
        self._routes: OrderedDict[str, Route] = OrderedDict()

    def add(self, msg_id: str, route: Route) -> None:
        self._routes[msg_id] = route
        self._routes.move_to_end(msg_id)
        while len(self._routes) > self.size:
            self._routes.popitem(last=False)

    def get(self, msg_id: str | None) -> Route | None:
        if not msg_id:
            return None
        return self._routes.get(msg_id)

    def clear(self) -> None:
        self._routes.clear()

    def __len__(self) -> int:
        return len(self._routes)


class LinkEvents(Protocol):
    """What a :class:`KernelLink` reports (implemented by :class:`Router`)."""

    def on_kernel_message(self, link: KernelLink, msg: KernelMessage) -> None: ...

    def on_browser_request(self, link: KernelLink, msg: dict[str, Any], origin: str) -> bool: ...

    def on_kernel_lifecycle(self, link: KernelLink, event: str) -> None: ...


class KernelLink:
    """The execution stage's attachment to one kernel's shared client."""

    def __init__(
        self, kernel_id: str, client: SharedKernelClient, table_size: int, events: LinkEvents
    ):
        self.kernel_id = kernel_id
        self.client = client
        self.events = events
        self.routes = RouteTable(table_size)
        self.closed = False
        self.listener: Listener = client.add_listener(
            self._on_message,
            channels=("iopub", "shell", "stdin"),
            replies="owned",
            name=f"documents of kernel {kernel_id}",
            first=True,  # a cell's end is written before activity tracking runs
        )
        client.add_request_hook(self._on_request)
        client.add_lifecycle_listener(self._on_lifecycle)

    @property
    def generation(self) -> int:
        """The shared client's connection count (bumped by every restart)."""
        return self.client.connect_count

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.client.remove_listener(self.listener)
            self.client.remove_request_hook(self._on_request)
            self.client.remove_lifecycle_listener(self._on_lifecycle)
        except Exception:  # pragma: no cover - closing a dead client
            pass

    def _on_message(self, msg: KernelMessage) -> None:
        self.events.on_kernel_message(self, msg)

    def _on_request(self, msg: dict[str, Any], origin: str) -> bool:
        return self.events.on_browser_request(self, msg, origin)

    def _on_lifecycle(self, event: str) -> None:
        self.events.on_kernel_lifecycle(self, event)


def shared_client_of(
    kernel_manager: MappingKernelManager, kernel_id: str
) -> SharedKernelClient | None:
    """The shared client of a running kernel; None if the kernel is gone or the kernel
    layer has no shared clients (another kernel manager class is configured)."""
    if not isinstance(kernel_manager, SharedClientMappingKernelManager):
        return None
    if kernel_id not in kernel_manager:
        return None
    try:
        return kernel_manager.get_shared_client(kernel_id)
    except (KeyError, RuntimeError, HTTPError):
        return None


class LinkPool:
    """One :class:`KernelLink` per kernel, following its shared client."""

    def __init__(
        self,
        kernel_manager: MappingKernelManager,
        events: LinkEvents,
        table_size: Callable[[], int],
        log: Log,
    ):
        self.kernel_manager = kernel_manager
        self.events = events
        self.table_size = table_size
        self.log = log
        self.links: dict[str, KernelLink] = {}

    def link_for(self, kernel_id: str) -> KernelLink | None:
        """The kernel's link, made (or remade, for a new shared client) as needed; None if
        the kernel has no shared client."""
        client = shared_client_of(self.kernel_manager, kernel_id)
        link = self.links.get(kernel_id)
        if link is not None and (link.closed or link.client is not client):
            link.close()
            self.links.pop(kernel_id, None)
            link = None
        if link is None and client is not None:
            link = self.links[kernel_id] = KernelLink(
                kernel_id, client, self.table_size(), self.events
            )
            self.log.debug("collab_kernels: documents linked to kernel %s", kernel_id)
        return link

    def drop(self, link: KernelLink) -> None:
        link.close()
        if self.links.get(link.kernel_id) is link:
            del self.links[link.kernel_id]

    def prune(self) -> None:
        """Close the links of kernels that no longer exist."""
        known = set(self.kernel_manager.list_kernel_ids())
        for kernel_id in list(self.links):
            if kernel_id not in known:
                self.links.pop(kernel_id).close()

    def close(self) -> None:
        for link in list(self.links.values()):
            link.close()
        self.links.clear()


class RunEvents(Protocol):
    """The ends of server-side cells, as the router sees them (implemented by the runner)."""

    def cell_reply(self, route: Route, content: dict[str, Any]) -> None: ...

    def cell_idle(self, route: Route) -> None: ...

    def kernel_event(self, link: KernelLink, event: str) -> None: ...


class InputEvents(Protocol):
    def on_input_request(self, link: KernelLink, route: Route, msg: KernelMessage) -> None: ...


class PathIndex(Protocol):
    def paths_for_kernel(self, kernel_id: str) -> set[str]: ...


class Router:
    """Handles what every kernel link hears (:class:`LinkEvents`)."""

    def __init__(
        self,
        *,
        writers: WriterPool,
        runs: RunEvents,
        inputs: InputEvents,
        sessions: PathIndex,
        rooms: RoomSource,
        log: Log,
    ):
        self.writers = writers
        self.runs = runs
        self.inputs = inputs
        self.sessions = sessions
        self.rooms = rooms
        self.log = log

    def on_kernel_message(self, link: KernelLink, msg: KernelMessage) -> None:
        route = link.routes.get(msg.parent_msg_id)
        if route is None:
            return
        channel, msg_type = msg.channel, msg.msg_type
        if route.run is not None and route.run.kernel_gone:
            self.log.debug(
                "collab_kernels: %s of cell %s from kernel %s's previous process dropped "
                "(the cell ended when it died or restarted)",
                msg_type,
                route.cell_id,
                link.kernel_id,
            )
            return
        if channel == "iopub":
            if route.run is not None:
                route.run.last_heard = time.monotonic()
            if msg_type in OUTPUT_MSG_TYPES:
                run = route.run
                if run is not None and run.outputs is not None:
                    run.outputs.add(msg_type, msg.content)
                if route.document_id is not None:
                    self.writers.get(route.document_id).enqueue(
                        route.cell_id, msg_type, msg.content, with_end=msg_type == "execute_result"
                    )
            elif msg_type == "execute_input":
                count = msg.content.get("execution_count")
                route.execution_count = count
                if route.run is not None:
                    route.run.execution_count = count
            elif msg_type == "status" and msg.content.get("execution_state") == "idle":
                if route.run is not None:
                    self.runs.cell_idle(route)
                elif route.external and route.document_id is not None:
                    try:
                        self.writers.get(route.document_id).finish_external(
                            route.cell_id, route.execution_count
                        )
                    except Exception:
                        self.log.exception(
                            "collab_kernels: could not finish cell %s", route.cell_id
                        )
        elif channel == "shell" and msg_type == "execute_reply":
            if route.run is not None:
                self.runs.cell_reply(route, msg.content)
        elif channel == "stdin" and msg_type == "input_request":
            self.inputs.on_input_request(link, route, msg)

    def on_browser_request(self, link: KernelLink, msg: dict[str, Any], origin: str) -> bool:
        """A kernel websocket sends an execute_request for a cell of a notebook whose session
        uses this kernel: the server writes its outputs (claimed: True)."""
        header = msg.get("header") or {}
        if header.get("msg_type") != "execute_request":
            return False
        cell_id = (msg.get("metadata") or {}).get("cellId")
        if not isinstance(cell_id, str) or not cell_id:
            return False
        paths = self.sessions.paths_for_kernel(link.kernel_id)
        if not paths:
            return False
        for room in list(self.rooms.rooms.values()):
            if room.closed or room.path not in paths or room.file_type != "notebook":
                continue
            for ycell in notebook_cells(room):
                if ycell.get("id") == cell_id:
                    link.routes.add(header["msg_id"], Route(room.room_id, cell_id, external=True))
                    self.log.debug(
                        "collab_kernels: execution of cell %s of %s from %s: the server writes "
                        "its outputs",
                        cell_id,
                        room.path,
                        origin,
                    )
                    return True
        return False

    def on_kernel_lifecycle(self, link: KernelLink, event: str) -> None:
        self.runs.kernel_event(link, event)
