"""Remote kernels: the shared client of a gateway kernel is one websocket to the gateway.

With ``GatewayClient.url`` set (config, ``--gateway-url`` or ``JUPYTER_GATEWAY_URL``) kernels
run on a Jupyter Kernel Gateway or Enterprise Gateway. jupyter_server then proxies every
browser tab over its own gateway websocket and the server itself has no view of the kernel's
messages. Here, as for local kernels, each kernel has one shared client and every consumer
(browser tabs in both websocket protocols, documents, the CLI and the Python client through
the server's endpoints) is a listener on it:

- ``GatewayKernelClient``: a ``SharedKernelClient`` whose transport is one websocket to the
  gateway's ``/api/kernels/{id}/channels`` instead of ZMQ sockets. It connects with the
  gateway client's connection arguments (headers with the auth token and scheme, cookies,
  TLS files, timeouts), speaks ``v1.kernel.websocket.jupyter.org`` when the gateway offers
  it (Kernel Gateway 3) and the legacy JSON protocol otherwise (Enterprise Gateway 3, which
  runs jupyter_server 1), sends binary frames for messages with buffers, puts ``"channel"``
  on every message, and reconnects with the ``gateway_retry_*`` backoff under the same
  session id, so the gateway replays what it buffered while the websocket was down.
- ``CollabGatewayKernelManager`` / ``CollabGatewayMappingKernelManager``: jupyter_server's
  gateway managers (start, restart, interrupt and shut down over REST, as stock) that give
  each kernel its shared client and keep the server's own bookkeeping (connections per tab,
  activity from iopub, the offline buffer of a tab whose websocket dropped).

Browser tabs use ``SharedClientWebsocketConnection`` unchanged: it only needs the kernel's
``shared_client``. ``km.client()`` returns ``GatewayInProcessClient`` (inprocess.py).

Files: ``client.py`` (``GatewayKernelClient``: connection, reconnects, readiness, sending),
``wire.py`` (the websocket frame codec and wire formats), ``inflight.py`` (running document
executions kept on disk for a restart), ``inprocess.py`` (``km.client()``), ``managers.py``
(the managers, adoption after a restart).
"""

from .client import GatewayKernelClient
from .inprocess import GatewayInProcessClient
from .managers import (
    SESSION_NAMESPACE,
    AdoptionListener,
    CollabGatewayKernelManager,
    CollabGatewayMappingKernelManager,
    gateway_session_id,
)

__all__ = [
    "SESSION_NAMESPACE",
    "AdoptionListener",
    "CollabGatewayKernelManager",
    "CollabGatewayMappingKernelManager",
    "GatewayInProcessClient",
    "GatewayKernelClient",
    "gateway_session_id",
]
