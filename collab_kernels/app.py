"""The Jupyter server extension: wires the stages together."""

from __future__ import annotations

from functools import partial

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
from .layer import KernelLayer, select_kernel_layer, verify_kernel_layer
from .rooms.content import prefer_local_file_ids
from .rooms.handlers import default_handlers as room_handlers
from .rooms.manager import RoomManager
from .security.guard import secure_web_app
from .security.logs import install_scrubber
from .security.tokens import page_config_hook
from .teaching.auth import ClassroomIdentityProvider, RoleAuthorizer
from .teaching.handlers import default_handlers as teaching_handlers


async def _route_adopted(
    execution_manager: ExecutionManager, kernel_id: str, inflight: dict
) -> None:
    """Route the buffered output of an adopted kernel's running cells to those cells (as
    for an execution a browser sent: appended to what the cell already shows), their
    documents loaded first (the replay follows at once)."""
    from .execution.routing import Route

    link = execution_manager.link_for(kernel_id)
    if link is None:
        return
    for document_id in {request["document_id"] for request in inflight.values()}:
        await execution_manager.writers.get(document_id).get_room()
    for msg_id, request in inflight.items():
        route = Route(request["document_id"], request["cell_id"], external=True)
        route.execution_count = request.get("execution_count")
        link.routes.add(msg_id, route)


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

    #: The kernel layer in force (see collab_kernels/layer.py): "shared", "gateway",
    #: "foreign" or "off".
    kernel_layer: KernelLayer = "off"

    #: The stages' managers, made by initialize_settings (None while the server has not
    #: got that far: stop_extension may run after a failed start).
    room_manager: RoomManager | None = None
    execution_manager: ExecutionManager | None = None

    def _link_jupyter_server_extension(self, serverapp):
        # First: the configuration dumps of every extension's link (debug level) name tokens.
        install_scrubber(serverapp, loggers=[serverapp.log])
        super()._link_jupyter_server_extension(serverapp)
        prefer_local_file_ids(serverapp)  # rooms follow files moved outside Jupyter
        # Runs before ServerApp.init_configurables creates the managers. (The server's log:
        # this extension's own logger is not set up yet at link time.) With the shared
        # layer, sessions report their changes to the execution stage (execution/sessions.py).
        self.kernel_layer = select_kernel_layer(
            serverapp,
            serverapp.log,
            enabled=self.shared_kernel_client,
            shared_classes={"session_manager_class": CollabSessionManager},
        )

    def initialize_settings(self):
        serverapp = self.serverapp
        self.kernel_layer = verify_kernel_layer(serverapp, serverapp.log, self.kernel_layer)
        self.room_manager = room_manager = RoomManager(
            parent=self,
            log=self.log,
            contents_manager=serverapp.contents_manager,
            event_logger=serverapp.event_logger,
            # jupyter_server_fileid may initialize after us: the manager reads it lazily.
            web_settings=serverapp.web_app.settings,
            data_dir=serverapp.data_dir,
        )
        self.execution_manager = execution_manager = ExecutionManager(
            parent=self,
            log=self.log,
            room_manager=room_manager,
            kernel_manager=serverapp.kernel_manager,
            session_manager=serverapp.session_manager,
        )
        km = serverapp.kernel_manager
        if isinstance(km, CollabGatewayMappingKernelManager):
            # Gateway kernels that outlived the previous server process: adopted, and the
            # output the gateway buffered for their running cells routed to those cells.
            km.add_adoption_listener(partial(_route_adopted, execution_manager))
            km.adopt_session_kernels(serverapp.session_manager)
        self.settings.update(
            {
                handlers_base.ROOM_MANAGER: room_manager,
                handlers_base.EXECUTION_MANAGER: execution_manager,
                handlers_base.JSON_MAX_DEPTH: self.json_max_depth,
            }
        )
        settings = serverapp.web_app.settings
        hook = settings.get("page_config_hook")
        if not getattr(hook, "collab_kernels_token_hook", False):
            settings["page_config_hook"] = page_config_hook(hook)
        self._secure(serverapp)
        page_config = settings.setdefault("page_config_data", {})
        server_side = self.server_side_execution and self.kernel_layer == "shared"
        page_config["serverSideExecution"] = "true" if server_side else "false"

    def _secure(self, serverapp) -> None:
        """Token scrubbing in every log handler; handler guards (security/guard.py).

        Extensions load alphabetically, most after this one: the routing table is guarded
        now, again on the event loop's first turn (every extension has loaded by then, no
        request has been read yet) and once more when the server starts.
        """
        install_scrubber(serverapp.identity_provider, loggers=[serverapp.log, self.log])
        web_app = serverapp.web_app
        secure_web_app(web_app)
        serverapp.io_loop.add_callback(secure_web_app, web_app)

    async def _start_jupyter_server_extension(self, serverapp):
        secure_web_app(serverapp.web_app)

    def initialize_handlers(self):
        self.handlers.extend(room_handlers)
        self.handlers.extend(execution_handlers)
        self.handlers.extend(teaching_handlers)

    async def stop_extension(self):
        # (the server may have failed before initialize_settings created them)
        if self.execution_manager is not None:
            await self.execution_manager.stop()
        if self.room_manager is not None:
            await self.room_manager.stop()


main = launch_new_instance = CollabKernelsApp.launch_instance
