"""Documents as listeners of gateway kernels: server-side execution on a remote kernel.

The execution, output, stdin, interrupt, restart and kernel-death tests of the local kernel
suites run here unchanged against kernels on a real Kernel Gateway (imported: the same test
bodies, with this module's server config), plus what only a gateway kernel needs.
"""

from __future__ import annotations

import pytest
from fixtures_execution import TIMEOUT, cell_py, died_mid_cell, stream_text, submit
from test_cli import (  # noqa: F401 (collected here with the gateway config)
    test_input_prompt_answered_in_run,
    test_kernel_death_exit_code,
    test_run_to_completion_saves_outputs,
)
from test_client import test_input_prompt_answered_from_client  # noqa: F401
from test_execution import (  # noqa: F401
    test_error_stops_the_rest_of_the_queue,
    test_execute_writes_result_and_count_into_every_collaborator,
    test_interrupt_stops_running_cell_and_clears_queue,
)
from test_execution_headless import (  # noqa: F401
    test_browser_websocket_execute_is_written_once_by_the_server,
    test_input_answered_by_a_collaborator,
    test_long_cell_keeps_writing_after_its_collaborator_left,
    test_rest_request_for_unopened_notebook_and_late_joiner_sees_it_live,
    test_restart_mid_queue,
)
from test_execution_outputs import (  # noqa: F401
    test_progress_bar_clear_output_and_display_updates,
    test_result_and_count_reach_collaborators_together,
    test_ten_megabytes_of_output_while_another_notebook_runs,
)

from collab_kernels.kernels.gateway import GatewayKernelClient


@pytest.fixture
def jp_server_config(gateway_server_config):
    return gateway_server_config


async def test_document_outputs_with_no_browser_on_a_gateway_kernel(
    notebook_session, api, wait_request, execution_manager, jp_serverapp, kernel_gateway
):
    nb = await notebook_session(["print('remote'); 6 * 7"])
    client = jp_serverapp.kernel_manager.get_kernel(nb.kernel_id).shared_client
    assert isinstance(client, GatewayKernelClient)
    rid = await submit(api, nb, nb.cell_ids[0])
    result = await wait_request(rid)
    assert result["result"] == "ok" and result["execution_count"] == 1
    room = execution_manager.room_manager.find_room(nb.room_id)
    cell = cell_py(room.document, nb.cell_ids[0])
    assert stream_text(cell) == "remote\n"
    assert cell["outputs"][-1]["data"]["text/plain"] == "42"
    assert kernel_gateway.connections(nb.kernel_id) == 1


async def test_gateway_kernel_killed_mid_cell(
    notebook_session, api, collab_client, wait_request, tmp_path
):
    """The kernel process dies on the gateway; the gateway restarts it. The running cell
    ends with an error in the document, the queued one is aborted, the next one runs."""
    flag = tmp_path / "die"
    nb = await notebook_session(
        [
            "import os, signal, time\nprint('started', flush=True)\n"
            f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
            "os.kill(os.getpid(), signal.SIGKILL)",
            "print('b')",
        ]
    )
    a, b = nb.cell_ids
    alice = await collab_client(nb.path)
    ra, rb = await submit(api, nb, a), await submit(api, nb, b)
    await alice.wait_for(lambda d: stream_text(cell_py(d, a)) == "started\n", TIMEOUT)
    flag.write_text("")
    await died_mid_cell(wait_request, alice, (ra, a), (rb, b))
    rid = await submit(api, nb, b)
    result = await wait_request(rid)
    assert result["result"] == "ok" and result["execution_count"] == 1
