"""Gateway kernels outlive the Jupyter server: a restarted server adopts the kernels its
saved sessions point to, and what the gateway buffered while it was down (the output of a
cell that ran on) reaches the document."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from fixtures_execution import cell_py, gate_code, stream_text
from fixtures_rooms import eventually

from collab_kernels.client.connection import connect_room


async def _request_done(server, kernel_id: str, request_id: str) -> bool:
    r = await server.api("GET", f"api/kernels/{kernel_id}/requests/{request_id}")
    return r.status_code == 200


async def _run(server, kernel_id: str, document_id: str, cell_id: str) -> str:
    r = await server.api(
        "POST",
        f"api/kernels/{kernel_id}/execute",
        json={"cell_id": cell_id, "document_id": document_id},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["request_id"])


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_gateway_kernel_outlives_a_server_restart(
    server_process, kernel_gateway, tmp_path, stop
):
    root = tmp_path / "root"
    root.mkdir()
    flag = tmp_path / "go"
    nb = nbformat.v4.new_notebook()
    for source in (
        "x = 41",
        "print('started', flush=True)\n"
        + gate_code(flag, "print('printed while the server was down', flush=True)"),
        "print(x + 1)",
    ):
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, str(root / "run.ipynb"))
    first, gated, last = (c["id"] for c in nb.cells)
    config = [
        f"--GatewayClient.url={kernel_gateway.url}",
        f"--GatewayClient.auth_token={kernel_gateway.token}",
        "--GatewayClient.gateway_retry_interval=0.2",
        f"--SessionManager.database_filepath={tmp_path / 'sessions.db'}",
        "--CollabGatewayMappingKernelManager.keep_kernels_on_exit=True",
    ]

    server = await server_process(root=root, config=config).start()
    kernel_id, session_id, document_id = await server.open_notebook("run.ipynb")
    rid = await _run(server, kernel_id, document_id, first)
    await eventually(lambda: _request_done(server, kernel_id, rid), timeout=60)
    watcher = await connect_room(server.base_url, "run.ipynb", token=server.token)
    try:
        await _run(server, kernel_id, document_id, gated)
        # the cell runs (its first line reached the document) when the server goes away
        await watcher.wait_for(lambda d: "started\n" in stream_text(cell_py(d, gated)), 60)
    finally:
        await watcher.close()
    mark = kernel_gateway.mark()
    if stop == "SIGTERM":
        server.stop()  # the server shuts down; keep_kernels_on_exit: its gateway kernel stays
    else:
        server.kill9()  # nothing runs at all; the gateway kernel was never the server's child
    await asyncio.to_thread(
        kernel_gateway.wait_log, f"Starting buffering for {kernel_id}", 30, mark
    )
    flag.write_text("")  # the cell prints and ends while no Jupyter server runs

    def idle() -> bool:
        model = kernel_gateway.api("GET", f"api/kernels/{kernel_id}")
        return bool(model["execution_state"] == "idle")

    await eventually(idle, timeout=60)

    server2 = await server_process(root=root, config=config).start()
    try:
        # the saved session still points to the same kernel
        r = await server2.api("GET", "api/sessions")
        sessions = r.json()
        assert [(s["id"], s["kernel"]["id"]) for s in sessions] == [(session_id, kernel_id)]
        # the gateway replayed what it buffered to the adopted kernel's shared client
        await asyncio.to_thread(kernel_gateway.wait_log, "Replaying", 30, mark)
        assert kernel_gateway.connections(kernel_id) == 1
        # what the running cell printed while no server ran reached its cell
        alice = await connect_room(server2.base_url, "run.ipynb", token=server2.token)
        try:
            # (after what was saved of the cell before the server stopped)
            await alice.wait_for(
                lambda d: stream_text(cell_py(d, gated)).endswith(
                    "printed while the server was down\n"
                ),
                timeout=60,
            )
            assert cell_py(alice.document, gated)["execution_count"] == 2
            # the kernel kept its state, and the document is linked to it again
            await _run(server2, kernel_id, document_id, last)
            await alice.wait_for(
                lambda d: (
                    stream_text(cell_py(d, last)) == "42\n"
                    and cell_py(d, last).get("execution_count") is not None
                ),
                timeout=60,
            )
        finally:
            await alice.close()
    finally:
        server2.stop()
        kernel_gateway.api("DELETE", f"api/kernels/{kernel_id}")
