"""Smoke test against Jupyter Enterprise Gateway 3.3 (local process proxy).

Enterprise Gateway pins jupyter_server<2 and jupyter_client<7, so it runs from its own
virtual environment, named by ``COLLAB_KERNELS_EG_PYTHON`` (its python; ``make eg-venv``
creates ``.venvs/enterprise-gateway``). Its jupyter_server 1.24 accepts the v1 kernel
websocket protocol (the legacy JSON fallback is tested against Kernel Gateway in
test_gateway_legacy.py). It is a smoke test: a document execution, binary widget buffers
both ways, ``input()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_gateway import KernelGateway, gateway_config
from test_gateway_execution import test_document_outputs_with_no_browser_on_a_gateway_kernel  # noqa: F401
from test_gateway_kernels import test_binary_widget_buffers_both_ways  # noqa: F401
from test_kernels_websocket import test_input_prompts_only_the_tab_that_executed  # noqa: F401
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
EG_PYTHON = os.environ.get(
    "COLLAB_KERNELS_EG_PYTHON", str(ROOT / ".venvs" / "enterprise-gateway" / "bin" / "python")
)


@pytest.fixture(scope="module")
def kernel_gateway(tmp_path_factory):
    if not Path(EG_PYTHON).exists():
        pytest.fail(f"no Enterprise Gateway environment at {EG_PYTHON} (make eg-venv)")
    gateway = KernelGateway(tmp_path_factory.mktemp("enterprise-gateway"), enterprise=EG_PYTHON)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def jp_server_config(kernel_gateway, monkeypatch):
    # the local process proxy refuses to start kernels as root; the server sends KERNEL_*
    monkeypatch.setenv("KERNEL_USERNAME", "collab-test")
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
            "GatewayClient": gateway_config(kernel_gateway),
        }
    )


async def test_enterprise_gateway_kernel_is_ready(jp_serverapp, start_kernel):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_kernel(kid).shared_client
    info = await client.wait_ready(30)
    assert info["language_info"]["name"] == "python"
    assert client.protocol == "v1.kernel.websocket.jupyter.org"
