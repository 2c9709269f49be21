"""Output semantics with a real kernel: progress bars, clear_output, display updates, images,
large outputs."""

from __future__ import annotations

from fixtures_execution import TIMEOUT, cell_py, stream_text, submit
from fixtures_kernels import wait_until
from fixtures_rooms import read_notebook

PROGRESS = (
    "import sys\n"
    "for i in range(0, 101, 2):\n"
    "    sys.stderr.write(f'\\r{i:3d}%|' + '#' * (i // 10) + ' ' * (10 - i // 10) + '|')\n"
    "    sys.stderr.flush()\n"
    "sys.stderr.write('\\n'); print('done')\n"
)

DISPLAYS = (
    "from IPython.display import display, update_display, clear_output, Image\n"
    "import base64\n"
    "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf'\n"
    "    'DwAChwGA60e6kgAAAABJRU5ErkJggg==')\n"
    "display(Image(data=png))\n"
    "display('v1', display_id='shared')\n"
)

UPDATE_OTHER_CELL = (
    "from IPython.display import update_display, clear_output\n"
    "import time\n"
    "update_display('v2', display_id='shared')\n"
    "for i in range(5):\n"
    "    clear_output(wait=True)\n"
    "    print(f'frame {i}', flush=True)\n"
)


async def test_progress_bar_clear_output_and_display_updates(
    notebook_session, api, collab_client, wait_request, jp_root_dir
):
    nb = await notebook_session([PROGRESS, DISPLAYS, UPDATE_OTHER_CELL])
    p, d, u = nb.cell_ids
    alice = await collab_client(nb.path)
    ids = [await submit(api, nb, cid) for cid in (p, d, u)]
    for rid in ids:
        assert (await wait_request(rid))["result"] == "ok"
    await alice.wait_for(lambda doc: cell_py(doc, u).get("execution_count") == 3, TIMEOUT)
    bar = cell_py(alice.document, p)
    assert stream_text(bar, "stderr") == "100%|##########|\n", bar["outputs"]  # one line
    assert stream_text(bar) == "done\n"
    shown = cell_py(alice.document, d)["outputs"]
    assert shown[0]["output_type"] == "display_data" and "image/png" in shown[0]["data"]
    assert shown[1]["data"]["text/plain"] == "'v2'"  # updated from another cell
    assert all("transient" not in o for o in shown)
    assert cell_py(alice.document, u)["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "frame 4\n"}
    ]

    def saved():
        try:
            cells = read_notebook(jp_root_dir, nb.path)["cells"]
        except ValueError:  # caught mid-write
            return False
        return cells[2]["execution_count"] == 3 and cells

    cells = await wait_until(saved, TIMEOUT)
    saved_err = "".join(
        "".join(o["text"]) for o in cells[0]["outputs"] if o.get("name") == "stderr"
    )
    assert saved_err == "100%|##########|\n"
    assert "execution_state" not in cells[0]


async def test_ten_megabytes_of_output_while_another_notebook_runs(
    notebook_session, api, collab_client, wait_request, jp_root_dir, jp_serverapp
):
    # all of it saved: above the per-cell output limit's default (5 MiB), so turned off here
    jp_serverapp.web_app.settings["collab_room_manager"].max_cell_output = 0
    big = await notebook_session(["print('x' * (10 * 1024 * 1024))"])
    small = await notebook_session(["print('small')"])
    watcher = await collab_client(small.path)
    rbig = await submit(api, big, big.cell_ids[0])
    rsmall = await submit(api, small, small.cell_ids[0])
    assert (await wait_request(rsmall, timeout=60))["result"] == "ok"
    await watcher.wait_for(
        lambda d: cell_py(d, small.cell_ids[0]).get("execution_count") == 1, TIMEOUT
    )
    assert (await wait_request(rbig, timeout=60))["result"] == "ok"

    def saved():
        try:
            cell = read_notebook(jp_root_dir, big.path)["cells"][0]
        except ValueError:  # caught mid-write
            return False
        return cell["execution_count"] == 1 and cell

    cell = await wait_until(saved, 60)
    assert len("".join(cell["outputs"][0]["text"])) == 10 * 1024 * 1024 + 1


async def test_result_and_count_reach_collaborators_together(
    notebook_session, api, collab_client, wait_request
):
    """A collaborator never sees a cell's result without its count. The first cell makes
    every execution end 20 ms after its result (a post-execute hook, as plotting libraries
    have), so a result written on its own would be seen first."""
    hook = "import time\nget_ipython().events.register('post_execute', lambda: time.sleep(0.02))\n"
    nb = await notebook_session([hook, "6 * 7"])
    first, second = nb.cell_ids
    assert (await wait_request(await submit(api, nb, first)))["result"] == "ok"
    alice = await collab_client(nb.path)
    seen: list[tuple] = []

    handle = alice._handle

    def handle_and_look(frame: bytes) -> None:  # the state after each frame the server sent
        handle(frame)
        cell = cell_py(alice.document, second)
        results = [o for o in cell.get("outputs", []) if o.get("output_type") == "execute_result"]
        seen.append((cell.get("execution_count"), len(results)))

    alice._handle = handle_and_look
    assert (await wait_request(await submit(api, nb, second)))["result"] == "ok"
    await alice.wait_for(lambda doc: cell_py(doc, second).get("execution_count") == 2, TIMEOUT)
    assert (2, 1) in seen
    assert all(count is not None for count, results in seen if results), seen
