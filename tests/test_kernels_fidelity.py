"""jupyter_server behaviours other extensions and frontends rely on, kept with the shared
client in force (issue #20): in-process kernel clients, REST answers while a kernel starts or
does not exist, restart semantics."""

from __future__ import annotations

from fixtures_kernels import TIMEOUT


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
