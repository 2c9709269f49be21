"""Linking documents to kernels.

A notebook is linked to the kernel its session (``/api/sessions``: path -> kernel) points
to. :class:`SessionIndex` keeps that map current; :class:`KernelLink` is the per-kernel side:
one listener on the kernel's ``SharedKernelClient`` that routes each output message, by its
parent header, to the cell of the document it belongs to, plus a request hook for
executions a browser sends over its kernel websocket and a lifecycle listener.

Routing lives with the kernel, not with a room object: a room may be freed and recreated
while its kernel keeps producing output (a background thread, a long cell with nobody
connected); the route (msg_id -> document id, cell id) outlives the room and the output is
written into whichever room object holds the document when it arrives.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .queue import CellRun, ExecutionRequest


@dataclass(eq=False)
class Route:
    """Where the output of one execute request goes."""

    document_id: str
    cell_id: str
    run: CellRun | None = None  # a server-owned execution
    request: ExecutionRequest | None = None
    external: bool = False  # sent by a browser over its kernel websocket
    execution_count: int | None = None


class SessionIndex:
    """path -> kernel id of the server's sessions, kept current.

    jupyter_server's ``SessionManager`` emits no event when a session is created, switches
    kernel or is deleted, and its class is the server's to choose. So the three mutators of the
    instance (``create_session``, ``update_session``, ``delete_session``) are wrapped to refresh
    this index after they run; a periodic refresh (``ExecutionManager.session_refresh_interval``)
    covers anything else (sessions culled with their kernel).
    """

    WRAPPED = ("create_session", "update_session", "delete_session")

    def __init__(self, session_manager: Any, log: Any, on_change: Callable[[], Any] | None = None):
        self.session_manager = session_manager
        self.log = log
        self.kernel_by_path: dict[str, str] = {}
        self._on_change = on_change
        self._originals: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def install(self) -> None:
        sm = self.session_manager
        if sm is None:
            return
        for name in self.WRAPPED:
            original = getattr(sm, name, None)
            if original is None or name in self._originals:
                continue
            self._originals[name] = original
            setattr(sm, name, self._wrap(original))

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            try:
                setattr(self.session_manager, name, original)
            except Exception:  # pragma: no cover
                pass
        self._originals.clear()

    def _wrap(self, original: Callable) -> Callable:
        index = self

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            try:
                await index.refresh()
            except Exception:
                index.log.exception("collab_kernels: refreshing the session index failed")
            return result

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        return wrapper

    async def refresh(self) -> dict[str, str]:
        sm = self.session_manager
        if sm is None:
            return self.kernel_by_path
        async with self._lock:
            sessions = await sm.list_sessions()
            mapping: dict[str, str] = {}
            for session in sessions:
                kernel = session.get("kernel") or {}
                kernel_id = kernel.get("id")
                path = (session.get("path") or "").strip("/")
                if kernel_id and path:
                    mapping[path] = kernel_id
            changed = mapping != self.kernel_by_path
            self.kernel_by_path = mapping
        if changed and self._on_change is not None:
            result = self._on_change()
            if inspect.isawaitable(result):
                await result
        return mapping

    def kernel_for_path(self, path: str) -> str | None:
        return self.kernel_by_path.get(path.strip("/"))

    def paths_for_kernel(self, kernel_id: str) -> set[str]:
        return {p for p, k in self.kernel_by_path.items() if k == kernel_id}


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


class KernelLink:
    """The execution stage's attachment to one kernel's shared client."""

    def __init__(self, kernel_id: str, client: Any, manager: Any):
        self.kernel_id = kernel_id
        self.client = client
        self.manager = manager
        self.routes = RouteTable(manager.route_table_size)
        self.listener = client.add_listener(
            self._on_message,
            channels=("iopub", "shell", "stdin"),
            replies="owned",
            name=f"documents of kernel {kernel_id}",
            first=True,  # a cell's end is written before activity tracking runs
        )
        client.add_request_hook(self._on_request)
        client.add_lifecycle_listener(self._on_lifecycle)
        self.closed = False

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

    # The three callbacks delegate to the manager, which owns documents and queues.
    def _on_message(self, msg: Any) -> None:
        self.manager._on_kernel_message(self, msg)

    def _on_request(self, msg: dict, origin: str) -> bool:
        return self.manager._on_browser_request(self, msg, origin)

    def _on_lifecycle(self, event: str) -> Any:
        return self.manager._on_kernel_lifecycle(self, event)
