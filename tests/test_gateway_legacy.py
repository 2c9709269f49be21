"""The legacy JSON protocol towards the gateway (what a gateway that does not offer
``v1.kernel.websocket.jupyter.org`` gets): the same tab and document tests, with
``GatewayKernelClient.websocket_protocol = "legacy"`` against the real Kernel Gateway."""

from __future__ import annotations

import pytest
from test_gateway_execution import test_document_outputs_with_no_browser_on_a_gateway_kernel  # noqa: F401
from test_gateway_kernels import (  # noqa: F401
    test_binary_widget_buffers_both_ways,
    test_dropped_gateway_websocket_reconnects_and_gets_the_buffered_output,
)
from test_kernels_websocket import test_input_prompts_only_the_tab_that_executed  # noqa: F401


@pytest.fixture
def jp_server_config(gateway_server_config):
    gateway_server_config.GatewayKernelClient.websocket_protocol = "legacy"
    return gateway_server_config


async def test_legacy_protocol_is_used(jp_serverapp, start_kernel):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_kernel(kid).shared_client
    await client.wait_ready(30)
    assert client.protocol == ""
