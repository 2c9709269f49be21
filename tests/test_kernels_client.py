"""The shared kernel client: one socket set per kernel, listeners, filters, isolation."""

from __future__ import annotations

import asyncio

import pytest
import zmq
import zmq.asyncio

from collab_kernels.kernels.client import KernelMessage, SharedKernelClient
from collab_kernels.kernels.manager import SharedClientKernelManager

TIMEOUT = 30


async def test_kernel_has_one_connected_shared_client(jp_serverapp, start_kernel):
    kid = await start_kernel()
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    assert isinstance(km, SharedClientKernelManager)
    client = km.shared_client
    assert isinstance(client, SharedKernelClient)
    info = await client.wait_ready(TIMEOUT)
    assert info["status"] == "ok"
    assert client.kernel_id == kid
    assert jp_serverapp.kernel_manager.get_shared_client(kid) is client


async def test_listener_receives_execution_messages_in_order(jp_serverapp, start_kernel):
    kid = await start_kernel()
    client = jp_serverapp.kernel_manager.get_shared_client(kid)
    await client.wait_ready(TIMEOUT)
    got: list[KernelMessage] = []
    done = asyncio.get_running_loop().create_future()
    msg = client.session.msg(
        "execute_request", {"code": "for i in range(50): print(i, flush=True)"}
    )
    msg_id = msg["header"]["msg_id"]

    def on_msg(m: KernelMessage):
        if m.parent_msg_id != msg_id:
            return
        got.append(m)
        # shell and iopub are separate sockets: the reply may come before or after idle
        idle = any(x.msg_type == "status" and x.content["execution_state"] == "idle" for x in got)
        if idle and any(x.msg_type == "execute_reply" for x in got) and not done.done():
            done.set_result(None)

    listener = client.add_listener(on_msg, channels=["iopub", "shell"])
    client.send("shell", msg, owner=listener)
    await asyncio.wait_for(done, TIMEOUT)
    text = "".join(m.parsed["content"]["text"] for m in got if m.msg_type == "stream")
    assert text == "".join(f"{i}\n" for i in range(50))
    iopub_types = [m.msg_type for m in got if m.channel == "iopub"]
    assert iopub_types[0] == "status" and iopub_types[1] == "execute_input"
    assert any(m.msg_type == "execute_reply" for m in got)


class ScriptedKernel:
    """The kernel side of the wire, bound socket by socket when a test says so."""

    def __init__(self, km: SharedClientKernelManager):
        self.km = km
        self.ctx = zmq.asyncio.Context()
        self.sockets: dict[str, zmq.asyncio.Socket] = {}
        self.kernel_info_requests = 0
        self.server: asyncio.Future | None = None
        self.statuses = True  # False: a welcome on iopub instead of the request's statuses

    def bind(self, channel: str) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(zmq.PUB if channel == "iopub" else zmq.ROUTER)
        sock.linger = 0
        if channel == "stdin":
            sock.router_mandatory = True  # an unknown identity raises instead of dropping
        sock.bind(self.km._make_url(channel))
        self.sockets[channel] = sock
        return sock

    async def serve_shell(self) -> None:
        session = self.km.session
        shell = self.sockets["shell"]
        while True:
            idents, msg = session.feed_identities(await shell.recv_multipart())
            request = session.deserialize(msg)
            self.kernel_info_requests += 1
            iopub = self.sockets["iopub"]
            if self.statuses:
                for state in ("busy", "idle"):
                    session.send(iopub, "status", {"execution_state": state}, request)
            else:
                session.send(iopub, "iopub_welcome", {"subscription": ""})
            session.send(shell, "kernel_info_reply", {"status": "ok"}, request, ident=idents)

    def serve(self) -> None:
        self.server = asyncio.ensure_future(self.serve_shell())

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def scripted(tmp_path):
    """``await scripted()``: a shared client on a kernel manager whose "kernel" the test
    plays itself, connected before the kernel listens (as after a kernel start)."""
    made = []

    async def make():
        km = SharedClientKernelManager(
            transport="tcp", ip="127.0.0.1", connection_file=str(tmp_path / "kernel.json")
        )
        km.write_connection_file()
        kernel = ScriptedKernel(km)
        client = SharedKernelClient(km)
        client.connect()
        made.append((km, kernel, client))
        return km, kernel, client

    yield make
    for km, kernel, client in made:
        if kernel.server is not None:
            kernel.server.cancel()
        client.close()
        kernel.close()
        km.cleanup_connection_file()


async def test_not_ready_until_stdin_is_connected(scripted):
    """A kernel binds its sockets one after the other while the shared client's are already
    retrying. Ready must mean that a stdin prompt reaches the server: the kernel's stdin
    ROUTER drops a prompt for an identity that has not connected yet, and input() would
    wait forever."""
    km, kernel, client = await scripted()
    prompts: asyncio.Queue = asyncio.Queue()
    client.add_listener(prompts.put_nowait, channels=["stdin"])
    for channel in ("shell", "iopub", "control"):
        kernel.bind(channel)
    kernel.serve()
    ready = asyncio.ensure_future(client.wait_ready(TIMEOUT))
    # The kernel answers on shell and publishes on iopub; stdin is not there yet.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(ready), 1.5)
    assert kernel.kernel_info_requests >= 1
    stdin = kernel.bind("stdin")
    await ready
    # A prompt sent the moment the server counts the kernel as ready arrives.
    km.session.send(
        stdin,
        "input_request",
        {"prompt": "name? ", "password": False},
        ident=[client.session.bsession],
    )
    prompt = await asyncio.wait_for(prompts.get(), TIMEOUT)
    assert prompt.msg_type == "input_request"
    assert prompt.content["prompt"] == "name? "


async def test_ready_needs_the_status_of_its_own_request(scripted):
    """Any iopub message does not prove that consumers will see the kernel's statuses:
    ipykernel 7 greets a new subscriber with iopub_welcome, possibly after the statuses of
    a request it answered before the subscription reached it. The activity tracker
    turns "starting" into "idle" on the first status, so ready waits for one."""
    _km, kernel, client = await scripted()
    statuses: list[str] = []
    client.add_listener(
        lambda m: statuses.append(m.content["execution_state"]), msg_types=["status"]
    )
    for channel in ("shell", "iopub", "control", "stdin"):
        kernel.bind(channel)
    kernel.statuses = False
    kernel.serve()
    ready = asyncio.ensure_future(client.wait_ready(TIMEOUT))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(ready), 2.5)
    assert kernel.kernel_info_requests >= 2  # answered, and greeted on iopub
    kernel.statuses = True
    await ready
    assert statuses[-2:] == ["busy", "idle"]
