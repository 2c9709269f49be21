"""Random, truncated and oversized frames on kernel websockets (hypothesis).

Junk on one tab's websocket, in both protocols, never reaches other tabs as an error, never
disconnects them, never kills the kernel or its shared client, and never logs a server error.
"""

from __future__ import annotations

import json
import logging
import uuid

from fixtures_kernels import V1
from fixtures_reliability import FIGURES, count, draw, json_values, scaled
from hypothesis import strategies as st
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

CHANNELS = ["shell", "iopub", "stdin", "control", "hb", "nope", ""]


def v1_frames():
    header = st.dictionaries(
        st.sampled_from(["msg_id", "msg_type", "session", "username", "version", "date"]),
        json_values,
        max_size=6,
    )
    valid_like = st.builds(
        lambda channel, h, content: serialize_msg_to_ws_v1(
            [json.dumps(h).encode(), b"{}", b"{}", json.dumps(content).encode()], channel
        ),
        st.sampled_from(CHANNELS),
        header,
        json_values,
    )
    return st.one_of(
        st.binary(max_size=400),
        valid_like,
        valid_like.flatmap(lambda f: st.integers(0, len(f)).map(lambda i: f[:i])),  # truncated
        st.builds(  # offsets table that lies
            lambda n, offsets, tail: (
                n.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets) + tail
            ),
            st.integers(0, 2**64 - 1),
            st.lists(st.integers(0, 2**64 - 1), max_size=5),
            st.binary(max_size=50),
        ),
    )


def legacy_frames():
    message = st.fixed_dictionaries(
        {},
        optional={
            "channel": st.sampled_from(CHANNELS) | json_values,
            "header": json_values
            | st.fixed_dictionaries({"msg_type": json_values, "msg_id": json_values}),
            "parent_header": json_values,
            "metadata": json_values,
            "content": json_values,
            "buffers": json_values,
        },
    )
    return st.one_of(
        st.text(max_size=300),
        json_values.map(json.dumps),
        message.map(json.dumps),
        message.map(json.dumps).flatmap(lambda f: st.integers(0, len(f)).map(lambda i: f[:i])),
    )


def errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and "Traceback" not in r.getMessage()
        and ("collab_kernels" in r.getMessage() or r.exc_info)
    ]


async def test_kernel_websockets_survive_junk_frames(
    start_kernel, open_kernel_ws, collab_base_url, collab_token, caplog
):
    kernel_id = await start_kernel()
    honest = await open_kernel_ws(kernel_id, "v1")
    _, reply = await honest.run("1 + 1")
    assert reply["content"]["status"] == "ok"
    base = collab_base_url.replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
    headers = {"Authorization": f"token {collab_token}"}
    plans = [
        ([V1], draw(v1_frames(), scaled(250))),
        (None, draw(legacy_frames(), scaled(250))),
    ]
    tried = closed = 0
    for subprotocols, frames in plans:
        ws = None
        for i, frame in enumerate(frames):
            if ws is None:
                ws = await ws_connect(
                    f"{base}?session_id={uuid.uuid4().hex}",
                    additional_headers=headers,
                    subprotocols=subprotocols,
                    max_size=None,
                    open_timeout=30,
                )
            try:
                await ws.send(frame)
            except ConnectionClosed:
                closed += 1
                ws = None
            tried += 1
            if i % 100 == 99:
                _, reply = await honest.run(f"{i} + 1")
                assert reply["content"]["status"] == "ok"
        if ws is not None:
            await ws.close()
    # oversized frames: refused by the websocket layer, the kernel carries on
    for subprotocols, frame in (
        ([V1], b"\x00" * (11 * 1024 * 1024)),
        (None, "x" * (11 * 1024 * 1024)),
    ):
        ws = await ws_connect(
            f"{base}?session_id={uuid.uuid4().hex}",
            additional_headers=headers,
            subprotocols=subprotocols,
            max_size=None,
            open_timeout=30,
        )
        try:
            await ws.send(frame)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        tried += 1
    _, reply = await honest.run("'still here'")
    assert reply["content"]["status"] == "ok"
    assert not honest.closed
    assert errors(caplog) == []
    count("kernel websocket frames", tried)
    print("FUZZ FIGURES", FIGURES)
