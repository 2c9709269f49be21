"""Sessions (``/api/sessions``: path -> kernel), as the execution stage follows them.

:class:`CollabSessionManager` is jupyter_server's ``SessionManager`` with change
notifications: the extension selects it as ``ServerApp.session_manager_class`` in its link hook
(as it selects the kernel manager class). :class:`SessionIndex` keeps the path -> kernel map
that links a notebook to its kernel: re-read on every change the session manager reports, and
periodically (``ExecutionManager.session_refresh_interval``) for what it cannot report
(sessions culled with their kernel, or a session manager class of the user's own).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.services.sessions.sessionmanager import SessionManager

from .ports import Log

ChangeListener = Callable[[], Awaitable[None] | None]


class CollabSessionManager(SessionManager):
    """jupyter_server's session manager, reporting every create, update and delete, with one
    session per notebook path.

    ``POST /api/sessions`` checks whether the path has a session, then creates one: two
    people opening a notebook at the same moment would both create one, each with its own
    kernel, and the shared document would belong to two kernels. Creating a notebook's
    session is serialized per path here; a creation that finds a session made meanwhile
    returns that one.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # upstream untyped
        self._change_listeners: list[ChangeListener] = []
        #: path -> (lock, number of creations holding or waiting for it)
        self._creating: dict[str, tuple[asyncio.Lock, int]] = {}

    def add_change_listener(self, callback: ChangeListener) -> None:
        """``callback()`` after each session change (awaited if it returns an awaitable)."""
        self._change_listeners.append(callback)

    def remove_change_listener(self, callback: ChangeListener) -> None:
        if callback in self._change_listeners:
            self._change_listeners.remove(callback)

    async def _changed(self) -> None:
        for callback in list(self._change_listeners):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.log.exception("collab_kernels: a session change listener failed")

    async def create_session(
        self,
        path: str | None = None,
        name: Any = None,
        type: str | None = None,
        kernel_name: Any = None,
        kernel_id: str | None = None,
    ) -> dict[str, Any]:
        if path is None or type != "notebook":
            model: dict[str, Any] = await super().create_session(
                path=path, name=name, type=type, kernel_name=kernel_name, kernel_id=kernel_id
            )
        else:
            lock, users = self._creating.get(path, (asyncio.Lock(), 0))
            self._creating[path] = (lock, users + 1)
            try:
                async with lock:
                    existing = await self._session_of(path)
                    if existing is not None:
                        self.log.info(
                            "collab_kernels: %s has a session already (opened by someone "
                            "else meanwhile); sharing its kernel %s",
                            path,
                            (existing.get("kernel") or {}).get("id"),
                        )
                        return existing
                    model = await super().create_session(
                        path=path,
                        name=name,
                        type=type,
                        kernel_name=kernel_name,
                        kernel_id=kernel_id,
                    )
            finally:
                lock, users = self._creating[path]
                if users > 1:
                    self._creating[path] = (lock, users - 1)
                else:
                    del self._creating[path]
        await self._changed()
        return model

    async def _session_of(self, path: str) -> dict[str, Any] | None:
        if not await self.session_exists(path):  # type: ignore[no-untyped-call]
            return None
        session: dict[str, Any] = await self.get_session(path=path)  # type: ignore[no-untyped-call]
        return session

    async def update_session(self, session_id: str, **kwargs: Any) -> None:
        await super().update_session(session_id, **kwargs)  # type: ignore[no-untyped-call]
        await self._changed()

    async def delete_session(self, session_id: str) -> None:
        await super().delete_session(session_id)  # type: ignore[no-untyped-call]
        await self._changed()


class SessionIndex:
    """path -> kernel id of the server's sessions, kept current."""

    def __init__(
        self,
        session_manager: SessionManager,
        log: Log,
        on_change: Callable[[], None] | None = None,
    ):
        self.session_manager = session_manager
        self.log = log
        self.kernel_by_path: dict[str, str] = {}
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self._installed = False

    @property
    def notified(self) -> bool:
        """Whether the session manager reports its changes (periodic re-reads still catch
        sessions culled with their kernel)."""
        return isinstance(self.session_manager, CollabSessionManager)

    def install(self) -> None:
        sm = self.session_manager
        if isinstance(sm, CollabSessionManager) and not self._installed:
            sm.add_change_listener(self._session_changed)
            self._installed = True
        elif not isinstance(sm, CollabSessionManager):
            self.log.info(
                "collab_kernels: ServerApp.session_manager_class is %s (not derived from %s): "
                "session changes are seen on the next periodic re-read",
                type(sm).__name__,
                CollabSessionManager.__name__,
            )

    def uninstall(self) -> None:
        sm = self.session_manager
        if isinstance(sm, CollabSessionManager) and self._installed:
            sm.remove_change_listener(self._session_changed)
            self._installed = False

    async def _session_changed(self) -> None:
        try:
            await self.refresh()
        except Exception:
            self.log.exception("collab_kernels: refreshing the session index failed")

    async def refresh(self) -> dict[str, str]:
        async with self._lock:
            sessions = await self.session_manager.list_sessions()  # type: ignore[no-untyped-call]
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
            self._on_change()
        return mapping

    def kernel_for_path(self, path: str) -> str | None:
        return self.kernel_by_path.get(path.strip("/"))

    def paths_for_kernel(self, kernel_id: str) -> set[str]:
        return {p for p, k in self.kernel_by_path.items() if k == kernel_id}
