"""The Python client against a real server: documents, runs, outputs, prompts, the sync wrapper."""

from __future__ import annotations

import asyncio

from fixtures_client import read_notebook, stream_text

from collab_kernels.client.client import (
    CellFinished,
    CellStarted,
    CollabClient,
    InputRequested,
    Output,
    RunFinished,
    SyncCollabClient,
)


async def test_open_edit_execute_and_iterate_outputs(make_notebook, server_info, jp_root_dir):
    make_notebook(
        "calc.ipynb",
        ["x = 1", ("markdown", "# notes"), "for i in range(3):\n    print('row', i)", "x * 2"],
    )
    async with CollabClient(server_info.url, server_info.token) as client:
        nb = await client.open_notebook("calc.ipynb")
        assert nb.kernel_id
        assert [c["cell_type"] for c in nb.cells] == ["code", "markdown", "code", "code"]
        nb.set_source(0, "x = 21")  # edit through the shared document
        run = await nb.execute()
        assert run.run_id and len(run.cell_ids) == 3
        events = [e async for e in run.events()]
        assert isinstance(events[-1], RunFinished) and events[-1].result == "ok"
        lines = [e.text for e in events if isinstance(e, Output) and e.output_type == "stream"]
        assert lines == ["row 0\n", "row 1\n", "row 2\n"]
        results = [
            e.text for e in events if isinstance(e, Output) and e.output_type == "execute_result"
        ]
        assert results == ["42"]
        assert [e.position for e in events if isinstance(e, CellStarted)] == [1, 2, 3]
        assert [e.execution_count is not None for e in events if isinstance(e, CellFinished)] == [
            True
        ] * 3
        # the document holds the outputs; saving puts them on disk
        assert nb.cell(3)["outputs"][0]["data"]["text/plain"] == "42"
        await nb.save()
    saved = read_notebook(jp_root_dir / "calc.ipynb")
    assert saved.cells[0].source == "x = 21"
    assert stream_text(saved.cells[2]) == "row 0\nrow 1\nrow 2\n"
    assert saved.cells[3].outputs[0]["data"]["text/plain"] == "42"


async def test_input_prompt_answered_from_client(make_notebook, server_info):
    make_notebook("ask.ipynb", ["name = input('who? ')\nprint('hello', name)"])
    async with CollabClient(server_info.url, server_info.token) as client:
        nb = await client.open_notebook("ask.ipynb")
        run = await nb.execute()
        seen = []
        async for event in run.events():
            if isinstance(event, InputRequested):
                assert event.prompt == "who? "
                await run.answer_input("Ada")
            elif isinstance(event, Output):
                seen.append(event.text)
        assert run.record["result"] == "ok"
        assert "hello Ada\n" in seen


async def test_cancel_stops_running_and_queued_cells(make_notebook, server_info):
    make_notebook(
        "stuck.ipynb",
        [
            "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)",
            "print('never')",
        ],
    )
    async with CollabClient(server_info.url, server_info.token) as client:
        nb = await client.open_notebook("stuck.ipynb")
        run = await nb.execute()
        async for event in run.outputs():
            assert event.text == "started\n"
            break
        await run.cancel()
        final = await run.wait(60)
        assert final["status"] == "done"
        assert final["result"] in ("cancelled", "error")
        assert "never" not in str(nb.cell(1)["outputs"])
        assert nb.cell(1)["execution_count"] is None


async def test_wait_after_events_and_second_watcher(make_notebook, server_info):
    """Two clients watch the same run; each sees every line once."""
    make_notebook("two.ipynb", ["for i in range(20):\n    print(i, flush=True)"])
    async with (
        CollabClient(server_info.url, server_info.token) as a,
        CollabClient(server_info.url, server_info.token) as b,
    ):
        nb = await a.open_notebook("two.ipynb")
        run = await nb.execute()
        other = await b.attach(run.run_id)
        assert other.cell_ids == run.cell_ids

        async def lines(r):
            return [e.text for e in [e async for e in r.outputs()]]

        first, second = await asyncio.gather(lines(run), lines(other))
        assert first == second == [f"{i}\n" for i in range(20)]
        assert (await run.wait())["result"] == "ok"


async def test_sync_client_in_a_thread(make_notebook, server_info):
    make_notebook("sync.ipynb", ["print('from sync')"])

    def use_sync():
        with SyncCollabClient(server_info.url, server_info.token) as client:
            nb = client.open_notebook("sync.ipynb")
            run = nb.execute()
            texts = [o.text for o in run.outputs()]
            status = run.wait()
            return texts, status["result"], nb.cells[0]["outputs"]

    texts, result, outputs = await asyncio.to_thread(use_sync)
    assert texts == ["from sync\n"]
    assert result == "ok"
    assert outputs[0]["text"] == "from sync\n"


async def test_discover_running_server(server_info, jp_root_dir):
    client = CollabClient.discover(jp_root_dir / "anything.ipynb")
    try:
        assert client.url.endswith(server_info.url.split("://", 1)[1].split("/", 1)[1])
        assert client.token == server_info.token
        assert isinstance(await client.list_runs(), list)
    finally:
        await client.close()
