"""The fan-out benchmark's command line."""

from __future__ import annotations

import argparse

from .patterns import PATTERNS
from .servers import SERVERS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="fanout_bench",
        description="Seconds until every watcher's document holds a cell's output, server CPU, "
        "peak RSS and messages per watcher, for collab_kernels and its peers, against the "
        "kernel floor.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 20 watchers, each pattern once, short idle-viewer check; "
        "results go to bench/results/ only",
    )
    p.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    p.add_argument("--watchers", default="20,100,300", help="comma-separated watcher counts")
    p.add_argument(
        "--patterns",
        default=",".join(PATTERNS),
        help=f"comma-separated subset of {','.join(PATTERNS)}",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds a scenario may take before it is reported as incomplete",
    )
    p.add_argument(
        "--idle",
        type=float,
        default=8.0,
        help="end a scenario early when no watcher received anything for this long",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="watcher processes (default: 1 up to 100 watchers, 2 above)",
    )
    p.add_argument(
        "--idle-viewers",
        default="100,300",
        help="viewer counts for the idle-viewer measurement ('' to skip)",
    )
    p.add_argument(
        "--awareness-seconds",
        type=float,
        default=30.0,
        help="length of the idle-viewer awareness window",
    )
    p.add_argument(
        "--full-watchers",
        type=int,
        default=4,
        help="watchers per scenario that hold a pycrdt document and check the cell's text "
        "exactly; the others are raw websocket readers that apply nothing and are complete "
        "when they received the same updates (bench/fanout/raw_watcher.py). -1: all pycrdt "
        "watchers (what the benchmark did before: it mostly measures the watchers)",
    )
    p.add_argument(
        "--clients-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after each scenario, time the same raw watchers taking in the scenario's "
        "completing update from a server that costs nothing (bench/fanout/clients_floor.py)",
    )
    p.add_argument("--floor-repeats", type=int, default=3)
    p.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and .png (default: yes unless --quick)",
    )
    p.add_argument(
        "--report",
        metavar="RESULTS_JSON",
        help="run nothing: rewrite docs/benchmarks.md and .png from a results file "
        "(a finished run's, or the partial one a stopped run left)",
    )
    p.add_argument(
        "--watcher-compression",
        choices=["none", "deflate"],
        default="none",
        help="permessage-deflate offered by every watcher, full and raw, as browsers do "
        "('deflate'), or not (sent as FANOUT_WATCHER_COMPRESSION to the watcher processes; "
        "one raw watcher per process inflates, see bench/fanout/raw_watcher.py)",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="do not create missing peer environments (skip those peers)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.watchers = "20"
        if args.idle_viewers == p.get_default("idle_viewers"):
            args.idle_viewers = "20"
        args.awareness_seconds = min(args.awareness_seconds, 5.0)
        args.floor_repeats = 1
        args.timeout = min(args.timeout, 45.0)
    if args.docs is None:
        args.docs = not args.quick
    return args
