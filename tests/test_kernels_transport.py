"""Kernels over IPC (default) and TCP: the shared client works with both, and N tabs on a
kernel use one socket set."""

from __future__ import annotations

import os
import stat

import pytest
from fixtures_rooms import eventually
from traitlets.config import Config


@pytest.fixture(params=["ipc", "tcp"])
def transport(request):
    return request.param


@pytest.fixture
def jp_server_config(transport):
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
            "SharedClientKernelManager": {"ipc_transport": transport == "ipc"},
        }
    )


async def test_kernel_transport_and_tabs(jp_serverapp, transport, start_kernel, open_kernel_ws):
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    assert km.transport == transport
    await km.shared_client.wait_ready(30)
    if transport == "ipc":
        runtime = os.path.dirname(km.connection_file)
        assert km.ip.startswith(runtime)
        sock = f"{km.ip}-{km.shell_port}"
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
    tabs = [await open_kernel_ws(kid, "v1" if i % 2 else "legacy") for i in range(3)]
    msg_id, reply = await tabs[0].run("print('over', 'the', 'wire')")
    assert reply["content"]["status"] == "ok"
    for tab in tabs:
        await tab.idle(msg_id)
        assert tab.stream_text(msg_id) == "over the wire\n"
    assert km.shared_client.connect_count == 1
    if transport == "ipc":
        await jp_serverapp.kernel_manager.shutdown_kernel(kid)
        assert not os.path.exists(sock)


# Connections a kernel's sockets accept from the server: the shared client's four sockets
# and the kernel manager's own control socket (stock jupyter_server: four more per tab).
SERVER_SET = 5
# ipykernel connects a socket of its own to its shell socket (for the debugger).
KERNEL_OWN = 1


async def test_ten_tabs_use_one_socket_set(
    jp_serverapp, transport, start_kernel, open_kernel_ws, kernel_connections
):
    """Counted from the kernel's side (connections its sockets accepted), so nothing
    else in the test process is counted."""
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    await km.shared_client.wait_ready(30)
    # The kernel manager's control socket connects on its own retry timer.
    await eventually(lambda: kernel_connections(km) == SERVER_SET + KERNEL_OWN)
    tabs = [await open_kernel_ws(kid, "v1" if i % 2 else "legacy") for i in range(10)]
    for tab in tabs:
        await tab.reply(tab.send("shell", "kernel_info_request"))
    assert kernel_connections(km) == SERVER_SET + KERNEL_OWN
