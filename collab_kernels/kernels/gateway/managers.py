"""The gateway kernel managers: jupyter_server's, each kernel with its shared gateway client,
and the adoption of the kernels of saved sessions after a restart (see the package's doc)."""

from __future__ import annotations

import asyncio
import inspect
import typing as t
import uuid
from pathlib import Path

from jupyter_server.gateway.managers import GatewayKernelClient as GatewayKernelClient_
from jupyter_server.gateway.managers import GatewayKernelManager, GatewayMappingKernelManager
from tornado import web
from traitlets import Bool, DottedObjectName, Instance, Type, Unicode, default

from ..client import SharedKernelClient
from ..manager import SharedClientMappingKernelManager
from .client import GatewayKernelClient
from .inprocess import GatewayInProcessClient

#: The namespace of the websocket session ids this server presents to a gateway.
SESSION_NAMESPACE = uuid.UUID("5f3c2b1e-8d4a-4c36-9a57-6f0e4b7d2c19")


AdoptionListener = t.Callable[[str, dict[str, dict[str, t.Any]]], t.Any]


def gateway_session_id(client_id: str, kernel_id: str) -> str:
    """The websocket session id this server uses for a kernel (stable across restarts)."""
    return f"collab-kernels-{uuid.uuid5(SESSION_NAMESPACE, f'{client_id}:{kernel_id}')}"


class CollabGatewayKernelManager(GatewayKernelManager):
    """jupyter_server's gateway kernel manager, with the kernel's shared client."""

    client_class = DottedObjectName("collab_kernels.kernels.gateway.GatewayInProcessClient")
    client_factory = Type(
        GatewayInProcessClient,
        klass=GatewayKernelClient_,
        config=True,
        help=(
            "The class of the clients km.client() returns for a gateway kernel (extensions, "
            "debugger tools); each opens its own websocket to the gateway."
        ),
    )

    shared_client_class = Type(
        GatewayKernelClient,
        klass=GatewayKernelClient,
        config=True,
        help="The class of the shared client of each gateway kernel.",
    )

    shared_client = Instance(SharedKernelClient, allow_none=True)

    def _new_client(self) -> GatewayKernelClient:
        parent = self.parent
        client_id = getattr(parent, "gateway_client_id", "") or uuid.uuid4().hex
        kernel_id = str(self.kernel_id)
        client = self.shared_client_class(
            self,
            session_id=gateway_session_id(client_id, kernel_id),
            parent=self,
            log=self.log,
        )
        client.kernel_id = kernel_id
        inflight_dir = getattr(parent, "inflight_dir", None)
        if inflight_dir is not None:
            client.inflight.path = Path(inflight_dir) / f"{kernel_id}.json"
        return t.cast(GatewayKernelClient, client)

    async def start_kernel(self, **kwargs: t.Any) -> None:  # type: ignore[override]
        adopting = bool(kwargs.pop("collab_adopt", False))
        await super().start_kernel(**kwargs)
        if not self.has_kernel:
            raise web.HTTPError(404, f"Kernel {kwargs.get('kernel_id')} not found on the gateway")
        ready = self.ready
        if not ready.done():
            ready.set_result(None)  # the gateway started it: what ``ready`` means locally
        if self.shared_client is None:
            self.shared_client = self._new_client()
        if not adopting:  # (an adopted kernel connects once its documents are linked)
            self.shared_client.connect()

    async def restart_kernel(self, **kw: t.Any) -> None:  # type: ignore[override]
        client = self.shared_client
        if isinstance(client, GatewayKernelClient):
            client.restarting = True
        try:
            await super().restart_kernel(**kw)
        finally:
            if isinstance(client, GatewayKernelClient):
                client.restarting = False
                if not client.closed:
                    client.reconnect()
                    client.fire_lifecycle("restarted")

    async def shutdown_kernel(  # type: ignore[override]
        self, now: bool = False, restart: bool = False
    ) -> None:
        client = self.shared_client
        if client is not None and not restart and not client.closed:
            client.close()
            client.fire_lifecycle("shutdown")
        if isinstance(client, GatewayKernelClient) and not restart:
            client.inflight.clear()
        await super().shutdown_kernel(now=now, restart=restart)

    async def refresh_model(self, model: dict[str, t.Any] | None = None) -> t.Any:
        """The gateway's model, with this server's own connection count.

        The gateway counts one connection (ours) however many tabs listen; the server's
        ``connections`` (what culling and ``GET /api/kernels`` report) counts tabs.
        """
        mkm = self.parent
        counts = getattr(mkm, "_kernel_connections", None)
        ours = counts.get(self.kernel_id) if counts is not None else None
        result = await super().refresh_model(model)  # type: ignore[no-untyped-call]
        if counts is not None and self.kernel_id is not None:
            counts[self.kernel_id] = ours or 0
        if isinstance(result, dict):
            result = dict(result, connections=ours or 0)
            self.kernel = result  # type: ignore[assignment]
        return result


