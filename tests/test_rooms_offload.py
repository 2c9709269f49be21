"""Notebook saves off the event loop (rooms/offload.py) write what the stock save writes."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from traitlets.config import Config

from collab_kernels.rooms import offload


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
        }
    )


def trusted_notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(HTML('<b>hi</b>'))")
    cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/html": "<b>hi</b>"}))
    nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_markdown_cell("text " * 1000))
    nb = nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))
    nb.cells[0].metadata["trusted"] = True  # as a room's document has it
    return nb


async def test_offloaded_save_writes_signs_and_announces_like_the_stock_save(
    jp_serverapp, jp_root_dir
):
    cm = jp_serverapp.contents_manager
    assert offload.is_stock(cm)  # the server's default contents manager
    events: list[dict] = []

    async def listener(logger, schema_id, data):
        events.append(dict(data))

    jp_serverapp.event_logger.add_listener(
        schema_id="https://events.jupyter.org/jupyter_server/contents_service/v1",
        listener=listener,
    )
    content = trusted_notebook()
    for name in ("stock.ipynb", "offloaded.ipynb"):
        (jp_root_dir / name).write_text("{}")
    await cm.save({"type": "notebook", "content": copy.deepcopy(content)}, "stock.ipynb")
    model = await offload.save_notebook(
        cm, {"type": "notebook", "content": copy.deepcopy(content)}, "offloaded.ipynb"
    )

    stock_bytes = (jp_root_dir / "stock.ipynb").read_bytes()
    assert (jp_root_dir / "offloaded.ipynb").read_bytes() == stock_bytes
    expected = await cm.get("offloaded.ipynb", content=False, require_hash=True)
    assert model["hash"] == expected["hash"]
    assert model["last_modified"] == expected["last_modified"]
    assert await offload.file_model(cm, "offloaded.ipynb") == {**expected, "content": None}
    # signed: loaded again, its cells are trusted
    assert (await cm.get("stock.ipynb"))["content"].cells[0].metadata.get("trusted") is True
    loaded = await cm.get("offloaded.ipynb")
    assert loaded["content"].cells[0].metadata.get("trusted") is True
    assert await cm.checkpoints.list_checkpoints("offloaded.ipynb")
    saves = [e["path"] for e in events if e.get("action") == "save"]
    assert "offloaded.ipynb" in saves


async def test_untrusted_notebook_is_saved_unsigned(jp_serverapp, jp_root_dir):
    cm = jp_serverapp.contents_manager
    content = trusted_notebook()
    content.cells[0].metadata["trusted"] = False
    (jp_root_dir / "untrusted.ipynb").write_text("{}")
    await offload.save_notebook(cm, {"type": "notebook", "content": content}, "untrusted.ipynb")
    loaded = await cm.get("untrusted.ipynb")
    assert loaded["content"].cells[0].metadata.get("trusted") is False


def test_other_contents_managers_keep_their_own_save(jp_serverapp):
    class Custom(AsyncFileContentsManager):
        async def save(self, model, path=""):
            return await super().save(model, path)

    assert not offload.is_stock(Custom(root_dir=jp_serverapp.root_dir))
    patched = AsyncFileContentsManager(root_dir=jp_serverapp.root_dir)
    assert offload.is_stock(patched)
    patched.save = lambda model, path="": None  # e.g. a test double that fails saves
    assert not offload.is_stock(patched)


EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))


def every_kind_of_cell() -> dict:
    """Unicode, CRLF, attachments, rich and error outputs, a transient display id (which
    the schema refuses and the writer strips)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Pÿthon 3 ✓"}
    cell = nbformat.v4.new_code_cell("print('héllo 🌍')\nx = 1\n")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\nb\r\nc 🌍\n" * 3000),
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "x\ny", "image/png": "iVBORw0KGgo=\n", "application/json": [1]},
            metadata={"isolated": True},
        ),
        nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["t1", "t2"]),
    ]
    cell.outputs[1]["transient"] = {"display_id": "abc"}
    attachments = {"a.png": {"image/png": "AAAA"}}
    nb.cells += [
        cell,
        nbformat.v4.new_markdown_cell("# Tïtle\n\n$x^2$", attachments=attachments),
        nbformat.v4.new_raw_cell(""),
    ]
    return nbformat.from_dict(nb)


@pytest.mark.parametrize("name", [p.name for p in EXAMPLES] + ["every-kind", "invalid"])
def test_notebook_json_is_byte_identical_to_nbformat_writes(name):
    """The offloaded save writes its text in pieces as it encodes it (no whole-text join
    holding the GIL); the file must be what the stock save writes, byte for byte."""
    if name == "every-kind":
        nb = every_kind_of_cell()
    elif name == "invalid":
        nb = every_kind_of_cell()
        nb.cells[0]["not_a_cell_field"] = 1
    else:
        nb = nbformat.read(str(EXAMPLES[[p.name for p in EXAMPLES].index(name)]), as_version=4)
    before = copy.deepcopy(nb)
    expected_error: dict = {}
    expected = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    error: dict = {}
    text = "".join(offload.notebook_json(nb, error))
    assert text == expected + "\n"
    assert nb == before  # the document's content is not modified
    nbformat.writes(nb, capture_validation_error=expected_error)
    assert ("ValidationError" in error) == ("ValidationError" in expected_error)
    assert "ValidationError" in error or name not in ("invalid", "every-kind")


