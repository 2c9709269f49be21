"""``km.client()`` of a gateway kernel: jupyter_server's threaded gateway client with its
gaps closed (see ``GatewayInProcessClient``)."""

from __future__ import annotations

import json
import typing as t
from threading import Thread

import websocket
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import ChannelQueue
from jupyter_server.gateway.managers import GatewayKernelClient as GatewayKernelClient_
from jupyter_server.utils import url_path_join
from tornado.escape import url_escape

from .wire import from_binary, to_binary


class _ChannelQueue(ChannelQueue):
    """A channel of the in-process gateway client: sends carry ``"channel"`` (without it the
    gateway assumes shell, and an ``input()`` reply never reaches stdin), and a message with
    buffers goes as a binary frame."""

    def send(self, msg: dict[str, t.Any]) -> None:
        msg = dict(msg, channel=self.channel_name)
        buffers = msg.pop("buffers", None) or []
        if not buffers:
            super().send(msg)
            return
        msg["buffers"] = [bytes(b) for b in buffers]
        self.channel_socket.send_binary(to_binary(msg))


class GatewayInProcessClient(GatewayKernelClient_):
    """What ``km.client()`` returns for a gateway kernel (extensions, debugger tools): the
    stock threaded client with its gaps closed. It presents the gateway client's headers
    (the auth token), its own session id, ``"channel"`` on every message, and routes binary
    frames (messages with buffers) instead of dying on them."""

    async def start_channels(  # type: ignore[override]
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        gw = GatewayClient.instance()
        url = url_path_join(
            gw.ws_url or "", gw.kernels_endpoint, url_escape(self.kernel_id), "channels"
        )
        url += f"?session_id={url_escape(self.session.session)}"
        args = gw.load_connection_args()  # type: ignore[no-untyped-call]
        headers = args.get("headers") or {}
        sslopt: dict[str, t.Any] = {
            "ca_certs": gw.ca_certs,
            "certfile": gw.client_cert,
            "keyfile": gw.client_key,
        }
        if not gw.validate_cert:
            import ssl

            sslopt["cert_reqs"] = ssl.CERT_NONE
        self.channel_socket = websocket.create_connection(
            url,
            timeout=gw.KERNEL_LAUNCH_TIMEOUT,
            enable_multithread=True,
            sslopt=sslopt,
            header=[f"{key}: {value}" for key, value in headers.items()],
        )
        queues = self._channel_queues
        assert queues is not None
        for name in ("shell", "iopub", "stdin", "control"):
            queue = _ChannelQueue(name, self.channel_socket, self.log)
            setattr(self, f"_{name}_channel", queue)
            queues[name] = queue
        AsyncKernelClient.start_channels(
            self, shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control
        )
        self.response_router = Thread(target=self._route_responses, daemon=True)
        self.response_router.start()

    def _route_responses(self) -> None:
        socket_ = self.channel_socket
        try:
            while not self._channels_stopped and socket_ is not None:
                raw = socket_.recv()
                if not raw:
                    break
                try:
                    msg = from_binary(raw) if isinstance(raw, bytes) else json.loads(raw)
                    queue = (self._channel_queues or {}).get(str(msg.get("channel")))
                except Exception:
                    self.log.warning("Kernel %s: malformed message dropped", self.kernel_id)
                    continue
                if queue is not None:
                    queue.put_nowait(msg)
        except websocket.WebSocketConnectionClosedException:
            pass
        except Exception as e:
            if not self._channels_stopped:
                self.log.warning("Kernel %s: in-process client stopped: %s", self.kernel_id, e)
        for queue in list((self._channel_queues or {}).values()):
            queue.response_router_finished = True


__all__ = ["GatewayInProcessClient"]
