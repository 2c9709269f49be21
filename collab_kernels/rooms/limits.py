"""How deep a Y update nests, read from its bytes before it touches a document.

A client can send any valid Y update. One that nests maps 2000 deep inside a cell's metadata
(or a JSON value 2000 lists deep) is accepted by pycrdt, but every later save fails: jupyter_ydoc
and nbformat recurse over the document (``RecursionError``), and a stored history holding it
cannot be reopened. So incoming updates are measured first, without applying them:

- :func:`inspect_update` walks the update's structs (lib0 v1 encoding: struct groups of items,
  each with its origin, parent and content) and reports its size, whether it creates shared
  types, the depth of JSON values (``ContentAny``, ``ContentJSON``...) and a lower bound of
  shared-type nesting (chains of types created inside each other within the update);
- :func:`type_depth` measures the nesting of shared types of a document (iteratively, it
  stops at the limit), for the exact check of updates that create types (they may hang below
  existing ones): the room applies such an update to a scratch copy first.

Pure (bytes and pycrdt documents only), unit tested without a server.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, Text

from .protocol import MessageTooBig, ProtocolError

# content kinds of an item (info & 0x1F)
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
# type refs that carry a name (XmlElement, XmlHook)
_NAMED_TYPE_REFS = (3, 5)
_KNOWN_TYPE_REFS = range(7)  # array, map, text, xml element, fragment, hook, xml text

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class UpdateTooDeep(ProtocolError):
    """An update that nests shared types or JSON values deeper than allowed."""


@dataclass
class UpdateShape:
    """What :func:`inspect_update` found."""

    size: int
    creates_types: bool = False
    #: deepest JSON value (1 = a list or object of scalars)
    value_depth: int = 0
    #: a lower bound of the shared-type nesting the update creates (1 = a root type's child)
    type_depth: int = 0


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError("truncated Y update")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ProtocolError("varUint too long in Y update")

    def skip_varint(self) -> None:
        while self.byte() & 0x80:
            pass

    def buffer(self) -> bytes:
        length = self.uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("truncated Y update")
        value = self.data[self.pos : end]
        self.pos = end
        return value

    def string(self) -> str:
        try:
            return self.buffer().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("a string in the Y update is not UTF-8") from e

    def skip(self, count: int) -> None:
        if self.pos + count > len(self.data):
            raise ProtocolError("truncated Y update")
        self.pos += count


def _any_depth(reader: _Reader, limit: int) -> int:
    """Skip one lib0 ``Any`` value; its container depth (iterative, stops past ``limit``)."""
    stack = [[1, False]]  # [values left, values are object entries (key first)]
    deepest = 0
    while stack:
        top = stack[-1]
        if top[0] == 0:
            stack.pop()
            continue
        top[0] -= 1
        if top[1]:
            reader.buffer()  # the key
        tag = reader.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            continue
        if tag == 125:  # varInt
            reader.skip_varint()
        elif tag == 124:  # float32
            reader.skip(4)
        elif tag in (123, 122):  # float64, bigint64
            reader.skip(8)
        elif tag in (119, 116):  # string, Uint8Array
            reader.buffer()
        elif tag in (118, 117):  # object, array
            count = reader.uint()
            deepest = max(deepest, len(stack))
            if limit and deepest > limit:
                return deepest
            stack.append([count, tag == 118])
        else:
            raise ProtocolError(f"unknown value type {tag} in Y update")
    return deepest


def _json_depth(text: str) -> int:
    """The bracket depth of a JSON text (strings ignored)."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _Items:
    """Clock ranges of the update's items per client, with the depth of their parent type."""

    def __init__(self) -> None:
        self.starts: dict[int, list[int]] = {}
        self.ranges: dict[int, list[tuple[int, int, int]]] = {}

    def add(self, client: int, clock: int, length: int, parent_depth: int) -> None:
        self.starts.setdefault(client, []).append(clock)
        self.ranges.setdefault(client, []).append((clock, clock + length, parent_depth))

    def parent_depth(self, client: int, clock: int) -> int:
        """The parent depth of the item holding ``(client, clock)``; 0 when not in the update."""
        starts = self.starts.get(client)
        if not starts:
            return 0
        index = bisect_right(starts, clock) - 1
        if index < 0:
            return 0
        start, end, depth = self.ranges[client][index]
        return depth if start <= clock < end else 0


