"""Random, truncated, mutated and oversized frames on room websockets (hypothesis).

While a fuzzing connection throws frames at a room, two honest collaborators keep editing:
the server never fails a frame with an internal error (1011/4500) or a logged exception, the
room never closes, the collaborators converge with the room, and the file saved afterwards is
a valid notebook holding their edits.
"""

from __future__ import annotations

import logging

import nbformat
import pytest
from fixtures_reliability import (
    FIGURES,
    FrameProber,
    count,
    draw,
    mutated_updates,
    room_frames,
    scaled,
    update_frame,
)
from fixtures_rooms import eventually
from hypothesis import strategies as st
from pycrdt import Array, Doc, write_var_uint
from traitlets.config import Config

from collab_kernels.client.connection import open_session
from collab_kernels.rooms import protocol

MAX_MESSAGE = 64 * 1024
ACCEPTABLE_CLOSES = {
    None,  # ignored or applied
    protocol.CLOSE_INVALID_PAYLOAD,  # 1007 malformed
    protocol.CLOSE_TOO_BIG,  # 1009
}


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
            "RoomManager": {
                "save_delay": 0.1,
                "file_check_interval": 0,
                "max_message_size": MAX_MESSAGE,
            },
        }
    )


async def room_prober(base_url: str, path: str, token: str) -> FrameProber:
    """A raw websocket on ``path``'s room, with a session as the frontend opens it."""
    session = await open_session(base_url, path, token=token)
    url = base_url.replace("http://", "ws://", 1) + (
        f"api/collaboration/room/{session.room_id}?sessionId={session.session_id}"
    )
    return FrameProber(url, {"Authorization": f"token {token}"})


def sources(doc) -> list[str]:
    """Cell sources (items that are not proper cells show as None)."""
    out = []
    for cell in doc.ycells:
        try:
            out.append(str(cell["source"]))
        except Exception:
            out.append(None)
    return out


def server_errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "collab_kernels" in r.getMessage()
    ]


async def honest_round(alice, bob, room, i: int) -> None:
    """Both collaborators edit; everyone, the room included, converges."""
    text = alice.document.ycells[0]["source"]
    text.insert(len(text), f" a{i}")
    text = bob.document.ycells[1]["source"]
    text.insert(len(text), f" b{i}")
    expected_a = f" a{i}"
    expected_b = f" b{i}"

    def done(doc) -> bool:
        got = sources(doc)
        return (got[0] or "").endswith(expected_a) and (got[1] or "").endswith(expected_b)

    await alice.wait_for(done)
    await bob.wait_for(done)
    await eventually(lambda: done(room.document))
    # The prober's valid updates may still be on their way to one of them: converging
    # means all three end up equal, not equal at the moment the suffixes arrived.
    await eventually(
        lambda: sources(alice.document) == sources(bob.document) == sources(room.document)
    )


