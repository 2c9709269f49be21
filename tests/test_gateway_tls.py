"""A gateway behind TLS: REST calls and the shared kernel websocket (wss) use the gateway
client's certificate settings (``GatewayClient.ca_certs``, certificate validation on)."""

from __future__ import annotations

import subprocess

import pytest
from fixtures_gateway import KernelGateway, gateway_config
from fixtures_kernels import TIMEOUT
from traitlets.config import Config


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-gateway")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    gateway = KernelGateway(root, tls=(cert, key))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def jp_server_config(tls_gateway):
    settings = gateway_config(tls_gateway)
    cert, key = tls_gateway.tls
    # jupyter_server uses ca_certs only together with a client certificate; the gateway
    # does not ask for one, so any will do
    settings.update(ca_certs=str(cert), client_cert=str(cert), client_key=str(key))
    settings["validate_cert"] = True
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True}
            },
            "GatewayClient": settings,
        }
    )


async def test_kernel_over_wss_with_the_gateway_certificate(
    jp_serverapp, start_kernel, open_kernel_ws, tls_gateway
):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_kernel(kid).shared_client
    assert client.websocket_url().startswith("wss://127.0.0.1:")
    await client.wait_ready(TIMEOUT)
    tab = await open_kernel_ws(kid, "v1")
    msg_id, reply = await tab.run("print('over tls')")
    assert reply["content"]["status"] == "ok"
    assert tab.stream_text(msg_id) == "over tls\n"
    assert tls_gateway.connections(kid) == 1
