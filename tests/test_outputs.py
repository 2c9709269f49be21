"""Pure output functions: iopub messages -> edits of a YNotebook cell, without a kernel."""

from __future__ import annotations

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text

from collab_kernels.execution.murmur import murmurhash2, source_hash
from collab_kernels.execution.outputs import (
    DocumentOutputState,
    apply_output_message,
    find_cell,
    finish_execution,
    start_execution,
)
from collab_kernels.execution.terminal import resolve_stream_text

# --- MurmurHash2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        # Computed with Austin Appleby's reference C code (gcc, uint32 arithmetic), seed 0.
        ("", 0),
        ("a", 2456313694),
        ("ab", 446775395),
        ("abc", 324500635),
        ("abcd", 646393889),
        ("hello", 3848350155),
        ("print('hello')", 3975440051),
        ("The quick brown fox jumps over the lazy dog", 556214736),
        ("héllo 😀", 1883834025),
    ],
)
def test_murmurhash2_known_vectors(data, expected):
    assert murmurhash2(data) == expected
    assert source_hash(data) == str(expected)


def test_murmurhash2_one_byte_closed_form():
    # ClickHouse documents MurmurHash2 of one byte b with seed 0 as
    # x = (1 ^ b) * m; x ^= x >> 13; x *= m; x ^= x >> 15 (all mod 2**32).
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    for b in range(256):
        x = ((1 ^ b) * m) & mask
        x ^= x >> 13
        x = (x * m) & mask
        x ^= x >> 15
        assert murmurhash2(bytes([b])) == x


# --- \r and \b ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, visible",
    [
        ("plain\ntext", "plain\ntext"),
        ("10%\r50%\r100%\n", "100%\n"),
        ("abc\bd", "abd"),
        ("abc\b\b\bxy\n", "xyc\n"),
        ("line\r\nnext", "line\nnext"),
        ("\b\bx", "x"),
        ("12345\rab", "ab345\rab"),  # cursor kept: browsers render "ab345"
        ("done\r", "done\r"),
    ],
)
def test_resolve_stream_text(text, visible):
    assert resolve_stream_text(text) == visible


def test_resolved_text_resumes_at_cursor():
    # Resolving in pieces equals resolving at once: the document carries the cursor.
    whole = "a\rbb\rc\bdd\n" + "".join(f"\r{i:3d}%" for i in range(101)) + "\nend"
    for cut in range(len(whole)):
        first = resolve_stream_text(whole[:cut])
        nl = first.rfind("\n")
        head, tail = first[: nl + 1], first[nl + 1 :]
        assert head + resolve_stream_text(tail + whole[cut:]) == resolve_stream_text(whole)


# --- document edits ----------------------------------------------------------------------------


@pytest.fixture
def nb():
    nb = YNotebook(Doc())
    nb.set(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "id": "c1",
                    "source": "1",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                },
                {
                    "cell_type": "code",
                    "id": "c2",
                    "source": "2",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                },
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    return nb


def apply(nb, state, cell_id, msg_type, content):
    with nb.ydoc.transaction():
        cell = find_cell(nb.ycells, cell_id)
        return apply_output_message(nb.ycells, cell, msg_type, content, state)


def outputs(nb, cell_id):
    return find_cell(nb.ycells, cell_id)["outputs"].to_py()


def stream(name, text):
    return {"name": name, "text": text}


def test_stream_chunks_merge_into_one_output(nb):
    state = DocumentOutputState()
    for i in range(5):
        apply(nb, state, "c1", "stream", stream("stdout", f"line {i}\n"))
    out = outputs(nb, "c1")
    assert len(out) == 1
    assert out[0] == {
        "output_type": "stream",
        "name": "stdout",
        "text": "".join(f"line {i}\n" for i in range(5)),
    }
    # It is a Text edited in place (collaborators receive appends, not replacements).
    assert isinstance(find_cell(nb.ycells, "c1")["outputs"][0]["text"], Text)


def test_stdout_and_stderr_alternate_into_separate_outputs(nb):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stdout", "a\n"))
    apply(nb, state, "c1", "stream", stream("stderr", "b\n"))
    apply(nb, state, "c1", "stream", stream("stdout", "c\n"))
    assert [(o["name"], o["text"]) for o in outputs(nb, "c1")] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]


