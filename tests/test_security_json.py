"""The shared JSON body reader: malformed JSON of any kind is refused with a message."""

from __future__ import annotations

import pytest

from collab_kernels.handlers_base import BadJSON, json_depth_exceeds, parse_json

MALFORMED = [
    b"{",
    b"[" * 100_000,
    b'{"a": ' * 50_000,
    b"\xff\xfe{}",
    b'{"x": NaN}',
    b"[Infinity]",
    b"{'single': 'quotes'}",
    b'{"a": 1} trailing',
    b"\x00",
]


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: repr(b[:12]))
def test_malformed_json_is_refused_with_a_message(body):
    with pytest.raises(BadJSON) as info:
        parse_json(body)
    assert str(info.value)


def test_depth_limit_counts_lists_and_objects():
    assert parse_json(b"[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(BadJSON, match="nested deeper than 3"):
        parse_json(b"[[[[1]]]]", max_depth=3)
    with pytest.raises(BadJSON, match="nested deeper than 2"):
        parse_json(b'{"a": {"b": {}}}', max_depth=2)


def test_depth_walk_is_iterative():
    value: list = []
    for _ in range(50_000):
        value = [value]
    assert json_depth_exceeds(value, 64)
    assert not json_depth_exceeds({"a": [1, {"b": "c"}]}, 3)
