"""A flood's buffered stream chunks: joined from the newest ones only when the cell keeps
less than they hold, with the same text and the same count of left-out bytes as joining
them all and cutting (``execution/batching.py``)."""

from __future__ import annotations

from typing import Any

from collab_kernels.execution.batching import LEFT_OUT, Pending, StreamCuts, join_streams

KEEP = 1000


def chunks(cell: str, count: int, size: int = 300, name: str = "stdout") -> list[Pending]:
    return [
        (cell, "stream", {"name": name, "text": f"{cell}{i:05d}".ljust(size - 1, ".") + "\n"})
        for i in range(count)
    ]


def written(pending: list[Pending], keep: int) -> tuple[list[tuple[str, str, Any]], dict]:
    """What the writer applies for ``pending`` (each message's content after the cut) and
    the cuts the output limit is told."""
    cuts = StreamCuts(keep)
    out = [(cell, kind, cuts.message(cell, kind, content)) for cell, kind, content in pending]
    return out, {cell: cuts.of(cell) for cell, _, _ in pending}


def test_a_flood_is_joined_from_its_newest_chunks_only():
    pending = [
        *chunks("a", 100),
        ("a", "stream", {"name": "stderr", "text": "oops\n"}),
        *chunks("b", 3),
        ("a", "display_data", {"data": {"text/plain": "x"}, "metadata": {}}),
        *chunks("a", 50),
    ]
    whole = join_streams(pending)  # no limit: everything joined
    newest = join_streams(pending, KEEP)
    assert [(c, k) for c, k, _ in newest] == [(c, k) for c, k, _ in whole]
    assert len(newest[0][2]["text"]) < KEEP + 300  # not the 30,000 characters of the run
    assert newest[0][2][LEFT_OUT] == 30_000 - len(newest[0][2]["text"])
    assert newest[2][2]["text"] == whole[2][2]["text"]  # b holds less than it keeps
    assert written(newest, KEEP) == written(whole, KEEP)
    for _, _, content in written(newest, KEEP)[0]:
        assert LEFT_OUT not in content  # never written into the document


def test_non_ascii_or_short_runs_are_joined_whole():
    accented = [*chunks("a", 10), ("a", "stream", {"name": "stdout", "text": "é\n"})]
    assert join_streams(accented, KEEP) == join_streams(accented)
    short = chunks("a", 3)
    assert join_streams(short, KEEP) == join_streams(short)
    assert join_streams(chunks("a", 10), 0) == join_streams(chunks("a", 10))


def test_a_joined_message_buffered_again_keeps_its_count():
    """The writer's budget ran out: the joined messages not applied are buffered again and
    joined with what arrives next; the cut then counts every left-out byte once."""
    first, later = chunks("a", 40), chunks("a", 40)
    once = join_streams(first + later)
    again = join_streams(join_streams(first, KEEP) + later, KEEP)
    assert again[0][2][LEFT_OUT] + len(again[0][2]["text"]) == 24_000
    assert written(again, KEEP) == written(once, KEEP)
    # the limit turned off meanwhile: the text joined before stays cut, and counted
    out, cut = written(join_streams(join_streams(first, KEEP) + later, 0), 0)
    kept = out[0][2]["text"]
    assert cut["a"] == (len(kept), 24_000 - len(kept))