def test_progress_bar_stays_one_line(nb):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stderr", "start\n"))
    for i in range(0, 101, 5):
        apply(nb, state, "c1", "stream", stream("stderr", f"\r{i:3d}%|{'#' * (i // 10):<10}|"))
    apply(nb, state, "c1", "stream", stream("stderr", "\n"))
    apply(nb, state, "c1", "stream", stream("stderr", "after\n"))
    assert outputs(nb, "c1")[0]["text"] == "start\n100%|##########|\nafter\n"


def test_progress_bar_with_unicode_and_backspace(nb):
    state = DocumentOutputState()
    for i in range(10):
        apply(nb, state, "c1", "stream", stream("stdout", f"\ré {'█' * i}"))
    apply(nb, state, "c1", "stream", stream("stdout", "\b\b!\n"))
    # terminal semantics: backspace moves the cursor, the next char overwrites
    assert outputs(nb, "c1")[0]["text"] == "é " + "█" * 7 + "!█\n"


def test_stream_tail_is_reread_when_a_collaborator_changed_the_text(nb):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stdout", "50%"))
    with nb.ydoc.transaction():
        ytext = find_cell(nb.ycells, "c1")["outputs"][0]["text"]
        ytext += "XY"
    apply(nb, state, "c1", "stream", stream("stdout", "\r99%"))
    assert outputs(nb, "c1")[0]["text"] == "99%XY\r99%"


def test_display_data_drops_transient_and_update_edits_every_cell(nb):
    state = DocumentOutputState()
    content = {"data": {"text/plain": "v1"}, "metadata": {}, "transient": {"display_id": "d"}}
    apply(nb, state, "c1", "display_data", content)
    apply(nb, state, "c1", "stream", stream("stdout", "between\n"))
    apply(nb, state, "c2", "display_data", content)
    apply(nb, state, "c2", "display_data", {"data": {"text/plain": "other"}, "metadata": {}})
    changed = apply(
        nb,
        state,
        "c2",
        "update_display_data",
        {"data": {"text/plain": "v2"}, "metadata": {"m": 1}, "transient": {"display_id": "d"}},
    )
    assert changed
    c1, c2 = outputs(nb, "c1"), outputs(nb, "c2")
    assert c1[0] == {
        "output_type": "display_data",
        "data": {"text/plain": "v2"},
        "metadata": {"m": 1},
    }
    assert c1[1]["output_type"] == "stream"
    assert c2[0]["data"] == {"text/plain": "v2"}
    assert c2[1]["data"] == {"text/plain": "other"}
    assert all("transient" not in o for o in c1 + c2)


def test_update_for_cleared_output_is_ignored(nb):
    state = DocumentOutputState()
    content = {"data": {"text/plain": "v1"}, "metadata": {}, "transient": {"display_id": "d"}}
    apply(nb, state, "c1", "display_data", content)
    apply(nb, state, "c1", "clear_output", {"wait": False})
    apply(nb, state, "c1", "stream", stream("stdout", "x"))
    assert not apply(
        nb,
        state,
        "c1",
        "update_display_data",
        {"data": {"text/plain": "v2"}, "transient": {"display_id": "d"}},
    )
    assert outputs(nb, "c1") == [{"output_type": "stream", "name": "stdout", "text": "x"}]


def test_clear_output_wait_clears_just_before_next_output(nb):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stdout", "frame 1\n"))
    apply(nb, state, "c1", "clear_output", {"wait": True})
    assert outputs(nb, "c1")[0]["text"] == "frame 1\n"
    apply(nb, state, "c1", "stream", stream("stdout", "frame 2\n"))
    assert outputs(nb, "c1") == [{"output_type": "stream", "name": "stdout", "text": "frame 2\n"}]
    apply(nb, state, "c1", "clear_output", {"wait": False})
    assert outputs(nb, "c1") == []