def inspect_update(update: bytes, *, max_depth: int = 0) -> UpdateShape:
    """Read a v1 Y update's structs (not its delete set); raises :class:`ProtocolError` if
    they are malformed and :class:`UpdateTooDeep` past ``max_depth`` (0: measure only)."""
    reader = _Reader(update)
    shape = UpdateShape(size=len(update))
    items = _Items()
    types: dict[tuple[int, int], int] = {}  # type item id -> the depth of that type
    for _ in range(reader.uint()):
        count = reader.uint()
        client = reader.uint()
        clock = reader.uint()
        for _ in range(count):
            info = reader.byte()
            kind = info & 0x1F
            if kind in (_GC, _SKIP):
                clock += reader.uint()
                continue
            parent_depth = 0  # unknown: an existing item's
            if info & 0x80:  # origin
                parent_depth = items.parent_depth(reader.uint(), reader.uint())
            if info & 0x40:  # right origin
                right = items.parent_depth(reader.uint(), reader.uint())
                parent_depth = parent_depth or right
            if not info & 0xC0:
                if reader.uint() == 1:  # a root type, by name
                    reader.buffer()
                    parent_depth = 1
                else:
                    parent_depth = types.get((reader.uint(), reader.uint()), 0)
                if info & 0x20:  # parentSub: a map key
                    reader.buffer()
            length = 1
            value_depth = 0
            if kind == _DELETED:
                length = reader.uint()
            elif kind == _JSON:
                length = reader.uint()
                for _ in range(length):
                    value_depth = max(value_depth, _json_depth(reader.string()))
            elif kind == _BINARY:
                reader.buffer()
            elif kind == _STRING:
                length = len(reader.string().encode("utf-16-le")) // 2
            elif kind == _EMBED:
                value_depth = _json_depth(reader.string())
            elif kind == _FORMAT:
                reader.buffer()
                value_depth = _json_depth(reader.string())
            elif kind == _TYPE:
                ref = reader.uint()
                if ref not in _KNOWN_TYPE_REFS:
                    raise ProtocolError(f"unsupported shared type {ref} in Y update")
                if ref in _NAMED_TYPE_REFS:
                    reader.buffer()
                shape.creates_types = True
                # unknown parents are at least a root type's child
                depth = (parent_depth or 1) + 1
                types[(client, clock)] = depth
                shape.type_depth = max(shape.type_depth, depth - 1)
            elif kind == _ANY:
                length = reader.uint()
                for _ in range(length):
                    value_depth = max(value_depth, _any_depth(reader, max_depth))
                    if max_depth and value_depth > max_depth:
                        break
            elif kind == _DOC:
                reader.buffer()
                value_depth = _any_depth(reader, max_depth)
            else:
                raise ProtocolError(f"unknown content type {kind} in Y update")
            shape.value_depth = max(shape.value_depth, value_depth)
            if max_depth and (shape.value_depth > max_depth or shape.type_depth > max_depth):
                raise UpdateTooDeep(
                    f"the update nests {'values' if shape.value_depth > max_depth else 'types'} "
                    f"deeper than max_update_depth ({max_depth})"
                )
            items.add(client, clock, length, parent_depth)
            clock += length
    return shape


def type_depth(roots: Iterable[Any], limit: int) -> int:
    """The nesting of shared types below ``roots`` (1 = a root's child), up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 0) for root in roots]
    while stack:
        shared, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(shared, Map):
            children: Iterable[Any] = shared.values()
        elif isinstance(shared, Array):
            children = shared
        else:  # Text and others hold no nested types we read
            continue
        for child in children:
            if isinstance(child, (Map, Array, Text)):
                stack.append((child, depth + 1))
    return deepest


def notebook_roots(ydoc: Doc[Any]) -> list[Any]:
    """The root types of a notebook document that jupyter_ydoc reads."""
    return [ydoc.get("cells", type=Array), ydoc.get("meta", type=Map)]


#: how deep the server's own edits nest types in a notebook (cell, outputs, output, text)
SCHEMA_DEPTH = 4


def check_update(
    ydoc: Doc[Any],
    update: bytes,
    *,
    max_size: int,
    max_depth: int,
    notebook: bool,
    depth_bound: Callable[[], int],
) -> int | None:
    """Refuse an update for ``ydoc`` over ``max_size`` bytes (:class:`MessageTooBig`) or
    nesting deeper than ``max_depth`` (:class:`UpdateTooDeep`), before it changes anything.

    ``depth_bound()`` is an upper bound of the document's type nesting; the bound after the
    update is returned (None when unchanged). An update creating types may hang them below
    existing ones: while the bound plus what the update nests stays within ``max_depth`` it
    is accepted at once; otherwise it is applied to a scratch copy of the document and the
    result is measured (which also gives the exact depth as the new bound)."""
    if max_size and len(update) > max_size:
        raise MessageTooBig(f"a Y update of {len(update)} bytes (max_update_size is {max_size})")
    shape = inspect_update(update, max_depth=max_depth)
    if not (max_depth and shape.creates_types and notebook):
        return None
    bound = depth_bound() + shape.type_depth
    if bound <= max_depth:
        return bound
    scratch: Doc[Any] = Doc()
    try:
        scratch.apply_update(ydoc.get_update())
        scratch.apply_update(update)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # pycrdt raises (or panics) on a corrupt update
        raise ProtocolError(f"invalid Y update: {e}") from e
    exact = type_depth(notebook_roots(scratch), max_depth)
    if exact > max_depth:
        raise UpdateTooDeep(f"the update nests types deeper than max_update_depth ({max_depth})")
    return max(exact, SCHEMA_DEPTH)
