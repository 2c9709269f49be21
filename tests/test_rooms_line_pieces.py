"""A save's lines split a piece at a time (rooms/line_pieces.py) are nbformat's lines."""

from __future__ import annotations

import copy

import nbformat
from hypothesis import given, settings
from hypothesis import strategies as st
from nbformat.v4.rwbase import split_lines as nbformat_split_lines

from collab_kernels.rooms import line_pieces

#: every line break str.splitlines knows, and plain text around them
BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
texts = st.lists(st.one_of(st.sampled_from(BREAKS), st.text(max_size=12)), max_size=80).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts, st.integers(min_value=1, max_value=40))
def test_lines_are_splitlines(text, piece):
    assert line_pieces.lines(text, piece) == text.splitlines(True)


def test_a_big_text_is_split_in_short_calls():
    """One splitlines call over a cell's 1.3 MB stream held the GIL for 4 ms, and the event
    loop waited for its end every time it gave the GIL up during a save: the pieces split
    are a line at most beyond PIECE, and each ends a line."""
    text = ("x" * 99 + "\n") * 13_000 + "no line break " * 10_000
    cut = list(line_pieces.pieces(text))
    assert "".join(cut) == text
    assert len(cut) > 30
    assert all(len(piece) <= line_pieces.PIECE + 100 for piece in cut[:-2])
    assert all(piece.endswith("\n") for piece in cut[:-1])
    assert line_pieces.lines(text) == text.splitlines(True)


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("a = 1\r\nb = 2\n" * 5000)
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="línea\n" * 20_000),
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": "<p>\n" * 9000,
                "image/svg+xml": "<svg>\n" * 9000,
                "application/javascript": "x;\n" * 9000,
                "image/png": "QUJD" * 20_000,
                "application/json": {"a": "b\nc"},
            },
        ),
    ]
    markdown = nbformat.v4.new_markdown_cell("# t\u2028itle\n" * 9000)
    markdown["attachments"] = {"a.txt": {"text/plain": "one\ntwo\n" * 9000}}
    nb.cells += [cell, markdown]
    return nb


def test_split_lines_is_nbformats():
    ours = notebook()
    theirs = copy.deepcopy(ours)
    assert line_pieces.split_lines(ours) == nbformat_split_lines(theirs)
    assert nbformat.writes(copy.deepcopy(ours)) == nbformat.writes(copy.deepcopy(theirs))
