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


# --- over HTTP: every collab_kernels endpoint that reads a body --------------------------

BODIES = {
    "deep list": b"[" * 100_000,
    "deep object": b'{"a":' * 100_000,
    "not UTF-8": b'{"code": "\xff\xfe"}',
    "NaN": b'{"code": NaN}',
    "truncated": b'{"code": "1',
    "not an object": b"[1, 2]",
}


@pytest.fixture
def body_endpoints(jp_fetch, rooms_notebook, start_kernel):
    async def make() -> list[tuple[str, list[str]]]:
        path = rooms_notebook("bodies.ipynb")
        kernel_id = await start_kernel()
        return [
            ("PUT", ["api", "collaboration", "session", path]),
            ("POST", ["api", "kernels", kernel_id, "execute"]),
            ("POST", ["api", "kernels", kernel_id, "input"]),
        ]

    return make


@pytest.mark.parametrize("name", list(BODIES))
async def test_malformed_bodies_answer_400_with_a_message(jp_fetch, body_endpoints, name):
    import json

    from tornado.httpclient import HTTPClientError

    for method, parts in await body_endpoints():
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(*parts, method=method, body=BODIES[name])
        assert info.value.code == 400, (parts, info.value.code)
        message = json.loads(info.value.response.body)["message"]
        assert message, parts
