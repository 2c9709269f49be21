"""The execution stage's pure parts, without a server: body dialects, queue entries, routes."""

from __future__ import annotations

import logging

import pytest
from tornado.web import HTTPError

from collab_kernels.execution.body import CellSpec, parse_execute, parse_input
from collab_kernels.execution.queue import DocumentQueue, queue_entries
from collab_kernels.execution.requests import (
    CellRun,
    ExecutionRequest,
    InputPrompt,
    RequestRegistry,
)
from collab_kernels.execution.results import OutputCollector
from collab_kernels.execution.routing import Route, RouteTable

DOC = "json:notebook:abc"


def test_the_three_dialects_parse_into_one_spec():
    stock = parse_execute({"cell_id": "c1", "document_id": DOC})
    assert (stock.dialect, stock.document_id, stock.cells, stock.code) == (
        "cell",
        DOC,
        (CellSpec("c1"),),
        None,
    )
    assert stock.stop_on_error
    documents = parse_execute(
        {
            "document_id": DOC,
            "cells": [{"cell_id": "a", "source_hash": 123}, {"cell_id": "b"}],
            "stop_on_error": False,
        }
    )
    assert documents.dialect == "cells"
    assert documents.cells == (CellSpec("a", "123"), CellSpec("b", None))
    assert not documents.stop_on_error
    nbmodel = parse_execute({"code": "1+1", "metadata": {"cell_id": "c", "document_id": DOC}})
    assert (nbmodel.dialect, nbmodel.code, nbmodel.cells) == ("code", "1+1", (CellSpec("c"),))


@pytest.mark.parametrize(
    "body, words",
    [
        ([], "JSON object"),
        ({"cell_id": "c"}, "document_id"),
        ({"document_id": DOC}, "cell_id"),
        ({"document_id": DOC, "cell_id": 3}, "cell_id"),
        ({"document_id": DOC, "cells": []}, "non-empty"),
        ({"document_id": DOC, "cells": ["c"]}, "non-empty"),
        ({"document_id": DOC, "cells": [{"source_hash": "1"}]}, "cell_id"),
        ({"code": 3, "metadata": {}}, "'code' must be a string"),
        ({"code": "x", "metadata": ["x"]}, "'metadata' an object"),
    ],
)
def test_bad_execute_bodies_are_400_with_a_message(body, words):
    with pytest.raises(HTTPError) as info:
        parse_execute(body)
    assert info.value.status_code == 400
    assert words in info.value.log_message


def test_input_body():
    spec = parse_input({"document_id": DOC, "cell_id": "c", "value": "x"})
    assert (spec.document_id, spec.cell_id, spec.value) == (DOC, "c", "x")
    for body in ({"document_id": DOC, "cell_id": "c"}, {"cell_id": "c", "value": "x"}, "x"):
        with pytest.raises(HTTPError) as info:
            parse_input(body)
        assert info.value.status_code == 400


def request_of(*cell_ids: str) -> ExecutionRequest:
    return ExecutionRequest(
        kernel_id="k", document_id=DOC, path="a.ipynb", cells=[CellRun(c, "") for c in cell_ids]
    )


async def test_queue_entries_show_running_prompt_and_positions():
    async def runner(request: ExecutionRequest) -> None:
        pass

    queue = DocumentQueue(DOC, DOC, runner, logging.getLogger("test"))
    first, second = request_of("a", "b"), request_of("c")
    queue.current = first
    queue.pending.append(second)
    first.cells[0].status = "running"
    first.input_request = InputPrompt("a", "name? ", False)
    entries = queue_entries(queue)
    assert entries == {
        "a": {
            "status": "running",
            "request_id": first.request_id,
            "kernel_id": "k",
            "position": 0,
            "input_request": {"prompt": "name? ", "password": False},
        },
        "b": {"status": "queued", "request_id": first.request_id, "kernel_id": "k", "position": 1},
        "c": {"status": "queued", "request_id": second.request_id, "kernel_id": "k", "position": 2},
    }


def test_request_end_and_registry_history():
    registry = RequestRegistry(history=10)
    requests = [request_of("a", "b") for _ in range(30)]
    for request in requests:
        request.end("cancelled")
        registry.add(request)
    assert requests[0].cells[0].result == "cancelled" and requests[0].status == "done"
    assert len(registry) <= 10 + 1 and registry.get(requests[-1].request_id) is requests[-1]
    assert registry.get(requests[0].request_id) is None


def test_route_table_forgets_oldest_first():
    table = RouteTable(size=3)
    for i in range(5):
        table.add(f"m{i}", Route(DOC, f"c{i}"))
    assert len(table) == 3
    assert table.get("m0") is None and table.get(None) is None
    route = table.get("m4")
    assert route is not None and route.cell_id == "c4"


def test_code_alone_is_a_scratch_execution_and_half_metadata_is_400():
    spec = parse_execute({"code": "1 + 1"})
    assert (spec.document_id, spec.cells, spec.code) == (None, (), "1 + 1")
    assert parse_execute({"code": "x", "metadata": {}}).document_id is None
    with pytest.raises(HTTPError) as info:
        parse_execute({"code": "x", "metadata": {"cell_id": "c"}})
    assert info.value.status_code == 400 and "go together" in info.value.log_message


def test_the_nbmodel_input_body_answers_the_kernels_prompt():
    spec = parse_input({"input": "bob"})
    assert (spec.document_id, spec.cell_id, spec.value) == (None, None, "bob")
    with pytest.raises(HTTPError):
        parse_input({"input": 3})


def test_collector_merges_streams_clears_and_updates_displays():
    collector = OutputCollector(limit=1 << 20)
    collector.add("stream", {"name": "stdout", "text": "10%\r"})
    collector.add("stream", {"name": "stdout", "text": "100%\n"})
    collector.add("display_data", {"data": {"text/plain": "a"}, "transient": {"display_id": "d"}})
    collector.add(
        "update_display_data", {"data": {"text/plain": "b"}, "transient": {"display_id": "d"}}
    )
    assert collector.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "100%\n"},
        {"output_type": "display_data", "data": {"text/plain": "b"}, "metadata": {}},
    ]
    collector.add("clear_output", {"wait": True})
    assert len(collector.outputs) == 2
    collector.add("error", {"ename": "E", "evalue": "v", "traceback": []})
    assert [o["output_type"] for o in collector.outputs] == ["error"]


def test_collector_keeps_at_most_its_limit():
    collector = OutputCollector(limit=100)
    for _ in range(10):
        collector.add("stream", {"name": "stdout", "text": "x" * 30})
    assert collector.size <= 100 and collector.truncated
    assert "not kept" in collector.outputs[-1]["text"]
