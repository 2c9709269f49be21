"""Which kernel layer the server runs: ours (shared clients) or jupyter_server's own.

Chosen when collab_kernels is linked, before ``ServerApp.init_configurables`` creates the
managers, and checked again once they exist (``verify_kernel_layer``):

- kernels run on a gateway (``GatewayClient.url`` from config, the command line's
  ``--gateway-url`` or ``JUPYTER_GATEWAY_URL``): ``"shared"`` with the gateway kernel manager
  with shared clients (``kernels/gateway/``: a subclass of both managers), our kernel
  websocket and session manager, when the kernel manager is not configured, is configured
  to jupyter_server's gateway default, to ours (its gateway variant is used) or to a
  subclass of the gateway variant. ``"gateway"`` for any other configured kernel manager:
  jupyter_server's gateway classes stay (kernel manager, session manager, websocket
  connection) and documents are not kernel listeners there.
- ``"shared"``: ``SharedClientMappingKernelManager`` and ``SharedClientWebsocketConnection``.
  Chosen when ``ServerApp.kernel_manager_class`` is not configured, is configured to ours (or
  a subclass), or to jupyter_server's default spelled out (``AsyncMappingKernelManager``, of
  which ours is a subclass keeping every stock behaviour).
- ``"foreign"``: any other configured kernel manager class is respected, with jupyter_server's
  kernel websocket, and a warning: documents receive no kernel output.
- ``"off"``: ``CollabKernelsApp.shared_kernel_client = False``.

The choice is written into the server's config, not only its traits: every extension linked
after us pushes its config to the server, which reloads the traits from the config and would
otherwise undo a choice made on the traits alone.
"""

from __future__ import annotations

import logging
import typing as t
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config import Config

from .kernels.manager import SharedClientMappingKernelManager
from .kernels.websocket import SharedClientWebsocketConnection

KernelLayer = t.Literal["shared", "gateway", "foreign", "off"]

GATEWAY_NOTE = (
    "collab_kernels: kernels run on the gateway at %s; jupyter_server's gateway kernel "
    "manager, session manager and websocket connection are kept, and documents are not "
    "kernel listeners (the server writes no kernel output into documents and server-side "
    "execution is unavailable)"
)

Log = logging.Logger | logging.LoggerAdapter[t.Any]


def gateway_url(serverapp: t.Any) -> str | None:
    """The gateway URL the server will use, or None (read as ``GatewayClient`` reads it).

    ``ServerApp.gateway_config`` does not exist yet when extensions are linked; a throwaway
    ``GatewayClient`` with the server as parent sees the same config, command line and
    environment the server's own instance will.
    """
    existing = getattr(serverapp, "gateway_config", None)
    client = existing if isinstance(existing, GatewayClient) else GatewayClient(parent=serverapp)
    return client.url if client.gateway_enabled else None