def test_execute_result_error_and_image(nb):
    state = DocumentOutputState()
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="  # noqa: E501
    apply(
        nb,
        state,
        "c1",
        "display_data",
        {"data": {"image/png": png, "text/plain": "<Figure>"}, "metadata": {}},
    )
    apply(
        nb,
        state,
        "c1",
        "execute_result",
        {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 3},
    )
    apply(
        nb,
        state,
        "c1",
        "error",
        {"ename": "ValueError", "evalue": "bad", "traceback": ["tb1", "tb2"]},
    )
    out = outputs(nb, "c1")
    assert out[0]["data"]["image/png"] == png
    assert out[1] == {
        "output_type": "execute_result",
        "data": {"text/plain": "2"},
        "metadata": {},
        "execution_count": 3,
    }
    assert out[2] == {
        "output_type": "error",
        "ename": "ValueError",
        "evalue": "bad",
        "traceback": ["tb1", "tb2"],
    }


def test_status_and_unknown_messages_change_nothing(nb):
    state = DocumentOutputState()
    assert not apply(nb, state, "c1", "status", {"execution_state": "busy"})
    assert not apply(nb, state, "c1", "execute_input", {"code": "1", "execution_count": 1})
    assert outputs(nb, "c1") == []


def test_start_and_finish_and_saved_notebook_validates(nb):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stdout", "old\n"))
    with nb.ydoc.transaction():
        start_execution(find_cell(nb.ycells, "c1"), state)
    cell = find_cell(nb.ycells, "c1")
    assert cell["execution_state"] == "running" and cell["execution_count"] is None
    assert outputs(nb, "c1") == []
    apply(nb, state, "c1", "stream", stream("stdout", "a\rb\n"))
    apply(
        nb,
        state,
        "c1",
        "display_data",
        {"data": {"text/plain": "x"}, "metadata": {}, "transient": {"display_id": "q"}},
    )
    with nb.ydoc.transaction():
        finish_execution(cell, 7)
    assert cell["execution_state"] == "idle" and cell["execution_count"] == 7
    saved = nb.get()
    nbformat.validate(nbformat.from_dict(saved))
    assert saved["cells"][0]["outputs"][0]["text"] == "b\n"


def test_start_of_a_queued_cell_writes_only_what_changes(nb):
    # A cell of "run all" already shows [*] (queued) with no count: its start clears its
    # outputs and leaves the count and the state as they are (collaborators receive no item
    # for them); a re-run cell (count 3, idle) gets both written, in the start transaction.
    state = DocumentOutputState()
    cell = find_cell(nb.ycells, "c1")
    with nb.ydoc.transaction():
        cell["execution_count"] = None
        cell["execution_state"] = "running"
    apply(nb, state, "c1", "stream", stream("stdout", "old\n"))
    changed: list[set[str]] = []
    sub = cell.observe(lambda event: changed.append(set(event.keys)))
    with nb.ydoc.transaction():
        start_execution(cell, state)
    assert outputs(nb, "c1") == []
    assert not any(keys & {"execution_count", "execution_state"} for keys in changed)
    with nb.ydoc.transaction():
        finish_execution(cell, 3)
    changed.clear()
    with nb.ydoc.transaction():
        start_execution(cell, state)
    assert changed == [{"execution_count", "execution_state"}]
    assert cell["execution_state"] == "running" and cell["execution_count"] is None
    cell.unobserve(sub)


def test_many_messages_in_one_transaction_give_one_update(nb):
    state = DocumentOutputState()
    updates = []
    nb.ydoc.observe(lambda event: updates.append(event.update))
    with nb.ydoc.transaction():
        cell = find_cell(nb.ycells, "c1")
        for i in range(200):
            apply_output_message(nb.ycells, cell, "stream", stream("stdout", f"{i}\n"), state)
    assert len(updates) == 1
    assert outputs(nb, "c1")[0]["text"].count("\n") == 200


def test_large_stream_append_does_not_reread_text(nb, monkeypatch):
    state = DocumentOutputState()
    apply(nb, state, "c1", "stream", stream("stdout", "x" * 2_000_000 + "\n"))
    reads = []
    original = Text.__str__
    monkeypatch.setattr(Text, "__str__", lambda self: reads.append(1) or original(self))
    for i in range(20):
        apply(nb, state, "c1", "stream", stream("stdout", f"\r{i}%"))
    assert reads == []
    monkeypatch.undo()
    text = outputs(nb, "c1")[0]["text"]
    assert text.endswith("\n19%") and len(text) == 2_000_004
