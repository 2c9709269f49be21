"""Every handler the server exposes asks the authorizer; no page carries another's token.

When the extension loads, :func:`secure_web_app` walks the tornado routing table of the
server (``web_app.default_router``, which holds every extension's rules and, last,
``web_app.wildcard_router`` with jupyter_server's own) and replaces each handler class
deriving from ``JupyterHandler`` by a subclass made once per class (:func:`guarded_class`).
The subclass is a class-level wrapper; no upstream class or instance is patched:

- its ``prepare`` asks the server's authorizer, after authentication and before any
  handler method runs, for the (action, resource) that :data:`POLICY` names for the class,
  and answers 403 when refused. Classes that already ask the authorizer in each method
  (jupyter_server's services, jupyter_server_fileid, the terminals, jupyter-lsp, ours) are
  marked :data:`ASKS_ITSELF` and get no second question; classes upstream leaves open
  (jupyterlab_server's settings, workspaces, listings and pages, JupyterLab's build,
  extension and plugin managers) get an explicit entry; any class this table does not know
  gets :data:`DEFAULT` (read for GET/HEAD/OPTIONS, execute for websockets, write for the
  rest, on its ``auth_resource`` or ``server``), so a new upstream handler is closed to
  roles without write rights until someone decides otherwise;
- its ``template_namespace`` renders ``token`` as :func:`~.tokens.page_token` decides (the
  user's own or none), for every page and HTML error page, static file handlers included.

Methods marked ``@allow_unauthenticated`` (login, logout, static files, redirects) are not
asked about. ``tests/test_security_handlers.py`` walks the same table: a viewer gets 403 for
every state-changing method of every route.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web
from tornado.routing import Rule
from tornado.websocket import WebSocketHandler

from .tokens import page_token


@dataclass(frozen=True)
class Check:
    """The authorizer question a guarded handler asks before any of its methods runs."""

    resource: str
    #: HTTP method -> action, where it differs from jupyter_server's usual mapping
    actions: dict[str, str] = field(default_factory=dict)

    def action_for(self, method: str, websocket: bool) -> str:
        if method in self.actions:
            return self.actions[method]
        if websocket and method == "GET":
            return "execute"
        return HTTP_METHOD_TO_AUTH_ACTION.get(method, "write")


#: the class asks the authorizer itself in every method (the handler walk test checks it)
ASKS_ITSELF = None

#: what a handler class this table does not know is asked (its auth_resource, if any)
DEFAULT_RESOURCE = "server"

#: per handler class (module and qualified name of the class as upstream defines it)
POLICY: dict[str, Check | None] = {
    # jupyterlab_server and JupyterLab: only @web.authenticated upstream
    "jupyterlab_server.settings_handler.SettingsHandler": Check("settings"),
    "jupyterlab_server.workspaces_handler.WorkspacesHandler": Check("workspaces"),
    "jupyterlab_server.listings_handler.ListingsHandler": Check("listings"),
    "jupyterlab_server.handlers.LabHandler": Check("lab"),
    "jupyterlab_server.handlers.NotFoundHandler": Check("lab"),
    "jupyterlab_server.translations_handler.TranslationsHandler": Check("lab"),
    "jupyterlab_server.licenses_handler.LicensesHandler": Check("lab"),
    "jupyterlab.handlers.announcements.CheckForUpdateHandler": Check("lab"),
    "jupyterlab.handlers.announcements.NewsHandler": Check("lab"),
    "jupyterlab.handlers.build_handler.BuildHandler": Check("build"),
    "jupyterlab.handlers.extension_manager_handler.ExtensionHandler": Check("extensions"),
    "jupyterlab.handlers.plugin_manager_handler.PluginHandler": Check("plugins"),
    # jupyter_server: /api/me reads (GET) and updates (PATCH) the requester's own identity
    # only; its answer lists the permissions it asks the authorizer about
    "jupyter_server.services.api.handlers.IdentityHandler": ASKS_ITSELF,
    # jupyter_server: @authorized on every method
    "jupyter_server.base.handlers.AuthenticatedFileHandler": ASKS_ITSELF,
    "jupyter_server.services.api.handlers.APISpecHandler": ASKS_ITSELF,
    "jupyter_server.services.api.handlers.APIStatusHandler": ASKS_ITSELF,
    "jupyter_server.services.api.handlers.PathResolverHandler": ASKS_ITSELF,
    "jupyter_server.services.config.handlers.ConfigHandler": ASKS_ITSELF,
    "jupyter_server.services.contents.handlers.CheckpointsHandler": ASKS_ITSELF,
    "jupyter_server.services.contents.handlers.ModifyCheckpointsHandler": ASKS_ITSELF,
    "jupyter_server.services.contents.handlers.TrustNotebooksHandler": ASKS_ITSELF,
    "jupyter_server.services.contents.handlers.ContentsHandler": ASKS_ITSELF,
    "jupyter_server.services.kernels.handlers.MainKernelHandler": ASKS_ITSELF,
    "jupyter_server.services.kernels.handlers.KernelHandler": ASKS_ITSELF,
    "jupyter_server.services.kernels.handlers.KernelActionHandler": ASKS_ITSELF,
    "jupyter_server.services.kernels.websocket.KernelWebsocketHandler": ASKS_ITSELF,
    "jupyter_server.kernelspecs.handlers.KernelSpecResourceHandler": ASKS_ITSELF,
    "jupyter_server.services.kernelspecs.handlers.MainKernelSpecHandler": ASKS_ITSELF,
    "jupyter_server.services.kernelspecs.handlers.KernelSpecHandler": ASKS_ITSELF,
    "jupyter_server.nbconvert.handlers.NbconvertFileHandler": ASKS_ITSELF,
    "jupyter_server.nbconvert.handlers.NbconvertPostHandler": ASKS_ITSELF,
    "jupyter_server.services.nbconvert.handlers.NbconvertRootHandler": ASKS_ITSELF,
    "jupyter_server.services.security.handlers.CSPReportHandler": ASKS_ITSELF,
    "jupyter_server.services.sessions.handlers.SessionHandler": ASKS_ITSELF,
    "jupyter_server.services.sessions.handlers.SessionRootHandler": ASKS_ITSELF,
    "jupyter_server.services.shutdown.ShutdownHandler": ASKS_ITSELF,
    "jupyter_server.view.handlers.ViewHandler": ASKS_ITSELF,
    "jupyter_server.services.events.handlers.EventHandler": ASKS_ITSELF,
    "jupyter_server.services.events.handlers.SubscribeWebsocket": ASKS_ITSELF,
    # jupyter_server_fileid, jupyter_server_terminals, jupyter-lsp: @authorized / pre_get
    "jupyter_server_fileid.handler.FileIDHandler": ASKS_ITSELF,
    "jupyter_server_fileid.handler.FilePathHandler": ASKS_ITSELF,
    "jupyter_server_terminals.api_handlers.TerminalRootHandler": ASKS_ITSELF,
    "jupyter_server_terminals.api_handlers.TerminalHandler": ASKS_ITSELF,
    "jupyter_server_terminals.handlers.TermSocket": ASKS_ITSELF,
    "jupyter_lsp.handlers.LanguageServersHandler": ASKS_ITSELF,
    "jupyter_lsp.handlers.LanguageServerWebSocketHandler": ASKS_ITSELF,
    # collab_kernels
    "collab_kernels.rooms.handlers.SessionHandler": ASKS_ITSELF,
    "collab_kernels.rooms.handlers.RoomWebsocketHandler": ASKS_ITSELF,
    "collab_kernels.execution.handlers.ExecuteHandler": ASKS_ITSELF,
    "collab_kernels.execution.handlers.RequestHandler": ASKS_ITSELF,
    "collab_kernels.execution.handlers.KernelRequestsHandler": ASKS_ITSELF,
    "collab_kernels.execution.handlers.InputHandler": ASKS_ITSELF,
    "collab_kernels.execution.handlers.AllRequestsHandler": ASKS_ITSELF,
    "collab_kernels.teaching.handlers.PresenceHandler": ASKS_ITSELF,
}


def class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_for(cls: type) -> Check | None:
    """The question asked before a method of ``cls`` runs (``None``: the class asks)."""
    key = class_key(cls)
    if key in POLICY:
        return POLICY[key]
    return Check(getattr(cls, "auth_resource", None) or DEFAULT_RESOURCE)


class GuardMixin:
    """Put in front of a handler class by :func:`guarded_class`; see the module docstring."""

    collab_kernels_guarded = True
    collab_kernels_check: Check | None = None

    if TYPE_CHECKING:  # attributes of the JupyterHandler this is mixed into
        request: Any
        current_user: Any
        authorizer: Any
        _finished: bool

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        result = super().prepare(*args, **kwargs)  # type: ignore[misc]
        if inspect.isawaitable(result):
            await result
        if self._finished:
            return
        check = self.collab_kernels_check
        method = (self.request.method or "").upper()
        if check is None or not method:
            return
        handler_method = getattr(self, method.lower(), None)
        if handler_method is None or getattr(handler_method, "__allow_unauthenticated", False):
            return
        user = self.current_user
        if not user:
            return  # not logged in: the method's own @web.authenticated refuses it
        action = check.action_for(method, isinstance(self, WebSocketHandler))
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, action, check.resource)
        )
        if not allowed:
            raise web.HTTPError(
                403, f"User is not authorized to {action} on resource: {check.resource}."
            )

    @property
    def template_namespace(self) -> dict[str, Any]:
        namespace = dict(super().template_namespace)  # type: ignore[misc]
        namespace["token"] = page_token(self)
        return namespace


class LicensesFinishRepair:
    """jupyterlab_server's ``LicensesHandler.finish`` is a coroutine taking the MIME type
    first: the error path (``write_error`` -> ``finish(body)``) never awaits it, so every
    error answer (a 403, a 405) left the client waiting for ever."""

    def finish(self, *args: Any, _mime_type: str | None = None, **kwargs: Any) -> Any:
        if _mime_type is None:  # the error path: APIHandler's own finish
            return APIHandler.finish(self, *args, **kwargs)  # type: ignore[arg-type]
        return super().finish(_mime_type, *args, **kwargs)  # type: ignore[misc]


#: mixins put in front of a few upstream classes whose error path is broken
REPAIRS: dict[str, type] = {
    "jupyterlab_server.licenses_handler.LicensesHandler": LicensesFinishRepair,
}

_GUARDED: dict[type, type] = {}


def guarded_class(cls: type) -> type:
    """The guarded subclass of a ``JupyterHandler`` class (made once per class)."""
    if getattr(cls, "collab_kernels_guarded", False):
        return cls
    guarded = _GUARDED.get(cls)
    if guarded is None:
        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "collab_kernels_check": check_for(cls),
            "collab_kernels_original": cls,
        }
        repair = REPAIRS.get(class_key(cls))
        bases = (GuardMixin, cls) if repair is None else (GuardMixin, repair, cls)
        guarded = type(cls.__name__, bases, namespace)
        _GUARDED[cls] = guarded
    return guarded


def iter_rules(router: Any) -> Iterator[Rule]:
    """Every rule whose target is a handler class, through nested routers."""
    for rule in getattr(router, "rules", ()):
        target = rule.target
        if hasattr(target, "rules"):
            yield from iter_rules(target)
        else:
            yield rule


def secure_web_app(web_app: Any) -> int:
    """Guard every ``JupyterHandler`` class routed by ``web_app``; returns how many it changed.

    Idempotent: the extension calls it when it loads, once every extension has loaded, and
    when the server starts (extensions load after ours, alphabetically).
    """
    changed = 0
    for rule in iter_rules(web_app.default_router):
        target = rule.target
        if not (isinstance(target, type) and issubclass(target, JupyterHandler)):
            continue
        guarded = guarded_class(target)
        if guarded is not target:
            rule.target = guarded
            if hasattr(rule, "handler_class"):
                rule.handler_class = guarded  # URLSpec keeps both names
            changed += 1
    return changed


__all__ = [
    "ASKS_ITSELF",
    "POLICY",
    "Check",
    "check_for",
    "guarded_class",
    "iter_rules",
    "secure_web_app",
]
