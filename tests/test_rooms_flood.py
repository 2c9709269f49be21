"""A cell printing past the per-cell output limit (#15.5): the newest output is kept whole
and in order, the marker counts exactly what was dropped, and the document (what every save,
compaction and collaborator pays for) stays the size of what it keeps. Real server, real
kernel, real file."""

from __future__ import annotations

import re

import pytest
from fixtures_execution import post_execute
from fixtures_rooms import eventually, read_notebook
from traitlets.config import Config

LIMIT = 20_000
LINES = 40_000
#: 20 bytes a line ("line 000000 xxxxxxx\n"): 800 KB printed, 40 times the limit
CELL = f"for i in range({LINES}):\n    print(f'line {{i:06d}} xxxxxxx')"
PRINTED = "".join(f"line {i:06d} xxxxxxx\n" for i in range(LINES))
MARKER = re.compile(r"^\[(\d+) bytes of earlier output dropped\]\n")


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True}
            },
            "RoomManager": {"save_delay": 0.05, "max_cell_output": LIMIT},
        }
    )


def stream_of(outputs) -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else str(o["text"])
        for o in outputs
        if o["output_type"] == "stream"
    )


def check_trimmed(text: str) -> None:
    """``text`` is the marker, then the newest printed output, with nothing missing."""
    marker = MARKER.match(text)
    assert marker, text[:80]
    kept = text[marker.end() :]
    assert PRINTED.endswith(kept)  # the newest output, contiguous, in order
    assert int(marker.group(1)) + len(kept.encode()) == len(PRINTED)  # the count is exact
    assert len(kept.encode()) <= LIMIT


async def test_flooding_cell_keeps_the_newest_output_and_a_small_document(
    notebook_session, api, wait_request, collab_client, room_manager, jp_root_dir
):
    nb = await notebook_session([CELL])
    alice = await collab_client(nb.path)
    room = await room_manager.get_room(nb.room_id)
    code, data, _ = await post_execute(api, nb, nb.cell_ids[0])
    assert code == 202, data
    assert (await wait_request(data["request_id"], timeout=120))["result"] == "ok"

    check_trimmed(stream_of(room.document.get()["cells"][0]["outputs"]))

    def done(doc) -> bool:
        return stream_of(doc.ycells[0]["outputs"]).endswith(PRINTED[-40:])

    await alice.wait_for(done)
    check_trimmed(stream_of(alice.document.ycells[0]["outputs"]))

    def saved() -> str | None:
        try:
            return stream_of(read_notebook(jp_root_dir, nb.path)["cells"][0]["outputs"])
        except (ValueError, IndexError):
            return None

    await eventually(lambda: (saved() or "").endswith(PRINTED[-40:]))
    check_trimmed(saved() or "")
    # The dropped text does not live on in the document: jupyter_ydoc's undo manager kept
    # every deletion (all 800 KB here, every byte a flood ever printed) and each save,
    # compaction and append to the output paid for it.
    assert len(room.ydoc.get_update()) < 4 * LIMIT


LIVE = (
    "import time\n"
    "from IPython.display import clear_output\n"
    "for i in range(60):\n"
    "    clear_output(wait=True)\n"
    "    print(f'frame {i:03d} ' + 'y' * 10_000)\n"
    "    time.sleep(0.03)\n"
)


async def test_live_display_keeps_the_document_the_size_of_what_it_shows(
    notebook_session, api, wait_request, room_manager
):
    """A cell redrawing its output (clear_output in a loop, as progress bars and live plots
    do): 600 KB printed, 10 KB shown. The server's document must not keep what was
    cleared (jupyter_ydoc's undo manager kept every deleted output alive)."""
    nb = await notebook_session([LIVE])
    room = await room_manager.get_room(nb.room_id)
    code, data, _ = await post_execute(api, nb, nb.cell_ids[0])
    assert code == 202, data
    assert (await wait_request(data["request_id"], timeout=120))["result"] == "ok"
    shown = stream_of(room.document.get()["cells"][0]["outputs"])
    assert shown.startswith("frame 059 ")
    assert len(room.ydoc.get_update()) < 5 * len(shown.encode())
