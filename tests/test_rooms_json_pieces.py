"""The piecewise JSON decoder (rooms/json_pieces.py) reads what json.loads reads, in pieces."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab_kernels.rooms import json_pieces
from collab_kernels.rooms.json_pieces import PiecewiseDecoder

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))

# Strings with what could fool a separator search: escaped newlines and quotes, commas,
# brackets, indentation-like runs of spaces, non-ASCII.
tricky_text = st.text(
    alphabet=st.sampled_from([" ", ",", "\n", "\\", '"', "[", "]", "{", "}", "a", "é", "🌍", "\t"]),
    max_size=12,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(tricky_text, inner, max_size=5),
    max_leaves=40,
)
layouts = st.sampled_from([None, 0, 1, 2, 4, "\t", " \t"])


def piecewise(text: str, **kwargs: Any) -> Any:
    return json.loads(text, cls=PiecewiseDecoder, **kwargs)


@contextlib.contextmanager
def runs_of(chars: int) -> Iterator[None]:
    """Runs of a few characters: every array is cut into many runs, some ending mid-member."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_pieces, "RUN_CHARS", chars)
        yield


@settings(max_examples=400, deadline=None)
@given(value=json_values, indent=layouts, run=st.sampled_from([8, 24, 1 << 19]))
def test_any_json_in_any_layout_reads_as_json_loads_reads_it(value, indent, run):
    for ensure_ascii in (True, False):
        text = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)
        with runs_of(run):
            assert piecewise(text) == json.loads(text)
            assert piecewise("\n " + text + " \n") == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(value=json_values, indent=layouts, cut=st.integers(0, 10_000), junk=tricky_text)
def test_broken_json_is_refused_as_json_loads_refuses_it(value, indent, cut, junk):
    """Truncated, spliced or trailed by junk: an error exactly when json.loads has one."""
    text = json.dumps(value, indent=indent)
    with runs_of(24):
        for broken in (text[: cut % (len(text) + 1)], text + junk, junk + text, text[:cut] + junk):
            try:
                expected = json.loads(broken)
            except json.JSONDecodeError:
                with pytest.raises(json.JSONDecodeError):
                    piecewise(broken)
            else:
                assert piecewise(broken) == expected


def test_hooks_and_depth_beyond_the_walk_are_json_loads_ones():
    with runs_of(24):
        hooks_and_depth()


def hooks_and_depth() -> None:
    deep: Any = [1, {"a": [2, 3]}]
    for _ in range(json_pieces.WALK_DEPTH + 5):
        deep = [{"k": deep, "n": [1, 2]}, 3]
    text = json.dumps(deep, indent=1)
    assert piecewise(text) == json.loads(text)
    pairs = json.dumps({"b": 1, "a": [{"z": 1, "y": 2}]}, indent=1)
    assert piecewise(pairs, object_pairs_hook=list) == json.loads(pairs, object_pairs_hook=list)
    assert piecewise(pairs, object_hook=sorted) == json.loads(pairs, object_hook=sorted)
    with pytest.raises(json.JSONDecodeError):
        piecewise('{"a": "\x01"}')  # a control character, refused as json's strict mode does
    assert piecewise('{"a": "\x01"}', strict=False) == {"a": "\x01"}


def big_notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    line = "x" * 60 + ' \\ " ,\n'
    for i in range(6):
        cell = nbformat.v4.new_code_cell(f"print({i})\n" * 50)
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=line * 20_000))
        cell.outputs.append(
            nbformat.v4.new_output(
                "display_data", data={"text/plain": "ok", "image/png": "A" * 4000}
            )
        )
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_markdown_cell(f"small {i}") for i in range(500)]
    return nb


@pytest.mark.parametrize("name", [p.name for p in EXAMPLES] + ["big"])
def test_notebooks_read_as_nbformat_reads_them(name):
    text = (
        nbformat.writes(big_notebook())
        if name == "big"
        else (EXAMPLES[0].parent / name).read_text()
    )
    assert nbformat.reads(text, as_version=4, cls=PiecewiseDecoder) == nbformat.reads(
        text, as_version=4
    )


def test_no_piece_of_a_big_notebook_is_much_longer_than_a_run():
    """What keeps the event loop going while a big notebook is read: the C scanner (which
    holds the GIL) never gets more than about one run of the text in one call, where
    json.loads gives it the whole 8 MB text at once."""
    text = nbformat.writes(big_notebook())
    longest = 0

    class Measured(PiecewiseDecoder):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            scan = self.scan_once

            def measured(s: str, idx: int) -> tuple[Any, int]:
                nonlocal longest
                value, end = scan(s, idx)
                longest = max(longest, end - idx)
                return value, end

            self.scan_once = measured

    assert len(text) > 8_000_000
    assert json.loads(text, cls=Measured) == json.loads(text)
    assert 0 < longest <= json_pieces.RUN_CHARS + 2