class CollabGatewayMappingKernelManager(
    GatewayMappingKernelManager, SharedClientMappingKernelManager
):
    """Gateway kernels, each with one shared client; REST calls as jupyter_server's.

    Activity, connection counting and the offline buffer of dropped tabs come from
    ``SharedClientMappingKernelManager`` (listeners on the shared client).
    """

    gateway_client_id = Unicode(
        config=True,
        help=(
            "Identifies this Jupyter server to the gateway: the websocket session id of each "
            "kernel is derived from it and the kernel id, so a restarted server reconnects "
            "under the same session and gets the output the gateway buffered meanwhile. "
            "Default: a new random id per server process."
        ),
    )

    keep_kernels_on_exit = Bool(
        False,
        config=True,
        help=(
            "When the Jupyter server stops, leave its kernels running on the gateway (close "
            "the websockets: the gateway buffers their output) instead of shutting them "
            "down. With SessionManager.database_filepath set, the restarted server adopts "
            "the kernels its sessions point to and gets the buffered output."
        ),
    )

    @default("gateway_client_id")
    def _default_gateway_client_id(self) -> str:
        """A random id kept in the Jupyter data directory (the same after a restart)."""
        from jupyter_core.paths import jupyter_data_dir

        path = Path(jupyter_data_dir()) / "collab_kernels" / "gateway_client_id"
        try:
            existing = path.read_text().strip()
            if existing:
                return existing
        except OSError:
            pass
        value = uuid.uuid4().hex
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)
        except OSError as e:
            self.log.warning(
                "collab_kernels: cannot keep the gateway client id in %s (%s); a restarted "
                "server will not get the output its gateway kernels buffered",
                path,
                e,
            )
        return value

    def __init__(self, **kwargs: t.Any):
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        #: kernel ids of saved sessions being adopted -> the adoption task
        self._adopting: dict[str, asyncio.Future[None]] = {}
        self._adoption_listeners: list[AdoptionListener] = []

    @property
    def inflight_dir(self) -> Path:
        """Where each kernel's running document executions are kept (one JSON file each)."""
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "collab_kernels" / "gateway_inflight"

    def add_adoption_listener(self, callback: AdoptionListener) -> None:
        """``callback(kernel_id, inflight)`` (awaited if it returns an awaitable) when a
        kernel of a saved session is adopted, before its shared client connects (and the
        gateway replays its buffer):
        ``inflight`` maps the msg_id of each execute request that was still running to its
        ``document_id``, ``cell_id`` and ``execution_count``."""
        self._adoption_listeners.append(callback)

    def __contains__(self, kernel_id: str) -> bool:
        # A kernel being adopted counts as present: the session manager would otherwise
        # delete its session as culled before the adoption finished.
        return super().__contains__(kernel_id) or kernel_id in self._adopting

    def adopt_session_kernels(self, session_manager: t.Any) -> None:
        """Adopt the gateway kernels the saved sessions point to (at server start).

        The kernel ids are read from the session table now (before anything lists the
        sessions); each kernel is then looked up on the gateway and, if it still runs, taken
        over as if this server had started it: its shared client reconnects under the
        same session id as before the restart, so the gateway replays what it buffered.
        """
        try:
            rows = session_manager.cursor.execute("SELECT kernel_id FROM session").fetchall()
        except Exception:
            self.log.debug("collab_kernels: no saved sessions to adopt", exc_info=True)
            return
        ids = sorted({row[0] for row in rows if row[0] and row[0] not in self._kernels})
        for kernel_id in ids:
            self._adopting[kernel_id] = asyncio.ensure_future(self._adopt(kernel_id))

    async def _adopt(self, kernel_id: str) -> None:
        try:
            await self.start_kernel(kernel_id=kernel_id, collab_adopt=True)
            client = getattr(self.get_kernel(kernel_id), "shared_client", None)
            if not isinstance(client, GatewayKernelClient):
                raise RuntimeError("no shared gateway client")
            inflight = client.inflight.load()
            self._adopting.pop(kernel_id, None)  # present now: links can be made
            for callback in list(self._adoption_listeners):
                try:
                    result = callback(kernel_id, inflight)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.log.exception("collab_kernels: adoption listener %r failed", callback)
            client.connect()
        except Exception as e:
            self.log.info(
                "collab_kernels: kernel %s of a saved session is not running on the gateway (%s)",
                kernel_id,
                e,
            )
        else:
            self.log.info(
                "collab_kernels: adopted kernel %s, still running on the gateway", kernel_id
            )
        finally:
            self._adopting.pop(kernel_id, None)

    async def wait_adopted(self, kernel_id: str | None = None) -> None:
        """Wait until the adoption of ``kernel_id`` (or of every saved kernel) is done."""
        tasks = [self._adopting[kernel_id]] if kernel_id in self._adopting else []
        if kernel_id is None:
            tasks = list(self._adopting.values())
        if tasks:
            await asyncio.gather(*(asyncio.shield(task) for task in tasks))

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        if not self.keep_kernels_on_exit:
            await super().shutdown_all(now=now)  # type: ignore[no-untyped-call]
            return
        kept = 0
        for km in list(self._kernels.values()):
            client = getattr(km, "shared_client", None)
            if client is not None and not client.closed:
                client.close()
                kept += 1
        self.log.info("collab_kernels: left %d kernel(s) running on the gateway", kept)

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> str:
        return "collab_kernels.kernels.gateway.CollabGatewayKernelManager"

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: str | None = None, **kwargs: t.Any
    ) -> str:
        kid: str = await super().start_kernel(  # type: ignore[no-untyped-call]
            kernel_id=kernel_id, path=path, **kwargs
        )
        self._kernel_connections.setdefault(kid, 0)
        self.start_watching_activity(kid)
        return kid

    async def restart_kernel(self, kernel_id: str, now: bool = False, **kwargs: t.Any) -> t.Any:  # type: ignore[override]
        """Restart over REST; return once the gateway restarted the kernel, as stock.

        The returned Future resolves when the new process answers on the shared client
        (as for local kernels: docs/reliability.md, "Restart"); ``POST .../restart`` does not
        wait for it (waiting here outlasted the request timeout of a gateway that answers
        the restart but not yet the websocket).
        """
        self._check_kernel_id(kernel_id)  # type: ignore[no-untyped-call]
        km: t.Any = self.get_kernel(kernel_id)
        km.execution_state = "starting"
        await km.restart_kernel(now=now, **kwargs)
        client = km.shared_client
        if isinstance(client, SharedKernelClient):
            return self.answered_future(kernel_id, client)
        future: asyncio.Future[dict[str, t.Any]] = asyncio.get_running_loop().create_future()
        future.set_result({})
        return future

    def remove_kernel(self, kernel_id: str) -> t.Any:
        self._kernel_connections.pop(kernel_id, None)
        km = super().remove_kernel(kernel_id)  # type: ignore[no-untyped-call]
        client = getattr(km, "shared_client", None)
        if client is not None and not client.closed:
            client.close()
            client.fire_lifecycle("dead")
        return km

    async def kernel_model(self, kernel_id: str) -> t.Any:
        await self.wait_adopted(kernel_id)
        model = await super().kernel_model(kernel_id)  # type: ignore[no-untyped-call]
        if isinstance(model, dict):
            model = dict(model, connections=self._kernel_connections.get(kernel_id, 0))
        return model

    async def list_kernels(self, **kwargs: t.Any) -> list[dict[str, t.Any]]:
        models = await super().list_kernels(**kwargs)  # type: ignore[no-untyped-call]
        return [dict(m, connections=self._kernel_connections.get(m["id"], 0)) for m in models]


__all__ = [
    "SESSION_NAMESPACE",
    "AdoptionListener",
    "CollabGatewayKernelManager",
    "CollabGatewayMappingKernelManager",
    "gateway_session_id",
]
