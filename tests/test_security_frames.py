"""Kernel websocket frames that lie about their buffer table cost the server nothing.

A real server process (its memory measured with psutil, address space capped so that a
regression cannot take the machine down), a real kernel; a runner sends the attack frames
of issue #13 on kernel websockets, legacy (no subprotocol) and v1:

- 68 bytes claiming 40 million buffers (main: +1.3 GB kept, event loop blocked);
- a claim of 2**31-1 buffers (main: 5.5 GB peak, loop blocked 21 s);
- 1000 random bytes (main: 18 GB);
- v1 tables claiming 2**64-1 and a billion offsets, and offsets pointing outside the frame.

Each is refused before anything is parsed: its websocket is closed with 1007 and a warning
names the problem; other tabs on the kernel carry on; the server's resident and peak memory
stay within a bound each attack alone would exceed many times over.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import uuid
from pathlib import Path

import psutil
import pytest
from fixtures_security import classroom_config_file
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

RUNNER_TOKEN = "frames-runner-token-5e1d"
V1 = "v1.kernel.websocket.jupyter.org"
#: what the server may grow by over all the attacks (each alone: a gigabyte or more on main)
GROWTH_BOUND = 100 * 2**20
#: address space left to the server above what it uses once started (safety net only)
HEADROOM = 3 * 2**30


def legacy_claim(nbufs: int, size: int = 68) -> bytes:
    return struct.pack("!i", nbufs) + b"\0" * (size - 4)


def random_frame() -> bytes:
    """1000 random bytes whose first four claim hundreds of millions of buffers."""
    for seed in range(1000):
        frame = random.Random(seed).randbytes(1000)
        if struct.unpack("!i", frame[:4])[0] > 10**8:
            return frame
    raise AssertionError("no seed gives a large claim")


def v1_claim(count: int, offsets: list[int] | None = None, size: int = 64) -> bytes:
    head = count.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets or [])
    return head + b"\0" * max(0, size - len(head))


ATTACKS = {
    "legacy: 40 million buffers in 68 bytes": (None, legacy_claim(40_000_000)),
    "legacy: 2**31-1 buffers": (None, legacy_claim(2**31 - 1)),
    "legacy: 1000 random bytes": (None, random_frame()),
    "legacy: offsets past the end": (None, struct.pack("!iII", 2, 12, 10**9) + b"{}" * 20),
    "v1: 2**64-1 offsets": (V1, v1_claim(2**64 - 1)),
    "v1: a billion offsets": (V1, v1_claim(10**9)),
    "v1: offsets past the end": (V1, v1_claim(6, [56, 57, 58, 59, 60, 10**12], size=80)),
}


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def shell_message(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "runner",
            "session": session,
            "date": "2026-01-01T00:00:00Z",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


async def run_code(ws, code: str) -> dict:
    """Execute on a legacy (JSON) kernel websocket; the execute_reply."""
    msg = shell_message("execute_request", {"code": code, "silent": False}, uuid.uuid4().hex)
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await ws.recv())
        if (
            reply.get("parent_header", {}).get("msg_id") == msg["header"]["msg_id"]
            and reply["header"]["msg_type"] == "execute_reply"
        ):
            return reply


@pytest.fixture
def frames_server(server_process, tmp_path):
    """``await frames_server()``: a server process where RUNNER_TOKEN logs in a runner."""
    config = classroom_config_file(
        tmp_path / "frames_config.json", {RUNNER_TOKEN: "runner"}, roles={"runner": "runner"}
    )
    return lambda: server_process(config=[config]).start()


async def test_lying_buffer_tables_are_refused_before_allocation(frames_server):
    server = await frames_server()
    r = await server.api("POST", "api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    url = server.base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    headers = {"Authorization": f"token {RUNNER_TOKEN}"}

    def connect(subprotocol: str | None):
        return ws_connect(
            f"{url}?session_id={uuid.uuid4().hex}",
            additional_headers=headers,
            subprotocols=[subprotocol] if subprotocol else None,
            max_size=None,
            open_timeout=60,
        )

    async with connect(None) as honest:
        reply = await run_code(honest, "x = 41")
        assert reply["content"]["status"] == "ok"
        process = psutil.Process(server.proc.pid)
        _soft, hard = process.rlimit(psutil.RLIMIT_AS)
        process.rlimit(psutil.RLIMIT_AS, (process.memory_info().vms + HEADROOM, hard))
        rss_before, peak_before = process.memory_info().rss, peak_rss(process.pid)

        closes = {}
        for name, (subprotocol, frame) in ATTACKS.items():
            async with connect(subprotocol) as attacker:
                await attacker.send(frame)
                # the other tab's next request is answered: the loop is not blocked for good
                reply = await run_code(honest, "x")
                assert reply["content"]["status"] == "ok", name
                try:
                    await asyncio.wait_for(attacker.wait_closed(), 60)
                except TimeoutError:
                    pass
                closes[name] = attacker.close_code
                with pytest.raises(ConnectionClosed):
                    await attacker.send(b"after")

        grown = process.memory_info().rss - rss_before
        peak_grown = peak_rss(process.pid) - peak_before
        print(
            f"FRAME ATTACK FIGURES: {len(ATTACKS)} frames, RSS +{grown / 2**20:.1f} MiB, "
            f"peak +{peak_grown / 2**20:.1f} MiB (bound {GROWTH_BOUND / 2**20:.0f} MiB)"
        )
        assert closes == {name: 1007 for name in ATTACKS}
        assert grown < GROWTH_BOUND
        assert peak_grown < GROWTH_BOUND
        # the kernel and its state survived; the server answers
        reply = await run_code(honest, "x + 1")
        assert reply["content"]["status"] == "ok"
    assert (await server.api("GET", "api/status")).status_code == 200
    log = server.log_path.read_text()
    assert "claims 39999999 buffers (limit 64)" in log  # 40 million parts: JSON + buffers
    assert "claims 18446744073709551609 buffers (limit 64)" in log  # 2**64-1 offsets
    assert "Traceback" not in log


async def test_honest_binary_frames_with_buffers_still_reach_the_kernel(frames_server):
    """A legacy binary frame with buffers (as ipywidgets sends) passes the checks."""
    server = await frames_server()
    r = await server.api("POST", "api/kernels", json={"name": "python3"})
    kernel_id = r.json()["id"]
    url = server.base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    async with ws_connect(
        f"{url}?session_id={uuid.uuid4().hex}",
        additional_headers={"Authorization": f"token {RUNNER_TOKEN}"},
        max_size=None,
        open_timeout=60,
    ) as ws:
        msg = shell_message("execute_request", {"code": "y = 7"}, uuid.uuid4().hex)
        msg.pop("buffers")
        parts = [json.dumps(msg).encode(), b"\x01" * 100, b"\x02" * 50]
        offsets, position = [], 4 * (len(parts) + 1)
        for part in parts:
            offsets.append(position)
            position += len(part)
        frame = struct.pack(f"!i{len(parts)}I", len(parts), *offsets) + b"".join(parts)
        await ws.send(frame)
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("parent_header", {}).get("msg_id") == msg["header"]["msg_id"]:
                if reply["header"]["msg_type"] == "execute_reply":
                    break
        assert reply["content"]["status"] == "ok"
        assert ws.close_code is None
