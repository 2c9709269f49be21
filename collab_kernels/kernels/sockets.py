"""One ZMQ socket set (iopub, shell, control, stdin) to one kernel process.

Mirrors jupyter_client's ``_create_connected_socket`` (same socket types, linger and CURVE
keys), plus what it offers no hook for, set before ``connect``:

- the iopub receive high-water mark (fixed when the pipe is created);
- one identity on shell, control and stdin: replies to our shell requests and the kernel's
  stdin prompts are addressed to it. It is the shared client's own, never the kernel
  manager's session id: ``KernelManager.client()`` presents that one, and ipykernel's
  ``ROUTER_HANDOVER`` gives an identity to its newest socket, so sharing it would cut every
  tab's replies as soon as an extension opened an in-process client;
- iopub read by a ``DrainingReader`` (every message the socket holds at each wake-up;
  ``draining.py`` says why not a ``ZMQStream``), the other three by ``ZMQStream``s;
- a ZMQ socket monitor reporting the end of each socket's ZMTP handshake. The sockets are
  connected while the kernel process is still starting, so each one's first attempt is
  refused and retried on its own timer (``reconnect_ivl``, 100 ms). The shell reply and an
  iopub message prove those two are up, but nothing answers on stdin, and the kernel's stdin
  ROUTER silently drops an ``input_request`` for an identity it has not seen yet.
  ``handshakes`` resolves when every socket completed its handshake.
"""

from __future__ import annotations

import asyncio
import logging
import typing as t
from functools import partial

import zmq
from jupyter_client.connect import channel_socket_types
from zmq.eventloop.zmqstream import ZMQStream
from zmq.utils.monitor import parse_monitor_message

from .draining import DrainingReader
from .message import CHANNELS, IOPUB, REQUEST_CHANNELS


class ConnectionInfo(t.Protocol):
    """What the sockets need from a kernel manager (jupyter_client's ``KernelManager``)."""

    context: zmq.Context[t.Any]
    transport: str
    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int


def channel_url(km: ConnectionInfo, channel: str) -> str:
    """The address of a kernel's channel (jupyter_client's URL scheme)."""
    port = int(getattr(km, f"{channel}_port"))
    if km.transport == "tcp":
        return f"tcp://{km.ip}:{port}"
    return f"{km.transport}://{km.ip}-{port}"


class KernelSockets:
    """The four sockets to one kernel process; ``on_recv(channel, frames)`` gets each message.

    ``streams`` holds the request channels' ``ZMQStream``s (shell, control, stdin), which
    also send; ``iopub`` the iopub socket's reader.
    """

    def __init__(
        self,
        km: ConnectionInfo,
        *,
        identity: bytes,
        on_recv: t.Callable[[str, list[bytes]], None],
        iopub_hwm: int,
        log: logging.Logger | logging.LoggerAdapter[t.Any],
        kernel_id: str,
        label: str,
    ):
        self.km = km
        self.identity = identity
        self.log = log
        self.kernel_id = kernel_id
        self.streams: dict[str, ZMQStream] = {}
        self.handshaken: set[str] = set()
        self.handshakes: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self._monitors: dict[str, ZMQStream] = {}
        self._label = label
        self._loop = getattr(km, "loop", None)  # jupyter_client's IOLoop kernel managers
        self.iopub = DrainingReader(
            self._connect(IOPUB, iopub_hwm),
            partial(on_recv, IOPUB),
            loop=self._loop.asyncio_loop if self._loop is not None else None,
            log=log,
        )
        for channel in REQUEST_CHANNELS:
            stream = ZMQStream(self._connect(channel, iopub_hwm), self._loop)
            stream.on_recv(partial(on_recv, channel), copy=True)
            self.streams[channel] = stream

    def _connect(self, channel: str, iopub_hwm: int) -> zmq.Socket[bytes]:
        km = self.km
        sock: zmq.Socket[bytes] = zmq.Socket(km.context, channel_socket_types[channel])
        sock.linger = 1000
        if channel == "iopub":
            sock.rcvhwm = iopub_hwm
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            sock.identity = self.identity
        curve_publickey = getattr(km, "curve_publickey", None)
        if curve_publickey is not None:
            sock.curve_secretkey = getattr(km, "curve_secretkey")  # noqa: B009
            sock.curve_publickey = curve_publickey
            sock.curve_serverkey = curve_publickey
        address = f"inproc://collab-kernels-monitor-{self._label}-{channel}"
        sock.monitor(address, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        monitor: zmq.Socket[bytes] = zmq.Socket(km.context, zmq.PAIR)
        monitor.linger = 0
        monitor.connect(address)
        monitor_stream = ZMQStream(monitor, self._loop)
        monitor_stream.on_recv(partial(self._on_monitor_event, channel))
        self._monitors[channel] = monitor_stream
        sock.connect(channel_url(km, channel))
        return sock

    def _on_monitor_event(self, channel: str, frames: list[bytes]) -> None:
        try:
            event = parse_monitor_message(frames)["event"]
        except Exception:  # pragma: no cover - libzmq sends well-formed events
            return
        if event != zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return
        self.stop_monitor(channel)
        self.handshaken.add(channel)
        self.log.debug("Kernel %s: %s socket connected", self.kernel_id, channel)
        if not self.handshakes.done() and self.handshaken >= set(CHANNELS):
            self.handshakes.set_result(None)

    def missing(self) -> list[str]:
        """Channels whose handshake has not completed."""
        return sorted(set(CHANNELS) - self.handshaken)

    def stop_monitor(self, channel: str) -> None:
        monitor = self._monitors.pop(channel, None)
        if monitor is None:
            return
        stream = self.iopub if channel == IOPUB else self.streams.get(channel)
        try:
            if stream is not None and not stream.closed():
                stream.socket.disable_monitor()
        except zmq.ZMQError:  # pragma: no cover - socket already closed
            pass
        if not monitor.closed():
            monitor.on_recv(None)
            monitor.close(linger=0)

    def close(self) -> None:
        # Monitors first: libzmq's context cannot terminate while one is open.
        for channel in list(self._monitors):
            self.stop_monitor(channel)
        streams: list[DrainingReader | ZMQStream] = [self.iopub, *self.streams.values()]
        for stream in streams:
            try:
                if not stream.closed():
                    stream.on_recv(None)
                    stream.close(linger=0)
            except Exception:  # pragma: no cover - closing a dead socket
                self.log.debug("Kernel %s: error closing stream", self.kernel_id, exc_info=True)
        self.streams = {}
        if not self.handshakes.done():
            self.handshakes.cancel()


__all__ = ["ConnectionInfo", "KernelSockets", "channel_url"]
