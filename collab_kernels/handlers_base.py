"""One base for collab_kernels' HTTP and websocket handlers.

Every handler of the package reaches the stages' managers through the typed properties of
:class:`CollabHandlerMixin` (never through ``self.settings[...]``), reads JSON bodies through
:meth:`CollabHandlerMixin.json_body` (malformed, non-UTF-8 or too deeply nested JSON answers
400 with a message) and asks the authorizer through :meth:`CollabHandlerMixin.allowed`.

``CollabAPIHandler`` is the base of the REST handlers; websocket handlers mix
``CollabHandlerMixin`` in front of their jupyter_server bases.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from tornado import web

if TYPE_CHECKING:
    from .execution.manager import ExecutionManager
    from .rooms.manager import RoomManager

#: keys of the managers in the tornado settings (set by the extension, app.py)
ROOM_MANAGER = "collab_room_manager"
EXECUTION_MANAGER = "collab_execution_manager"
JSON_MAX_DEPTH = "collab_json_max_depth"

#: used when the extension did not set ``CollabKernelsApp.json_max_depth`` (tests, embedding)
DEFAULT_JSON_MAX_DEPTH = 64


class BadJSON(ValueError):
    """A JSON text that cannot be accepted; the message says why, for a 400 answer."""


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest deeper than ``limit`` (iterative walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(data: bytes | str, *, max_depth: int = DEFAULT_JSON_MAX_DEPTH) -> Any:
    """Parse a JSON text or raise :class:`BadJSON` with a message fit for a client.

    Refuses what is not UTF-8, what is not JSON, ``NaN``/``Infinity`` (not JSON either) and
    lists or objects nested deeper than ``max_depth`` (the C parser's own recursion limit
    surfaces as ``RecursionError``, which is not a ``ValueError``).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as e:
        raise BadJSON(f"the body is not UTF-8 ({e.reason} at byte {e.start})") from None

    def refuse_constant(name: str) -> Any:
        raise BadJSON(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except BadJSON:
        raise
    except RecursionError:
        raise BadJSON(f"lists or objects are nested deeper than {max_depth} levels") from None
    except ValueError as e:
        raise BadJSON(f"not valid JSON ({e})") from None
    if json_depth_exceeds(value, max_depth):
        raise BadJSON(f"lists or objects are nested deeper than {max_depth} levels")
    return value


class CollabHandlerMixin:
    """Typed access to collab_kernels' managers, JSON bodies and the authorizer.

    Mixed into jupyter_server handlers (``JupyterHandler`` subclasses): it relies on their
    ``settings``, ``request``, ``authorizer`` and ``current_user``.
    """

    if TYPE_CHECKING:
        settings: dict[str, Any]
        request: Any
        authorizer: Any
        current_user: Any

    @property
    def room_manager(self) -> RoomManager:
        """The documents (rooms) of the server; 503 if the extension did not set them up."""
        manager = self.settings.get(ROOM_MANAGER)
        if manager is None:
            raise web.HTTPError(503, "Collaborative documents are not available")
        return manager

    @property
    def execution_manager(self) -> ExecutionManager:
        """Server-side execution; 503 if the extension did not set it up."""
        manager = self.settings.get(EXECUTION_MANAGER)
        if manager is None:
            raise web.HTTPError(503, "Server-side execution is not available")
        return manager

    @property
    def has_execution_manager(self) -> bool:
        return self.settings.get(EXECUTION_MANAGER) is not None

    @property
    def json_max_depth(self) -> int:
        return int(self.settings.get(JSON_MAX_DEPTH, DEFAULT_JSON_MAX_DEPTH))

    @property
    def username(self) -> str | None:
        user = self.current_user
        return getattr(user, "username", None) if user else None

    def json_body(self, *, default: Any = None, require_object: bool = True) -> Any:
        """The request body as JSON; 400 with a message for anything malformed.

        An empty body gives ``default`` (an empty object when not given). With
        ``require_object`` the body must be a JSON object.
        """
        body = self.request.body
        if not body or not body.strip():
            value = {} if default is None else default
        else:
            try:
                value = parse_json(body, max_depth=self.json_max_depth)
            except BadJSON as e:
                raise web.HTTPError(400, f"Invalid JSON in the request body: {e}") from None
        if require_object and not isinstance(value, dict):
            raise web.HTTPError(400, "The request body must be a JSON object")
        return value

    async def allowed(self, action: str, resource: str) -> bool:
        """Ask the server's authorizer whether the current user may ``action`` ``resource``."""
        user = self.current_user
        if not user:
            return False
        return bool(await ensure_async(self.authorizer.is_authorized(self, user, action, resource)))


class CollabAPIHandler(CollabHandlerMixin, APIHandler):
    """Base of collab_kernels' REST handlers (JSON errors, authentication, XSRF as upstream)."""


__all__ = [
    "EXECUTION_MANAGER",
    "ROOM_MANAGER",
    "BadJSON",
    "CollabAPIHandler",
    "CollabHandlerMixin",
    "parse_json",
]
