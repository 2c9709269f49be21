"""Which kernel layer a real server ends up with (collab_kernels/layer.py): gateway
deployments get the gateway kernel manager with shared clients whichever way the gateway is
configured (jupyter_server's gateway classes stay only for a configured gateway manager),
configured kernel manager classes are respected deliberately, and a server that failed to
start stops cleanly (issue #20, points 2 to 4)."""

from __future__ import annotations

import logging
import socket

import pytest
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import GatewayMappingKernelManager
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config import Config

from collab_kernels.kernels.manager import SharedClientMappingKernelManager
from collab_kernels.kernels.websocket import SharedClientWebsocketConnection

MANAGER = "collab_kernels.kernels.manager.SharedClientMappingKernelManager"
WEBSOCKET = "collab_kernels.kernels.websocket.SharedClientWebsocketConnection"


class UsersOwnKernelManager(AsyncMappingKernelManager):
    """A kernel manager class a user configures on purpose."""


class BrokenContentsManager(AsyncLargeFileManager):
    def __init__(self, **kwargs: object) -> None:
        raise RuntimeError("disk unavailable")


def _collab_app(serverapp):
    point = serverapp.extension_manager.extensions["collab_kernels"].extension_points
    return point["collab_kernels"].app


class Collect(logging.Handler):
    """A log handler keeping collab_kernels' lines (configured through logging_config)."""

    messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("collab_kernels:"):
            self.messages.append(message)


@pytest.fixture
def server_log():
    """What collab_kernels logs on the server's log while the server starts, through a
    handler added with ``ServerApp.logging_config`` (as a deployment adds one)."""
    Collect.messages = []
    yield Collect.messages


@pytest.fixture
def start_server(jp_environ, jp_root_dir, jp_http_port, jp_asyncio_loop, server_log):
    """Start a ServerApp the way ``jupyter server`` does, up to serving (no HTTP socket).

    pytest-jupyter's factory drops the server's log handlers before initializing it, which
    would hide what is logged while extensions are linked."""
    from jupyter_server.serverapp import ServerApp

    started = []

    def start(config: Config, argv: list[str] | None = None) -> ServerApp:
        ServerApp.clear_instance()
        app = ServerApp.instance(
            config=config,
            root_dir=str(jp_root_dir),
            port=jp_http_port,
            port_retries=0,
            open_browser=False,
            allow_root=True,
        )
        started.append(app)
        app.initialize(argv=argv or [], new_httpserver=False)
        return app

    yield start
    for app in started:
        jp_asyncio_loop.run_until_complete(app.extension_manager.stop_all_extensions())
    ServerApp.clear_instance()


def _base_config(**serverapp: object) -> Config:
    logging_config = {
        "handlers": {"collect": {"class": f"{__name__}.Collect", "level": "DEBUG"}},
        "loggers": {"ServerApp": {"handlers": ["console", "collect"]}},
    }
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
                "logging_config": logging_config,
                **serverapp,
            }
        }
    )


# ------------------------------------------------------------------ gateway (#20.2)