async def test_concurrent_saves_leave_the_interpreter_switching_as_they_found_it(
    jp_serverapp, jp_root_dir
):
    """Saves hand the GIL back to the event loop more often while they run (1 ms switch
    interval), and only then: the server's other threads keep Python's setting."""
    import asyncio
    import sys

    cm = jp_serverapp.contents_manager
    before = sys.getswitchinterval()
    names = [f"n{i}.ipynb" for i in range(3)]
    for name in names:
        (jp_root_dir / name).write_text("{}")
    await asyncio.gather(
        *(
            offload.save_notebook(cm, {"type": "notebook", "content": trusted_notebook()}, name)
            for name in names
        )
    )
    assert sys.getswitchinterval() == before
    for name in names:
        assert nbformat.reads((jp_root_dir / name).read_text(), as_version=4).cells


def checkpoint_file(cm, path: str) -> Path:
    return Path(cm.checkpoints.checkpoint_path("checkpoint", path))


@pytest.mark.parametrize("manager", ["AsyncLargeFileManager", "LargeFileManager"])
async def test_first_save_checkpoint_is_the_stock_one(jp_root_dir, manager):
    from jupyter_server.services.contents import largefilemanager

    cm = getattr(largefilemanager, manager)(root_dir=str(jp_root_dir))
    assert offload.stock_checkpoints(cm) is cm.checkpoints
    content = trusted_notebook()
    for name in ("stock.ipynb", "offloaded.ipynb"):
        (jp_root_dir / name).write_text("{}")
    await ensure_async(
        cm.save({"type": "notebook", "content": copy.deepcopy(content)}, "stock.ipynb")
    )
    await offload.save_notebook(
        cm, {"type": "notebook", "content": copy.deepcopy(content)}, "offloaded.ipynb"
    )
    for name in ("stock.ipynb", "offloaded.ipynb"):
        saved = checkpoint_file(cm, name)
        assert saved.read_bytes() == (jp_root_dir / name).read_bytes()
        assert saved.stat().st_mtime == (jp_root_dir / name).stat().st_mtime  # copystat
        assert [c["id"] for c in await ensure_async(cm.list_checkpoints(name))] == ["checkpoint"]
    # a later save keeps the first checkpoint, as stock
    first = checkpoint_file(cm, "offloaded.ipynb").read_bytes()
    content.cells.append(nbformat.v4.new_markdown_cell("later"))
    await offload.save_notebook(cm, {"type": "notebook", "content": content}, "offloaded.ipynb")
    assert checkpoint_file(cm, "offloaded.ipynb").read_bytes() == first
    assert (jp_root_dir / "offloaded.ipynb").read_bytes() != first


async def test_other_checkpoints_classes_make_their_own_checkpoint(jp_root_dir):
    from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints

    made: list[str] = []

    class Recording(AsyncFileCheckpoints):
        async def create_checkpoint(self, contents_mgr, path):
            made.append(path)
            return await super().create_checkpoint(contents_mgr, path)

    cm = AsyncFileContentsManager(root_dir=str(jp_root_dir))
    cm.checkpoints = Recording(root_dir=str(jp_root_dir))
    assert offload.stock_checkpoints(cm) is None
    (jp_root_dir / "own.ipynb").write_text("{}")
    await offload.save_notebook(
        cm, {"type": "notebook", "content": trusted_notebook()}, "own.ipynb"
    )
    assert made == ["own.ipynb"]
    assert checkpoint_file(cm, "own.ipynb").read_bytes() == (jp_root_dir / "own.ipynb").read_bytes()


class CollectorWatch:
    """A save's text sink (called in the saving thread) noting whether the cyclic garbage
    collector was on for each piece; ``fail`` makes the first write raise."""

    def __init__(self, fail: bool = False):
        self.enabled: list[bool] = []
        self.fail = fail

    def write(self, piece: str) -> None:
        import gc

        self.enabled.append(gc.isenabled())
        if self.fail:
            raise OSError("disk full")

    def close(self, file_hash: str) -> None:
        pass


async def test_saves_pause_the_garbage_collector_and_restore_it(jp_serverapp, jp_root_dir):
    """While a save encodes its split copy of the notebook, young collections (which walked
    every line of that copy, 17 ms with the GIL held for 65 MB) do not run; concurrent saves,
    a failing one among them, leave the collector as they found it, on or off."""
    import asyncio
    import gc

    cm = jp_serverapp.contents_manager
    names = [f"gc{i}.ipynb" for i in range(3)]
    for name in names:
        (jp_root_dir / name).write_text("{}")
    for collector_on in (True, False):
        (gc.enable if collector_on else gc.disable)()
        try:
            watches = [CollectorWatch(fail=name == names[1]) for name in names]
            results = await asyncio.gather(
                *(
                    offload.save_notebook(
                        cm, {"type": "notebook", "content": trusted_notebook()}, name, watch
                    )
                    for name, watch in zip(names, watches, strict=True)
                ),
                return_exceptions=True,
            )
            assert gc.isenabled() is collector_on
        finally:
            gc.enable()
        assert [isinstance(r, Exception) for r in results] == [False, True, False]
        assert all(w.enabled and not any(w.enabled) for w in watches)
