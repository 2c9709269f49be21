"""The idle culler (with cull_connected) still culls an idle kernel and spares a busy one:
activity and execution_state come from the shared client's activity listener."""

from __future__ import annotations

import json

import pytest
from fixtures_kernels import wait_until
from traitlets.config import Config


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
            "MappingKernelManager": {
                "cull_idle_timeout": 2,
                "cull_interval": 1,
                "cull_connected": True,
            },
        }
    )


async def test_culler_culls_idle_kernel_and_spares_busy_one(
    jp_serverapp, jp_fetch, start_kernel, open_kernel_ws, tmp_path
):
    km = jp_serverapp.kernel_manager
    idle_kid = await start_kernel()
    busy_kid = await start_kernel()
    idle_tab = await open_kernel_ws(idle_kid, "v1")
    busy_tab = await open_kernel_ws(busy_kid, "v1")
    await idle_tab.run("1")
    flag = tmp_path / "release"
    msg_id = busy_tab.execute(
        f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"
    )
    await busy_tab.wait_for(lambda m: m["msg_type"] == "execute_input")
    await wait_until(lambda: idle_kid not in km)
    response = await jp_fetch("api", "kernels", method="GET")
    models = {k["id"]: k for k in json.loads(response.body)}
    assert idle_kid not in models
    assert models[busy_kid]["execution_state"] == "busy"
    assert models[busy_kid]["connections"] == 1
    flag.write_text("")
    await busy_tab.idle(msg_id)