@pytest.fixture
def closed_port_url():
    """A gateway URL on loopback where nothing listens (only startup is checked)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fresh_gateway_client():
    GatewayClient.clear_instance()
    yield
    GatewayClient.clear_instance()


class UsersOwnGatewayManager(GatewayMappingKernelManager):
    """A gateway kernel manager class a user configures on purpose."""


@pytest.mark.parametrize("how", ["env", "config", "command line", "config with our classes"])
async def test_any_gateway_configuration_selects_the_shared_gateway_layer(
    how, start_server, closed_port_url, fresh_gateway_client, monkeypatch, server_log
):
    """(#18.2) Gateway mode from any source: each gateway kernel gets a shared client."""
    from collab_kernels.execution.sessions import CollabSessionManager
    from collab_kernels.kernels.gateway import CollabGatewayMappingKernelManager

    config = _base_config()
    argv: list[str] = []
    if how == "env":
        monkeypatch.setenv("JUPYTER_GATEWAY_URL", closed_port_url)
    elif how == "command line":
        argv = [f"--gateway-url={closed_port_url}"]
    else:
        config.GatewayClient.url = closed_port_url
        if how == "config with our classes":
            config.ServerApp.kernel_manager_class = MANAGER
            config.ServerApp.kernel_websocket_connection_class = WEBSOCKET
    app = start_server(config, argv)
    assert app.gateway_config.gateway_enabled
    assert type(app.kernel_manager) is CollabGatewayMappingKernelManager
    assert type(app.session_manager) is CollabSessionManager
    websocket = app.web_app.settings["kernel_websocket_connection_class"]
    assert websocket is SharedClientWebsocketConnection
    assert _collab_app(app).kernel_layer == "shared"
    notes = [m for m in server_log if "each with one shared client" in m]
    assert len(notes) == 1 and closed_port_url in notes[0]
    assert app.web_app.settings["page_config_data"]["serverSideExecution"] == "true"


async def test_the_gateway_log_line_carries_no_credentials(
    start_server, closed_port_url, fresh_gateway_client, server_log
):
    config = _base_config()
    host_port = closed_port_url.removeprefix("http://")
    config.GatewayClient.url = f"http://gwuser:gwsecret@{host_port}/base?token=gwtoken"
    start_server(config)
    notes = [m for m in server_log if "gateway at" in m]
    assert len(notes) == 1 and f"http://{host_port}/base" in notes[0]
    assert not any("gwsecret" in m or "gwtoken" in m or "gwuser" in m for m in server_log)


async def test_a_configured_gateway_manager_keeps_the_gateway_classes(
    start_server, closed_port_url, fresh_gateway_client, server_log
):
    from jupyter_server.gateway.connections import GatewayWebSocketConnection
    from jupyter_server.gateway.managers import GatewaySessionManager

    config = _base_config(kernel_manager_class=UsersOwnGatewayManager)
    config.GatewayClient.url = closed_port_url
    app = start_server(config)
    assert type(app.kernel_manager) is UsersOwnGatewayManager
    assert type(app.session_manager) is GatewaySessionManager
    websocket = app.web_app.settings["kernel_websocket_connection_class"]
    assert websocket is GatewayWebSocketConnection
    assert _collab_app(app).kernel_layer == "gateway"
    notes = [m for m in server_log if "documents are not kernel listeners" in m]
    assert len(notes) == 1 and closed_port_url in notes[0]
    assert app.web_app.settings["page_config_data"]["serverSideExecution"] == "false"


# ------------------------------------------------------------------ configured classes (#20.4)


async def test_stock_default_spelled_out_is_replaced_even_after_later_config_pushes(
    start_server, server_log
):
    """``kernel_manager_class = AsyncMappingKernelManager`` written in a config file: the link
    hook replaces it by its subclass, and the extensions linked after collab_kernels (here
    jupyter_server_terminals, which pushes its config to the server) do not undo that."""
    config = _base_config(
        kernel_manager_class="jupyter_server.services.kernels.kernelmanager."
        "AsyncMappingKernelManager"
    )
    config.ServerApp.jpserver_extensions["jupyter_server_terminals"] = True
    app = start_server(config)
    assert "jupyter_server_terminals" in app.extension_manager.extensions
    assert type(app.kernel_manager) is SharedClientMappingKernelManager
    websocket = app.web_app.settings["kernel_websocket_connection_class"]
    assert websocket is SharedClientWebsocketConnection
    assert _collab_app(app).kernel_layer == "shared"
    assert any("jupyter_server's default" in m for m in server_log)


async def test_a_users_own_kernel_manager_is_kept_with_the_stock_websocket(
    start_server, server_log
):
    config = _base_config(
        kernel_manager_class=f"{__name__}.UsersOwnKernelManager",
        # a config that also names our websocket class must not end up mixed
        kernel_websocket_connection_class=WEBSOCKET,
    )
    app = start_server(config)
    assert type(app.kernel_manager) is UsersOwnKernelManager
    websocket = app.web_app.settings["kernel_websocket_connection_class"]
    assert websocket is ZMQChannelsWebsocketConnection
    assert _collab_app(app).kernel_layer == "foreign"
    warnings = [m for m in server_log if "UsersOwnKernelManager" in m]
    assert len(warnings) == 1 and "documents receive no kernel output" in warnings[0]
    assert app.web_app.settings["page_config_data"]["serverSideExecution"] == "false"


@pytest.mark.parametrize(
    "jp_server_config", [_base_config(kernel_manager_class=UsersOwnKernelManager)]
)
async def test_kernel_websockets_work_with_a_users_own_kernel_manager(
    jp_serverapp, start_kernel, open_kernel_ws
):
    assert type(jp_serverapp.kernel_manager) is UsersOwnKernelManager
    kid = await start_kernel()
    tab = await open_kernel_ws(kid, "v1")
    msg_id, reply = await tab.run("print('own manager')")
    assert reply["content"]["status"] == "ok"
    assert tab.stream_text(msg_id) == "own manager\n"


# ------------------------------------------------------------------ failed start (#20.3)


async def test_stopping_a_server_that_failed_to_initialize(start_server):
    """The server fails after collab_kernels was linked, before initialize_settings ran:
    stopping its extensions (what embedding code and test fixtures do) must not raise."""
    from jupyter_server.serverapp import ServerApp

    config = _base_config(contents_manager_class=f"{__name__}.BrokenContentsManager")
    with pytest.raises(RuntimeError, match="disk unavailable"):
        start_server(config)
    app = ServerApp.instance()
    collab = _collab_app(app)
    assert collab.execution_manager is None  # initialize_settings never ran
    await app.extension_manager.stop_all_extensions()
