"""Stage 1: one shared kernel client per kernel; kernel websockets and documents listen to it.

``SharedClientKernelManager`` gives each kernel a ``SharedKernelClient`` (connected when the
kernel starts, reconnected after each restart, closed on shutdown).
``SharedClientMappingKernelManager`` keeps jupyter_server's bookkeeping exactly as stock
(``execution_state``, ``last_activity``, ``connections``, culling, the reconnect buffer) but
feeds it from listeners on the shared client instead of extra ZMQ sockets.
"""

from __future__ import annotations

import asyncio
import os
import typing as t
from collections import deque
from datetime import datetime

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import (
    AsyncMappingKernelManager,
    ServerKernelManager,
)
from traitlets import Bool, Instance, Integer, Type, default

from .activity import ActivityManager, KernelActivity
from .client import CHANNELS, KernelMessage, Listener, SharedKernelClient

# Longest unix socket path we create (sun_path is 108 bytes on Linux, 104 on macOS),
# leaving room for the "-<port>" suffix jupyter_client appends.
_MAX_IPC_PATH = 96


class SharedClientKernelManager(ServerKernelManager):
    """A kernel manager whose kernel has one ``SharedKernelClient`` (``shared_client``)."""

    ipc_transport = Bool(
        True,
        config=True,
        help=(
            "Start local kernels over the IPC transport (unix sockets in the Jupyter runtime "
            "directory, readable only by the server's user) instead of TCP on localhost, "
            "where any local user could read code and outputs in plain text. Ignored when "
            "KernelManager.transport is configured, for non-local provisioners, and when "
            "the socket path would be too long (TCP is used then, with a warning)."
        ),
    )

    shared_client_class = Type(
        SharedKernelClient,
        klass=SharedKernelClient,
        config=True,
        help="The class of the shared kernel client each kernel gets.",
    )

    shared_client = Instance(SharedKernelClient, allow_none=True)

    @default("last_activity")
    def _default_last_activity(self) -> datetime:
        # The kernel is listed (GET /api/kernels) from the moment it is registered, which can
        # be a loop iteration before the mapping manager sets last_activity: without a
        # default, reading it raised a TraitError and the listing answered 500.
        return utcnow()

    def _transport_configured(self) -> bool:
        for section in ("KernelManager", "ServerKernelManager", type(self).__name__):
            if "transport" in self.config.get(section, {}):
                return True
        return False

    def _choose_transport(self) -> None:
        """Switch to IPC before the connection file is written (first start only)."""
        if not self.ipc_transport or self._transport_configured() or self.transport != "tcp":
            return
        if self.shell_port or self.iopub_port:  # ports chosen already: keep them
            return
        try:
            spec = self.kernel_spec
        except Exception:
            # An unknown kernel name: the start itself reports it, inside jupyter_client's
            # pending-state wrapper (NoSuchKernel -> 501 "kernel not available" on sessions).
            return
        provisioner = (spec.metadata if spec else {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name", "local-provisioner") != "local-provisioner":
            return
        if self.connection_file:
            base = os.path.dirname(self.connection_file)
        else:
            from jupyter_core.paths import jupyter_runtime_dir

            base = jupyter_runtime_dir()
        stem = os.path.splitext(os.path.basename(self.connection_file or ""))[0]
        name = stem.replace("kernel-", "") or self.kernel_id or os.urandom(6).hex()
        name = name.replace("-", "")[:12]
        path = os.path.join(base, f"ck-{name}")
        if len(path) > _MAX_IPC_PATH:
            self.log.warning(
                "Kernel %s: runtime directory path too long for unix sockets (%s); using TCP",
                self.kernel_id,
                base,
            )
            return
        self.transport = "ipc"
        self.ip = path

    async def start_kernel(self, *args: t.Any, **kwargs: t.Any) -> t.Any:  # type: ignore[override]
        self._choose_transport()
        result = await super().start_kernel(*args, **kwargs)
        if self.shared_client is None:
            self.shared_client = self.shared_client_class(self, parent=self, log=self.log)
        self.shared_client.kernel_id = self.kernel_id or ""
        self.shared_client.connect()
        # The restarter exists once the kernel started; it survives restarts.
        self.add_restart_callback(self._on_restarter_dead, "dead")
        return result

    async def restart_kernel(self, now: bool = False, newports: bool = False, **kw: t.Any) -> t.Any:  # type: ignore[override]
        """Restart (manual or automatic) and reconnect the shared client to the new process."""
        try:
            result = await super().restart_kernel(now=now, newports=newports, **kw)
        finally:
            client = self.shared_client
            if client is not None and not client.closed and self.has_kernel:
                client.reconnect()
                client.fire_lifecycle("restarted")
        return result

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> t.Any:  # type: ignore[override]
        client = self.shared_client
        if client is not None and not restart and not client.closed:
            client.close()
            client.fire_lifecycle("shutdown")
        return await super().shutdown_kernel(now=now, restart=restart)

    def _on_restarter_dead(self) -> None:
        """The restarter gave up (the kernel died too often)."""
        self.log.warning("Kernel %s is dead; closing its shared client", self.kernel_id)
        client = self.shared_client
        if client is not None and not client.closed:
            client.close()
            client.fire_lifecycle("dead")


class _OfflineBuffer:
    """Messages held for a browser session whose kernel websocket dropped."""

    def __init__(self, session_key: str, listener: Listener, limit: int):
        self.session_key = session_key
        self.listener = listener
        self.buffer: deque[tuple[str, KernelMessage]] = deque()
        self.limit = limit
        self.dropped = 0

    def __call__(self, msg: KernelMessage) -> None:
        if len(self.buffer) >= self.limit:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append((msg.channel, msg))


class SharedClientMappingKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel mapping, fed by one shared client per kernel."""

    buffer_limit = Integer(
        10000,
        config=True,
        help=(
            "Messages kept per kernel for a browser session whose websocket dropped "
            "(see MappingKernelManager.buffer_offline_messages); the oldest are dropped "
            "beyond this."
        ),
    )

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._restart_waiters: set[asyncio.Future[None]] = set()

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> str:
        return "collab_kernels.kernels.manager.SharedClientKernelManager"

    def get_shared_client(self, kernel_id: str) -> SharedKernelClient:
        """The shared client of a running kernel (404 if the kernel does not exist)."""
        self._check_kernel_id(kernel_id)  # type: ignore[no-untyped-call]
        client = getattr(self.get_kernel(kernel_id), "shared_client", None)
        if client is None:
            raise RuntimeError(f"Kernel {kernel_id} has no shared client")
        return t.cast(SharedKernelClient, client)

    # ---------------------------------------------------------------- activity

    def start_watching_activity(self, kernel_id: str) -> None:
        """Stock activity tracking, as a listener of the shared client (no extra socket;
        the rules and what costs less than stock: activity.py)."""
        kernel = self._kernels[kernel_id]
        client = getattr(kernel, "shared_client", None)
        if client is None:
            super().start_watching_activity(kernel_id)  # type: ignore[no-untyped-call]
            return
        self.stop_watching_activity(kernel_id)
        kernel.reason = ""
        kernel.last_activity = utcnow()
        activity = KernelActivity(t.cast(ActivityManager, self), kernel, client.is_startup_nudge)
        kernel._activity = activity
        kernel._activity_listener = client.add_listener(
            activity, channels=["iopub"], name="activity"
        )

    def stop_watching_activity(self, kernel_id: str) -> None:
        kernel = self._kernels[kernel_id]
        listener = getattr(kernel, "_activity_listener", None)
        if listener is not None:
            listener.client.remove_listener(listener)
            kernel._activity_listener = None
        activity = getattr(kernel, "_activity", None)
        if activity is not None:
            activity.stop()
            kernel._activity = None
        super().stop_watching_activity(kernel_id)  # type: ignore[no-untyped-call]

    # ---------------------------------------------------------------- interrupt

    async def interrupt_kernel(self, kernel_id: str, *, notify: bool = True) -> None:  # type: ignore[override]
        """Stock interrupt (``POST /api/kernels/{id}/interrupt`` and every other caller).

        Just before the interrupt is delivered, the kernel's shared client fires the
        ``"interrupted"`` lifecycle event (documents clear their queues there, so the
        interrupted cell's error does not start the next queued cell). ``notify=False``
        interrupts without the event (the server's own interrupts, which handle their
        queues themselves).
        """
        kernel = self.get_kernel(kernel_id)
        client = getattr(kernel, "shared_client", None)
        if notify and isinstance(client, SharedKernelClient) and not client.closed:
            ready = getattr(kernel, "ready", None)
            if ready is None or ready.done():  # a pending kernel refuses interrupts
                client.fire_lifecycle("interrupted")
        await super().interrupt_kernel(kernel_id)  # type: ignore[misc]

    # ---------------------------------------------------------------- restart

    async def restart_kernel(  # type: ignore[override]
        self, kernel_id: str, now: bool = False
    ) -> asyncio.Future[dict[str, t.Any]]:
        """Restart; return once the new process runs and the shared client is connected to it.

        As stock: the returned Future resolves when the new process answers kernel_info
        (here: when the shared client is ready, with the kernel_info content), or fails with
        ``TimeoutError`` after ``kernel_info_timeout`` or ``RuntimeError`` when the kernel
        died or was shut down meanwhile. ``POST /api/kernels/{id}/restart`` answers without
        waiting for it (docs/reliability.md). The listeners, activity tracking included,
        survive the restart; requests sent meanwhile wait in ZMQ's queue for the new process.
        """
        self._check_kernel_id(kernel_id)  # type: ignore[no-untyped-call]
        kernel = self.get_kernel(kernel_id)
        client = getattr(kernel, "shared_client", None)
        if not isinstance(client, SharedKernelClient):
            result: asyncio.Future[dict[str, t.Any]] = await super().restart_kernel(  # type: ignore[no-untyped-call]
                kernel_id, now=now
            )
            return result
        await self.pinned_superclass._async_restart_kernel(self, kernel_id, now=now)
        kernel.execution_state = "starting"  # type: ignore[attr-defined]
        return self.answered_future(kernel_id, client)

    def answered_future(
        self, kernel_id: str, client: SharedKernelClient
    ) -> asyncio.Future[dict[str, t.Any]]:
        """A Future resolved (with kernel_info) once a restarted kernel answers on its shared
        client; TimeoutError after ``kernel_info_timeout``, RuntimeError if it is gone."""
        future: asyncio.Future[dict[str, t.Any]] = asyncio.get_running_loop().create_future()
        waiter = asyncio.ensure_future(self._answered(kernel_id, client, future))
        self._restart_waiters.add(waiter)
        waiter.add_done_callback(self._restart_waiters.discard)
        return future

    async def _answered(
        self,
        kernel_id: str,
        client: SharedKernelClient,
        future: asyncio.Future[dict[str, t.Any]],
    ) -> None:
        try:
            info = await client.wait_ready(timeout=self.kernel_info_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self.log.warning("Timeout waiting for kernel_info_reply: %s", kernel_id)
            error: Exception = TimeoutError("Timeout waiting for restart")
        except (asyncio.CancelledError, RuntimeError):
            self.log.warning("Restarting kernel failed: %s", kernel_id)
            error = RuntimeError("Restart failed")
        else:
            if not future.done():
                future.set_result(info)
            return
        if not future.done():
            future.set_exception(error)
            future.exception()  # nobody has to await it (REST does not): no "never retrieved"

    # ---------------------------------------------------------------- offline buffer

    def start_buffering(
        self,
        kernel_id: str,
        session_key: str,
        channels: dict[str, t.Any] | None = None,
        *,
        owner: Listener | None = None,
    ) -> None:
        """Hold messages for ``session_key`` until its websocket reconnects.

        With a shared client the buffer is a listener taking what the dropped websocket
        would have received: all iopub and the replies to its pending requests (ownership
        moves from ``owner``, the websocket's listener).
        """
        kernel = self._kernels.get(kernel_id)
        client = getattr(kernel, "shared_client", None)
        if client is None or channels:
            super().start_buffering(kernel_id, session_key, channels)  # type: ignore[no-untyped-call]
            return
        if not self.buffer_offline_messages:
            return
        self.log.info("Starting buffering for %s", session_key)
        self.stop_buffering(kernel_id)
        buffer = _OfflineBuffer(session_key, None, self.buffer_limit)  # type:ignore[arg-type]
        buffer.listener = client.add_listener(
            buffer, replies="owned", skip_withheld=True, name=f"offline buffer {session_key}"
        )
        if owner is not None:
            client.transfer_ownership(owner, buffer.listener)
        self._kernel_buffers[kernel_id] = {
            "session_key": session_key,
            "buffer": buffer.buffer,
            "channels": {},
            "listener": buffer.listener,
            "_buffer": buffer,
        }

    def get_buffer(self, kernel_id: str, session_key: str) -> dict[str, t.Any] | None:
        info = self._kernel_buffers.get(kernel_id) if kernel_id in self._kernel_buffers else None
        if info is None or "listener" not in info:
            return t.cast(
                "dict[str, t.Any] | None",
                super().get_buffer(kernel_id, session_key),  # type: ignore[no-untyped-call]
            )
        if info["session_key"] != session_key:
            self.stop_buffering(kernel_id)
            return None
        self._kernel_buffers.pop(kernel_id)
        listener = info["listener"]
        listener.client.remove_listener(listener)
        dropped = info["_buffer"].dropped
        if dropped:
            self.log.warning(
                "Kernel %s: %d buffered message(s) for %s were dropped (buffer_limit=%d)",
                kernel_id,
                dropped,
                session_key,
                self.buffer_limit,
            )
        return t.cast("dict[str, t.Any]", info)

    def stop_buffering(self, kernel_id: str) -> None:
        info = self._kernel_buffers.get(kernel_id) if kernel_id in self._kernel_buffers else None
        if info is None or "listener" not in info:
            super().stop_buffering(kernel_id)  # type: ignore[no-untyped-call]
            return
        self._kernel_buffers.pop(kernel_id)
        listener = info["listener"]
        listener.client.remove_listener(listener)
        if info["buffer"]:
            self.log.info(
                "Discarding %s buffered messages for %s", len(info["buffer"]), info["session_key"]
            )


__all__ = [
    "CHANNELS",
    "SharedClientKernelManager",
    "SharedClientMappingKernelManager",
    "SharedKernelClient",
]
