"""The Jupyter server extension: wires the stages together."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Int

from . import handlers_base
from ._version import __version__
from .execution.handlers import default_handlers as execution_handlers
from .execution.manager import ExecutionManager
from .execution.sessions import CollabSessionManager
from .kernels.client import SharedKernelClient
from .kernels.gateway import (
    CollabGatewayKernelManager,
    CollabGatewayMappingKernelManager,
    GatewayKernelClient,
)
from .kernels.manager import SharedClientKernelManager, SharedClientMappingKernelManager
from .kernels.websocket import SharedClientWebsocketConnection
from .rooms.handlers import default_handlers as room_handlers
from .rooms.manager import RoomManager
from .teaching.auth import ClassroomIdentityProvider, RoleAuthorizer, hide_server_token
from .teaching.handlers import default_handlers as teaching_handlers


class CollabKernelsApp(ExtensionApp):
    """Collaborative documents owned by the server, listening to shared kernel clients."""

    name = "collab_kernels"
    description = __doc__
    version = __version__
    load_other_extensions = True

    # Every configurable class of the package, so that `jupyter server --help-all` and the
    # configuration reference list their settings (tests/test_extension.py checks this).
    classes = [
        *ExtensionApp.classes,  # the ServerApp
        RoomManager,
        ExecutionManager,
        CollabSessionManager,
        SharedClientMappingKernelManager,
        SharedClientKernelManager,
        SharedKernelClient,
        CollabGatewayMappingKernelManager,
        CollabGatewayKernelManager,
        GatewayKernelClient,
        SharedClientWebsocketConnection,
        RoleAuthorizer,
        ClassroomIdentityProvider,
    ]

    shared_kernel_client = Bool(
        True,
        config=True,
        help=(
            "Use one shared kernel client (one set of ZMQ sockets) per kernel and make every "
            "kernel websocket and every document a listener on it. Turning this off leaves "
            "jupyter_server's kernel layer untouched; documents then cannot receive kernel "
            "output and server-side execution is unavailable."
        ),
    )

    server_side_execution = Bool(
        True,
        config=True,
        help=(
            "Tell the JupyterLab frontend (page config 'serverSideExecution') to run cells "
            "through POST /api/kernels/{id}/execute, so the server writes outputs into the "
            "shared document instead of each browser."
        ),
    )

    json_max_depth = Int(
        handlers_base.DEFAULT_JSON_MAX_DEPTH,
        min=2,
        config=True,
        help=(
            "Deepest nesting of lists and objects accepted in the JSON body of a request to "
            "collab_kernels' endpoints; deeper bodies answer 400 (deep bodies would otherwise "
            "exhaust the recursion limit of the code that reads them)."
        ),
    )

    def _link_jupyter_server_extension(self, serverapp):
        super()._link_jupyter_server_extension(serverapp)
        if not self.shared_kernel_client:
            return
        # Runs before ServerApp.init_configurables: choose the kernel layer classes unless
        # the user configured their own on purpose.
        from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

        # Do not read serverapp.kernel_manager_class here: its default needs
        # ServerApp.gateway_config, which does not exist yet at link time.
        configured = serverapp._trait_values.get("kernel_manager_class")
        if configured is None and serverapp.config.get("GatewayClient", {}).get("url"):
            configured = "gateway"
        if (
            configured is None
            or configured is AsyncMappingKernelManager
            or (isinstance(configured, str) and configured.endswith("AsyncMappingKernelManager"))
        ):
            serverapp.kernel_manager_class = SharedClientMappingKernelManager
            if serverapp._trait_values.get("session_manager_class") is None:
                # Sessions report their changes to the execution stage (execution/sessions.py).
                serverapp.session_manager_class = CollabSessionManager
        else:
            self.log.warning(
                "collab_kernels: ServerApp.kernel_manager_class is set to %s; documents will "
                "not receive kernel output unless it derives from %s",
                configured,
                SharedClientMappingKernelManager.__name__,
            )
        serverapp.kernel_websocket_connection_class = SharedClientWebsocketConnection

    def initialize_settings(self):
        serverapp = self.serverapp
        self.room_manager = RoomManager(
            parent=self,
            log=self.log,
            contents_manager=serverapp.contents_manager,
            event_logger=serverapp.event_logger,
            # jupyter_server_fileid may initialize after us: the manager reads it lazily.
            web_settings=serverapp.web_app.settings,
        )
        self.execution_manager = ExecutionManager(
            parent=self,
            log=self.log,
            room_manager=self.room_manager,
            kernel_manager=serverapp.kernel_manager,
            session_manager=serverapp.session_manager,
        )
        self.settings.update(
            {
                handlers_base.ROOM_MANAGER: self.room_manager,
                handlers_base.EXECUTION_MANAGER: self.execution_manager,
                handlers_base.JSON_MAX_DEPTH: self.json_max_depth,
            }
        )
        settings = serverapp.web_app.settings
        if isinstance(serverapp.identity_provider, ClassroomIdentityProvider):
            settings["page_config_hook"] = hide_server_token(settings.get("page_config_hook"))
        page_config = settings.setdefault("page_config_data", {})
        page_config["serverSideExecution"] = "true" if self.server_side_execution else "false"

    def initialize_handlers(self):
        self.handlers.extend(room_handlers)
        self.handlers.extend(execution_handlers)
        self.handlers.extend(teaching_handlers)

    async def stop_extension(self):
        await self.execution_manager.stop()
        await self.room_manager.stop()


main = launch_new_instance = CollabKernelsApp.launch_instance