async def test_room_survives_random_frames_and_collaborators_converge(
    rooms_notebook,
    collab_client,
    collab_base_url,
    collab_token,
    room_manager,
    jp_root_dir,
    caplog,
):
    path = rooms_notebook("fuzz.ipynb", ["alice", "bob"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    room = await room_manager.get_room_for_path(path)
    prober = await room_prober(collab_base_url, path, collab_token)

    frames = draw(room_frames, scaled(400))
    frames += mutated_updates(room.ydoc.get_update(), scaled(60))
    # oversized: just over the limit, and far over it
    frames += [
        protocol.raw_message("x" * (MAX_MESSAGE + 1)),
        bytes([0, 2]) + b"\xff" * (3 * MAX_MESSAGE),
    ]
    # truncations of a valid awareness message and save request
    whole = bytes([1]) + bytes([1, 5, 1, 2]) + b"{}"
    frames += [whole[:i] for i in range(len(whole))]
    frames += draw(st.integers(0, 6).map(lambda i: protocol.save_request_message(300)[:i]), 7)

    closes: dict[int | None, int] = {}
    for i, frame in enumerate(frames):
        code = await prober.play(frame)
        closes[code] = closes.get(code, 0) + 1
        assert code in ACCEPTABLE_CLOSES, (code, frame[:80])
        assert not room.closed
        if i % 50 == 49:
            await honest_round(alice, bob, room, i)
    await prober.close()
    await honest_round(alice, bob, room, len(frames))
    assert not alice.closed.done() and not bob.closed.done()
    assert server_errors(caplog) == []

    # the file holds the collaborators' edits as a valid notebook
    expected = sources(room.document)

    def saved() -> bool:
        try:
            nb = nbformat.read(str(jp_root_dir / path), as_version=4)
        except Exception:
            return False
        return ["".join(c.source) for c in nb.cells][:2] == expected[:2]

    await eventually(saved)
    nbformat.validate(nbformat.read(str(jp_root_dir / path), as_version=4))
    count("room frames", len(frames))
    count("room connections", prober.connections)
    for code, n in closes.items():
        count(f"room frames answered {code or 'open'}", n)
    print("FUZZ FIGURES", FIGURES)


def clock_skipping_insert(state: bytes, text: str) -> bytes:
    """An update inserting ``text`` into the second cell's source, from a new client whose
    struct claims clock 5 instead of 0 (as a corrupted or forged update can)."""
    other = Doc()
    other.apply_update(state)
    updates: list[bytes] = []
    sub = other.observe(lambda e: updates.append(e.update))
    other.get("cells", type=Array)[1]["source"].insert(1, text)
    other.unobserve(sub)
    update = bytearray(updates[0])
    # [1 client][1 struct][client id varUint][clock varUint = 0] ...
    i = 2
    while update[i] & 0x80:
        i += 1
    assert update[:2] == b"\x01\x01" and update[i + 1] == 0
    update[i + 1] = 5
    return bytes(update)


async def test_clock_skipping_update_reaches_every_collaborator(
    rooms_notebook, collab_client, collab_base_url, collab_token, room_manager
):
    """pycrdt integrates such a struct but reports an empty update for the transaction:
    the room must still send what changed, or its document and the collaborators' differ
    for good (and the next collaborator to join sees text the others never will)."""
    path = rooms_notebook("skip.ipynb", ["alice", "bob"])
    alice = await collab_client(path)
    room = await room_manager.get_room_for_path(path)
    prober = await room_prober(collab_base_url, path, collab_token)
    assert (
        await prober.play(update_frame(clock_skipping_insert(room.ydoc.get_update(), "ZZ"))) is None
    )
    await prober.close()
    assert sources(room.document)[1] == "bZZob"
    await alice.wait_for(lambda doc: sources(doc) == sources(room.document))


async def test_global_awareness_room_survives_random_frames(collab_base_url, collab_token, caplog):
    url = collab_base_url.replace("http://", "ws://", 1) + (
        f"api/collaboration/room/{protocol.GLOBAL_AWARENESS_ROOM}"
    )
    prober = FrameProber(url, {"Authorization": f"token {collab_token}"})
    frames = draw(room_frames, scaled(150))
    for frame in frames:
        code = await prober.play(frame)
        assert code in ACCEPTABLE_CLOSES, (code, frame[:80])
    await prober.close()
    assert server_errors(caplog) == []
    count("global awareness frames", len(frames))


def schema_breaking_updates(state: bytes) -> list[tuple[str, bytes]]:
    """Valid Y updates a buggy or hostile client could send that break the notebook schema."""
    from pycrdt import Array, Map, Text

    def edit(name, fn):
        doc = Doc()
        doc.apply_update(state)
        updates: list[bytes] = []
        sub = doc.observe(lambda e: updates.append(e.update))
        fn(doc)
        doc.unobserve(sub)
        return name, updates[0]

    def cells(doc):
        return doc.get("cells", type=Array)

    def meta(doc):
        return doc.get("meta", type=Map)

    return [
        edit("number in cells", lambda d: cells(d).append(42)),
        edit("string in cells", lambda d: cells(d).append("junk")),
        edit("cell without source", lambda d: cells(d).append(Map({"cell_type": "code"}))),
        edit(
            "cell of unknown type",
            lambda d: cells(d).append(
                Map({"cell_type": "nope", "source": Text("x"), "id": "c-nope", "metadata": Map()})
            ),
        ),
        edit("outputs not a list", lambda d: cells(d)[2].__setitem__("outputs", "junk")),
        edit("source not text", lambda d: cells(d)[2].__setitem__("source", 12)),
        edit("metadata not a map", lambda d: meta(d).__setitem__("metadata", 5)),
        edit("nbformat junk", lambda d: meta(d).__setitem__("nbformat", "four")),
        edit("cells root as map", lambda d: d.get("junk", type=Map).__setitem__("k", 1)),
    ]


async def test_schema_breaking_edits_never_crash_the_room(
    rooms_notebook, collab_client, room_manager, jp_root_dir, caplog
):
    path = rooms_notebook("schema.ipynb", ["alice", "bob", "victim"])
    alice = await collab_client(path)
    bob = await collab_client(path)
    mallory = await collab_client(path)
    room = await room_manager.get_room_for_path(path)
    for i, (name, update) in enumerate(schema_breaking_updates(room.ydoc.get_update())):
        await mallory.send_bytes(
            protocol.MESSAGE_SYNC.to_bytes(1, "big")
            + b"\x02"
            + write_var_uint(len(update))
            + update
        )
        await honest_round(alice, bob, room, 1000 + i)
        assert not room.closed, name
        assert await room.save() in ("success", "skipped"), name
        count("schema-breaking updates")
    assert server_errors(caplog) == []
    # the room repaired the document for everyone: only proper cells remain
    await eventually(lambda: None not in sources(room.document))
    await alice.wait_for(lambda doc: None not in sources(doc))
    # honest edits still reach the file as a valid notebook
    await honest_round(alice, bob, room, 2000)
    await room.save()
    nb = nbformat.read(str(jp_root_dir / path), as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].source.endswith(" a2000") and nb.cells[1].source.endswith(" b2000")
