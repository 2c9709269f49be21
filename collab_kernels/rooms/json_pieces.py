"""A JSON decoder that gives the GIL back while it reads a big notebook.

Why: ``json.loads`` is one C call. Reading a 65 MB notebook it holds the GIL for about
250 ms, in whichever thread it runs: the stock contents manager parses in a worker thread,
and the event loop of every room still stood still for that long while a big notebook was
opened (issue 15, item 5).

:class:`PiecewiseDecoder` is a ``json.JSONDecoder`` (``json.loads(s, cls=...)``, which is
how ``nbformat.reads`` passes it on) whose ``decode`` hands the text to the decoder's own C
scanner (``scan_once``, the call ``json.loads`` makes once for the whole text) in pieces of
at most about ``RUN_CHARS`` characters:

- an array's members go in *runs*: the members up to the last ``,`` + newline + the first
  member's indentation within ``RUN_CHARS`` (where the next member starts in a file written
  with ``indent``, as every notebook is) are decoded as one array in one call. A run that
  does not decode to exactly that text (a file formatted otherwise) is not used: the members
  are then decoded one by one;
- a member too big for a run, and each member of an object, is walked the same way, down to
  ``WALK_DEPTH`` levels (deeper: one call, as ``json.loads`` would).

Why a run is exact: JSON has no raw newline inside a string, so the ``,`` before a newline is
a separator; a text that decodes, wrapped in ``[`` and ``]``, to an array ending exactly at
that separator is the members the whole text's decoding reads up to it (the grammar reads
one token ahead and the separator ends every value). The values are those ``json.loads``
gives (``tests/test_rooms_json_pieces.py`` compares them on notebooks and on odd layouts,
and that bad text raises ``JSONDecodeError``). It costs about twice the CPU of
``json.loads``, spent off the loop, giving the GIL back between pieces.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from json.decoder import JSONDecodeError
from typing import Any

#: levels of objects and arrays walked in Python (deeper ones: one C call each)
WALK_DEPTH = 16
#: characters of an array's members decoded in one C call (1-2 ms)
RUN_CHARS = 1 << 19

_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: json's C ``scanstring`` (not in the type stubs)
scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class PiecewiseDecoder(json.JSONDecoder):
    """``json.JSONDecoder`` whose ``decode`` holds the GIL for one piece at a time."""

    #: the C scanner ``JSONDecoder.__init__`` makes (not in the type stubs)
    scan_once: Callable[[str, int], tuple[Any, int]]

    def decode(self, s: str, _w: Any = _WHITESPACE.match) -> Any:
        value, end = self._value(s, _w(s, 0).end(), 0)
        end = _w(s, end).end()
        if end != len(s):
            raise JSONDecodeError("Extra data", s, end)
        return value

    def _value(self, s: str, idx: int, depth: int) -> tuple[Any, int]:
        char = s[idx : idx + 1]
        if depth < WALK_DEPTH:
            if char == "{":
                return self._object(s, idx + 1, depth + 1)
            if char == "[":
                return self._array(s, idx + 1, depth + 1)
        try:
            value, end = self.scan_once(s, idx)
        except StopIteration as e:
            raise JSONDecodeError("Expecting value", s, e.value) from None
        return value, end

    def _object(self, s: str, idx: int, depth: int, _w: Any = _WHITESPACE.match) -> tuple[Any, int]:
        pairs: list[tuple[str, Any]] = []
        idx = _w(s, idx).end()
        if s[idx : idx + 1] == "}":
            return self._finish(pairs), idx + 1
        while True:
            if s[idx : idx + 1] != '"':
                raise JSONDecodeError("Expecting property name enclosed in double quotes", s, idx)
            key, idx = scanstring(s, idx + 1, self.strict)
            idx = _w(s, idx).end()
            if s[idx : idx + 1] != ":":
                raise JSONDecodeError("Expecting ':' delimiter", s, idx)
            idx = _w(s, idx + 1).end()
            value, idx = self._value(s, idx, depth)
            pairs.append((key, value))
            idx = _w(s, idx).end()
            char = s[idx : idx + 1]
            if char == "}":
                return self._finish(pairs), idx + 1
            if char != ",":
                raise JSONDecodeError("Expecting ',' delimiter", s, idx)
            idx = _w(s, idx + 1).end()

    def _finish(self, pairs: list[tuple[str, Any]]) -> Any:
        if self.object_pairs_hook is not None:
            return self.object_pairs_hook(pairs)
        result = dict(pairs)
        return result if self.object_hook is None else self.object_hook(result)

    def _array(self, s: str, idx: int, depth: int, _w: Any = _WHITESPACE.match) -> tuple[Any, int]:
        values: list[Any] = []
        idx = _w(s, idx).end()
        if s[idx : idx + 1] == "]":
            return values, idx + 1
        separator = _separator(s[s.rfind("\n", 0, idx) + 1 : idx])
        next_run = idx if separator is not None else len(s)
        while True:
            if idx >= next_run and separator is not None:
                cut = _run_end(s, idx, separator)
                run = self._run(s, idx, cut) if cut > idx else None
                if run is not None:
                    members, end = run
                    values.extend(members)
                    if end is not None:
                        return values, end
                    idx = _w(s, cut + 1).end()
                    continue
                next_run = idx + RUN_CHARS  # none in this window: not before the next one
            value, idx = self._value(s, idx, depth)
            values.append(value)
            idx = _w(s, idx).end()
            char = s[idx : idx + 1]
            if char == "]":
                return values, idx + 1
            if char != ",":
                raise JSONDecodeError("Expecting ',' delimiter", s, idx)
            idx = _w(s, idx + 1).end()

    def _run(self, s: str, idx: int, cut: int) -> tuple[list[Any], int | None] | None:
        """The members in ``s[idx:cut]`` decoded in one call, with None when the array goes
        on after ``cut``, or with the end of the array when it ends before; None when that
        text is not a list of members (a file laid out otherwise)."""
        text = "[" + s[idx:cut] + "]"
        try:
            members, end = self.scan_once(text, 0)
        except (StopIteration, ValueError):
            return None
        if not isinstance(members, list):
            return None
        # text[end - 1] closed the array: the wrapper's "]", or the array's own (at
        # s[idx + end - 2]) when the array ended before the cut
        return members, (None if end == len(text) else idx + end - 1)


@functools.lru_cache(maxsize=64)
def _separator(indentation: str) -> re.Pattern[str] | None:
    """Where the next member of an array whose first member is indented by ``indentation``
    starts (None: the first member is not at the start of its line)."""
    if _WHITESPACE.fullmatch(indentation) is None or "\n" in indentation:
        return None
    return re.compile(",\n" + re.escape(indentation) + r"(?=[^ \t\n\r])")


def _run_end(s: str, idx: int, separator: re.Pattern[str]) -> int:
    """A separator of members in ``s[idx:idx + RUN_CHARS]``, in its second half if there is
    one; -1 if none."""
    half = idx + RUN_CHARS // 2
    found = separator.search(s, half, idx + RUN_CHARS) or separator.search(s, idx, half)
    return -1 if found is None else found.start()
