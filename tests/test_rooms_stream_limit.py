"""The per-cell output limit cuts a flooding cell without reading its whole text
(rooms/repair.py ``StreamFacts``) and leaves exactly what a full read leaves."""

from __future__ import annotations

import pytest
from pycrdt import Array, Doc, Map, Text

from collab_kernels.rooms import repair

LIMIT = 1000


def notebook() -> tuple[Doc, Map]:
    doc: Doc = Doc()
    cells = doc.get("cells", type=Array)
    with doc.transaction():
        cell = Map({"cell_type": "code", "id": "c1", "source": Text("print()"), "outputs": Array()})
        cells.append(cell)
        cell["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": Text("")}))
    return doc, cells[0]


def text_of(cell: Map) -> str:
    return str(cell["outputs"][0]["text"])


class Writer:
    """What the execution stage does for one cell: append, then apply the limit with what
    it appended verbatim in ASCII since its last call (None: written otherwise)."""

    def __init__(self, memo: dict | None):
        self.doc, self.cell = notebook()
        self.memo = memo
        self.appended: int | None = None

    def write(self, chunk: str, keep: int | None = None, dropped: int = 0) -> bool:
        with self.doc.transaction():
            text = self.cell["outputs"][0]["text"]
            text += chunk
            if self.appended is not None:
                self.appended = self.appended + len(chunk) if chunk.isascii() else None
            appended, self.appended = self.appended, 0
            return repair.trim_cell_streams(
                self.cell,
                LIMIT,
                keep=keep,
                dropped_before=dropped,
                memo=self.memo,
                appended=appended,
            )


def flood() -> list[tuple[str, int | None, int]]:
    """Chunks as the execution stage writes them: small lines, cut chunks of the newest
    ``keep`` bytes (``dropped`` left out before them), some non-ASCII text."""
    steps: list[tuple[str, int | None, int]] = []
    for i in range(30):
        steps.append((f"line {i}\n" * 17, None, 0))
    for i in range(5):
        steps.append(("x" * 799 + "\n", 800, 300 + i))  # a cut chunk: everything older goes
        steps.append((f"after {i}\n", None, 0))
    steps.append(("é" * 150 + "\n", None, 0))  # non-ASCII: read again, then cut unread again
    for i in range(20):
        steps.append((f"again {i}\n" * 13, None, 0))
    steps.append(("y" * 799 + "\n", 800, 7))
    return steps


def test_a_flooding_cell_keeps_what_a_full_read_keeps():
    fast, slow = Writer(memo={}), Writer(memo=None)
    trims = 0
    for chunk, keep, dropped in flood():
        assert fast.write(chunk, keep, dropped) == slow.write(chunk, keep, dropped)
        assert text_of(fast.cell) == text_of(slow.cell)
        trims += text_of(slow.cell).startswith("[")
    assert trims > 20
    assert text_of(slow.cell).startswith("[")
    assert fast.memo  # the last trim's facts are kept for the next one


def test_a_cut_needs_no_read_of_the_text_while_only_ascii_was_appended(monkeypatch):
    fast, slow = Writer(memo={}), Writer(memo=None)
    for chunk, keep, dropped in flood()[:30]:  # past the limit once: the first cut reads
        fast.write(chunk, keep, dropped)
        slow.write(chunk, keep, dropped)
    reads = []
    original = Text.__str__
    for _ in range(5):
        for chunk, keep, dropped in (("x" * 799 + "\n", 800, 100), ("z" * 300 + "\n", None, 0)):
            monkeypatch.setattr(Text, "__str__", lambda self: reads.append(1) or original(self))
            cut = fast.write(chunk, keep, dropped)
            monkeypatch.undo()
            assert cut == slow.write(chunk, keep, dropped) is True
            assert text_of(fast.cell) == text_of(slow.cell)
    assert reads == []
    kept = text_of(fast.cell)
    assert kept.startswith("[") and kept.endswith("x\n" + "z" * 300 + "\n")
    assert len(kept.encode()) <= LIMIT


def sync(source: Doc, target: Doc) -> None:
    target.apply_update(source.get_update(target.get_state()))


@pytest.mark.parametrize("edit", ["marker", "replace"])
def test_an_edit_by_someone_else_or_a_new_text_makes_the_limit_read_again(edit):
    fast, slow = Writer(memo={}), Writer(memo=None)
    for chunk, keep, dropped in flood()[:40]:
        fast.write(chunk, keep, dropped)
        slow.write(chunk, keep, dropped)
    for writer in (fast, slow):
        if edit == "marker":  # a collaborator rewrites the marker's count, same length
            peer: Doc = Doc()
            sync(writer.doc, peer)
            ptext = peer.get("cells", type=Array)[0]["outputs"][0]["text"]
            count = text_of(writer.cell)[1:].split(" ")[0]
            with peer.transaction():
                del ptext[1 : 1 + len(count)]
                ptext.insert(1, "9" * len(count))
            sync(peer, writer.doc)
        else:  # the server replaces the output with a text of the same length
            with writer.doc.transaction():
                old = text_of(writer.cell)
                writer.cell["outputs"][0]["text"] = Text("q" * len(old))
    for writer in (fast, slow):
        writer.write("w" * 500 + "\n")
    assert text_of(fast.cell) == text_of(slow.cell)
    assert text_of(fast.cell).startswith("[")
