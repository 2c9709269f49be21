"""jupyter_server behaviours other extensions and frontends rely on, kept with the shared
client in force (issue #20): in-process kernel clients, REST answers while a kernel starts or
does not exist, restart semantics."""

from __future__ import annotations

import asyncio
import json
import sys
import typing as t

import pytest
from fixtures_kernels import TIMEOUT
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from collab_kernels.kernels.manager import SharedClientMappingKernelManager


async def test_in_process_client_does_not_steal_the_tabs_replies(
    jp_serverapp, start_kernel, open_kernel_ws
):
    """``km.client()`` (jupyter-resource-usage's kernel-usage handler, debugger tools) uses
    the kernel manager's session id as its ZMQ identity; ipykernel's ROUTER_HANDOVER hands
    an identity to its newest socket, so the shared client must present its own."""
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    tabs = [await open_kernel_ws(kid, "v1"), await open_kernel_ws(kid, "legacy")]
    for tab in tabs:
        await tab.run("x = 1")

    kc = km.client()
    kc.start_channels()
    try:
        # the extension's own shell and control requests get their replies
        info_id = kc.kernel_info()
        reply = await kc.get_shell_msg(timeout=TIMEOUT)
        while reply["parent_header"].get("msg_id") != info_id:
            reply = await kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["msg_type"] == "kernel_info_reply"
        control = kc.session.msg("kernel_info_request")
        kc.control_channel.send(control)
        reply = await kc.get_control_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == control["header"]["msg_id"]

        # while it is connected, every tab keeps its shell and control replies
        for n, tab in enumerate(tabs):
            msg_id, reply = await tab.run(f"print({n} * 7)")
            assert reply["content"]["status"] == "ok"
            assert tab.stream_text(msg_id) == f"{n * 7}\n"
            control_id = tab.send("control", "kernel_info_request")
            control_reply = await tab.reply(control_id)
            assert control_reply["channel"] == "control"
            assert control_reply["msg_type"] == "kernel_info_reply"
        # and the server's own requests are still answered
        shared = jp_serverapp.kernel_manager.get_shared_client(kid)
        answer = await shared.request("kernel_info_request", timeout=TIMEOUT)
        assert answer.msg_type == "kernel_info_reply"
        assert shared.identity != km.session.bsession
    finally:
        kc.stop_channels()


# ------------------------------------------------------------------ unknown kernel (#20.5)


async def test_session_with_an_unknown_kernel_name_answers_501_like_stock(jp_fetch):
    body = {
        "path": "nb.ipynb",
        "type": "notebook",
        "name": "nb.ipynb",
        "kernel": {"name": "nosuch"},
    }
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    assert info.value.code == 501
    answer = json.loads(info.value.response.body)
    assert "not available" in answer["message"]
    assert answer["short_message"] == "nosuch not found"
    response = await jp_fetch("api", "sessions", method="GET")
    assert json.loads(response.body) == []


# ------------------------------------------------------------------ listing (#20.6)


class ListingWhileRegistering(SharedClientMappingKernelManager):
    """Lists the kernels over REST at the first moment a new kernel is listed: registered by
    jupyter_client, before jupyter_server's start sets its activity fields."""

    fetch: t.Any = None
    answers: t.ClassVar[list[t.Any]] = []

    async def _add_kernel_when_ready(self, kernel_id, km, kernel_awaitable):
        await super()._add_kernel_when_ready(kernel_id, km, kernel_awaitable)
        try:
            response = await type(self).fetch("api", "kernels", method="GET")
            self.answers.append(json.loads(response.body))
        except HTTPClientError as e:
            self.answers.append(e)


@pytest.mark.parametrize(
    "jp_server_config",
    [
        Config(
            {
                "ServerApp": {
                    "jpserver_extensions": {"collab_kernels": True},
                    "kernel_manager_class": f"{__name__}.ListingWhileRegistering",
                }
            }
        )
    ],
)
async def test_listing_kernels_while_one_starts(jp_serverapp, jp_fetch, start_kernel):
    assert type(jp_serverapp.kernel_manager) is ListingWhileRegistering
    ListingWhileRegistering.fetch = staticmethod(jp_fetch)
    ListingWhileRegistering.answers = []
    kid = await start_kernel()
    (listing,) = ListingWhileRegistering.answers
    assert not isinstance(listing, Exception), listing
    assert [k["id"] for k in listing] == [kid]
    assert listing[0]["last_activity"]


# ------------------------------------------------------------------ restart (#20.7)


@pytest.fixture
def gated_kernel(jp_data_dir, tmp_path):
    """A kernelspec whose process waits for a flag file before it runs ipykernel: a start or
    restart is under the test's control. Returns (name, flag)."""
    flag = tmp_path / "go"
    flag.write_text("")
    spec = jp_data_dir / "kernels" / "gated"
    spec.mkdir(parents=True)
    code = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.02)\n"
        "from ipykernel import kernelapp\n"
        "kernelapp.launch_new_instance(['-f', sys.argv[1]])\n"
    )
    kernel = {
        "argv": [sys.executable, "-c", code, "{connection_file}"],
        "display_name": "gated",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return "gated", flag


async def test_rest_restart_returns_once_the_process_restarted(
    jp_serverapp, jp_fetch, start_kernel, open_kernel_ws, gated_kernel
):
    """Stock semantics: POST .../restart answers when the new process runs, not when it
    answered; the Future restart_kernel returns resolves then. A tab's request sent
    meanwhile is held until the shared client is connected to the new process."""
    name, flag = gated_kernel
    kid = await start_kernel(name)
    km = jp_serverapp.kernel_manager
    client = km.get_shared_client(kid)
    await client.wait_ready(TIMEOUT)
    tab = await open_kernel_ws(kid, "v1")
    await tab.run("x = 1")

    # restart_kernel returns once the new process runs; its Future resolves on kernel_info
    flag.unlink()  # the new process will wait
    answered = await km.restart_kernel(kid)
    assert not answered.done() and not client.ready
    msg_id = tab.execute("print('after restart', 'x' in dir())")
    flag.write_text("")
    info = await asyncio.wait_for(answered, TIMEOUT)
    assert info["status"] == "ok" and "protocol_version" in info
    assert client.ready
    # the request the tab sent meanwhile was held, then answered by the new process
    reply = await tab.reply(msg_id)
    assert reply["content"]["status"] == "ok"
    await tab.idle(msg_id)
    assert tab.stream_text(msg_id) == "after restart False\n"

    # POST .../restart answers without waiting for the new process to answer
    flag.unlink()
    response = await jp_fetch("api", "kernels", kid, "restart", method="POST", body="")
    assert response.code == 200
    assert json.loads(response.body)["id"] == kid
    assert not client.ready
    flag.write_text("")
    await client.wait_ready(TIMEOUT)
    _, reply = await tab.run("y = 2")
    assert reply["content"]["status"] == "ok"
