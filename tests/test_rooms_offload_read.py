"""Notebook reads off the event loop (rooms/offload_read.py) give the stock model."""

from __future__ import annotations

import json
import threading
import zlib

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from nbformat.sign import NotebookNotary
from tornado.web import HTTPError
from traitlets.config import Config

from collab_kernels.rooms import json_pieces, offload_read


@pytest.fixture
def jp_server_config():
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"collab_kernels": True, "jupyter_server_fileid": True},
            },
        }
    )


def notebook(text: str = "hi") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Pÿthon 3"}
    cell = nbformat.v4.new_code_cell("display(HTML('<b>hi</b>'))")
    cell.outputs.append(
        nbformat.v4.new_output("display_data", data={"text/html": f"<b>{text}</b>"})
    )
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="line 🌍\n" * 5000))
    nb.cells += [cell, nbformat.v4.new_markdown_cell("# títle")]
    return nb


async def stock_and_offloaded(cm, path: str) -> tuple[dict, dict]:
    stock = await cm.get(path, content=True, type="notebook", require_hash=True)
    offloaded = await offload_read.notebook_model(cm, path)
    return stock, offloaded


async def test_trusted_untrusted_and_invalid_notebooks_read_as_stock(jp_serverapp, jp_root_dir):
    cm = jp_serverapp.contents_manager
    assert offload_read.is_offloaded(cm)
    # signed by the server (saved through the contents API): trusted
    signed = notebook("signed")
    signed.cells[0].metadata["trusted"] = True  # as the browser sends a trusted cell
    await cm.save({"type": "notebook", "content": signed}, "signed.ipynb")
    # written straight to disk (git, a copy): not trusted
    nbformat.write(notebook("copied"), str(jp_root_dir / "copied.ipynb"))
    # not valid against the schema: read, with the validation message
    invalid = notebook("invalid")
    invalid.cells[0]["not_a_cell_field"] = 1
    (jp_root_dir / "invalid.ipynb").write_text(json.dumps(invalid, indent=1))
    for path, trusted in (
        ("signed.ipynb", True),
        ("copied.ipynb", False),
        ("invalid.ipynb", False),
    ):
        stock, offloaded = await stock_and_offloaded(cm, path)
        assert offloaded == stock
        assert offloaded["content"].cells[0].metadata.get("trusted") is trusted
        assert ("message" in offloaded) is (path == "invalid.ipynb")


async def test_the_parse_hash_and_signature_run_off_the_loop(
    jp_serverapp, jp_root_dir, monkeypatch
):
    """What kept every room waiting while a big notebook was opened: the stock read hashes
    the file and computes the signature's HMAC on the event loop's thread."""
    cm = jp_serverapp.contents_manager
    nb = notebook()
    nb.cells[0].metadata["trusted"] = True
    await cm.save({"type": "notebook", "content": nb}, "big.ipynb")
    threads: dict[str, set[str]] = {"decode": set(), "signature": set()}
    decode, signature = json_pieces.PiecewiseDecoder.decode, NotebookNotary.compute_signature

    def spied_decode(self, s, *args):
        threads["decode"].add(threading.current_thread().name)
        return decode(self, s, *args)

    def spied_signature(self, nb):
        threads["signature"].add(threading.current_thread().name)
        return signature(self, nb)

    monkeypatch.setattr(json_pieces.PiecewiseDecoder, "decode", spied_decode)
    monkeypatch.setattr(NotebookNotary, "compute_signature", spied_signature)
    model = await offload_read.notebook_model(cm, "big.ipynb")
    assert model["content"].cells[0].metadata["trusted"] is True
    loop_thread = threading.current_thread().name
    assert threads["decode"] and loop_thread not in threads["decode"]
    assert threads["signature"] and loop_thread not in threads["signature"]


async def test_the_text_read_is_kept_compressed_without_a_second_read(jp_serverapp, jp_root_dir):
    """The room keeps the file's text as loaded (the base of a restart merge): compressed
    from the bytes the read hashed, not read, hashed and decoded a second time."""
    cm = jp_serverapp.contents_manager
    await cm.save({"type": "notebook", "content": notebook()}, "kept.ipynb")
    model, loaded = await offload_read.notebook_read(cm, "kept.ipynb", keep_text=True)
    assert loaded is not None and loaded.file_hash == model["hash"]
    on_disk = (jp_root_dir / "kept.ipynb").read_bytes()
    assert zlib.decompress(await loaded.compressed) == on_disk
    assert model == await cm.get("kept.ipynb", content=True, type="notebook", require_hash=True)
    _, not_kept = await offload_read.notebook_read(cm, "kept.ipynb")
    assert not_kept is None


async def test_unreadable_files_fail_as_the_stock_read_fails(jp_serverapp, jp_root_dir):
    cm = jp_serverapp.contents_manager
    (jp_root_dir / "latin1.ipynb").write_bytes(b'{"cells": [], "x": "\xe9"}')
    (jp_root_dir / "broken.ipynb").write_text('{"cells": [')
    for path in ("latin1.ipynb", "broken.ipynb", "missing.ipynb"):
        with pytest.raises(HTTPError) as stock:
            await cm.get(path, content=True, type="notebook", require_hash=True)
        with pytest.raises(HTTPError) as offloaded:
            await offload_read.notebook_model(cm, path)
        assert (offloaded.value.status_code, offloaded.value.log_message) == (
            stock.value.status_code,
            stock.value.log_message,
        )


async def test_a_notebook_restored_from_its_atomic_intermediate_as_stock(jp_serverapp, jp_root_dir):
    """A crash during a stock atomic write leaves the old file as ``.~name``: the stock read
    of the broken file restores it, and so does ours (the stock read is its fallback)."""
    cm = jp_serverapp.contents_manager
    good = nbformat.writes(notebook("kept"))
    (jp_root_dir / "crashed.ipynb").write_text('{"cells": [')
    (jp_root_dir / ".~crashed.ipynb").write_text(good)
    model = await offload_read.notebook_model(cm, "crashed.ipynb")
    assert model["content"].cells[0].outputs[0].data["text/html"] == "<b>kept</b>"
    assert (jp_root_dir / "crashed.ipynb").read_text() == good


def test_other_managers_and_notaries_keep_their_own_read(jp_serverapp):
    class Custom(AsyncFileContentsManager):
        async def get(self, path, content=True, type=None, format=None, require_hash=False):
            return await super().get(path, content, type, format, require_hash)

    assert not offload_read.is_offloaded(Custom(root_dir=jp_serverapp.root_dir))

    class Notary(NotebookNotary):
        pass

    own_notary = AsyncFileContentsManager(root_dir=jp_serverapp.root_dir)
    assert offload_read.is_offloaded(own_notary)
    own_notary.notary = Notary()
    assert not offload_read.is_offloaded(own_notary)
    replaced = AsyncFileContentsManager(root_dir=jp_serverapp.root_dir)
    replaced.notary.check_signature = lambda nb: True
    assert not offload_read.is_offloaded(replaced)