def _for_log(url: str) -> str:
    """The gateway URL without credentials or query (logs never carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _configured(serverapp: t.Any, name: str) -> type | None:
    # (reading the trait when unset would compute its default, which needs gateway_config)
    if serverapp.trait_has_value(name):
        return t.cast(type, getattr(serverapp, name))
    return None


def _is_ours(cls: type | None, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def _write(serverapp: t.Any, **classes: type) -> None:
    serverapp.update_config(Config({"ServerApp": dict(classes)}))


def select_kernel_layer(
    serverapp: t.Any,
    log: Log,
    *,
    enabled: bool = True,
    shared_classes: dict[str, type] | None = None,
) -> KernelLayer:
    """Choose and install the kernel layer classes (at link time); see the module doc.

    ``shared_classes``: further ``ServerApp`` class traits to install with the shared layer
    (such as a session manager class), each unless configured.
    """
    if not enabled:
        return "off"
    manager = _configured(serverapp, "kernel_manager_class")
    websocket = _configured(serverapp, "kernel_websocket_connection_class")
    url = gateway_url(serverapp)
    if url is not None:
        from jupyter_server.gateway.connections import GatewayWebSocketConnection
        from jupyter_server.gateway.managers import GatewayMappingKernelManager

        from .kernels.gateway import CollabGatewayMappingKernelManager

        install_gw: dict[str, type] = {}
        local_ours = _is_ours(manager, SharedClientMappingKernelManager) and not _is_ours(
            manager, GatewayMappingKernelManager
        )
        if manager is None or manager is GatewayMappingKernelManager or local_ours:
            # (our local manager cannot reach a gateway: its gateway variant is meant)
            manager = install_gw["kernel_manager_class"] = CollabGatewayMappingKernelManager
        if _is_ours(manager, SharedClientMappingKernelManager) and _is_ours(
            manager, GatewayMappingKernelManager
        ):
            # A gateway kernel manager with shared clients (kernels/gateway/).
            log.info(
                "collab_kernels: kernels run on the gateway at %s, each with one shared "
                "client (%s)",
                _for_log(url),
                t.cast(type, manager).__name__,
            )
            if websocket is None or websocket is GatewayWebSocketConnection:
                install_gw["kernel_websocket_connection_class"] = SharedClientWebsocketConnection
            for name, cls in (shared_classes or {}).items():
                if _configured(serverapp, name) is None:
                    install_gw[name] = cls
            _write(serverapp, **install_gw)
            return "shared"
        restore: dict[str, type] = {}
        if _is_ours(websocket, SharedClientWebsocketConnection):
            restore["kernel_websocket_connection_class"] = GatewayWebSocketConnection
        if restore:
            log.warning(
                "collab_kernels: its kernel websocket needs its kernel manager; with %s "
                "using jupyter_server's %s instead",
                t.cast(type, manager).__name__,
                ", ".join(cls.__name__ for cls in restore.values()),
            )
            _write(serverapp, **restore)
        log.info(GATEWAY_NOTE, _for_log(url))
        return "gateway"
    if (
        manager is None
        or manager is AsyncMappingKernelManager
        or _is_ours(manager, SharedClientMappingKernelManager)
    ):
        if manager is AsyncMappingKernelManager:
            log.info(
                "collab_kernels: ServerApp.kernel_manager_class is jupyter_server's default "
                "(AsyncMappingKernelManager); using its subclass %s (shared kernel clients). "
                "Set CollabKernelsApp.shared_kernel_client = False to keep the stock class.",
                SharedClientMappingKernelManager.__name__,
            )
        install: dict[str, type] = {}
        if not _is_ours(manager, SharedClientMappingKernelManager):
            install["kernel_manager_class"] = SharedClientMappingKernelManager
        if websocket is None or websocket is ZMQChannelsWebsocketConnection:
            install["kernel_websocket_connection_class"] = SharedClientWebsocketConnection
        elif not _is_ours(websocket, SharedClientWebsocketConnection):
            log.warning(
                "collab_kernels: ServerApp.kernel_websocket_connection_class is configured "
                "to %s; kernel websockets use it, not the shared kernel client",
                websocket.__name__,
            )
        for name, cls in (shared_classes or {}).items():
            if _configured(serverapp, name) is None:
                install[name] = cls
        if install:
            _write(serverapp, **install)
        return "shared"
    log.warning(
        "collab_kernels: ServerApp.kernel_manager_class is configured to %s.%s; it is kept, "
        "with jupyter_server's kernel websockets, so documents receive no kernel output and "
        "server-side execution is unavailable. Use a subclass of %s to keep both.",
        manager.__module__,
        manager.__name__,
        SharedClientMappingKernelManager.__name__,
    )
    if _is_ours(websocket, SharedClientWebsocketConnection):
        _write(serverapp, kernel_websocket_connection_class=ZMQChannelsWebsocketConnection)
    return "foreign"


def verify_kernel_layer(serverapp: t.Any, log: Log, chosen: KernelLayer) -> KernelLayer:
    """The layer actually in place once the managers exist (after every config push).

    Never leaves our websocket class in front of a kernel manager that is not ours.
    """
    if chosen == "off":
        return chosen
    if chosen == "shared" and isinstance(
        serverapp.kernel_manager, SharedClientMappingKernelManager
    ):
        return "shared"
    if getattr(serverapp, "gateway_config", None) is not None and (
        serverapp.gateway_config.gateway_enabled
    ):
        if chosen != "gateway":  # enabled by config pushed after collab_kernels was linked
            log.warning(GATEWAY_NOTE, _for_log(serverapp.gateway_config.url))
        return "gateway"
    if isinstance(serverapp.kernel_manager, SharedClientMappingKernelManager):
        return "shared"
    settings = serverapp.web_app.settings
    websocket = settings.get("kernel_websocket_connection_class")
    if _is_ours(websocket, SharedClientWebsocketConnection):
        settings["kernel_websocket_connection_class"] = ZMQChannelsWebsocketConnection
    if chosen == "shared":
        log.warning(
            "collab_kernels: the kernel manager class was changed after collab_kernels chose "
            "its own (now %s); kernel websockets use jupyter_server's class and documents "
            "receive no kernel output",
            type(serverapp.kernel_manager).__name__,
        )
    return "foreign"


__all__ = ["KernelLayer", "gateway_url", "select_kernel_layer", "verify_kernel_layer"]
