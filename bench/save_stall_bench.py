"""How long one save of a big notebook blocks the event loop: stock save vs rooms/offload.py.

    .venv/bin/python bench/save_stall_bench.py --megabytes 56
    .venv/bin/python bench/save_stall_bench.py --megabytes 65 --read   # and the reads

jupyter_server's AsyncLargeFileManager (the default contents manager) in a temporary root;
a notebook of ``--cells`` trusted code cells whose stream outputs add up to ``--megabytes``.
A ticker task wakes every millisecond and records the longest gap between two wake-ups
while the save runs: the longest time nothing else (another room's edit, /api/status) could
run. Prints the gap and the save's duration for the stock ``save`` and for
``offload.save_notebook``. ``--read``: also the stock ``get(content=True,
require_hash=True)`` of the saved file against ``offload_read.notebook_model`` (which the
room's load uses), and checks that both give the same model.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from collab_kernels.rooms import offload, offload_read


def big_notebook(megabytes: float, cells: int) -> dict:
    nb = nbformat.v4.new_notebook()
    per_cell = int(megabytes * 1024 * 1024 / cells)
    line = "x" * 99 + "\n"
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"print({i})")
        cell.outputs.append(
            nbformat.v4.new_output("stream", name="stdout", text=line * (per_cell // 100))
        )
        cell.metadata["trusted"] = True
        nb.cells.append(cell)
    return nb


async def stall_during(coro) -> tuple[float, float]:
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await coro
    took = time.perf_counter() - started
    done = True
    await task
    return longest, took


async def main(args) -> None:
    with tempfile.TemporaryDirectory() as root:
        cm = AsyncLargeFileManager(root_dir=root)
        cm.notary.db_file = ":memory:"
        cm.notary.secret = os.urandom(32)
        content = big_notebook(args.megabytes, args.cells)
        for name in ("stock.ipynb", "offloaded.ipynb"):
            Path(root, name).write_text("{}")
        for round_ in range(args.rounds):
            stock = await stall_during(
                cm.save({"type": "notebook", "content": copy.deepcopy(content)}, "stock.ipynb")
            )
            off = await stall_during(
                offload.save_notebook(
                    cm, {"type": "notebook", "content": copy.deepcopy(content)}, "offloaded.ipynb"
                )
            )
            size = Path(root, "stock.ipynb").stat().st_size
            print(
                f"round {round_}: {size / 1e6:.1f} MB file; stock save: loop blocked "
                f"{stock[0] * 1000:.0f} ms at most, took {stock[1] * 1000:.0f} ms; offloaded: "
                f"loop blocked {off[0] * 1000:.0f} ms at most, took {off[1] * 1000:.0f} ms"
            )
            if args.read:
                models: list[dict] = []
                keep = models.append

                async def kept(coro, keep=keep) -> None:
                    keep(await coro)

                stock_read = await stall_during(
                    kept(cm.get("stock.ipynb", content=True, type="notebook", require_hash=True))
                )
                off_read = await stall_during(kept(offload_read.notebook_model(cm, "stock.ipynb")))
                assert models[0] == models[1], "the offloaded read's model differs"
                print(
                    f"round {round_}: stock read: loop blocked {stock_read[0] * 1000:.0f} ms at "
                    f"most, took {stock_read[1] * 1000:.0f} ms; offloaded read: loop blocked "
                    f"{off_read[0] * 1000:.0f} ms at most, took {off_read[1] * 1000:.0f} ms"
                )
    print("load average", os.getloadavg())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=56)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read", action="store_true", help="also time the reads")
    asyncio.run(main(parser.parse_args()))
