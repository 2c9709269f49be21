"""The watchers' own floor: how long fanout_bench's watchers take to take in one big update
when the server costs nothing.

    .venv/bin/python bench/fanout_clients_floor.py                      # 300 watchers, 2 processes
    .venv/bin/python bench/fanout_clients_floor.py --watchers 1000 --deflate
    .venv/bin/python bench/fanout_clients_floor.py --raw     # the benchmark's cheap watchers

fanout_bench's batched20000x200 pattern ends with one Y update of 219 kB (the cell's 20000
lines) that every watcher must receive, apply to its pycrdt document and check. This script
replays that work without jupyter_server or a kernel: an asyncio server that does the
websocket handshake by hand and holds the update's frame encoded once (deflated once with
``--deflate``), and the same watchers as the benchmark (``websockets`` clients in worker
processes, each with a pycrdt ``Doc`` holding the notebook before the output and a
``CellView`` checking the text after every update). It writes the frame to every connection
at once and reports the time until the last watcher's document holds the text, with the
watchers' CPU time. No server can make fanout_bench's watchers faster than this, so it is the
lower bound of that scenario's time after the kernel's last output.

With ``--raw`` the watchers are the benchmark's cheap ones (``bench/fanout/raw_watcher.py``:
frames parsed, nothing applied), which fanout_bench uses for all but ``--full-watchers`` of
its watchers; fanout_bench also runs this for each scenario's completing update in the same
run (bench/fanout/clients_floor.py holds the code).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout.clients_floor import run_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="watcher processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deflate", action="store_true", help="the frame compressed once")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="the benchmark's cheap watchers (raw websocket readers, nothing applied) instead "
        "of pycrdt ones",
    )
    args = parser.parse_args()
    for _ in range(args.repeats):
        load = psutil.getloadavg()[0]
        seconds, cpu, size = run_once(args.watchers, args.workers, args.deflate, raw=args.raw)
        print(
            f"{args.watchers} watchers, {size / 1000:.0f} kB frame"
            f"{' (deflated)' if args.deflate else ''}"
            f"{', raw watchers' if args.raw else ', pycrdt watchers'}: last complete {seconds * 1000:.0f} ms "
            f"after the write, watcher CPU {cpu:.2f} s, load {load:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
